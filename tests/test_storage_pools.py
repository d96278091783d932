"""Storage pools through the panel (issue 21): existing hosts and containers get today's pool, a
container is created on the pool asked for if its creator may use it, administrators add btrfs
pools that the agent makes, and snapshots work through the CLI, the API and the services, counted
against the tenant's quota and seen only with their container."""
from __future__ import annotations

import subprocess
import sys

import pytest
from django.apps import apps as django_apps
from rest_framework.test import APIClient

from containers import services
from containers.models import Container
from containers.services import InvalidRequest
from storage import services as storage
from storage.models import PoolStatus, PoolType, Snapshot, StoragePool
from tasks.models import Task
from tenancy.quotas import QuotaExceeded

from .btrfs_fixtures import remove_btrfs_pool, loop_devices_of
from .conftest import BASE_DIR, LXCPATH, wait_task
from .tenancy_fixtures import acme, other_tenant, people, plan  # noqa: F401


def test_migration_gives_every_host_todays_pool_and_every_container_its_host_default(host, template_name):
    import importlib
    pools_migration = importlib.import_module("storage.migrations.0001_initial")
    containers_migration = importlib.import_module("containers.migrations.0004_container_storage")
    StoragePool.objects.all().delete()
    ct = Container.objects.create(ctid=9860, hostname="old.test", ostemplate=template_name, host=host,
                                  status="stopped")
    assert ct.storage is None
    pools_migration.default_pools(django_apps, None)
    containers_migration.onto_default_pools(django_apps, None)
    pool = StoragePool.objects.get(host=host)
    assert (pool.name, pool.type, pool.is_default, pool.status) == ("default", "image", True, "ready")
    ct.refresh_from_db()
    assert ct.storage == pool


def test_created_containers_go_on_the_default_pool(host, admin_user, template_name, redis_conn):
    task = services.create_container(user=admin_user, ctid=9861, ostemplate=template_name, hostname="a.test",
                                     host=host)
    assert task.container.storage == storage.default_pool(host)
    assert Container.objects.get(ctid=9861).storage.type == PoolType.IMAGE


def test_a_tenant_cannot_create_on_a_pool_it_is_not_allowed(host, template_name, people, acme, other_tenant,  # noqa: F811
                                                            plan, redis_conn):  # noqa: F811
    only_other = StoragePool.objects.create(host=host, name="fast", type=PoolType.DIR)
    only_other.tenants.set([other_tenant])
    before = (Container.objects.count(), Task.objects.count())
    with pytest.raises(InvalidRequest, match="no storage pool 'fast' you may"):
        services.create_container(user=people["tadmin"], ctid=9862, ostemplate=template_name, hostname="b.test",
                                  host=host, tenant=acme, plan=plan, storage="fast")
    with pytest.raises(InvalidRequest, match="no storage pool 'nosuch' you may"):
        services.create_container(user=people["tadmin"], ctid=9862, ostemplate=template_name, hostname="b.test",
                                  host=host, tenant=acme, plan=plan, storage="nosuch")
    assert (Container.objects.count(), Task.objects.count()) == before
    # Opened to acme: now it may.
    only_other.tenants.add(acme)
    task = services.create_container(user=people["tadmin"], ctid=9862, ostemplate=template_name, hostname="b.test",
                                      host=host, tenant=acme, plan=plan, storage="fast")
    assert task.container.storage == only_other
    # The API takes the same field, with the same answer for a pool one may not use.
    api = APIClient()
    api.force_authenticate(people["tadmin"])
    only_other.tenants.set([other_tenant])
    resp = api.post("/api/containers/", {"ctid": 9863, "ostemplate": template_name, "hostname": "c.test",
                                         "host": host.name, "tenant": "acme", "plan": plan.name,
                                         "storage": "fast"}, format="json")
    assert resp.status_code == 400 and "no storage pool 'fast'" in resp.json()["detail"]
    assert not Container.objects.filter(ctid=9863).exists()
    # The host's pools are listed with the host (for those who see hosts), by the names create takes.
    api.force_authenticate(people["operator"])
    pools = {p["name"]: p for p in api.get(f"/api/hosts/{host.name}/").json()["storage_pools"]}
    assert pools["default"]["is_default"] and pools["default"]["type"] == "image" and pools["fast"]["type"] == "dir"


def test_only_administrators_add_pools_and_bad_ones_are_refused(host, people, admin_user):  # noqa: F811
    for who in ("operator", "tadmin"):
        with pytest.raises(services.NotAllowed):
            storage.add_pool(host=host, user=people[who], name="tank", type="btrfs", loop_size_mb=1024)
    for bad, says in [({"type": "btrfs"}, "either on a block device or in a loop file"),
                      ({"type": "btrfs", "device": "/dev/sdz", "loop_size_mb": 1024}, "either"),
                      ({"type": "btrfs", "device": "/etc/passwd"}, "path under /dev"),
                      ({"type": "btrfs", "device": "/dev/../etc/shadow"}, "path under /dev"),
                      ({"type": "dir", "device": "/dev/sdb"}, "takes no device"),
                      ({"type": "zfs"}, "type is one of"),
                      ({"type": "btrfs", "loop_size_mb": 1024, "name": "../x"}, "")]:
        with pytest.raises(InvalidRequest, match=says):
            storage.add_pool(host=host, user=admin_user, **{"name": "tank", **bad})
    assert not StoragePool.objects.filter(name="tank").exists() and not Task.objects.exists()


@pytest.fixture
def tank(agent, host, admin_user):
    """A 1 GiB loop-backed btrfs pool named tank, added by an administrator and made by the agent."""
    mountpoint, loop_file = LXCPATH / ".pools" / "tank", LXCPATH / ".pools" / "tank.img"
    try:
        pool = storage.add_pool(host=host, user=admin_user, name="tank", type="btrfs", loop_size_mb=1024)
        task = wait_task(pool.task, timeout=120)
        assert task.status == "ok", task.log
        pool.refresh_from_db()
        yield pool
    finally:
        remove_btrfs_pool(mountpoint, loop_file)
        assert not loop_devices_of(loop_file)


def vzctl(agent, *argv):
    return subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), "vzctl", *argv], cwd=BASE_DIR,
                          env=agent.env(), capture_output=True, text=True, timeout=300)


@pytest.mark.integration
def test_btrfs_pool_snapshots_through_cli_api_and_quota(agent, tank, host, admin_user, template_name, people,  # noqa: F811
                                                        acme, plan):  # noqa: F811
    assert tank.status == PoolStatus.READY and tank.size_bytes and tank.size_bytes >= 900 << 20
    res = vzctl(agent, "create", "9864", "--ostemplate", template_name, "--host", host.name, "--storage", "tank",
                "--tenant", "acme", "--plan", plan.name)
    assert res.returncode == 0, res.stderr
    ct = Container.objects.get(ctid=9864)
    assert ct.storage == tank
    Container.objects.filter(pk=ct.pk).update(owner=people["student"])
    assert subprocess.run(["btrfs", "subvolume", "show", str(LXCPATH / ".pools/tank/ct/9864")],
                          capture_output=True).returncode == 0
    assert wait_task(services.start_container(ct, admin_user)).status == "ok"
    # vzctl set --diskspace on the running container: the qgroup limit changes at once.
    task = wait_task(services.update_container(ct, admin_user, disk_mb=400))
    assert task.status == "ok", task.log
    show = subprocess.run(["btrfs", "qgroup", "show", "-reF", "--raw", str(LXCPATH / ".pools/tank/ct/9864")],
                          capture_output=True, text=True, check=True).stdout
    assert str(400 << 20) in show, show
    res = vzctl(agent, "snapshot", "9864", "--name", "first", "--description", "before the upgrade")
    assert res.returncode == 0, res.stderr
    assert "frozen for" in res.stdout
    snap = Snapshot.objects.get(container=ct, name="first")
    assert snap.ready and snap.frozen_ms is not None
    listing = vzctl(agent, "snapshot-list", "9864")
    assert "first" in listing.stdout and "before the upgrade" in listing.stdout
    # The tenant's snapshot quota: one, taken; the next is refused and nothing is queued.
    acme.max_snapshots = 1
    acme.save()
    before = Task.objects.count()
    with pytest.raises(QuotaExceeded):
        storage.take_snapshot(ct, people["student"], "second")
    assert Task.objects.count() == before and Snapshot.objects.filter(container=ct).count() == 1
    # The API: its owner sees its snapshots; someone of another tenant gets 404, not the list.
    api = APIClient()
    api.force_authenticate(people["student"])
    assert [s["name"] for s in api.get("/api/containers/9864/snapshots/").json()] == ["first"]
    api.force_authenticate(people["outsider"])
    assert api.get("/api/containers/9864/snapshots/").status_code == 404
    assert api.post("/api/containers/9864/snapshots/first/switch/").status_code == 404
    assert api.delete("/api/containers/9864/snapshots/first/").status_code == 404
    api.force_authenticate(people["student"])
    # Switching needs it stopped; then it rolls back.
    assert wait_task(services.exec_in_container(ct, admin_user, ["sh", "-c", "echo changed > /marker"])).status == "ok"
    resp = api.post("/api/containers/9864/snapshots/first/switch/")
    assert resp.status_code == 409 and "stop it first" in resp.json()["detail"]
    assert wait_task(services.stop_container(ct, admin_user)).status == "ok"
    resp = api.post("/api/containers/9864/snapshots/first/switch/")
    assert resp.status_code == 202
    assert wait_task(Task.objects.get(pk=resp.json()["task"]["id"])).status == "ok"
    assert not (LXCPATH / "9864" / "rootfs" / "marker").exists()
    resp = api.delete("/api/containers/9864/snapshots/first/")
    assert resp.status_code == 202
    assert wait_task(Task.objects.get(pk=resp.json()["task"]["id"])).status == "ok"
    assert not Snapshot.objects.filter(container=ct).exists()
    assert not (LXCPATH / ".pools/tank/snap/9864/first").exists()
    # Destroyed: its subvolume goes with it.
    assert wait_task(services.destroy_container(ct, admin_user, confirm=9864)).status == "ok"
    assert not (LXCPATH / ".pools/tank/ct/9864").exists()


def test_snapshots_refused_on_pools_that_cannot_take_them(host, admin_user, template_name, redis_conn):
    ct = Container.objects.create(ctid=9865, hostname="i.test", ostemplate=template_name, host=host,
                                  status="running", storage=storage.default_pool(host))
    with pytest.raises(InvalidRequest, match="cannot take snapshots"):
        storage.take_snapshot(ct, admin_user, "x")
    assert not Snapshot.objects.exists() and not Task.objects.exists()


def test_host_page_adds_pools_and_shows_them_and_the_create_form_offers_only_allowed_ones(
        client, host, admin_user, people, acme, other_tenant, redis_conn):  # noqa: F811
    client.force_login(admin_user)
    resp = client.post(f"/hosts/{host.name}/pools/", {"name": "plain", "type": "dir", "tenants": [other_tenant.pk]})
    assert resp.status_code == 302, resp.content.decode()[:500]
    pool = StoragePool.objects.get(host=host, name="plain")
    assert (pool.type, pool.status, list(pool.tenants.all())) == ("dir", "ready", [other_tenant])
    resp = client.post(f"/hosts/{host.name}/pools/", {"name": "bad", "type": "btrfs", "device": "/etc/passwd"})
    assert resp.status_code == 400 and "path under /dev" in resp.content.decode()
    assert not StoragePool.objects.filter(name="bad").exists()
    page = client.get(f"/hosts/{host.name}/").content.decode()
    assert 'data-pool="plain"' in page and 'data-pool="default"' in page and "every tenant" in page
    # An operator sees the host but may not add pools.
    client.force_login(people["operator"])
    assert client.post(f"/hosts/{host.name}/pools/", {"name": "x", "type": "dir"}).status_code == 403
    # acme's admin is offered the pools open to acme only.
    client.force_login(people["tadmin"])
    form = client.get("/containers/new/").context["form"]
    assert [v for v, _ in form.fields["storage"].choices] == ["", "default"]
    client.force_login(people["outsider"])


def test_snapshots_tab_shows_only_the_containers_own(client, host, template_name, people, acme, plan,  # noqa: F811
                                                    other_tenant):  # noqa: F811
    tank = StoragePool.objects.create(host=host, name="tank", type="btrfs", loop_size_mb=1024)
    mine = Container.objects.create(ctid=9866, hostname="m.test", ostemplate=template_name, host=host, tenant=acme,
                                    owner=people["student"], status="stopped", storage=tank)
    theirs = Container.objects.create(ctid=9867, hostname="t.test", ostemplate=template_name, host=host,
                                      tenant=other_tenant, owner=people["outsider"], status="stopped", storage=tank)
    Snapshot.objects.create(container=mine, name="mine-1", ready=True)
    Snapshot.objects.create(container=theirs, name="secret-1", ready=True)
    client.force_login(people["student"])
    page = client.get("/containers/9866/?tab=snapshots").content.decode()
    assert 'data-snapshot="mine-1"' in page and "secret-1" not in page
    assert client.get("/containers/9867/?tab=snapshots").status_code == 404
    assert client.post("/containers/9867/snapshots/secret-1/delete/").status_code == 404
    # Another container's snapshot name through one's own container: not found there, nothing queued.
    resp = client.post("/containers/9866/snapshots/secret-1/delete/")
    assert resp.status_code == 400 and "has no snapshot secret-1" in resp.content.decode()
    assert not Task.objects.exists() and Snapshot.objects.count() == 2


@pytest.mark.integration
def test_after_a_reboot_the_agent_mounts_the_pool_then_its_containers(agent, tank, host, admin_user, template_name):
    from .conftest import wait_until
    task = services.create_container(user=admin_user, ctid=9868, ostemplate=template_name, hostname="r.test",
                                     host=host, storage="tank")
    assert wait_task(task).status == "ok", task.log
    rootfs, mountpoint = LXCPATH / "9868" / "rootfs", LXCPATH / ".pools" / "tank"

    def mounted(path):
        with open("/proc/self/mountinfo") as fh:
            return any(line.split()[4] == str(path) for line in fh)
    # What a reboot leaves: neither the pool nor the container's bind mount.
    subprocess.run(["umount", str(rootfs)], check=True)
    subprocess.run(["umount", str(mountpoint)], check=True)
    wait_until(lambda: mounted(mountpoint) and mounted(rootfs), 30, message="the agent to mount pool and rootfs")
    assert (rootfs / "bin").is_dir()
    assert wait_task(services.start_container(Container.objects.get(ctid=9868), admin_user)).status == "ok"


def test_a_container_on_btrfs_is_not_migrated_yet(host, admin_user, template_name, redis_conn):
    tank = StoragePool.objects.create(host=host, name="tank", type="btrfs", loop_size_mb=1024)
    ct = Container.objects.create(ctid=9869, hostname="m.test", ostemplate=template_name, host=host,
                                  status="stopped", storage=tank)
    with pytest.raises(InvalidRequest, match="not possible yet"):
        services.migrate_container(ct, admin_user, None)
    assert not Task.objects.exists() and Container.objects.get(ctid=9869).lock_task is None
