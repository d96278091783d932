"""End to end on this machine: real LXC, a real redis-server, the real host agent."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from containers import services
from containers.engine.lxc import PARTIAL_PREFIX
from containers.models import Container
from hosts.models import Host
from tasks.models import Task

from .conftest import BASE_DIR, LXCPATH, TEMPLATE_DIR, lxc_info_state, lxcpath_entries, wait_task, wait_until

pytestmark = pytest.mark.integration


def create(host, user, template_name, ctid, **kw):
    task = services.create_container(user=user, ctid=ctid, ostemplate=template_name,
                                     hostname=kw.pop("hostname", f"ct{ctid}.test"), host=host, **kw)
    return wait_task(task)


def test_create_start_exec_set_stop_destroy(agent, host, admin_user, template_name):
    task = create(host, admin_user, template_name, 9101, name="life")
    assert task.status == "ok", task.log
    assert lxc_info_state(9101) == "STOPPED"
    ct = Container.objects.get(ctid=9101)
    assert ct.status == "stopped" and ct.lock_task is None

    assert wait_task(services.start_container(ct, admin_user)).status == "ok"
    assert lxc_info_state(9101) == "RUNNING"
    ct.refresh_from_db()
    assert ct.status == "running"

    task = wait_task(services.exec_in_container(ct, admin_user, ["hostname"]))
    assert task.status == "ok" and task.result["stdout"].strip() == "ct9101.test"
    task = wait_task(services.exec_in_container(ct, admin_user, ["sh", "-c", "echo oops >&2; exit 4"]))
    assert task.result["exit_code"] == 4 and "oops" in task.result["stderr"]

    # vzctl set --hostname on a running container: at once, inside, and kept.
    task = wait_task(services.update_container(ct, admin_user, hostname="renamed.test", onboot=True))
    assert task.status == "ok", task.log
    task = wait_task(services.exec_in_container(ct, admin_user, ["cat", "/proc/sys/kernel/hostname", "/etc/hostname"]))
    assert task.result["stdout"].split() == ["renamed.test", "renamed.test"]
    assert "lxc.start.auto = 1" in (LXCPATH / "9101" / "config").read_text()

    assert wait_task(services.restart_container(ct, admin_user)).status == "ok"
    assert lxc_info_state(9101) == "RUNNING"

    refused = pytest.raises(services.InvalidState, services.destroy_container, ct, admin_user, "9101")
    assert "stop it first" in str(refused.value)

    assert wait_task(services.stop_container(ct, admin_user)).status == "ok"
    assert lxc_info_state(9101) == "STOPPED"
    ct.refresh_from_db()
    assert ct.status == "stopped"

    assert wait_task(services.destroy_container(ct, admin_user, "9101")).status == "ok"
    assert lxc_info_state(9101) == "ABSENT"
    assert not (LXCPATH / "9101").exists()
    assert not Container.objects.filter(ctid=9101).exists()


def test_failed_create_leaves_nothing_behind(agent, host, admin_user, busybox_template):
    # A template that breaks off half way: tar unpacks part of it, then fails.
    broken = TEMPLATE_DIR / "broken-1.tar.zst"
    data = busybox_template.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    try:
        from containers.models import OSTemplate
        from django.utils import timezone
        OSTemplate.objects.create(host=host, name="broken-1", filename=broken.name, size=len(data) // 2,
                                  sha256="0" * 64, modified_at=timezone.now())
        task = create(host, admin_user, "broken-1", 9102)
        assert task.status == "failed"
        assert "unpacking broken-1.tar.zst failed" in task.error
        assert "zstd" in task.error or "tar" in task.error  # the tool's own words
        assert lxc_info_state(9102) == "ABSENT"
        assert lxcpath_entries() == []
        assert not Container.objects.filter(ctid=9102).exists()
        assert Task.objects.get(pk=task.pk).container is None
    finally:
        broken.unlink()


def test_locked_container_refuses_a_second_operation(agent, host, admin_user, template_name):
    create(host, admin_user, template_name, 9103, start=True)
    ct = Container.objects.get(ctid=9103)
    slow = services.exec_in_container(ct, admin_user, ["sleep", "3"])
    with pytest.raises(services.ContainerLocked, match=f"locked by task #{slow.pk}"):
        services.stop_container(ct, admin_user)
    api = APIClient()
    api.force_authenticate(admin_user)
    resp = api.post("/api/containers/9103/stop/")
    assert resp.status_code == 409 and f"task #{slow.pk}" in resp.json()["detail"]
    assert wait_task(slow).status == "ok"
    assert wait_task(services.stop_container(ct, admin_user)).status == "ok"


def test_agent_killed_mid_task_marks_it_interrupted(agent, host, admin_user, template_name):
    create(host, admin_user, template_name, 9104, start=True)
    ct = Container.objects.get(ctid=9104)
    task = services.exec_in_container(ct, admin_user, ["sleep", "60"])
    wait_until(lambda: Task.objects.get(pk=task.pk).status == "running", 20, message="exec to start")
    agent.kill()
    host.refresh_from_db()
    agent.start()
    task.refresh_from_db()
    assert task.status == "failed" and "interrupted" in task.error
    ct.refresh_from_db()
    assert ct.lock_task is None
    assert wait_task(services.stop_container(ct, admin_user)).status == "ok"


def test_queued_task_can_be_cancelled_and_never_runs(agent_process, host, admin_user, template_name):
    from tasks.services import cancel_task
    # No agent yet: the task stays queued.
    task = services.create_container(user=admin_user, ctid=9105, ostemplate=template_name,
                                     hostname="c.test", host=host)
    from tasks.queue import host_queue
    assert task.rq_job_id in host_queue(host).get_job_ids()  # enqueued once the transaction committed
    cancel_task(task, admin_user)
    assert task.rq_job_id not in host_queue(host).get_job_ids()
    task.refresh_from_db()
    assert task.status == "cancelled"
    assert Container.objects.get(ctid=9105).lock_task is None
    agent_process.start()
    time.sleep(1)
    assert Task.objects.get(pk=task.pk).status == "cancelled"
    assert lxc_info_state(9105) == "ABSENT"


def test_agent_reconciles_state_and_lists_unmanaged_containers(agent, host, admin_user, template_name):
    create(host, admin_user, template_name, 9106, start=True)
    # Stopped behind the panel's back: the agent notices.
    subprocess.run(["lxc-stop", "-n", "9106", "-P", str(LXCPATH), "-k"], check=True)
    wait_until(lambda: Container.objects.get(ctid=9106).status == "stopped", 15, message="reconcile")
    # A container made at the shell is listed, never touched.
    os.makedirs(LXCPATH / "handmade" / "rootfs")
    (LXCPATH / "handmade" / "config").write_text(f"lxc.rootfs.path = dir:{LXCPATH}/handmade/rootfs\n")
    wait_until(lambda: Host.objects.get(pk=host.pk).unmanaged, 15, message="unmanaged list")
    assert Host.objects.get(pk=host.pk).unmanaged == [{"name": "handmade", "state": "STOPPED"}]
    assert (LXCPATH / "handmade" / "config").exists()


def test_onboot_containers_start_when_the_host_boots_and_partials_are_removed(agent, host, admin_user,
                                                                               template_name):
    from django.conf import settings
    create(host, admin_user, template_name, 9107, onboot=True)
    agent.stop()
    (LXCPATH / f"{PARTIAL_PREFIX}9999-x").mkdir()  # what a crash mid-create would leave
    # The agent starts for the first time since the host booted (it knows by the kernel's boot id).
    (Path(settings.AGENT_DATA_DIR) / "boot-id").write_text("an earlier boot\n")
    agent.start()
    wait_until(lambda: Container.objects.get(ctid=9107).status == "running", 20, message="onboot start")
    assert lxc_info_state(9107) == "RUNNING"
    assert not (LXCPATH / f"{PARTIAL_PREFIX}9999-x").exists()


def test_restarting_the_agent_leaves_an_onboot_container_its_user_stopped(agent, host, admin_user, template_name):
    """OpenVZ started onboot containers when the host booted, not when its service restarted."""
    create(host, admin_user, template_name, 9118, onboot=True)  # made stopped, as its user left it
    agent.stop()
    agent.start()  # the same boot of the host
    from tasks.choices import TaskType
    from tasks.services import submit_task
    assert wait_task(submit_task(type=TaskType.NOOP, host=host)).status == "ok"  # serving: onboot is behind it
    assert not Task.objects.filter(container__ctid=9118, type=TaskType.CT_START).exists()
    assert lxc_info_state(9118) == "STOPPED"


def test_cli_vzctl_and_vzlist(agent, host, admin_user, template_name):
    env = agent.env()

    def vz(*args):
        return subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), *args], cwd=BASE_DIR, env=env,
                              capture_output=True, text=True, timeout=120)
    res = vz("vzctl", "create", "9108", "--ostemplate", template_name, "--hostname", "cli.test", "--name", "clibox")
    assert res.returncode == 0, res.stderr
    assert "Container 9108 created" in res.stdout
    assert vz("vzctl", "start", "clibox").returncode == 0
    res = vz("vzctl", "exec", "clibox", "--", "sh", "-c", "echo hello; exit 7")
    assert (res.returncode, res.stdout) == (7, "hello\n")
    res = vz("vzlist", "-H", "-o", "ctid,status,hostname,name")
    assert res.stdout.split() == ["9108", "running", "cli.test", "clibox"]
    res = vz("vzctl", "start", "9108")
    assert res.returncode != 0 and "already running" in res.stderr
    res = vz("vzctl", "set", "9108", "--hostname", "bad_name", "--save")
    assert res.returncode != 0 and "not a valid hostname" in res.stderr
    assert vz("vzctl", "stop", "9108").returncode == 0
    assert vz("vzctl", "destroy", "9108").returncode == 0
    assert lxc_info_state(9108) == "ABSENT"


def test_api_create_answers_202_with_task_url(agent, host, admin_user, template_name):
    api = APIClient()
    api.force_authenticate(admin_user)
    resp = api.post("/api/containers/", {"ctid": 9109, "ostemplate": template_name, "hostname": "api.test",
                                         "start": True}, format="json")
    assert resp.status_code == 202
    assert resp["Location"].endswith(f"/api/tasks/{resp.json()['task']['id']}/")
    task = wait_task(Task.objects.get(pk=resp.json()["task"]["id"]))
    assert task.status == "ok", task.log
    assert api.get("/api/containers/9109/").json()["status"] == "running"
    assert lxc_info_state(9109) == "RUNNING"
    detail = api.get(resp["Location"]).json()
    assert "Container 9109 created" in detail["log"]


def test_rolled_back_request_enqueues_nothing(redis_conn, host, admin_user, template_name, transactional_db):
    from django.db import transaction
    from tasks.queue import host_queue
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            services.create_container(user=admin_user, ctid=9110, ostemplate=template_name,
                                      hostname="r.test", host=host)
            raise RuntimeError("the request failed after queueing")
    assert host_queue(host).get_job_ids() == []
    assert not Task.objects.exists() and not Container.objects.exists()


