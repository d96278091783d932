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
    assert resp.status_code == 200
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
