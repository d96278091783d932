"""An outside tester's attacks on the tenant boundary and the auth layer (after issue 13).

Each test reproduces one finding and fails on the code it was written against."""
from __future__ import annotations

import io
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from rest_framework.test import APIClient

from backups.models import Backup, BackupStorage
from network.models import IPPool
from panel.uploads import upload_dir
from tenancy.models import Membership
from tenancy.services import remove_member
from tests.test_auth import enable_2fa, login, next_code, wait_for_throttle


def api_as(user) -> APIClient:
    api = APIClient(raise_request_exception=False)
    api.force_authenticate(user)
    return api


def _backup(host, ct, tenant, owner, ctid=501, filename=None):
    return Backup.objects.create(ctid=ctid, container=ct, tenant=tenant, owner=owner, host=host,
                                 storage_path="/tmp/vzpt-none",
                                 filename=filename or f"vzdump-lxc-{ctid}-2024_01_01-00_00_00.tar.zst",
                                 size=10, sha256="a" * 64)


# 1. Upload into a tenant: still a 500, and the file stays next to the database ---------------
def test_tenant_upload_is_refused_cleanly_and_leaves_no_file(transactional_db, host, acme, people, client):
    """Issue 13 #6 as the outside tester found it: import_archive checked the quota outside any
    transaction, so every tenant upload answered 500 and left the file next to the database. Now the
    upload streams onto the backup storage and is queued; one past the quota is refused and removed."""
    client.raise_request_exception = False
    client.force_login(people["tadmin"])
    name = "vzdump-lxc-77010-2024_01_01-00_00_00.tar"
    resp = client.post("/backups/upload/", {"archive": SimpleUploadedFile(name, b"x" * 4096),
                                            "host": host.name, "tenant": "acme"})
    assert resp.status_code == 302 and resp["Location"].startswith("/tasks/")  # queued for import
    assert (upload_dir() / name).exists() and "/var/" not in str(upload_dir())
    acme.max_backups = 0  # now full: the next one is refused and removed (tests/adversarial/test_uploads.py)
    acme.save()
    name2 = name.replace("77010", "77011")
    resp = client.post("/backups/upload/", {"archive": SimpleUploadedFile(name2, b"x" * 4096),
                                            "host": host.name, "tenant": "acme"})
    assert resp.status_code == 409 and not (upload_dir() / name2).exists()


# 2. A member removed from the tenant keeps the tenant's archives ----------------------------------
def test_removed_member_loses_the_tenants_backups(host, acme, people, student_ct):
    """visible_backups/manageable_backups grant by Backup.owner (= the container's owner at backup
    time) with no check that the user is still in the tenant: once the container is gone and the
    tenant admin removes the student, the ex-member still lists, protects (escaping every prune and
    retention), deletes and downloads the tenant's archives."""
    backup = _backup(host, student_ct, acme, people["student"])
    student_ct.delete()
    remove_member(people["tadmin"], acme, people["student"])
    assert not Membership.objects.filter(user=people["student"]).exists()
    api = api_as(people["student"])
    assert api.get("/api/backups/").json()["count"] == 0
    assert api.patch(f"/api/backups/{backup.pk}/", {"protected": True}, format="json").status_code == 404
    assert not Backup.objects.get(pk=backup.pk).protected


# 3. Backup jobs name other tenants ---------------------------------------------------------------
def test_backup_job_answers_alike_for_foreign_and_missing_tenants(acme, other_tenant, people):
    """jobs_service._validate looks the tenant up among all tenants (by slug or by id), then answers
    403 "You may not make backup jobs for tenant <slug>" for a foreign one and 400 "There is no
    tenant" for a missing one: a tenant admin enumerates every tenant's slug by id (1, 2, 3...)."""
    api = api_as(people["tadmin"])
    answers = {}
    for tenant in ("other", "no-such-tenant", str(other_tenant.pk), "99999"):
        resp = api.post("/api/backup-jobs/", {"name": "probe", "schedule": "0 1 * * *", "tenant": tenant},
                        format="json")
        answers[tenant] = (resp.status_code, resp.content.decode().replace(tenant, "X"))
    assert "other" not in answers[str(other_tenant.pk)][1], answers
    assert answers["other"] == answers["no-such-tenant"], answers


# 4. Pools over the API name other tenants (and the browsable form lists all of them) ------------
def test_pool_api_does_not_name_other_tenants(acme, other_tenant, people, host):
    """PoolSerializer.tenants lists every tenant a visible (shared or jointly assigned) pool is
    assigned to, and the browsable API's POST form on /api/pools/ offers Tenant.objects.all() and
    Host.objects.all() to any tenant admin: every customer's slug and name, every host."""
    both = IPPool.objects.create(name="joint", network="203.0.113.0/24")
    both.tenants.add(acme, other_tenant)
    shared = IPPool.objects.create(name="common", network="10.9.0.0/24", shared=True)
    shared.tenants.add(other_tenant)
    api = api_as(people["tadmin"])
    body = api.get("/api/pools/").content.decode()
    assert '"other"' not in body
    page = api.get("/api/pools/?format=api").content.decode()
    assert "Other Ltd" not in page and 'value="other"' not in page
    assert f'value="{host.name}"' not in page


# 5. The second factor does not renew the session -------------------------------------------------
def test_session_key_changes_when_the_code_is_entered(client, owner):
    """otp_verify calls django_otp.login, which does not cycle the session key: a session fixed by
    someone holding only the password (they log in, plant the cookie) becomes fully verified the
    moment the victim types their code, in the attacker's hands too."""
    login(client, "owner", "owner-pass-123")
    device = enable_2fa(client, owner)
    client.post("/accounts/logout/")
    login(client, "owner", "owner-pass-123")
    half = client.session.session_key
    wait_for_throttle(device)
    assert client.post("/accounts/verify/", {"token": next_code(device)}).status_code == 302
    assert client.session.session_key != half


# 6. hostctl list ignores --user -------------------------------------------------------------------
def test_hostctl_list_follows_the_role(host, people):
    """hostctl's list verb prints Host.objects.all() (agent state, token state, SSH address,
    container count) whoever --user is: the one CLI verb without a rule."""
    out = io.StringIO()
    try:
        call_command("hostctl", "--user", "student", "list", stdout=out)
    except Exception:  # a refusal is the right answer
        return
    assert host.name not in out.getvalue()


# 7. The backup job form shows tenant admins every storage, with host and path -------------------
def test_job_form_does_not_show_hosts_storage_paths(host, acme, people, client):
    """job_storages() is every enabled storage on every host, labelled 'name (host:/path)': a
    tenant admin learns the machines' names and mount points (infrastructure is for global roles)."""
    BackupStorage.objects.create(host=host, name="nas1", path="/srv/secret-nas")
    client.force_login(people["tadmin"])
    page = client.get("/backups/jobs/new/").content.decode()
    assert "/srv/secret-nas" not in page


# 8. Format suffixes crash several API routes -------------------------------------------------------
@pytest.mark.parametrize("url", ["/api/backups.json", "/api/backup-jobs.json", "/api/containers.json",
                                 "/api/tasks/1/cancel.json"])
def test_format_suffix_routes_do_not_crash(people, url):
    """The router registers .json suffixes, but list()/retrieve()/actions of several viewsets do not
    accept the `format` kwarg: TypeError, 500 for every role (noise in logs, no boundary)."""
    api = api_as(people["student"])
    resp = api.post(url, {}, format="json") if "cancel" in url else api.get(url)
    assert resp.status_code != 500, url
