"""Tenant, class, plan, user and audit pages and their API, without an agent."""
import functools
from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import audit
from accounts.models import AuditEvent, User
from containers.models import Container
from tasks.models import Task
from tenancy.models import Membership, Plan, StudentClass, Tenant, TenantRole


# -- fixtures -------------------------------------------------------------------------
@pytest.fixture
def acme(owner):
    tenant = Tenant.objects.create(slug="acme", name="Acme", max_containers=5, max_ram_mb=2048)
    Membership.objects.create(tenant=tenant, user=owner, role=TenantRole.ADMIN)
    return tenant


@pytest.fixture
def member(acme):
    user = User.objects.create_user("mia", "mia@example.test", "mia-pass-123")
    Membership.objects.create(tenant=acme, user=user, role=TenantRole.MEMBER)
    return user


@pytest.fixture
def other(outsider):
    tenant = Tenant.objects.create(slug="other", name="Other")
    Membership.objects.create(tenant=tenant, user=outsider, role=TenantRole.MEMBER)
    return tenant


@pytest.fixture
def basic():
    return Plan.objects.create(name="basic", ram_mb=256, swap_mb=0, cpus=1, disk_mb=1024)


@pytest.fixture
def cls(acme, host, template_name, basic):
    return StudentClass.objects.create(tenant=acme, slug="cs101", name="CS 101", host=host,
                                       ostemplate=template_name, plan=basic)


def make_ct(ctid, tenant, owner, host, template_name, ram_mb=512, **kw):
    return Container.objects.create(ctid=ctid, hostname=f"ct{ctid}.example", ostemplate=template_name, host=host,
                                    tenant=tenant, owner=owner, status="stopped", ram_mb=ram_mb, **kw)


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


# -- pages render, nav ------------------------------------------------------------------
def test_pages_need_login(client):
    for url in ["/tenants/", "/tenants/acme/", "/classes/x/", "/plans/", "/users/", "/audit/"]:
        assert client.get(url).status_code == 302, url
    assert client.get("/api/tenants/").status_code in (401, 403)


def test_admin_pages_render(client, admin_user, acme, other, cls, member):
    client.force_login(admin_user)
    for url in ["/", "/tenants/", "/tenants/new/", "/tenants/acme/", "/tenants/acme/quotas/",
                "/tenants/acme/classes/new/", "/classes/cs101/", "/plans/", "/plans/new/",
                f"/plans/{cls.plan.pk}/edit/", "/users/", "/audit/", "/api/tenants/", "/api/plans/",
                "/api/audit/", "/api/users/", "/api/schema/"]:
        assert client.get(url).status_code == 200, url
    page = client.get("/").content.decode()
    for link in ['href="/tenants/"', 'href="/plans/"', 'href="/users/"', 'href="/audit/"', 'href="/accounts/"']:
        assert link in page


# -- quotas ---------------------------------------------------------------------------
def test_tenant_page_shows_quota_bars_with_usage(client, owner, acme, host, template_name):
    make_ct(301, acme, owner, host, template_name, ram_mb=512)
    make_ct(302, acme, owner, host, template_name, ram_mb=1024)
    client.force_login(owner)
    page = client.get("/tenants/acme/").content.decode()
    assert "2 / 5" in page                     # containers
    assert "1536 / 2048 MiB" in page           # RAM: 75% -> warning
    assert "bg-warning" in page and "width: 75%" in page
    assert "0 MiB <span class=\"text-body-secondary\">(no limit)</span>" in page  # swap
    assert "ct301.example" in page and "ct302.example" in page
    dash = client.get("/").content.decode()
    assert 'id="quota-card"' in dash and "1536 / 2048 MiB" in dash


def test_dashboard_lists_containers_expiring_soon(client, owner, acme, host, template_name):
    make_ct(301, acme, owner, host, template_name, expires_at=timezone.now() + timedelta(days=3))
    make_ct(302, acme, owner, host, template_name, expires_at=timezone.now() + timedelta(days=60))
    client.force_login(owner)
    page = client.get("/").content.decode()
    card = page[page.index('id="expiring-card"'):]
    assert 'data-ctid="301"' in card and 'data-ctid="302"' not in card


# -- visibility --------------------------------------------------------------------------
def test_outsider_gets_404_for_a_foreign_tenant_and_class(outsider, other, acme, cls):
    client = logged_in(outsider)
    assert client.get("/tenants/acme/").status_code == 404
    assert client.get("/tenants/acme/quotas/").status_code == 404
    assert client.post("/tenants/acme/members/add/", {"username": "outsider", "role": "admin"}).status_code == 404
    assert client.get("/classes/cs101/").status_code == 404
    assert client.post("/classes/cs101/import/", {"csv_text": "eve,eve@example.test"}).status_code == 404
    assert client.get("/tenants/other/").status_code == 200
    assert b"acme" not in client.get("/tenants/").content
    api = APIClient()
    api.force_authenticate(outsider)
    assert api.get("/api/tenants/acme/").status_code == 404
    assert [t["slug"] for t in api.get("/api/tenants/").json()["results"]] == ["other"]
    assert not Membership.objects.filter(tenant=acme, user=outsider).exists()


def test_tenant_admin_sees_and_manages(owner, acme, cls, outsider):
    client = logged_in(owner)
    assert client.get("/tenants/acme/").status_code == 200
    assert client.get("/classes/cs101/").status_code == 200
    api = APIClient()
    api.force_authenticate(owner)
    data = api.get("/api/tenants/acme/").json()
    assert data["slug"] == "acme" and data["quotas"][0] == {
        "label": "containers", "unit": "", "used": 0, "limit": 5, "percent": 0, "level": "success"}
    # Someone outside the tenant admin's tenants cannot be pulled in (tests/adversarial/test_tenant_people.py).
    resp = client.post("/tenants/acme/members/add/", {"username": "outsider", "role": "member"})
    assert resp.status_code == 400 and "not among the people you can add" in resp.content.decode()
    assert not Membership.objects.filter(tenant=acme, user=outsider).exists()
    # ...but quotas are for administrators only
    assert client.post("/tenants/acme/quotas/", {"max_containers": "50"}).status_code == 403
    acme.refresh_from_db()
    assert acme.max_containers == 5


def test_member_sees_tenant_but_may_not_change_it(member, acme, cls, outsider):
    client = logged_in(member)
    page = client.get("/tenants/acme/")
    assert page.status_code == 200
    assert b"add-member-form" not in page.content and b"Edit quotas" not in page.content
    assert b"owner@example.test" not in page.content  # other members' details are not theirs to see
    assert client.get("/classes/cs101/").status_code == 200
    assert client.get("/tenants/acme/quotas/").status_code == 403
    assert client.post("/tenants/acme/quotas/", {"max_containers": "50"}).status_code == 403
    assert client.post("/tenants/acme/members/add/", {"username": "outsider", "role": "admin"}).status_code == 403
    assert client.post("/tenants/acme/members/new/", {"username": "newbie", "email": "n@example.test",
                                                      "role": "admin"}).status_code == 403
    assert client.post(f"/tenants/acme/members/{member.pk}/remove/").status_code == 403
    assert client.get("/tenants/acme/classes/new/").status_code == 403
    assert client.post("/classes/cs101/import/", {"csv_text": "eve,eve@example.test"}).status_code == 403
    assert client.post("/classes/cs101/bulk/", {"action": "stop"}).status_code == 403
    acme.refresh_from_db()
    assert acme.max_containers == 5
    assert not Membership.objects.filter(user=outsider, tenant=acme).exists()
    assert not User.objects.filter(username__in=["newbie", "eve"]).exists()
    assert Membership.objects.filter(tenant=acme).count() == 2


# -- tenants and quotas through the forms ---------------------------------------------------------
def test_admin_creates_tenant_and_sets_quotas(client, admin_user):
    client.force_login(admin_user)
    resp = client.post("/tenants/new/", {"slug": "school", "name": "School", "description": "",
                                         "max_containers": "10", "max_ram_mb": ""})
    assert resp.status_code == 302 and resp["Location"] == "/tenants/school/"
    tenant = Tenant.objects.get(slug="school")
    assert tenant.max_containers == 10 and tenant.max_ram_mb is None
    resp = client.post("/tenants/school/quotas/", {"max_containers": "", "max_ram_mb": "4096", "max_cpus": "8"})
    assert resp.status_code == 302
    tenant.refresh_from_db()
    assert (tenant.max_containers, tenant.max_ram_mb, tenant.max_cpus) == (None, 4096, 8)
    assert AuditEvent.objects.filter(action="tenant.quotas", tenant=tenant).exists()


@pytest.mark.parametrize("data,message", [
    ({"slug": "Bad Slug!", "name": "X"}, "lower-case letters"),
    ({"slug": "ok", "name": ""}, "This field is required"),
    ({"slug": "ok", "name": "X", "max_containers": "-1"}, "cannot be negative"),
    ({"slug": "ok", "name": "X", "max_ram_mb": "lots"}, "whole number"),
])
def test_tenant_form_rejects_bad_input_and_creates_nothing(client, admin_user, data, message):
    client.force_login(admin_user)
    resp = client.post("/tenants/new/", data)
    assert resp.status_code == 400
    assert message in resp.content.decode()
    assert Tenant.objects.count() == 0


def test_tenant_slug_taken(client, admin_user, acme):
    client.force_login(admin_user)
    resp = client.post("/tenants/new/", {"slug": "acme", "name": "Again"})
    assert "exists already" in resp.content.decode()
    assert Tenant.objects.count() == 1


def test_quota_form_rejects_negative(client, admin_user, acme):
    client.force_login(admin_user)
    resp = client.post("/tenants/acme/quotas/", {"max_containers": "-3"})
    assert resp.status_code == 400 and "cannot be negative" in resp.content.decode()
    acme.refresh_from_db()
    assert acme.max_containers == 5


def test_non_admin_may_not_create_tenants(client, owner, acme):
    client.force_login(owner)
    assert client.get("/tenants/new/").status_code == 403
    assert client.post("/tenants/new/", {"slug": "mine", "name": "Mine"}).status_code == 403
    assert not Tenant.objects.filter(slug="mine").exists()


# -- members ----------------------------------------------------------------------------
def test_tenant_admin_creates_and_removes_a_member(client, owner, acme):
    client.force_login(owner)
    resp = client.post("/tenants/acme/members/new/", {"username": "newbie", "email": "newbie@example.test",
                                                      "first_name": "New", "last_name": "Bie", "role": "member"})
    assert resp.status_code == 302
    newbie = User.objects.get(username="newbie")
    assert not newbie.has_usable_password() and newbie.role == ""
    assert Membership.objects.get(tenant=acme, user=newbie).role == "member"
    client.post(f"/tenants/acme/members/{newbie.pk}/remove/")
    assert not Membership.objects.filter(tenant=acme, user=newbie).exists()


def test_add_member_unknown_user_and_bad_new_user(client, owner, acme):
    client.force_login(owner)
    resp = client.post("/tenants/acme/members/add/", {"username": "ghost", "role": "member"})
    assert "not among the people you can add" in resp.content.decode()
    resp = client.post("/tenants/acme/members/new/", {"username": "Bad Name", "email": "nope", "role": "member"})
    page = resp.content.decode()
    assert "is not a valid username" in page and "valid email address" in page
    assert Membership.objects.filter(tenant=acme).count() == 1 and User.objects.count() == 1


def test_remove_member_with_containers_is_refused(client, owner, member, acme, host, template_name):
    make_ct(301, acme, member, host, template_name)
    client.force_login(owner)
    resp = client.post(f"/tenants/acme/members/{member.pk}/remove/", follow=True)
    assert "still has containers" in resp.content.decode()
    assert Membership.objects.filter(tenant=acme, user=member).exists()


# -- classes ----------------------------------------------------------------------------
def test_tenant_admin_creates_a_class(client, owner, acme, host, template_name, basic):
    client.force_login(owner)
    resp = client.post("/tenants/acme/classes/new/", {
        "slug": "net1", "name": "Networks", "host": host.pk, "ostemplate": template_name, "plan": basic.pk,
        "expires_at": "2031-06-30T18:00", "grace_days": "7", "backup_before_destroy": "on"})
    assert resp.status_code == 302 and resp["Location"] == "/classes/net1/"
    cls = StudentClass.objects.get(slug="net1")
    assert cls.tenant == acme and cls.grace_days == 7 and cls.backup_before_destroy
    assert timezone.localtime(cls.expires_at).strftime("%Y-%m-%d %H:%M") == "2031-06-30 18:00"


def test_class_form_rejects_bad_input(client, owner, acme, host, template_name, basic, other):
    only_other = Plan.objects.create(name="other-only", ram_mb=128, disk_mb=512)
    only_other.tenants.add(other)
    client.force_login(owner)
    data = {"slug": "BAD!", "name": "X", "host": host.pk, "ostemplate": template_name, "plan": only_other.pk,
            "expires_at": "someday", "grace_days": "-1"}
    page = client.post("/tenants/acme/classes/new/", data).content.decode()
    assert "lower-case letters" in page
    assert "Pick one of the plans offered to this tenant" in page
    assert "Enter a date and time" in page
    assert "greater than or equal to 0" in page
    assert "other-only" not in client.get("/tenants/acme/classes/new/").content.decode()
    assert StudentClass.objects.count() == 0


BAD_CSV = "username,email,name\nalice,alice@example.test,Alice A\nbob,not-an-email,Bob B\nalice,a2@example.test,Al\n"
GOOD_CSV = "username,email,name\nalice,alice@example.test,Alice Smith\nbob,bob@example.test,Bob Jones\n"


def test_csv_import_with_bad_rows_lists_them_and_creates_nothing(client, owner, cls):
    client.force_login(owner)
    resp = client.post("/classes/cs101/import/", {"csv_text": BAD_CSV})
    assert resp.status_code == 400
    page = resp.content.decode()
    assert "2 of 3 rows are wrong; nothing was imported." in page
    assert 'data-line="3"' in page and "&#x27;not-an-email&#x27; is not a valid email address" in page
    assert 'data-line="4"' in page and "alice is already on line 2" in page
    assert User.objects.filter(username__in=["alice", "bob"]).count() == 0
    assert Membership.objects.filter(tenant=cls.tenant).count() == 1
    assert Container.objects.count() == 0 and Task.objects.count() == 0


def test_csv_import_creates_users_memberships_and_containers(client, owner, cls, django_capture_on_commit_callbacks,
                                                            mailoutbox):
    client.force_login(owner)
    upload = SimpleUploadedFile("students.csv", GOOD_CSV.encode(), content_type="text/csv")
    with django_capture_on_commit_callbacks() as callbacks:
        resp = client.post("/classes/cs101/import/", {"csv_file": upload}, follow=True)
    assert "2 student(s) imported" in resp.content.decode()
    # Run the welcome emails only; the rest would enqueue the create tasks for an agent.
    for callback in callbacks:
        if not isinstance(callback, functools.partial):
            callback()
    assert sorted(m.to[0] for m in mailoutbox) == ["alice@example.test", "bob@example.test"]
    assert "/accounts/password-set/" in mailoutbox[0].body
    assert sorted(Container.objects.values_list("name", flat=True)) == ["cs101-alice", "cs101-bob"]
    alice = User.objects.get(username="alice")
    assert (alice.first_name, alice.last_name, alice.email) == ("Alice", "Smith", "alice@example.test")
    assert Membership.objects.get(tenant=cls.tenant, user=alice).role == "member"
    ct = Container.objects.get(name="cs101-alice")
    assert (ct.owner, ct.tenant, ct.student_class, ct.ram_mb) == (alice, cls.tenant, cls, 256)
    assert Task.objects.filter(type="ct.create", status="queued").count() == 2
    page = client.get("/classes/cs101/").content.decode()
    assert "cs101-alice" in page and "cs101-bob" in page


def test_csv_import_needs_text_or_file(client, owner, cls):
    client.force_login(owner)
    resp = client.post("/classes/cs101/import/", {"csv_text": ""})
    assert "Paste the CSV into the text box or choose a file." in resp.content.decode()
    assert Container.objects.count() == 0


def test_bulk_actions(client, owner, cls, host, template_name):
    alice = User.objects.create_user("alice")
    make_ct(301, cls.tenant, alice, host, template_name, student_class=cls, name="cs101-alice")
    client.force_login(owner)
    page = client.post("/classes/cs101/bulk/", {"action": "destroy", "confirm": "nope"}, follow=True)
    assert "confirm by typing cs101" in page.content.decode()
    assert Task.objects.count() == 0
    page = client.post("/classes/cs101/bulk/", {"action": "extend"}, follow=True)
    assert "Give the new expiry date" in page.content.decode()
    page = client.post("/classes/cs101/bulk/", {"action": "start"}, follow=True).content.decode()
    assert "CT 301 (cs101-alice): task #" in page
    later = (timezone.localtime() + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")
    page = client.post("/classes/cs101/bulk/", {"action": "extend", "expires_at": later}, follow=True)
    assert "CT 301 (cs101-alice): extended" in page.content.decode()
    assert Container.objects.get(ctid=301).expires_at is not None


# -- plans ------------------------------------------------------------------------------
def test_plans_are_scoped_and_edited_by_admins(client, admin_user, member, acme, other, basic):
    acme_only = Plan.objects.create(name="acme-big", ram_mb=2048, disk_mb=8192)
    acme_only.tenants.add(acme)
    other_only = Plan.objects.create(name="other-big", ram_mb=4096, disk_mb=8192)
    other_only.tenants.add(other)
    client.force_login(member)  # members pick no plans: the page is not theirs
    assert client.get("/plans/").status_code == 403
    api = APIClient()
    api.force_authenticate(member)
    assert api.get("/api/plans/").status_code == 403
    owner = Membership.objects.get(tenant=acme, role="admin").user
    client.force_login(owner)
    page = client.get("/plans/").content.decode()
    assert "basic" in page and "acme-big" in page and "other-big" not in page
    assert client.get("/plans/new/").status_code == 403
    assert client.get(f"/plans/{other_only.pk}/edit/").status_code == 404
    assert client.post(f"/plans/{basic.pk}/edit/", {"name": "basic", "ram_mb": "9999", "disk_mb": "1024",
                                                    "swap_mb": "0", "cpus": "1"}).status_code == 403
    api.force_authenticate(owner)
    assert sorted(p["name"] for p in api.get("/api/plans/").json()["results"]) == ["acme-big", "basic"]
    assert api.get(f"/api/plans/{other_only.pk}/").status_code == 404

    client.force_login(admin_user)
    resp = client.post("/plans/new/", {"name": "tiny", "ram_mb": "8", "swap_mb": "0", "cpus": "0", "disk_mb": "64"})
    assert "RAM must be at least 16 MiB" in resp.content.decode() and "at least 1 CPU" in resp.content.decode()
    resp = client.post("/plans/new/", {"name": "small", "description": "for classes", "ram_mb": "128",
                                       "swap_mb": "0", "cpus": "1", "disk_mb": "512", "tenants": [acme.pk, other.pk]})
    assert resp.status_code == 302
    small = Plan.objects.get(name="small")
    assert set(small.tenants.values_list("slug", flat=True)) == {"acme", "other"}
    client.post(f"/plans/{small.pk}/edit/", {"name": "small", "ram_mb": "192", "swap_mb": "0", "cpus": "1",
                                             "disk_mb": "512", "tenants": [acme.pk]})
    small.refresh_from_db()
    assert small.ram_mb == 192 and list(small.tenants.values_list("slug", flat=True)) == ["acme"]
    assert client.get(f"/plans/{small.pk}/edit/").status_code == 200
    assert Plan.objects.filter(name="tiny").count() == 0


# -- users ------------------------------------------------------------------------------
def test_admin_disables_a_user_and_their_sessions_end(admin_user, owner):
    victim = logged_in(owner)
    assert victim.get("/").status_code == 200
    admin = logged_in(admin_user)
    resp = admin.post(f"/users/{owner.pk}/active/", {"active": "0"}, follow=True)
    assert "disabled and logged out everywhere; 0 queued task(s) cancelled" in resp.content.decode()
    owner.refresh_from_db()
    assert not owner.is_active
    assert Session.objects.count() == 1  # only the admin's
    resp = victim.get("/")
    assert resp.status_code == 302 and resp["Location"].startswith("/accounts/login/")
    admin.post(f"/users/{owner.pk}/active/", {"active": "1"})
    owner.refresh_from_db()
    assert owner.is_active


def test_disabling_cancels_queued_tasks(admin_user, owner, host, template_name):
    from containers import services
    ct = Container.objects.create(ctid=301, hostname="x.example", ostemplate=template_name, host=host, owner=owner,
                                  status="stopped")
    task = services.start_container(ct, owner)
    resp = logged_in(admin_user).post(f"/users/{owner.pk}/active/", {"active": "0"}, follow=True)
    assert "1 queued task(s) cancelled" in resp.content.decode()
    task.refresh_from_db()
    assert task.status == "cancelled"


def test_admin_cannot_disable_themselves(admin_user):
    resp = logged_in(admin_user).post(f"/users/{admin_user.pk}/active/", {"active": "0"}, follow=True)
    assert "You cannot disable yourself." in resp.content.decode()
    admin_user.refresh_from_db()
    assert admin_user.is_active


def test_non_admins_cannot_enable_or_disable(owner, member, outsider, admin_user, acme):
    client = logged_in(owner)  # tenant admin: sees their members, may not disable them
    page = client.get("/users/").content.decode()
    assert "mia" in page and "outsider" not in page and "admin@example.test" not in page
    assert "/active/" not in page and "Create a user" not in page
    assert client.post(f"/users/{member.pk}/active/", {"active": "0"}).status_code == 403
    assert client.post(f"/users/{admin_user.pk}/active/", {"active": "0"}).status_code == 404
    assert client.post("/users/new/", {"username": "sneaky", "role": "admin"}).status_code == 403
    client = logged_in(outsider)  # a member: the users pages are not theirs at all
    assert client.post(f"/users/{member.pk}/active/", {"active": "0"}).status_code == 403
    assert User.objects.filter(is_active=False).count() == 0
    assert not User.objects.filter(username="sneaky").exists()
    api = APIClient()
    api.force_authenticate(owner)
    assert sorted(u["username"] for u in api.get("/api/users/").json()["results"]) == ["mia", "owner"]
    assert api.get(f"/api/users/{admin_user.pk}/").status_code == 404


def test_admin_creates_a_user(client, admin_user):
    client.force_login(admin_user)
    resp = client.post("/users/new/", {"username": "Bad Name", "email": "x", "role": "admin"})
    page = resp.content.decode()
    assert "is not a valid username" in page and "valid email address" in page
    resp = client.post("/users/new/", {"username": "olga", "email": "olga@example.test", "role": "operator",
                                       "password": "a-long-enough-pass-42"})
    assert resp.status_code == 302
    olga = User.objects.get(username="olga")
    assert olga.role == "operator" and olga.check_password("a-long-enough-pass-42")
    resp = client.post("/users/new/", {"username": "olga", "role": ""})
    assert "The username olga is taken." in resp.content.decode()


# -- audit ------------------------------------------------------------------------------
def test_audit_page_filters_and_scopes(client, admin_user, owner, outsider, acme, other):
    audit.record(owner, "tenant.member.add", acme, detail="acme-event")
    audit.record(owner, "container.start", acme, "refused", "acme-refused")
    audit.record(admin_user, "tenant.quotas", other, detail="other-event")
    client.force_login(admin_user)
    page = client.get("/audit/").content.decode()
    assert "acme-event" in page and "acme-refused" in page and "other-event" in page
    page = client.get("/audit/?action=tenant.").content.decode()
    assert "acme-event" in page and "other-event" in page and "acme-refused" not in page
    page = client.get("/audit/?result=refused").content.decode()
    assert "acme-refused" in page and "acme-event" not in page
    page = client.get("/audit/?tenant=other&user=adm").content.decode()
    assert "other-event" in page and "acme-event" not in page
    today = timezone.localdate().isoformat()
    assert "acme-event" in client.get(f"/audit/?date_from={today}&date_to={today}").content.decode()
    assert "acme-event" not in client.get("/audit/?date_from=2999-01-01").content.decode()
    assert "Enter the from date as YYYY-MM-DD." in client.get("/audit/?date_from=soon").content.decode()

    client.force_login(outsider)  # a member: the audit log is not part of their role
    assert client.get("/audit/").status_code == 403
    api = APIClient()
    api.force_authenticate(outsider)
    assert api.get("/api/audit/").status_code == 403
    api.force_authenticate(owner)
    data = api.get("/api/audit/?result=refused").json()
    assert [e["detail"] for e in data["results"]] == ["acme-refused"]
    assert api.get("/api/audit/?from=nope").status_code == 400
    hidden = AuditEvent.objects.get(detail="other-event")
    assert api.get(f"/api/audit/{hidden.pk}/").status_code == 404


def test_audit_page_paginates(client, admin_user):
    AuditEvent.objects.bulk_create([AuditEvent(action="bulk.test", result="ok", detail=f"n{i}") for i in range(150)])
    client.force_login(admin_user)
    page = client.get("/audit/?action=bulk").content.decode()
    assert "page 1 of 2" in page and page.count('data-action="bulk.test"') == 100
    assert "action=bulk&amp;page=2" in page
    page = client.get("/audit/?action=bulk&page=2").content.decode()
    assert page.count('data-action="bulk.test"') == 50
