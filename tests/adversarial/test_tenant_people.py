"""A tenant admin tries to pull people into their tenant: other tenants' admins, the panel's own
administrators, accounts in no tenant, names that do not exist. None of it works, and the answer
never tells which usernames exist."""
from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.models import User
from tenancy.models import Membership, Tenant


@pytest.fixture
def loner(db):
    return User.objects.create_user("loner", "loner@example.test", "loner-pass-123")


def _answer(client, username):
    resp = client.post("/tenants/acme/members/add/", {"username": username, "role": "admin"})
    assert resp.status_code == 400
    page = resp.content.decode()
    return page.split('alert-danger')[1].split("</div>")[0].replace(username, "NAME")


def test_tenant_admin_cannot_pull_in_anyone_from_outside(client, acme, other_tenant, people, admin_user, loner):
    client.force_login(people["tadmin"])
    other_admin = User.objects.create_user("otheradmin", "oa@example.test", "x-pass-123")
    Membership.objects.create(tenant=other_tenant, user=other_admin, role="admin")
    before = set(Membership.objects.values_list("tenant_id", "user_id", "role"))
    answers = {name: _answer(client, name) for name in
               ["otheradmin", "stranger", "admin", "loner", "operator", "auditor", "no-such-user"]}
    assert len(set(answers.values())) == 1, answers  # the same words whether or not the name exists
    assert "not among the people you can add" in answers["admin"]
    assert set(Membership.objects.values_list("tenant_id", "user_id", "role")) == before
    # So their email and last login stay out of reach too.
    api = APIClient()
    api.force_authenticate(people["tadmin"])
    seen = {u["username"] for u in api.get("/api/users/").json()["results"]}
    assert seen.isdisjoint({"otheradmin", "stranger", "admin", "loner", "operator", "auditor"})


def test_tenant_admin_may_move_people_between_their_own_tenants(client, acme, people):
    second = Tenant.objects.create(slug="acme-labs", name="Acme Labs")
    Membership.objects.create(tenant=second, user=people["tadmin"], role="admin")
    client.force_login(people["tadmin"])
    resp = client.post("/tenants/acme-labs/members/add/", {"username": "student", "role": "member"})
    assert resp.status_code == 302
    assert Membership.objects.filter(tenant=second, user=people["student"], role="member").exists()


def test_administrator_adds_anyone(client, acme, admin_user, loner):
    client.force_login(admin_user)
    assert client.post("/tenants/acme/members/add/", {"username": "loner", "role": "member"}).status_code == 302
    assert Membership.objects.filter(tenant=acme, user=loner).exists()


def test_new_member_is_invited_by_email(client, acme, people, smtp_server):
    client.force_login(people["tadmin"])
    resp = client.post("/tenants/acme/members/new/", {"username": "newbie", "email": "newbie@example.test",
                                                      "role": "member"})
    assert resp.status_code == 302
    (message,) = smtp_server.messages
    assert message.rcpt_tos == ["newbie@example.test"]
    assert b"/accounts/password-set/" in message.content
    assert Membership.objects.filter(tenant=acme, user__username="newbie", role="member").exists()


# -- names of others' tenants, plans and containers do not leak through different answers ----------
def test_create_answers_alike_for_a_foreign_and_a_missing_tenant_or_plan(people, acme, other_tenant, plan, host,
                                                                         template_name):
    from tenancy.models import Plan
    secret_plan = Plan.objects.create(name="other-gold", ram_mb=512, disk_mb=1024)
    secret_plan.tenants.add(other_tenant)
    api = APIClient()
    api.force_authenticate(people["tadmin"])

    def create(**extra):
        body = {"ctid": 7001, "ostemplate": template_name, "hostname": "x.example", "tenant": "acme",
                "plan": plan.name, **extra}
        resp = api.post("/api/containers/", body, format="json")
        return resp.status_code, {k: [m.replace(str(v), "NAME") for m in resp.json().get(k, [])]
                                  for k, v in extra.items()}

    assert create(tenant="other") == create(tenant="no-such-tenant")
    assert create(plan="other-gold") == create(plan="no-such-plan")
    assert create(tenant="other")[0] == 400


def test_restore_over_a_foreign_ctid_says_only_that_it_is_taken(people, student_ct, other_tenant, host):
    from backups.models import Backup
    from backups.services import restore_backup
    from containers.models import Container
    from containers.services import InvalidRequest
    foreign = Container.objects.create(ctid=7002, hostname="f.example", ostemplate="x", host=host,
                                       tenant=other_tenant, owner=people["outsider"], status="running")
    mine = Backup.objects.create(ctid=student_ct.ctid, container=student_ct, tenant=student_ct.tenant,
                                 owner=people["student"], host=host, storage_path="/nonexistent",
                                 filename="vzdump-lxc-501-2026_01_01-00_00_00.tar.zst", size=1, sha256="0" * 64)
    for force in (False, True):
        with pytest.raises(InvalidRequest) as err:
            restore_backup(mine, people["tadmin"], ctid=foreign.ctid, force=force, confirm=str(foreign.ctid))
        assert str(err.value) == "CTID 7002 is already in use; choose another."


def test_create_form_offers_only_the_tenants_plans(client, people, acme, other_tenant, plan, host):
    from tenancy.models import Plan
    Plan.objects.create(name="other-gold", ram_mb=512, disk_mb=1024).tenants.add(other_tenant)
    client.force_login(people["tadmin"])
    page = client.get("/containers/new/").content.decode()
    assert plan.name in page and "other-gold" not in page
