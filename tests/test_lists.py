"""The lists: search, sort, filters and pages in a fixed number of queries (the same at 10 rows as at
1000), the IP column, tenant scoping of every parameter, live updates that send only changed rows,
and bulk actions through the service functions with a result per container."""
from __future__ import annotations

import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from containers.models import Container
from network.models import IPAddress, NetInterface

pytestmark = pytest.mark.django_db


def make_containers(host, template_name, start: int, count: int, tenant=None, owner=None, status="stopped"):
    """`count` container rows from CTID `start`, each with a venet and a veth address."""
    cts = Container.objects.bulk_create(
        Container(ctid=start + i, hostname=f"h{start + i}.example", name=f"n{start + i}", ostemplate=template_name,
                  host=host, tenant=tenant, owner=owner, status=status if i % 3 else "running")
        for i in range(count))
    cts = list(Container.objects.filter(ctid__gte=start, ctid__lt=start + count).order_by("ctid"))
    addrs = []
    for ct in cts:
        n = ct.ctid
        addrs.append(IPAddress(container=ct, address=f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"))
        addrs.append(IPAddress(container=ct, address=f"fd00::{n:x}", interface="eth0", prefixlen=64))
    IPAddress.objects.bulk_create(addrs)
    return cts


def queries(client, url, **headers) -> tuple[int, object]:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url, **headers)
    return len(ctx.captured_queries), response


def rows(response) -> list[str]:
    import re
    return re.findall(r'<tr data-key="(\d+)"', response.content.decode())


# -- fixed number of queries -------------------------------------------------------------------
@pytest.mark.parametrize("who", ["admin", "tadmin", "student", "auditor"])
def test_container_list_page_and_api_take_the_same_queries_at_10_and_1000_rows(
        client, who, admin_user, people, acme, host, template_name):
    user = admin_user if who == "admin" else people[who]
    make_containers(host, template_name, 2000, 10, tenant=acme, owner=people["student"])
    client.force_login(user)
    urls = ["/containers/", "/containers/?q=h20&sort=-hostname&per_page=100", "/containers/?status=stopped&page=2",
            f"/containers/?tenant=acme&host={host.name}", "/containers/?live=1&known=2000.0123456789",
            "/api/containers/", "/api/containers/?sort=-host&status=running&limit=50"]
    small = {url: queries(client, url)[0] for url in urls}
    make_containers(host, template_name, 3000, 990, tenant=acme, owner=people["student"])
    for url in urls:
        count, response = queries(client, url)
        assert response.status_code in (200, 204), (url, response.content[:300])
        assert count == small[url], f"{url}: {small[url]} queries at 10 rows, {count} at 1000"


def test_container_list_page_is_paged_and_under_100_kb_at_1000(client, admin_user, host, template_name):
    make_containers(host, template_name, 3000, 1000)
    client.force_login(admin_user)
    response = client.get("/containers/")
    assert response.status_code == 200
    assert len(rows(response)) == 50
    assert len(response.content) < 100_000
    assert "1000 containers; 1–50 shown, page 1 of 20" in response.content.decode()


# -- the IP column ------------------------------------------------------------------------------
def test_ip_column_shows_venet_and_veth_addresses_in_page_api_and_vzlist(client, admin_user, host, template_name):
    from io import StringIO

    from django.core.management import call_command
    ct = Container.objects.create(ctid=4101, hostname="ip.example", ostemplate=template_name, host=host,
                                  status="running")
    NetInterface.objects.create(container=ct, ifname="eth0", host_ifname="veth4101.0", bridge="vzbr0",
                                mac="02:18:51:00:41:01")
    IPAddress.objects.create(container=ct, address="198.51.100.41")
    IPAddress.objects.create(container=ct, address="192.0.2.41", interface="eth0", prefixlen=24)
    client.force_login(admin_user)
    page = client.get("/containers/").content.decode()
    assert "198.51.100.41" in page and "192.0.2.41" in page
    api = client.get("/api/containers/").json()["results"]
    assert api[0]["ip"] == ["198.51.100.41", "192.0.2.41"]  # venet's first, as vzlist shows them
    out = StringIO()
    call_command("vzlist", "-a", "-H", "-o", "ip,hostname", "--user", "admin", stdout=out)
    assert out.getvalue().split() == ["198.51.100.41", "ip.example"]  # as vzlist: the first, unless the last column
    out = StringIO()
    call_command("vzlist", "-a", "-H", "--user", "admin", stdout=out)  # the default columns end on IP_ADDR...
    assert out.getvalue().split() == ["4101", "0", "running", "198.51.100.41", "ip.example"]
    out = StringIO()
    call_command("vzlist", "-a", "-H", "-o", "ctid,ip", "--user", "admin", stdout=out)
    assert out.getvalue().split() == ["4101", "198.51.100.41", "192.0.2.41"]


# -- search, sort, filter, pages ----------------------------------------------------------------
def test_search_sort_filter_and_pages(client, admin_user, acme, other_tenant, host, template_name):
    make_containers(host, template_name, 5000, 30, tenant=acme)
    make_containers(host, template_name, 6000, 5, tenant=other_tenant)
    Container.objects.filter(ctid=5007).update(description="the database server", ostemplate="debian-12")
    client.force_login(admin_user)
    assert rows(client.get("/containers/?q=database")) == ["5007"]
    assert rows(client.get("/containers/?q=10.0.19.") ) == [str(c) for c in range(5000, 5030) if (c // 256) % 256 == 19][:50]
    assert rows(client.get("/containers/?q=5012")) == ["5012"]
    assert rows(client.get("/containers/?ostemplate=debian-12")) == ["5007"]
    assert rows(client.get("/containers/?tenant=other")) == [str(c) for c in range(6000, 6005)]
    assert rows(client.get("/containers/?sort=-ctid&per_page=25"))[:2] == ["6004", "6003"]
    assert rows(client.get("/containers/?sort=-ctid&per_page=25&page=2")) == [str(c) for c in range(5009, 4999, -1)]
    running = rows(client.get("/containers/?status=running&per_page=100"))
    assert running and all(Container.objects.get(ctid=int(c)).status == "running" for c in running)
    # Sorted by a column whose values tie (status): the CTID breaks the tie, so pages never overlap.
    first = rows(client.get("/containers/?sort=status&per_page=25"))
    second = rows(client.get("/containers/?sort=status&per_page=25&page=2"))
    assert len(set(first) | set(second)) == 35
    api = client.get("/api/containers/?sort=-ctid&limit=3&tenant=acme").json()
    assert [r["ctid"] for r in api["results"]] == [5029, 5028, 5027] and api["count"] == 30
    assert client.get("/api/containers/?q=database").json()["results"][0]["ctid"] == 5007


def test_bad_parameters_answer_clearly_and_never_500(client, admin_user, host, template_name):
    make_containers(host, template_name, 7000, 60)
    client.force_login(admin_user)
    response = client.get("/containers/?host=no-such-host")
    assert response.status_code == 200 and rows(response) == []  # a name narrows: nothing has it
    assert client.get("/containers/?status=bogus").status_code == 400
    assert rows(client.get("/containers/?sort=nosuchcolumn"))[:1] == ["7000"]  # an unknown sort is ignored
    assert rows(client.get("/containers/?page=abc"))[:1] == ["7000"]          # the first page
    assert rows(client.get("/containers/?page=99999"))[-1:] == ["7059"]       # the last page
    assert len(rows(client.get("/containers/?per_page=100000"))) == 50        # not offered: the default
    assert client.get("/containers/?q=" + "x" * 500).status_code == 400
    assert client.get("/containers/?q=%00").status_code in (200, 400)
    for url in ("/api/containers/?sort=description", "/api/containers/?sort=owner__password",
                "/api/containers/?q=" + "x" * 101, "/api/containers/?status=bogus", "/api/containers/?limit=0"):
        response = client.get(url)
        assert response.status_code == 400, url
        assert response.json()
    assert client.get("/containers/?live=1&known=garbage,,..,1.%%%").status_code == 200


# -- tenant scoping -------------------------------------------------------------------------------
def test_tenants_never_see_or_learn_of_other_tenants_rows(client, people, acme, other_tenant, host, template_name):
    make_containers(host, template_name, 8000, 5, tenant=acme, owner=people["student"])
    make_containers(host, template_name, 8100, 5, tenant=other_tenant, owner=people["outsider"])
    client.force_login(people["tadmin"])
    assert rows(client.get("/containers/")) == [str(c) for c in range(8000, 8005)]
    # Another tenant's slug answers exactly as a slug that does not exist: nothing.
    theirs, nobody = client.get("/containers/?tenant=other"), client.get("/containers/?tenant=nobody")
    assert theirs.status_code == nobody.status_code == 200 and rows(theirs) == rows(nobody) == []
    assert b"other" not in theirs.content.split(b'id="filter_tenant"')[1].split(b"</select>")[0]
    assert client.get("/api/containers/?tenant=other").json() == client.get("/api/containers/?tenant=nobody").json()
    assert client.get("/api/containers/?tenant=other").json()["count"] == 0
    # Searching for another tenant's hostname, address or CTID finds nothing.
    for q in ("h8100", "8101", "10.0.31.16", "n8102"):
        assert rows(client.get(f"/containers/?q={q}")) == [], q
        assert client.get(f"/api/containers/?q={q}").json()["count"] == 0, q
    # Sorting by any column shows only their own rows.
    for sort in ("ctid", "-tenant", "host", "-ostemplate", "status", "-nproc"):
        assert sorted(rows(client.get(f"/containers/?sort={sort}"))) == [str(c) for c in range(8000, 8005)]
        assert sorted(r["ctid"] for r in client.get(f"/api/containers/?sort={sort}").json()["results"]) == \
            list(range(8000, 8005))
    # A member sees the host names of their own containers only, as choices too.
    client.force_login(people["outsider"])
    assert rows(client.get("/containers/")) == [str(c) for c in range(8100, 8105)]
    assert rows(client.get("/containers/?tenant=acme")) == []
    # A live poll of another tenant's CTIDs gets nothing of them.
    data = client.get("/containers/?live=1&known=8000.0123456789").json()
    assert data["order"] == [str(c) for c in range(8100, 8105)] and "8000" not in data["rows"]


# -- live updates ----------------------------------------------------------------------------------
def test_live_poll_sends_only_changed_rows(client, admin_user, host, template_name):
    import re
    make_containers(host, template_name, 9000, 100)
    client.force_login(admin_user)
    page = client.get("/containers/").content.decode()
    known = ",".join(f"{k}.{v}" for k, v in re.findall(r'<tr data-key="(\d+)" data-v="(\w+)"', page))
    url = f"/containers/?live=1&known={known}&total=100"
    nothing = client.get(url)
    assert nothing.status_code == 204 and nothing.content == b""
    Container.objects.filter(ctid=9003).update(status="running", nproc=7)  # as the agent's reconcile writes it
    IPAddress.objects.create(container=Container.objects.get(ctid=9010), address="203.0.113.10")
    changed = client.get(url)
    data = changed.json()
    assert set(data["rows"]) == {"9003", "9010"} and len(data["order"]) == 50 and data["total"] == 100
    assert "203.0.113.10" in data["rows"]["9010"]
    assert len(changed.content) < 5_000
    # A new container on the page: its row, and the order that places it.
    Container.objects.filter(ctid=9049).delete()
    data = client.get(url).json()
    assert "9049" not in data["order"] and set(data["rows"]) == {"9003", "9010", "9050"}
    assert data["total"] == 99


# -- bulk actions -----------------------------------------------------------------------------------
def test_bulk_start_confirms_once_then_runs_each_through_its_service(client, people, acme, other_tenant, host,
                                                                      template_name, redis_conn):
    from tasks.models import Task
    mine = make_containers(host, template_name, 9500, 3, tenant=acme, owner=people["student"])  # 9500 running
    make_containers(host, template_name, 9600, 1, tenant=other_tenant)
    client.force_login(people["student"])
    ctids = ["9500", "9501", "9502", "9600", "77777"]
    confirm = client.post("/containers/actions/bulk/", {"action": "start", "ctid": ctids})
    assert confirm.status_code == 200 and not Task.objects.exists()
    body = confirm.content.decode()
    assert "Start 3 containers?" in body and "Not found, or not yours to change: 9600, 77777" in body
    done = client.post("/containers/actions/bulk/", {"action": "start", "ctid": ctids, "confirmed": "on"})
    assert done.status_code == 200
    results = dict(re_results(done))
    assert results["9501"] == "1" and results["9502"] == "1"       # queued
    assert results["9500"] == "0"                                 # running already: refused by the service
    assert results["9600"] == "0" and results["77777"] == "0"       # another tenant's, and none: alike
    assert sorted(Task.objects.values_list("container__ctid", flat=True)) == [9501, 9502]
    assert "No container 9600." in done.content.decode() and "No container 77777." in done.content.decode()
    assert mine[0].ctid == 9500


def re_results(response):
    import re
    return re.findall(r'<tr data-ctid="(\d+)" data-ok="(\d)">', response.content.decode())


def test_bulk_destroy_needs_the_word_and_auditors_cannot(client, people, acme, host, template_name, redis_conn):
    from tasks.models import Task
    make_containers(host, template_name, 9700, 2, tenant=acme, owner=people["student"], status="stopped")
    Container.objects.filter(ctid=9700).update(status="stopped")
    client.force_login(people["student"])
    refused = client.post("/containers/actions/bulk/", {"action": "destroy", "ctid": ["9700", "9701"],
                                                        "confirmed": "on", "confirm": "yes"})
    assert refused.status_code == 400 and not Task.objects.exists()
    done = client.post("/containers/actions/bulk/", {"action": "destroy", "ctid": ["9700", "9701"],
                                                     "confirmed": "on", "confirm": "destroy"})
    assert dict(re_results(done)) == {"9700": "1", "9701": "1"}
    assert Task.objects.filter(type="ct.destroy").count() == 2
    client.force_login(people["auditor"])
    page = client.get("/containers/").content.decode()
    assert 'id="bulk-form"' not in page and 'name="ctid"' not in page
    response = client.post("/containers/actions/bulk/", {"action": "stop", "ctid": ["9700"], "confirmed": "on"})
    assert dict(re_results(response)) == {"9700": "0"}
    assert client.post("/containers/actions/bulk/", {"action": "explode", "ctid": ["9700"]}).status_code == 400
    assert client.post("/containers/actions/bulk/", {"action": "stop", "ctid": ["x1"]}).status_code == 400
    assert client.post("/containers/actions/bulk/", {"action": "stop", "ctid": ["1"] * 251}).status_code == 400


def test_api_list_rows_are_exactly_what_the_serializer_gives(client, admin_user, people, acme, plan, host,
                                                            template_name):
    from datetime import timedelta

    from django.test import RequestFactory
    from django.utils import timezone

    from containers.api.serializers import ContainerSerializer
    from tasks.models import Task
    cts = make_containers(host, template_name, 9800, 4, tenant=acme, owner=people["student"])
    task = Task.objects.create(type="ct.start", host=host, container=cts[1], ctid=cts[1].ctid)
    Container.objects.filter(ctid=9801).update(lock_task=task, plan=plan, expires_at=timezone.now() + timedelta(days=3),
                                               name=None, description="d", nproc=12, numproc=300)
    Container.objects.filter(ctid=9802).update(tenant=None, owner=None)
    client.force_login(admin_user)
    listed = client.get("/api/containers/").json()["results"]
    request = RequestFactory().get("/api/containers/")
    expected = [ContainerSerializer(ct, context={"request": request}).data
                for ct in Container.objects.order_by("ctid")]
    assert json.loads(json.dumps(listed)) == json.loads(json.dumps(expected, default=str))
    assert [list(row) for row in listed] == [list(row) for row in expected]  # the same keys in the same order
    one = client.get("/api/containers/9801/").json()
    assert one == listed[1]


# -- the other lists ------------------------------------------------------------------------------
def make_tasks(host, cts, user, count: int, start: int = 0):
    from tasks.models import Task
    Task.objects.bulk_create(
        Task(type=("ct.start", "ct.stop", "ct.backup")[i % 3], host=host, container=cts[i % len(cts)],
             ctid=cts[i % len(cts)].ctid, tenant=cts[i % len(cts)].tenant, user=user,
             status=("ok", "failed", "queued")[i % 3], log="x" * 1000, error="boom" if i % 3 == 1 else "")
        for i in range(start, start + count))


@pytest.mark.parametrize("who", ["admin", "tadmin", "student"])
def test_task_list_page_and_api_take_the_same_queries_at_10_and_1000_rows(client, who, admin_user, people, acme,
                                                                         host, template_name):
    user = admin_user if who == "admin" else people[who]
    cts = make_containers(host, template_name, 2000, 5, tenant=acme, owner=people["student"])
    make_tasks(host, cts, people["student"], 10)
    client.force_login(user)
    urls = ["/tasks/", "/tasks/?status=failed&sort=-ctid", "/tasks/?q=2001&page=2", "/tasks/?type=ct.stop",
            "/tasks/?live=1&known=1.0123456789", "/api/tasks/", "/api/tasks/?sort=-status&ctid=2001&limit=20"]
    small = {url: queries(client, url)[0] for url in urls}
    make_tasks(host, cts, people["student"], 990, start=10)
    for url in urls:
        count, response = queries(client, url)
        assert response.status_code in (200, 204), (url, response.content[:300])
        assert count == small[url], f"{url}: {small[url]} queries at 10 rows, {count} at 1000"
    page = client.get("/tasks/?per_page=25")
    assert len(rows(page)) == 25 and "1000 tasks" in page.content.decode()


def test_task_list_filters_and_scoping(client, people, acme, other_tenant, host, template_name):
    mine = make_containers(host, template_name, 2100, 2, tenant=acme, owner=people["student"])
    theirs = make_containers(host, template_name, 2200, 2, tenant=other_tenant, owner=people["outsider"])
    make_tasks(host, mine, people["student"], 6)
    make_tasks(host, theirs, people["outsider"], 6)
    client.force_login(people["student"])
    assert client.get("/api/tasks/").json()["count"] == 6
    assert client.get("/api/tasks/?ctid=2200").json()["count"] == 0
    assert rows(client.get("/tasks/?q=2201")) == []
    assert rows(client.get("/tasks/?q=stranger")) == []
    failed = client.get("/api/tasks/?status=failed&sort=ctid").json()["results"]
    assert [t["ctid"] for t in failed] == [2100, 2101] and all(t["status"] == "failed" for t in failed)
    assert client.get("/api/tasks/?ctid=1.5").status_code == 400
    assert client.get("/api/tasks/?sort=log").status_code == 400
    assert client.get("/tasks/?type=nope").status_code == 400
    assert client.get("/tasks/?ctid=%D9%A3").status_code == 400


def make_backups(host, cts, count: int, start: int = 0):
    from backups.models import Backup
    Backup.objects.bulk_create(
        Backup(ctid=cts[i % len(cts)].ctid, container=cts[i % len(cts)], tenant=cts[i % len(cts)].tenant, host=host,
               storage_path="/dump", filename=f"vzdump-lxc-{cts[i % len(cts)].ctid}-{i:06d}.tar.zst", size=1000 + i,
               sha256="0" * 64, notes=f"n{i}")
        for i in range(start, start + count))


def make_audit(user, tenant, count: int):
    from accounts.models import AuditEvent
    AuditEvent.objects.bulk_create(
        AuditEvent(user=user, username=user.username, action="container.start", object_type="container",
                   object_id=str(i), tenant=tenant, result="ok")
        for i in range(count))


def make_users(tenant, count: int, start: int = 0):
    from tenancy.models import Membership
    users = User.objects.bulk_create(User(username=f"u{start + i}", email=f"u{start + i}@example.test")
                                     for i in range(count))
    users = list(User.objects.filter(username__in=[u.username for u in users]))
    Membership.objects.bulk_create(Membership(user=u, tenant=tenant, role="member") for u in users)


@pytest.mark.parametrize("who", ["admin", "tadmin"])
def test_backup_audit_and_user_lists_take_the_same_queries_at_10_and_1000_rows(client, who, admin_user, people, acme,
                                                                             host, template_name):
    user = admin_user if who == "admin" else people[who]
    cts = make_containers(host, template_name, 2300, 5, tenant=acme, owner=people["student"])
    make_backups(host, cts, 10)
    make_audit(people["student"], acme, 10)
    make_users(acme, 10)
    client.force_login(user)
    urls = ["/backups/", "/backups/?page=2", "/api/backups/", "/audit/", "/audit/?page=2&user=stud",
            "/api/audit/", "/users/", "/api/users/"]
    small = {url: queries(client, url)[0] for url in urls}
    make_backups(host, cts, 990, start=10)
    make_audit(people["student"], acme, 990)
    make_users(acme, 990, start=10)
    for url in urls:
        count, response = queries(client, url)
        assert response.status_code == 200, (url, response.content[:300])
        assert count == small[url], f"{url}: {small[url]} queries at 10 rows, {count} at 1000"


def test_user_list_search_filter_pages_and_scoping(client, admin_user, people, acme, other_tenant):
    make_users(acme, 60)
    make_users(other_tenant, 3, start=500)
    client.force_login(admin_user)
    page = client.get("/users/?q=u5")
    names = re.findall(r'data-user="([^"]+)"', page.content.decode())
    assert names == sorted(["u5"] + [f"u{n}" for n in range(50, 60)] + ["u500", "u501", "u502"])
    assert len(re.findall(r'data-user="', client.get("/users/?per_page=25").content.decode())) == 25
    assert "admin" in re.findall(r'data-user="([^"]+)"', client.get("/users/?role=admin").content.decode())
    assert client.get("/api/users/?tenant=other").json()["count"] == 4  # u500-u502 and the stranger
    client.force_login(people["tadmin"])
    theirs = client.get("/users/?tenant=other")
    assert theirs.status_code == 200 and 'data-user="' not in theirs.content.decode()
    assert client.get("/api/users/?tenant=other").json()["count"] == 0
    # A user in both tenants is not found by the other tenant's slug, though the viewer sees them.
    from tenancy.models import Membership
    Membership.objects.create(user=User.objects.get(username="u1"), tenant=other_tenant, role="member")
    assert client.get("/api/users/?tenant=other").json()["count"] == 0
    assert "u1" in [u["username"] for u in client.get("/api/users/?tenant=acme&per_page=250&limit=500").json()["results"]]
    seen = re.findall(r'data-user="([^"]+)"', client.get("/users/?q=u50&per_page=100").content.decode())
    assert seen == ["u50"]  # never u500-u502, the other tenant's
    assert client.get("/api/users/?sort=password").status_code == 400


def test_audit_list_search_sort_and_scoping(client, admin_user, people, acme, other_tenant):
    from accounts import audit
    audit.record(people["student"], "container.start", acme, detail="acme-start")
    audit.record(people["outsider"], "container.stop", other_tenant, detail="other-stop")
    client.force_login(people["tadmin"])
    assert "acme-start" in client.get("/audit/?q=acme-").content.decode()
    theirs = client.get("/audit/?tenant=other").content.decode()
    assert "other-stop" not in theirs and "No events." in theirs  # narrows only what they may see
    assert "No events." in client.get("/audit/?q=other-stop").content.decode()
    assert client.get("/api/audit/?tenant=other").json()["count"] == 0
    client.force_login(admin_user)
    listed = client.get("/api/audit/?sort=action&action=container.").json()["results"]
    assert [e["detail"] for e in listed] == ["acme-start", "other-stop"]
    assert client.get("/api/audit/?sort=-action&action=container.").json()["results"][0]["detail"] == "other-stop"
    assert client.get("/api/audit/?sort=user__password").status_code == 400


def test_backup_list_search_sort_and_scoping(client, admin_user, people, acme, other_tenant, host, template_name):
    mine = make_containers(host, template_name, 2400, 3, tenant=acme, owner=people["student"])
    theirs = make_containers(host, template_name, 2500, 1, tenant=other_tenant, owner=people["outsider"])
    make_backups(host, mine, 6)
    make_backups(host, theirs, 2, start=100)

    def files(response):
        return re.findall(r'<code class="small">(vzdump-[^<]+)</code>', response.content.decode())
    client.force_login(people["tadmin"])
    assert files(client.get("/backups/?q=n3")) == ["vzdump-lxc-2400-000003.tar.zst"]
    assert files(client.get("/backups/?q=2500")) == [] and files(client.get("/backups/?tenant=other")) == []
    assert client.get("/api/backups/?q=2500").json()["count"] == 0
    by_size = files(client.get("/backups/?sort=-size"))
    assert by_size[0] == "vzdump-lxc-2402-000005.tar.zst" and len(by_size) == 6
    assert [b["size"] for b in client.get("/api/backups/?sort=size").json()["results"]] == list(range(1000, 1006))
    assert client.get("/api/backups/?sort=sha256").status_code == 400
    page = client.get("/backups/?sort=bogus")
    assert page.status_code == 200 and "Not filtered by it." in " ".join(m.message for m in page.context["messages"])


@pytest.mark.parametrize("url", ["/hosts/{host}/", "/tenants/acme/"])
def test_host_and_tenant_pages_show_addresses_in_a_fixed_number_of_queries(client, admin_user, acme, host,
                                                                          template_name, url):
    make_containers(host, template_name, 2600, 3, tenant=acme)
    client.force_login(admin_user)
    url = url.format(host=host.name)
    small, page = queries(client, url)
    assert "10.0.10.40" in page.content.decode() and "fd00::a28" in page.content.decode()  # CTID 2600
    make_containers(host, template_name, 2700, 50, tenant=acme)
    assert queries(client, url)[0] == small


def test_vzlist_takes_the_same_queries_at_10_and_1000_containers(admin_user, host, template_name):
    from io import StringIO

    from django.core.management import call_command

    def run() -> tuple[int, str]:
        out = StringIO()
        with CaptureQueriesContext(connection) as ctx:
            call_command("vzlist", "-a", "--user", "admin", stdout=out)
        return len(ctx.captured_queries), out.getvalue()
    make_containers(host, template_name, 3000, 10)
    small, text = run()
    assert "10.0.11.184" in text  # CTID 3000's venet address in the default IP_ADDR column
    make_containers(host, template_name, 4000, 990)
    count, text = run()
    assert count == small and len(text.splitlines()) == 1001


def test_task_list_live_poll_sends_only_the_task_that_moved(client, admin_user, people, acme, host, template_name):
    from tasks.models import Task
    cts = make_containers(host, template_name, 2800, 2, tenant=acme)
    make_tasks(host, cts, people["student"], 30)
    client.force_login(admin_user)
    page = client.get("/tasks/").content.decode()
    known = ",".join(f"{k}.{v}" for k, v in re.findall(r'<tr data-key="(\d+)" data-v="(\w+)"', page))
    url = f"/tasks/?live=1&known={known}&total=30"
    assert client.get(url).status_code == 204
    moving = Task.objects.filter(status="queued").order_by("-id").first()
    Task.objects.filter(pk=moving.pk).update(status="running", progress=40)
    data = client.get(url).json()
    assert list(data["rows"]) == [str(moving.pk)] and "40%" in data["rows"][str(moving.pk)]
