"""Every HTML form of the panel answers bad input with its page again: HTTP 400 (409 where the state
conflicts), the error in the page, what the user typed kept, and nothing changed in the database.

FORMS lists every form view by its URL name (several cases where one view serves several forms), and
test_every_view_is_listed walks the URL resolver so that a new view fails until it is listed here
(a form) or in NOT_FORMS (a page or a download, with why). The cases use database rows only: no agent,
no LXC; CTIDs 78200-78299."""
from __future__ import annotations

import html
import inspect
from dataclasses import dataclass, field
from typing import Callable

import pytest
from django.apps import apps
from django.contrib.auth.tokens import default_token_generator
from django.core import serializers
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLResolver, get_resolver, reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts.models import ApiToken, User
from backups.models import Backup, BackupJob, BackupStorage
from containers.models import Container, OSTemplate
from hosts.models import Host
from network.models import IPPool
from tasks.models import Task
from tenancy.models import Membership, Plan, StudentClass, Tenant

pytestmark = [pytest.mark.django_db, pytest.mark.contract]  # how forms answer: once, on SQLite

# Rows that change on a refused request on purpose: the audit log records refusals, sessions and
# axes keep their own books, and a wrong two-factor code counts towards the device's throttle.
NOT_COMPARED = {"accounts.auditevent", "sessions.session", "axes.accessattempt", "axes.accesslog",
                "axes.accessfailurelog", "otp_totp.totpdevice", "admin.logentry"}

# Views that take no form input: pages, feeds and downloads (GET), and logout.
NOT_FORMS = {
    "dashboard", "account", "logout", "password_reset_done", "password_reset_complete",
    "container-series", "container-beancounters", "host-beancounters", "metrics",
    "pool-list", "backup-list", "backup-download", "backup-log", "container-list", "container-detail",
    "container-history",
    "task-list", "task-detail", "backup-job-list", "host-list", "host-detail", "template-list",
    "tenant-list", "tenant-detail", "class-detail", "plan-list", "user-list", "audit-list",
    # A button without input whose lookup answers 404 for any token the user may not revoke: it has
    # no refusal left to show (accounts.tokens refuses only other people's tokens).
    "token-revoke",
}

# POSTs a page's script makes, answered with JSON for that script (no form page to show again):
# where their refusals are tested.
SCRIPT_POSTS = {"container-console-ticket": "tests/test_consoles.py (409 with the reason, 403, 404)"}

# Buttons without input that the service never refuses to someone allowed to press them (someone else
# gets 403 or 404 as before): there is no bad input to send. They use the same helper all the same.
NO_REFUSAL = {  # name: (url, data, why)
    "backup-verify": (lambda w: reverse("backup-verify", args=[w["backup"].pk]), {},
                      "any backup the user may manage can be verified"),
    "backup-protect": (lambda w: reverse("backup-protect", args=[w["backup"].pk]), {"protected": "true"},
                       "protecting or unprotecting always succeeds (its only input is a boolean)"),
    "backup-job-run": (lambda w: reverse("backup-job-run", args=[w["job"].pk]), {},
                       "a job the user may manage always runs (an empty selection makes an empty run)"),
}


@dataclass
class Case:
    """POST `data` to the URL `url(world)` names: answer `status`, show `error`, keep `kept`."""
    url: Callable[[dict], str]
    data: Callable[[dict], dict] | dict
    error: str
    kept: str | None = None
    status: int = 400
    files: Callable[[], dict] = field(default=lambda: {})
    user: str = "admin"


def _ct(ctid):
    return lambda w: f"/containers/{ctid}/"


def _u(name, *args):
    return lambda w: reverse(name, args=[a(w) if callable(a) else a for a in args])


STOPPED, RUNNING = 78201, 78202

FORMS: dict[str, list[Case]] = {
    # -- containers
    "container-create": [Case(_u("container-create"), lambda w: {
        "ctid": "78250", "host": w["host"].pk, "ostemplate": w["template"], "hostname": "bad_host!"},
        "not a valid hostname", "bad_host!")],
    "container-settings": [Case(_u("container-settings", STOPPED), {"hostname": "bad_host!"},
                                "not a valid hostname", "bad_host!")],
    "container-exec": [Case(_u("container-exec", RUNNING), {"command": "uptime-78", "timeout": "99999"},
                            "less than or equal to 3600", "99999")],
    "container-destroy": [Case(_u("container-destroy", STOPPED), {"confirm": "78299"}, "confirm", "78299"),
                          Case(_u("container-destroy", RUNNING), {"confirm": str(RUNNING)}, "Stop", status=409)],
    "container-reset": [Case(_u("container-reset", STOPPED), {"confirm": "78298"}, "confirm", "78298")],
    "container-migrate": [Case(_u("container-migrate", STOPPED), {"bwlimit_kib": "-57"},
                               "greater than or equal to 0", "-57")],
    "container-password": [Case(_u("container-password", STOPPED),
                                {"user": "alice78", "password": "short", "confirm": "short"},
                                "at least 8 characters", "alice78")],
    "container-sshkey": [Case(_u("container-sshkey", STOPPED), {"key": "not-a-key-78", "user": "root"},
                              "key", "not-a-key-78")],
    "container-action": [Case(_u("container-action", RUNNING, "start"), {}, "running", status=409)],
    "container-bulk": [Case(_u("container-bulk"), {"action": "destroy", "ctid": [str(STOPPED)], "confirmed": "on",
                                                   "confirm": "nope78"}, "to destroy these containers", "nope78"),
                       Case(_u("container-bulk"), {"action": "start"}, "Select at least one container"),
                       Case(_u("container-bulk"), {"action": "start", "ctid": ["78x"]}, "is not a CTID")],
    "template-from-container": [Case(_u("template-from-container", STOPPED), {"name": "bad name!"},
                                     "template name", "bad name!")],
    # -- network
    "ct-net-ipadd": [Case(_u("ct-net-ipadd", STOPPED), {"addresses": "999.1.1.78"}, "999.1.1.78", "999.1.1.78")],
    "ct-net-ipdel": [Case(_u("ct-net-ipdel", STOPPED), {"address": "203.0.113.78"}, "203.0.113.78")],
    "ct-net-netif-add": [Case(_u("ct-net-netif-add", STOPPED), {"ifname": "bad name!", "bridge": "vzbr0"},
                              "bad name!", "bad name!")],
    "ct-net-netif-del": [Case(_u("ct-net-netif-del", STOPPED), {"ifname": "eth7"}, "eth7")],
    "ct-net-dns": [Case(_u("ct-net-dns", STOPPED), {"nameservers": "not-an-ip-78"}, "not-an-ip-78",
                        "not-an-ip-78")],
    "host-bridge-create": [Case(_u("host-bridge-create", lambda w: w["host"].name), {"name": "bad name!"},
                                "bad name!", "bad name!")],
    "pool-create": [Case(_u("pool-create"), {"name": "lab78", "network": "300.0.0.0/24"}, "300.0.0.0/24",
                         "300.0.0.0/24")],
    "pool-edit": [Case(_u("pool-edit", lambda w: w["pool"].pk), {"name": "pool78", "network": "300.1.0.0/24"},
                       "300.1.0.0/24", "300.1.0.0/24")],
    # -- backups
    "container-backup-create": [Case(_u("container-backup-create", STOPPED),
                                     {"mode": "stop", "compress": "zstd", "bwlimit_kbps": "-78"},
                                     "greater than or equal to 1", "-78")],
    "container-backup-prune": [Case(_u("container-backup-prune", STOPPED), {"keep_last": "-78"},
                                    "greater than or equal to 1", "-78")],
    "backup-upload": [Case(_u("backup-upload"), lambda w: {"host": w["host"].name},
                           "is not a vzdump archive name",
                           files=lambda: {"archive": SimpleUploadedFile("wrong-78.txt", b"x")})],
    "backup-notes": [Case(_u("backup-notes", lambda w: w["backup"].pk), {"notes": "n78" * 70},
                          "at most 200 characters", "n78" * 70)],
    "backup-delete": [Case(_u("backup-delete", lambda w: w["backup"].pk), {"confirm": "wrong-78.tar"},
                           "wrong-78.tar", "wrong-78.tar")],
    "backup-restore": [Case(_u("backup-restore", lambda w: w["backup"].pk),
                            lambda w: {"target": "new", "ctid": "abc78", "host": w["host"].name},
                            "whole number", "abc78")],
    # -- backup jobs
    "backup-job-create": [Case(_u("backup-job-create"), {"name": "nightly78", "schedule": "not a cron 78",
                                                         "selection": "all", "mode": "suspend",
                                                         "compress": "zstd", "notify": "always"},
                               "not a cron 78", "not a cron 78")],
    "backup-job-detail": [Case(_u("backup-job-detail", lambda w: w["job"].pk),
                               {"name": "job78", "schedule": "every 78 minutes", "selection": "all",
                                "mode": "suspend", "compress": "zstd", "notify": "always"},
                               "every 78 minutes", "every 78 minutes")],
    "backup-job-delete": [Case(_u("backup-job-delete", lambda w: w["job"].pk), {"confirm": "wrong-78"},
                               "to confirm", "wrong-78")],
    # -- tenancy
    "tenant-create": [Case(_u("tenant-create"), {"slug": "Bad Slug 78", "name": "x"}, "slug", "Bad Slug 78")],
    "tenant-quotas": [Case(_u("tenant-quotas", "acme78"), {"max_containers": "-78"},
                           "cannot be negative", "-78")],
    "tenant-member-add": [Case(_u("tenant-member-add", "acme78"), {"username": "nobody-78", "role": "member"},
                               "nobody-78", "nobody-78")],
    "tenant-member-create": [Case(_u("tenant-member-create", "acme78"),
                                  {"username": "new78", "email": "not-an-email-78", "role": "member"},
                                  "valid email", "not-an-email-78")],
    "tenant-member-remove": [Case(_u("tenant-member-remove", "acme78", lambda w: w["tadmin"].pk), {},
                                  "last")],
    "class-create": [Case(_u("class-create", "acme78"), lambda w: {
        "slug": "Bad Slug 78", "name": "c", "host": w["host"].pk, "ostemplate": w["template"],
        "plan": w["plan"].pk, "grace_days": "14"}, "slug", "Bad Slug 78")],
    "class-import": [Case(_u("class-import", "class78"), {"csv_text": "username,email\nbad name!,x@example.test"},
                          "bad name!", "bad name!")],
    "class-bulk": [Case(_u("class-bulk", "class78"), {"action": "destroy", "confirm": "wrong-78"},
                        "wrong-78", "wrong-78")],
    "plan-create": [Case(_u("plan-create"), {"name": "plan78", "ram_mb": "-78", "swap_mb": "0", "cpus": "1",
                                             "disk_mb": "1024"}, "at least 16 MiB", "-78")],
    "plan-edit": [Case(_u("plan-edit", lambda w: w["plan"].pk), {"name": "plan78", "ram_mb": "-79",
                                                                  "swap_mb": "0", "cpus": "1", "disk_mb": "1024"},
                       "at least 16 MiB", "-79")],
    # -- accounts
    "user-create": [Case(_u("user-create"), {"username": "bad name 78", "role": ""}, "bad name 78",
                         "bad name 78")],
    "user-active": [Case(_u("user-active", lambda w: w["admin"].pk), {"active": "0"}, "yourself")],
    "token-create": [Case(_u("token-create"), {"name": "script78", "expires_in_days": "99999"},
                          "valid choice", "script78")],
    "login": [Case(_u("login"), {"username": "someone78", "password": "wrong"}, "Wrong username or password",
                   "someone78", user="")],
    "otp-verify": [Case(_u("otp-verify"), {"token": "000000"}, "code", user="twofactor")],
    "2fa-setup": [Case(_u("2fa-setup"), {"token": "000000"}, "code")],
    "2fa-disable": [Case(_u("2fa-disable"), {"token": "000000", "password": ""}, "code", user="verified")],
    "password_change": [Case(_u("password_change"), {"old_password": "wrong-78", "new_password1": "x",
                                                     "new_password2": "y"}, "incorrect")],
    "password_reset": [Case(_u("password_reset"), {"email": "not-an-email-78"}, "valid email",
                            "not-an-email-78", user="")],
    "password_reset_confirm": [Case(lambda w: w["reset_url"]("password_reset_confirm"),
                                    {"new_password1": "Long-enough-78", "new_password2": "Different-78"},
                                    "didn’t match", user="")],
    "password-set": [Case(lambda w: w["reset_url"]("password-set"),
                          {"new_password1": "Long-enough-78", "new_password2": "Different-78"},
                          "didn’t match", user="")],
    # -- hosts
    "host-add": [Case(_u("host-add"), {"name": "Bad Name 78", "lxcpath": "/var/lib/lxc"}, "Bad Name 78",
                      "Bad Name 78")],
    "storage-create": [Case(_u("storage-create", lambda w: w["host"].name), {"name": "nfs78",
                                                                             "path": "relative/78"},
                            "absolute", "relative/78")],
    "pool-add": [Case(_u("pool-add", lambda w: w["host"].name), {"name": "tank78", "type": "btrfs",
                                                                 "device": "/etc/passwd78"},
                      "path under /dev", "/etc/passwd78")],
    "pool-default": [Case(_u("pool-default", lambda w: w["host"].name, lambda w: w["failed_pool"].pk), {},
                          "cannot be the default", status=409)],
    "container-snapshot": [Case(_u("container-snapshot", STOPPED), {"name": "snap78"}, "cannot take snapshots")],
    "container-snapshot-action": [Case(_u("container-snapshot-action", STOPPED, "snap78", "delete"), {},
                                       "cannot take snapshots")],
    "storage-delete": [Case(_u("storage-delete", lambda w: w["host"].name, lambda w: w["storage"].pk), {},
                            "still lists backups")],
    "host-action": [
        Case(_u("host-action", lambda w: w["host"].name, "drain"), {"reason": "r" * 201},
             "at most 200 characters", "r" * 201),
        Case(_u("host-action", lambda w: w["host"].name, "ssh"), {"ssh_address": "bad address 78"},
             "bad address 78", "bad address 78"),
        Case(_u("host-action", lambda w: w["host"].name, "remove"), {"confirm": "wrong-78"},
             "confirm by typing its name", "wrong-78"),
        Case(_u("host-action", lambda w: w["empty_host"].name, "evacuate"), {"online": "on"},
             "no containers to move", status=409),
    ],
    # -- OS templates
    "template-build": [Case(_u("template-build"), lambda w: {"host": w["host"].name, "distribution": "debian",
                                                              "release": "bad release 78", "architecture": "amd64"},
                            "bad release 78", "bad release 78")],
    "template-download": [Case(_u("template-download"), lambda w: {"host": w["host"].name,
                                                                    "url": "ftp://example.org/t78.tar.gz"},
                               "http", "ftp://example.org/t78.tar.gz")],
    "template-download-index": [Case(_u("template-download-index"), lambda w: {
        "host": w["host"].name, "index_url": "ftp://example.org/78/", "distribution": "debian",
        "release": "bookworm", "architecture": "amd64", "variant": "default"}, "http", "ftp://example.org/78/")],
    "template-upload": [Case(_u("template-upload"), lambda w: {"host": w["host"].name, "name": "keep-78"},
                             "is not a tarball", "keep-78",
                             files=lambda: {"file": SimpleUploadedFile("t78.txt", b"x")})],
    "template-copy": [Case(_u("template-copy", lambda w: w["template_row"].pk), lambda w: {"host": w["host"].name},
                           "already on")],
    "template-delete": [Case(_u("template-delete", lambda w: w["template_row"].pk), {"confirm": "wrong-78"},
                             "to confirm", "wrong-78")],
    # -- tasks
    "task-cancel": [Case(_u("task-cancel", lambda w: w["done_task"].pk), {}, "only a queued task", status=409)],
}


@pytest.fixture
def world(client, admin_user, host, template_name, settings, tmp_path):
    """One of everything a form acts on, as rows."""
    from django_otp.plugins.otp_totp.models import TOTPDevice
    from tasks.choices import TaskStatus
    settings.UPLOAD_DIR = str(tmp_path / "uploads")
    acme = Tenant.objects.create(slug="acme78", name="Acme 78")
    plan = Plan.objects.create(name="plan78-basic", ram_mb=256, swap_mb=0, cpus=1, disk_mb=1024)
    tadmin = User.objects.create_user("tadmin78", "tadmin78@example.test", "tadmin-pass-78")
    Membership.objects.create(tenant=acme, user=tadmin, role="admin")
    stopped = Container.objects.create(ctid=STOPPED, hostname="stopped.example", ostemplate=template_name,
                                       host=host, status="stopped", tenant=acme)
    running = Container.objects.create(ctid=RUNNING, hostname="running.example", ostemplate=template_name,
                                       host=host, status="running")
    storage = BackupStorage.objects.create(host=host, name="store78", path=str(tmp_path / "store"))
    archive = {"size": 1, "sha256": "0" * 64, "mode": "snapshot", "compress": "zst"}
    backup = Backup.objects.create(host=host, container=stopped, ctid=STOPPED, storage=storage, **archive,
                                   storage_path=storage.path, filename="vzdump-lxc-78201-2026_01_01-00_00_00.tar.zst")
    done_task = Task.objects.create(type="ct.start", host=host, container=stopped, ctid=STOPPED,
                                    status=TaskStatus.OK)
    pool = IPPool.objects.create(name="pool78", network="198.51.100.0/24")
    job = BackupJob.objects.create(name="job78", schedule="30 2 * * *", selection="all", owner=admin_user)
    StudentClass.objects.create(tenant=acme, slug="class78", name="Class 78", host=host, ostemplate=template_name,
                                plan=plan)
    empty_host = Host.objects.create(name="empty78", lxcpath=str(tmp_path / "lxc"), template_dir=str(tmp_path),
                                     dump_dir=str(tmp_path / "dump"))
    from storage.models import StoragePool
    failed_pool = StoragePool.objects.create(host=host, name="failed78", type="btrfs", loop_size_mb=1024,
                                             status="failed")
    twofactor = User.objects.create_user("twofactor78", "2fa78@example.test", "twofactor-pass-78")
    TOTPDevice.objects.create(user=twofactor, name="default", confirmed=True)
    reset_user = User.objects.create_user("reset78", "reset78@example.test", "reset-pass-78")

    def reset_url(name):
        """The reset link opened once: Django keeps the token in the session and sends the form's URL."""
        uid = urlsafe_base64_encode(force_bytes(reset_user.pk))
        response = client.get(reverse(name, args=[uid, default_token_generator.make_token(reset_user)]))
        assert response.status_code == 302, response.status_code
        return response["Location"]
    return {"admin": admin_user, "host": host, "template": template_name, "acme": acme, "plan": plan,
            "tadmin": tadmin, "stopped": stopped, "running": running, "storage": storage, "backup": backup,
            "done_task": done_task, "pool": pool, "job": job, "failed_pool": failed_pool,
            "empty_host": empty_host, "twofactor": twofactor, "reset_url": reset_url,
            "template_row": OSTemplate.objects.filter(host=host).first()}


def database_rows() -> list:
    """Every row of every model, serialized, but for those NOT_COMPARED."""
    rows = []
    for model in apps.get_models():
        if model._meta.label_lower in NOT_COMPARED or not model._meta.managed:
            continue
        rows += [(model._meta.label_lower, r) for r in serializers.serialize("python", model.objects.order_by("pk"))]
    return rows


CASES = [pytest.param(name, i, id=f"{name}-{i}") for name, cases in FORMS.items() for i in range(len(cases))]


@pytest.mark.parametrize("name,index", CASES)
def test_bad_input_shows_the_form_again_with_its_errors_and_changes_nothing(client, world, name, index):
    case = FORMS[name][index]
    if case.user == "admin":
        client.force_login(world["admin"])
    elif case.user in ("twofactor", "verified"):
        client.force_login(world["twofactor"])
        if case.user == "verified":  # the session has given its code (django_otp's own session key)
            session = client.session
            session["otp_device_id"] = world["twofactor"].totpdevice_set.get().persistent_id
            session.save()
    url = case.url(world)
    data = case.data(world) if callable(case.data) else dict(case.data)
    before = database_rows()
    response = client.post(url, {**data, **case.files()})
    page = html.unescape(response.content.decode())
    assert response.status_code == case.status, (response.status_code, response.get("Location"), page[:3000])
    assert case.error.lower() in page.lower(), page
    if case.kept is not None:
        assert case.kept in page, f"{case.kept!r} not kept"
    assert 'class="alert alert-danger' in page or "invalid-feedback" in page
    assert database_rows() == before


def _named_views():
    """(URL name, view) of every page of the panel (not the API, not Django's admin)."""
    def walk(patterns, prefix=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, prefix + str(p.pattern))
            elif not (prefix + str(p.pattern)).startswith(("api/", "admin/")):
                yield p.name, p.callback
    return list(walk(get_resolver().url_patterns))


def test_every_view_is_listed():
    """A new page or form must be listed: in FORMS with a bad-input case, or in NOT_FORMS."""
    names = {name for name, _ in _named_views()}
    listed = FORMS.keys() | NOT_FORMS | NO_REFUSAL.keys() | SCRIPT_POSTS.keys()
    assert names - listed == set(), "views not listed in FORMS, NO_REFUSAL, NOT_FORMS or SCRIPT_POSTS"
    assert listed - names == set(), "listed views that do not exist"


def test_views_not_listed_as_forms_read_no_form_input():
    """What NOT_FORMS lists handles no POSTed input (a check that the list above tells the truth)."""
    for name, view in _named_views():
        if name in NOT_FORMS and name not in ("logout", "token-revoke"):
            source = inspect.getsource(inspect.unwrap(getattr(view, "view_class", view)))
            assert "request.POST" not in source and "require_POST" not in source, name


def test_a_form_in_error_over_htmx_keeps_the_address(client, world):
    """A boosted form that fails gets its page with HX-Push-Url: false (the address bar stays on the page)."""
    client.force_login(world["admin"])
    response = client.post(f"/containers/{STOPPED}/settings/", {"hostname": "bad_host!"},
                           HTTP_HX_REQUEST="true", HTTP_HX_BOOSTED="true")
    assert response.status_code == 400 and response["HX-Push-Url"] == "false"
    assert "<html" in response.content.decode()  # the whole page: boosted, not a fragment


def test_success_still_redirects(client, world):
    client.force_login(world["admin"])
    response = client.post(f"/containers/{STOPPED}/settings/", {"hostname": "good.example"})
    assert response.status_code == 302
    assert Container.objects.get(ctid=STOPPED).hostname == "good.example"


def test_other_forms_of_the_page_stay_fresh(client, world):
    """The container page with the exec form in error: the settings form shows the stored values."""
    client.force_login(world["admin"])
    response = client.post(f"/containers/{RUNNING}/exec/", {"command": "uptime", "timeout": "0"})
    assert response.status_code == 400
    assert response.context["settings_form"].is_bound is False
    assert response.context["exec_form"].is_bound is True


def test_api_token_not_shown_on_refusal(client, world):
    """A refused token form keeps nothing secret: no token row was made."""
    client.force_login(world["admin"])
    client.post("/accounts/tokens/", {"name": "", "expires_in_days": "30"})
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize("name", sorted(NO_REFUSAL))
def test_buttons_that_cannot_be_refused_still_redirect(client, world, name):
    url, data, _why = NO_REFUSAL[name]
    client.force_login(world["admin"])
    response = client.post(url(world), data)
    assert response.status_code == 302
