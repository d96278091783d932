"""Several hosts: agent tokens (and the Redis user each token is), drain, placement, removal,
and who may do which of these from the web, the API and the shell."""
from __future__ import annotations

from datetime import timedelta

import pytest
import redis
from django.core.management import call_command
from django.utils import timezone

from containers import services
from containers.models import Container
from hosts import services as hosts
from hosts.models import Host
from hosts.placement import pick_host
from tasks.models import Task
from tasks.services import TaskError

from .conftest import RUN_DIR, wait_task
from .hosts_fixtures import make_host, second_host  # noqa: F401

GIB = 1 << 30


def online(host: Host, mem_gib=8, disk_gib=100, cpus=4) -> Host:
    """Make a host look like its agent has just reported (for placement without agents)."""
    Host.objects.filter(pk=host.pk).update(agent_seen_at=timezone.now(), stats={
        "mem_total": mem_gib * GIB, "cpu_count": cpus, "disk_total": disk_gib * GIB})
    host.refresh_from_db()
    return host


def template_on(host: Host, name: str) -> None:
    from containers.models import OSTemplate
    OSTemplate.objects.create(host=host, name=name, filename=f"{name}.tar.gz", size=1, sha256="0" * 64,
                              modified_at=timezone.now())


# -- tokens ---------------------------------------------------------------------------------------------
def test_agent_refuses_to_run_without_its_current_token(transactional_db, host, redis_conn):
    from .conftest import AgentProcess
    agent = AgentProcess(host.name)
    agent.token = "vzph_not-the-token"
    hosts.issue_token(None, host)
    agent.start(wait=False)
    assert agent.proc.wait(30) != 0
    assert "is not its current token" in agent.log_path.read_text()
    Host.objects.filter(pk=host.pk).update(token_hash="")
    agent.start(wait=False)
    assert agent.proc.wait(30) != 0
    assert f"host {host.name} has no agent token (never issued, or revoked)" in agent.log_path.read_text()
    assert Host.objects.get(pk=host.pk).agent_started_at is None  # it never served


def test_revoking_a_token_stops_the_agent_and_its_redis_user(second_host, admin_user, redis_conn, redis_server):
    h2, agent = second_host
    token = hosts.issue_token(admin_user, h2)
    # The agent uses the queue only as its own Redis user, whose password is the token.
    agent.token = token
    agent.extra_env["REDIS_URL"] = f"unix://{h2.redis_user}:{token}@{redis_server}?db=0"
    agent.start()
    task = wait_task(_noop(h2))
    assert task.status == "ok"
    own = redis.Redis(unix_socket_path=str(redis_server), username=h2.redis_user, password=token)
    assert own.ping()
    with pytest.raises(redis.exceptions.NoPermissionError):
        own.flushall()  # an agent cannot wipe the queue of the others

    hosts.revoke_token(admin_user, h2)
    assert agent.proc.wait(30) != 0
    assert "revoked" in agent.log_path.read_text()
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(unix_socket_path=str(redis_server), username=h2.redis_user, password=token).ping()
    h2.refresh_from_db()
    assert not h2.token_hash and not h2.ssh_client_key
    from accounts.models import AuditEvent
    assert AuditEvent.objects.filter(action="host.revoke", object_id=str(h2.pk), result="ok").exists()


def _noop(host):
    from tasks.services import submit_task
    return submit_task(type="noop", host=host)


# -- drain and placement ------------------------------------------------------------------------------
def test_placement_picks_the_host_with_most_room_and_says_why_not(db, host, admin_user, template_name):
    h2 = online(make_host("vzt-p2", RUN_DIR / "p2"), mem_gib=32)
    online(host, mem_gib=8)
    template_on(h2, template_name)
    assert pick_host(template=template_name, ram_mb=512) == h2
    task = services.create_container(user=admin_user, ctid=9901, ostemplate=template_name, hostname="a.test",
                                     host=None)
    assert task.host == h2 and Container.objects.get(ctid=9901).host == h2
    # A template only one host has decides.
    Container.objects.filter(ctid=9901).delete()
    template_on(h2, "only-here")
    assert pick_host(template="only-here", ram_mb=512) == h2
    # Drained hosts are passed over, and so are full ones; the refusal names each reason.
    hosts.drain_host(admin_user, h2, "new disks")
    assert pick_host(template=template_name, ram_mb=512) == host
    with pytest.raises(TaskError, match=r"^No host can take this container: vzt-host: not enough memory: "
                                        r"containers there are promised 0 MiB, this one would add 9000 MiB, "
                                        r"and the host can promise 8192 MiB: 808 MiB short; vzt-p2: drained "
                                        r"\(new disks\)\. An administrator can raise a host's promise \(on its "
                                        r"page\) or override the capacity check\.$"):
        pick_host(template=template_name, ram_mb=9000)
    # Naming a drained host is refused as well; nothing is created.
    with pytest.raises(TaskError, match="Host vzt-p2 is drained .new disks.: no new containers are placed there"):
        services.create_container(user=admin_user, ctid=9902, ostemplate=template_name, hostname="b.test", host=h2)
    assert not Container.objects.filter(ctid=9902).exists()
    hosts.undrain_host(admin_user, h2)
    assert pick_host(template=template_name, ram_mb=512) == h2
    Host.objects.filter(pk=h2.pk).update(agent_seen_at=timezone.now() - timedelta(minutes=5))
    assert pick_host(template=template_name, ram_mb=512) == host  # an offline agent takes nothing


def test_remove_host_refused_while_it_holds_anything_and_history_is_kept(db, host, admin_user, template_name):
    h2 = make_host("vzt-r2", RUN_DIR / "r2")
    template_on(h2, template_name)
    task = services.create_container(user=admin_user, ctid=9903, ostemplate=template_name, hostname="c.test",
                                     host=h2)
    with pytest.raises(TaskError, match="To remove host vzt-r2, confirm by typing its name"):
        hosts.remove_host(admin_user, h2, confirm="yes")
    with pytest.raises(TaskError, match=r"still has 1 container\(s\): 9903"):
        hosts.remove_host(admin_user, h2, confirm="vzt-r2")
    Container.objects.filter(ctid=9903).delete()
    with pytest.raises(TaskError, match="queued or running tasks"):
        hosts.remove_host(admin_user, h2, confirm="vzt-r2")
    Task.objects.filter(pk=task.pk).update(status="cancelled")
    hosts.remove_host(admin_user, h2, confirm="vzt-r2")
    assert not Host.objects.filter(name="vzt-r2").exists()
    task.refresh_from_db()
    assert task.host is None and task.ctid == 9903  # the history stays


# -- who may: web, API, shell --------------------------------------------------------------------------
def test_host_administration_from_the_web(client, db, host, admin_user, people):
    client.force_login(admin_user)
    page = client.get("/hosts/add/")
    assert page.status_code == 200
    page = client.post("/hosts/add/", {"name": "node2", "ssh_address": "203.0.113.7:2222", "lxcpath": "/var/lib/lxc"})
    assert page.status_code == 200
    html = page.content.decode()
    node2 = Host.objects.get(name="node2")
    token = html.split('id="host-token">')[1].split("<")[0]
    assert hosts.token_matches(node2, token) and node2.ssh_address == "203.0.113.7:2222"
    assert f"make agent HOST=node2 PANEL_HOST_TOKEN={token} REDIS_URL=redis://vzpanel-host-node2:{token}@" in html
    # Bad input: a clear error, nothing added.
    page = client.post("/hosts/add/", {"name": "Bad Name!", "lxcpath": "relative/path"})
    assert "A host name is 1-63 lower-case letters" in page.content.decode()
    assert Host.objects.count() == 2
    page = client.post("/hosts/add/", {"name": "node3", "lxcpath": "/var/lib/../lxc"})
    assert "absolute path without" in page.content.decode() and not Host.objects.filter(name="node3").exists()

    assert client.post("/hosts/node2/do/drain/", {"reason": "RAM swap"}).status_code == 302
    assert Host.objects.get(name="node2").drain_reason == "RAM swap"
    detail = client.get("/hosts/node2/").content.decode()
    assert "drained: RAM swap" in detail and "Undrain" in detail and "Revoke token" in detail
    client.post("/hosts/node2/do/revoke/")
    assert not Host.objects.get(name="node2").token_hash

    # An operator drains but does not handle tokens; tenants do neither (and see no buttons).
    client.force_login(people["operator"])
    assert client.post("/hosts/node2/do/undrain/").status_code == 302
    assert not Host.objects.get(name="node2").is_drained
    assert client.post("/hosts/node2/do/token/").status_code == 403
    assert client.get("/hosts/add/").status_code == 403
    client.force_login(people["tadmin"])  # hosts are infrastructure: tenants do not even see them
    assert client.post("/hosts/node2/do/drain/").status_code == 404
    assert client.get("/hosts/node2/").status_code == 404
    assert not Host.objects.get(name="node2").is_drained


def test_host_and_migrate_api_permissions(client, db, host, admin_user, people, student_ct):
    from rest_framework.test import APIClient
    api = APIClient()
    api.force_authenticate(admin_user)
    res = api.post("/api/hosts/", {"name": "node4", "ssh_address": "node4.example.test"}, format="json")
    assert res.status_code == 201 and res.json()["token"].startswith("vzph_") and res.json()["has_token"]
    assert api.post("/api/hosts/", {"name": "node4"}, format="json").status_code == 400
    assert api.post("/api/hosts/node4/drain/", {"reason": "x"}, format="json").json()["drained"] is True
    # Migrating to a drained host, or to an unknown one: refused, nothing queued.
    res = api.post(f"/api/containers/{student_ct.ctid}/migrate/", {"host": "node4"}, format="json")
    assert res.status_code == 409 and "drained" in res.json()["detail"]
    res = api.post(f"/api/containers/{student_ct.ctid}/migrate/", {"host": "nowhere"}, format="json")
    assert res.status_code == 400
    res = api.post(f"/api/containers/{student_ct.ctid}/migrate/", {"host": host.name, "bwlimit_kib": -1}, format="json")
    assert res.status_code == 400 and "bwlimit_kib" in res.json()
    res = api.post(f"/api/containers/{student_ct.ctid}/migrate/", {"host": host.name}, format="json")
    assert res.status_code == 400 and "is already on vzt-host" in res.json()["detail"]
    assert not Task.objects.filter(type="ct.migrate").exists()
    # A bad SSH address: a clear error, the old one kept.
    res = api.post("/api/hosts/node4/ssh/", {"ssh_address": "-oProxyCommand"}, format="json")
    assert res.status_code == 400 and "bad SSH address" in res.json()["detail"]
    assert Host.objects.get(name="node4").ssh_address == "node4.example.test"

    api.force_authenticate(people["student"])  # owns the container, may not move it
    res = api.post(f"/api/containers/{student_ct.ctid}/migrate/", {"host": host.name}, format="json")
    assert res.status_code == 403 and "Only administrators and operators" in res.json()["detail"]
    assert api.post("/api/hosts/node4/undrain/").status_code == 404  # hosts are not a student's to see
    assert api.post("/api/hosts/", {"name": "node5"}, format="json").status_code == 403
    api.force_authenticate(people["outsider"])  # cannot even see it
    assert api.post(f"/api/containers/{student_ct.ctid}/migrate/", {}, format="json").status_code == 404
    api.force_authenticate(people["auditor"])
    assert api.post("/api/hosts/node4/evacuate/", {}, format="json").status_code == 403
    assert api.get("/api/hosts/node4/").json()["drained"] is True
    api.force_authenticate(people["operator"])
    assert api.post("/api/hosts/node4/token/").status_code == 403
    res = api.post("/api/hosts/node4/remove/", {"confirm": "node4"}, format="json")
    assert res.status_code == 403
    api.force_authenticate(admin_user)
    assert api.post("/api/hosts/node4/remove/", {"confirm": "node4"}, format="json").status_code == 204


def test_hostctl_at_the_shell(db, host, admin_user, capsys):
    call_command("hostctl", "add", "node6", "--ssh", "node6.example.test")
    out = capsys.readouterr().out
    assert "Added host node6" in out and Host.objects.get(name="node6").token_hash
    call_command("hostctl", "drain", "node6", "--reason", "rack move")
    call_command("hostctl", "list")
    out = capsys.readouterr().out
    assert "node6" in out and "drained" in out
    from django.core.management.base import CommandError
    with pytest.raises(CommandError, match="no containers to move"):
        call_command("hostctl", "evacuate", "node6")
    call_command("hostctl", "remove", "node6")
    assert not Host.objects.filter(name="node6").exists()
