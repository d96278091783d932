"""The short path of a task (issue 22): the end of a task announced to whoever waits, the API's exec
answering with the exit status when asked to wait, the last log lines written with the outcome, a
running container known from its cgroup without lxc-info. No timings are asserted: bench/bench_exec.py
measures them."""
from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.tokens import create_token
from consoles.relay import task_end_key
from containers import services
from containers.engine.cgroups import Cgroup
from containers.models import Container
from tasks.choices import TaskStatus
from tasks.models import Task
from tasks.queue import redis_connection
from tasks.services import cancel_task, finish_task, submit_task, wait_for_end

from .conftest import LXCPATH, lxc_info_state, wait_task

CTID = 9160


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text + "\n")
    return root


# -- what a container's cgroup says -----------------------------------------------------------------
V1_BASE = {"memory/memory.limit_in_bytes": "9223372036854771712", "pids/pids.current": "40",
           "freezer/freezer.state": "THAWED"}


@pytest.mark.parametrize("files,expected", [
    ({"pids/lxc.payload.101/pids.current": "3", "freezer/lxc.payload.101/freezer.state": "THAWED"}, "RUNNING"),
    ({"pids/lxc.payload.101/pids.current": "3", "freezer/lxc.payload.101/freezer.state": "FROZEN"}, "FROZEN"),
    ({"pids/lxc.payload.101/pids.current": "3", "freezer/lxc.payload.101/freezer.state": "FREEZING"}, "FROZEN"),
    ({"pids/lxc.payload.101/pids.current": "0", "freezer/lxc.payload.101/freezer.state": "THAWED"}, None),
    ({"pids/lxc.payload.101/pids.current": "3"}, None),  # no freezer: only LXC can say
    ({}, None),                                           # no cgroup: not running
])
def test_a_v1_cgroup_says_running_only_with_processes_and_thawed(tmp_path, files, expected):
    root = _write(tmp_path, {**V1_BASE, **files})
    assert Cgroup("101", str(root)).run_state() == expected


@pytest.mark.parametrize("files,expected", [
    ({"lxc.payload.101/cgroup.events": "populated 1\nfrozen 0", "lxc.payload.101/cgroup.freeze": "0"}, "RUNNING"),
    ({"lxc.payload.101/cgroup.events": "populated 1\nfrozen 1", "lxc.payload.101/cgroup.freeze": "1"}, "FROZEN"),
    ({"lxc.payload.101/cgroup.events": "populated 1\nfrozen 0", "lxc.payload.101/cgroup.freeze": "1"}, "FROZEN"),
    ({"lxc.payload.101/cgroup.events": "populated 0\nfrozen 0", "lxc.payload.101/cgroup.freeze": "0"}, None),
    ({"lxc.payload.101/cgroup.events": "populated 1\nfrozen 0"}, None),  # no freezer: only LXC can say
    ({}, None),
])
def test_a_v2_cgroup_says_running_only_when_populated_and_not_frozen(tmp_path, files, expected):
    root = _write(tmp_path, {"cgroup.controllers": "cpu memory pids", **files})
    assert Cgroup("101", str(root)).run_state() == expected


# -- the end of a task, announced --------------------------------------------------------------------
@pytest.fixture
def locked_ct(host, admin_user, template_name):
    ct = Container.objects.create(ctid=CTID, hostname="wait.example", ostemplate=template_name, host=host,
                                  status="running")
    task = submit_task(type="noop", host=host, user=admin_user, container=ct, queue=False)
    Container.objects.filter(pk=ct.pk).update(lock_task=task)
    return ct, task


def test_finishing_writes_the_last_lines_and_the_outcome_in_one_update_and_announces_it(
        redis_conn, locked_ct):
    ct, task = locked_ct
    Task.objects.filter(pk=task.pk).update(status=TaskStatus.RUNNING)
    with CaptureQueriesContext(connection) as queries:
        assert finish_task(task, TaskStatus.OK, result={"exit_code": 0}, log_text="12:00:00 | hello\n")
    task_updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('UPDATE "tasks_task"')]
    assert len(task_updates) == 1
    row = Task.objects.get(pk=task.pk)
    assert row.status == "ok" and row.result == {"exit_code": 0} and row.progress == 100 and row.finished_at
    queued, line, outcome = row.log.splitlines()
    assert "Queued on host" in queued and line == "12:00:00 | hello" and outcome.endswith(" Task ok")
    assert (task.status, task.log, task.result) == (row.status, row.log, row.result)  # the caller's copy too
    assert Container.objects.get(pk=ct.pk).lock_task is None
    ended = redis_conn.xrange(task_end_key(task.host_id, task.pk))
    assert [fields for _, fields in ended] == [{b"status": b"ok"}]
    # Who waits after the end learns it from the stream at once, and reads the final row.
    waiting = Task.objects.get(pk=task.pk)
    waiting.status = TaskStatus.RUNNING
    assert wait_for_end(waiting, 20).status == "ok"


def test_a_task_that_ended_meanwhile_keeps_its_outcome_and_still_gets_its_lines(redis_conn, admin_user, locked_ct):
    ct, task = locked_ct
    stale = Task.objects.get(pk=task.pk)
    cancel_task(task, admin_user)
    assert not finish_task(stale, TaskStatus.OK, result={"late": True}, log_text="12:00:00 a last line\n")
    row = Task.objects.get(pk=task.pk)
    assert row.status == "cancelled" and row.result is None and "a last line" in row.log
    assert (stale.status, stale.result) == ("cancelled", None)
    # The cancel announced the end once; the refused finish did not announce another.
    assert [f for _, f in redis_conn.xrange(task_end_key(task.host_id, task.pk))] == [{b"status": b"cancelled"}]


def test_waiting_for_a_task_that_does_not_end_gives_it_back_still_active(redis_conn, locked_ct):
    _, task = locked_ct
    assert wait_for_end(task, 0.2).status == "queued"


def test_a_waiter_is_woken_by_an_end_in_another_thread(transactional_db, redis_conn, locked_ct):
    _, task = locked_ct
    Task.objects.filter(pk=task.pk).update(status=TaskStatus.RUNNING)
    task.status = TaskStatus.RUNNING

    def finish_elsewhere():
        try:
            finish_task(Task.objects.get(pk=task.pk), TaskStatus.FAILED, error="it broke")
        finally:
            connection.close()
    timer = threading.Timer(0.3, finish_elsewhere)
    timer.start()
    try:
        ended = wait_for_end(task, 20)
    finally:
        timer.join()
    assert (ended.status, ended.error) == ("failed", "it broke")


def test_the_web_side_announces_and_waits_with_its_own_redis_user_and_no_more(redis_conn, locked_ct):
    """The web side both announces (a cancel) and waits (the API) as vzpanel-web; it still removes nothing."""
    _, task = locked_ct
    key = task_end_key(task.host_id, task.pk)
    web = redis_connection()
    web.xadd(key, {"status": "cancelled"})
    assert web.xread({key: "0-0"}, count=1, block=1)
    with pytest.raises(Exception, match="NOPERM|permission"):
        web.delete(key)


def test_only_so_many_requests_wait_at_once_and_each_gives_its_place_back(redis_conn, locked_ct, settings):
    """A waiting request holds a web worker: past PANEL_API_WAITERS the answer comes at once."""
    from tasks.queue import WAITERS_KEY
    from tasks.services import _take_waiting_place
    settings.API_WAITERS = 1
    web = redis_connection()
    first = _take_waiting_place(web, 20)
    assert first and _take_waiting_place(web, 20) is None
    _, task = locked_ct
    assert wait_for_end(task, 20).status == "queued"  # no place: it did not wait (and took none)
    assert redis_conn.zrange(WAITERS_KEY, 0, -1) == [first.encode()]
    web.zrem(WAITERS_KEY, first)
    assert wait_for_end(task, 0.2).status == "queued"  # it waited, and gave its place back
    assert redis_conn.zcard(WAITERS_KEY) == 0
    # A place whose waiter died mid-wait is free once its time is over.
    redis_conn.zadd(WAITERS_KEY, {"dead-worker": 1})
    assert _take_waiting_place(web, 20)


# -- the API's exec, waiting -----------------------------------------------------------------------
@pytest.fixture
def api(admin_user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {create_token(admin_user, 'tests')[1]}")
    return client


@pytest.mark.parametrize("wait", [-1, 21, "1.5", "soon"])
def test_an_exec_wait_out_of_range_is_refused_and_queues_nothing(api, host, template_name, wait):
    Container.objects.create(ctid=CTID, hostname="w.example", ostemplate=template_name, host=host, status="running")
    resp = api.post(f"/api/containers/{CTID}/exec/", {"command": ["true"], "wait": wait}, format="json")
    assert resp.status_code == 400 and "wait" in resp.json()
    assert Task.objects.count() == 0


@pytest.fixture
def running_ct(agent_process, host, admin_user, template_name):
    # No reconcile after the first: it would thaw the container frozen behind the panel's back,
    # or write its stop into the row, before the task under test looks.
    agent_process.extra_env["PANEL_AGENT_RECONCILE_SECONDS"] = "3600"
    agent_process.start()
    task = wait_task(services.create_container(user=admin_user, ctid=CTID, ostemplate=template_name,
                                               hostname="exec.test", host=host, start=True))
    assert task.status == "ok", task.log
    return Container.objects.get(ctid=CTID)


@pytest.mark.integration
def test_exec_through_the_api(api, redis_conn, running_ct, admin_user):
    # Waiting: the answer is the ended task, with the exit status and the output.
    resp = api.post(f"/api/containers/{CTID}/exec/", {"command": ["sh", "-c", "hostname; exit 3"], "wait": 20},
                    format="json")
    assert resp.status_code == 200, resp.content
    task = resp.json()["task"]
    assert task["status"] == "ok" and task["result"]["exit_code"] == 3
    assert task["result"]["stdout"] == "exec.test\n"
    assert resp["Location"].endswith(f"/api/tasks/{task['id']}/")
    row = Task.objects.get(pk=task["id"])
    assert "| exec.test" in row.log and row.log.endswith("Task ok\n")  # the last lines made it with the outcome
    # The agent announced the end, as its host's Redis user (a lost announcement costs the wait).
    assert [f for _, f in redis_conn.xrange(task_end_key(row.host_id, row.pk))] == [{b"status": b"ok"}]
    # Without wait (or with 0): 202 at once, as before; the task still runs to its end.
    resp = api.post(f"/api/containers/{CTID}/exec/", {"command": ["true"]}, format="json")
    assert resp.status_code == 202
    assert wait_task(Task.objects.get(pk=resp.json()["task"]["id"])).result["exit_code"] == 0
    # A wait too short for the command: 202 with the task still running; it ends on its own.
    resp = api.post(f"/api/containers/{CTID}/exec/", {"command": ["sleep", "3"], "wait": 1}, format="json")
    assert resp.status_code == 202 and resp.json()["task"]["status"] in ("queued", "running")
    assert wait_task(Task.objects.get(pk=resp.json()["task"]["id"])).status == "ok"


@pytest.mark.integration
def test_exec_in_a_container_stopped_or_frozen_behind_the_panel_is_refused_and_the_row_put_right(
        running_ct, admin_user):
    """The cgroup only ever says yes quickly; anything else is LXC's to say (a frozen container
    would hold lxc-attach until its timeout)."""
    base = ["-n", str(CTID), "-P", str(LXCPATH)]
    subprocess.run(["lxc-freeze", *base], check=True)
    try:
        assert Cgroup(str(CTID)).run_state() == "FROZEN"
        task = wait_task(services.exec_in_container(running_ct, admin_user, ["true"]))
        assert task.status == "failed" and "is not running" in task.error
        running_ct.refresh_from_db()
        assert running_ct.status == "frozen" and running_ct.lock_task is None
    finally:
        subprocess.run(["lxc-unfreeze", *base], check=True)
    subprocess.run(["lxc-stop", "-k", *base], check=True)
    assert lxc_info_state(CTID) == "STOPPED"
    Container.objects.filter(pk=running_ct.pk).update(status="running")  # the row has not seen it yet
    running_ct.refresh_from_db()
    task = wait_task(services.exec_in_container(running_ct, admin_user, ["true"]))
    assert task.status == "failed" and "is not running" in task.error
    running_ct.refresh_from_db()
    assert running_ct.status == "stopped"


# -- create and start ------------------------------------------------------------------------------
@pytest.mark.integration
def test_a_start_that_lxc_cannot_complete_still_fails_without_lxc_wait(agent, host, admin_user, template_name):
    """lxc-start -d itself says whether the container reached RUNNING; the panel no longer asks lxc-wait."""
    ctid = CTID + 1
    task = wait_task(services.create_container(user=admin_user, ctid=ctid, ostemplate=template_name,
                                               hostname="noinit.test", host=host))
    assert task.status == "ok", task.log
    init = LXCPATH / str(ctid) / "rootfs" / "sbin" / "init"
    init.unlink()
    init.write_text("not a program\n")  # init cannot be run: LXC reports ABORTING, not RUNNING
    ct = Container.objects.get(ctid=ctid)
    task = wait_task(services.start_container(ct, admin_user))
    assert task.status == "failed" and "RUNNING" in task.error
    assert lxc_info_state(ctid) == "STOPPED"
    ct.refresh_from_db()
    assert ct.status == "stopped" and ct.lock_task is None
    # Put right, it starts, and LXC says RUNNING the moment the task has ended.
    init.unlink()
    init.symlink_to("/bin/busybox")
    assert wait_task(services.start_container(ct, admin_user)).status == "ok"
    assert lxc_info_state(ctid) == "RUNNING"
    ct.refresh_from_db()
    assert ct.status == "running" and ct.nproc
