"""The agent dies (SIGKILL, for real, at named points: containers/engine/faults.py) in the middle of a
task; after it comes back, with no manual step, every container is in a state a user can act on:
running (or cleanly absent), never frozen; its row agrees with LXC; a new action is accepted; no
files are left behind. A hung agent's freeze is ended by the watchdog."""
from __future__ import annotations

import signal

import pytest

from backups import services as backup_services
from backups.models import Backup
from containers import services
from containers.models import Container
from metrics.models import ContainerEvent
from tasks.choices import TaskStatus

from .conftest import DUMP_DIR, LXCPATH, lxc_info_state, wait_task, wait_until
from .test_integration import create

integration = pytest.mark.integration
# make test runs this file beside the main lane (its CTIDs, 912x-913x, are its alone).
pytestmark = pytest.mark.own_lane


def die_at(agent_process, point: str, env_name: str = "VZPANEL_DIE_AT"):
    """Restart the agent so that it dies (or stalls) at `point`."""
    agent_process.stop()
    agent_process.extra_env[env_name] = point
    return agent_process.start()


def back_to_normal(agent_process):
    """The agent died: start it again as an operator (or runpanel, or systemd) would."""
    wait_until(lambda: agent_process.proc.poll() is not None, 60, message="the agent to die")
    agent_process.extra_env.pop("VZPANEL_DIE_AT", None)
    agent_process.extra_env.pop("VZPANEL_STALL_AT", None)
    return agent_process.start()


def interrupted(task):
    task = wait_task(task, 60)
    assert task.status == TaskStatus.FAILED and "interrupted" in task.error, (task.status, task.error)
    return task


def running_ct(agent, host, admin_user, template_name, ctid: int) -> Container:
    assert create(host, admin_user, template_name, ctid, start=True).status == "ok"
    return Container.objects.get(ctid=ctid)


def leftovers() -> list[str]:
    found = [p.name for p in LXCPATH.iterdir() if p.name.startswith(".vzpanel-")] if LXCPATH.is_dir() else []
    if DUMP_DIR.is_dir():
        found += [p.name for p in DUMP_DIR.iterdir() if p.name.startswith(".vzdump-tmp-") or p.name.endswith(".partial")]
    return found


def still_usable(ct: Container, user, expect: str = "RUNNING") -> None:
    """The row agrees with LXC and the container takes a new action."""
    ct.refresh_from_db()
    assert lxc_info_state(ct.ctid) == expect
    assert ct.status == expect.lower() and ct.lock_task_id is None
    if expect == "RUNNING":
        task = wait_task(services.exec_in_container(ct, user, ["true"]), 60)
        assert task.status == "ok", task.log


def backup_cut_at(agent_process, host, admin_user, template_name, ctid: int, mode: str, point: str,
                  env_name: str = "VZPANEL_DIE_AT"):
    """A running container whose backup the agent will die (or stall) in at `point`."""
    agent = agent_process.start()
    ct = running_ct(agent, host, admin_user, template_name, ctid)
    die_at(agent, point, env_name)
    return agent, ct, backup_services.backup_container(ct, admin_user, mode=mode)


@integration
@pytest.mark.parametrize("ctid, mode, point", [
    (9120, "suspend", "backup.copied"),   # before the frozen window
    (9121, "suspend", "backup.frozen"),   # in it
    (9133, "suspend", "backup.thawed"),   # just after it
    (9134, "snapshot", "backup.frozen"),  # snapshot mode on a filesystem that cannot snapshot: frozen too
])
def test_agent_killed_around_a_suspend_backups_frozen_window(agent_process, host, admin_user, template_name,
                                                              ctid, mode, point):
    agent, ct, task = backup_cut_at(agent_process, host, admin_user, template_name, ctid, mode, point)
    wait_until(lambda: agent.proc.poll() is not None, 60, message=f"the agent to die at {point}")
    # Frozen or not, the container runs before any agent came back: the watchdog outside the agent
    # thaws at once a container whose freezer lost its agent.
    wait_until(lambda: lxc_info_state(ctid) == "RUNNING", 15, message="the container to run (watchdog)")
    back_to_normal(agent)
    interrupted(task)
    still_usable(ct, admin_user)
    assert not Backup.objects.filter(container=ct).exists()
    assert leftovers() == []


@integration
def test_a_hung_agent_does_not_keep_a_container_frozen(agent_process, host, admin_user, template_name):
    agent_process.extra_env["PANEL_FREEZE_DEADLINE"] = "1"
    _agent, ct, task = backup_cut_at(agent_process, host, admin_user, template_name, 9122, "suspend",
                                     "backup.frozen:4", env_name="VZPANEL_STALL_AT")
    task = wait_task(task, 90)
    assert task.status == "failed" and "thawed by the watchdog" in task.error, task.error
    still_usable(ct, admin_user)
    assert leftovers() == []


@integration
def test_agent_killed_while_a_stop_mode_backup_has_the_container_stopped(agent_process, host, admin_user,
                                                                        template_name):
    agent, ct, task = backup_cut_at(agent_process, host, admin_user, template_name, 9123, "stop", "backup.stopped")
    back_to_normal(agent)
    interrupted(task)
    wait_until(lambda: "was running before this task stopped it" in type(task).objects.get(pk=task.pk).log, 30,
               message="the recovery to say so in the task's log")
    wait_until(lambda: lxc_info_state(9123) == "RUNNING", 60, message="the container to run again")
    wait_until(lambda: Container.objects.get(ctid=9123).lock_task_id is None, 30, message="its start to end")
    still_usable(ct, admin_user)
    assert ContainerEvent.objects.filter(ctid=9123, kind="recovered").exists()
    assert leftovers() == []


@integration
@pytest.mark.parametrize("point, kept", [("build.populated", False), ("create.built", True)])
def test_agent_killed_during_a_create(agent_process, host, admin_user, template_name, point, kept):
    """Killed before the container was whole: removed, and the CTID is free again; killed after:
    kept, stopped. Either way the row is never left 'creating'."""
    agent = die_at(agent_process, point)
    task = services.create_container(user=admin_user, ctid=9124, ostemplate=template_name, hostname="c.test",
                                     host=host, start=False)
    back_to_normal(agent)
    interrupted(task)
    assert leftovers() == []
    if kept:
        ct = Container.objects.get(ctid=9124)
        still_usable(ct, admin_user, expect="STOPPED")
        assert wait_task(services.start_container(ct, admin_user)).status == "ok"
    else:
        assert not Container.objects.filter(ctid=9124).exists()
        assert lxc_info_state(9124) == "ABSENT"
        assert create(host, admin_user, template_name, 9124).status == "ok"  # the CTID is free again
    event = ContainerEvent.objects.filter(ctid=9124, kind="recovered").first()
    assert event and ("kept" if kept else "removed") in event.message


@integration
@pytest.mark.parametrize("point, kept", [("build.populated", False), ("restore.built", True)])
def test_agent_killed_during_a_restore_to_a_new_ctid(agent_process, host, admin_user, template_name, point, kept):
    agent = agent_process.start()
    source = running_ct(agent, host, admin_user, template_name, 9125)
    backup_task = wait_task(backup_services.backup_container(source, admin_user, mode="suspend"), 120)
    assert backup_task.status == "ok", backup_task.log
    backup = Backup.objects.get(container=source)
    die_at(agent, point)
    task = backup_services.restore_backup(backup, admin_user, ctid=9126)
    back_to_normal(agent)
    interrupted(task)
    assert leftovers() == []
    if kept:
        still_usable(Container.objects.get(ctid=9126), admin_user, expect="STOPPED")
    else:
        assert not Container.objects.filter(ctid=9126).exists() and lxc_info_state(9126) == "ABSENT"
        assert wait_task(backup_services.restore_backup(backup, admin_user, ctid=9126), 120).status == "ok"
    still_usable(source, admin_user)


@integration
def test_agent_killed_during_a_destroy(agent_process, host, admin_user, template_name):
    agent = agent_process.start()
    assert create(host, admin_user, template_name, 9127).status == "ok"
    die_at(agent, "destroy.removed")
    task = services.destroy_container(Container.objects.get(ctid=9127), admin_user, "9127")
    back_to_normal(agent)
    interrupted(task)
    assert not Container.objects.filter(ctid=9127).exists() and lxc_info_state(9127) == "ABSENT"
    assert create(host, admin_user, template_name, 9127).status == "ok"


@integration
def test_redis_killed_with_tasks_queued_loses_none(agent_process, host, admin_user, template_name):
    """Redis dies (SIGKILL, nothing saved) while a long task runs and five wait behind it: after
    redis and the agent are back, every task ran in the order it was queued, or failed saying why."""
    from tasks.services import submit_task
    from .conftest import REDIS
    agent = agent_process.start()
    ct = running_ct(agent, host, admin_user, template_name, 9128)
    long = services.exec_in_container(ct, admin_user, ["sleep", "3"])
    queued = [submit_task(type="noop", host=host) for _ in range(5)]
    wait_until(lambda: type(long).objects.get(pk=long.pk).status == TaskStatus.RUNNING, 30, message="the long task")
    REDIS.kill()
    REDIS.start()

    def finished(task):
        if agent.proc.poll() is not None:
            agent.start()  # as runpanel or systemd would, had it stopped
        task.refresh_from_db()
        return task.status not in ("queued", "running")
    for task in [long, *queued]:
        wait_until(lambda: finished(task), 90, interval=0.5, message=f"task {task.pk} to end")
    assert long.status == "ok" or "interrupted" in long.error, (long.status, long.error)
    assert [t.status for t in queued] == ["ok"] * 5, [(t.status, t.error) for t in queued]
    started = [t.started_at for t in queued]
    assert started == sorted(started), "re-queued out of order"
    still_usable(ct, admin_user)


@integration
def test_agent_killed_during_a_restore_over_a_container(agent_process, host, admin_user, template_name):
    """Killed while the archive's files were built aside: the container keeps its own files, whole,
    and starts."""
    agent = agent_process.start()
    ct = running_ct(agent, host, admin_user, template_name, 9129)
    backup_task = wait_task(backup_services.backup_container(ct, admin_user, mode="stop"), 120)
    assert backup_task.status == "ok", backup_task.log
    assert wait_task(services.exec_in_container(ct, admin_user, ["sh", "-c", "echo mine > /root/after"])).status == "ok"
    assert wait_task(services.stop_container(ct, admin_user)).status == "ok"
    die_at(agent, "replace.populated")
    task = backup_services.restore_backup(Backup.objects.get(container=ct), admin_user, ctid=9129, force=True,
                                          confirm="9129")
    back_to_normal(agent)
    interrupted(task)
    assert (LXCPATH / "9129" / "rootfs" / "root" / "after").read_text() == "mine\n"
    assert leftovers() == [] and not (LXCPATH / "9129" / ".rootfs-old").exists()
    ct.refresh_from_db()
    assert ct.status == "stopped" and lxc_info_state(9129) == "STOPPED"
    assert wait_task(services.start_container(ct, admin_user)).status == "ok"
    still_usable(ct, admin_user)


def test_a_swap_cut_between_its_renames_gives_the_old_root_filesystem_back(tmp_path):
    """A container without a disk image swaps directories: rootfs aside, the new one in. Cut between
    the two, it has none; the agent's start puts the old one back (or removes a left-over)."""
    from containers.engine.lxc import OLD_ROOTFS, Lxc
    cut = tmp_path / "101"
    (cut / OLD_ROOTFS / "root").mkdir(parents=True)
    (cut / OLD_ROOTFS / "root" / "mine").write_text("mine\n")
    done = tmp_path / "102"
    (done / OLD_ROOTFS).mkdir(parents=True)
    (done / "rootfs").mkdir()
    lines = Lxc(tmp_path).finish_swaps()
    assert (cut / "rootfs" / "root" / "mine").read_text() == "mine\n" and not (cut / OLD_ROOTFS).exists()
    assert (done / "rootfs").is_dir() and not (done / OLD_ROOTFS).exists()
    assert len(lines) == 2


def test_the_freeze_deadline_follows_the_longest_frozen_window_measured(settings, tmp_path):
    from backups.jobs import freeze_deadline, note_frozen_window
    settings.AGENT_DATA_DIR, settings.FREEZE_DEADLINE = str(tmp_path), 0
    assert freeze_deadline() == settings.FREEZE_FIRST_DEADLINE  # nothing measured yet
    note_frozen_window(0.5)
    note_frozen_window(0.2)  # a shorter one does not lower it
    assert freeze_deadline() == 0.5 + settings.FREEZE_MARGIN
    settings.FREEZE_DEADLINE = 7  # the administrator's word
    assert freeze_deadline() == 7


@integration
def test_a_log_line_reaches_the_page_while_the_step_after_it_runs(agent, host, admin_user, template_name):
    ct = running_ct(agent, host, admin_user, template_name, 9130)
    task = services.exec_in_container(ct, admin_user, ["sleep", "4"])
    wait_until(lambda: "Running: sleep 4" in type(task).objects.get(pk=task.pk).log, 3, interval=0.1,
               message="the line before the long step")
    assert type(task).objects.get(pk=task.pk).status == TaskStatus.RUNNING
    assert wait_task(task, 30).status == "ok"


@integration
def test_a_stopping_agent_lets_a_running_command_finish(agent, host, admin_user, template_name):
    """SIGTERM (the panel or systemd stopping) lets the task that runs finish, within the grace period."""
    ct = running_ct(agent, host, admin_user, template_name, 9131)
    task = services.exec_in_container(ct, admin_user, ["sh", "-c", "sleep 3; echo finished"])
    wait_until(lambda: type(task).objects.get(pk=task.pk).status == TaskStatus.RUNNING, 30, message="it to run")
    agent.stop()  # SIGTERM, waits for the agent to exit
    task = wait_task(task, 5)
    assert task.status == "ok" and task.result["stdout"] == "finished\n", (task.status, task.error)


@integration
def test_a_task_past_the_stop_grace_period_is_interrupted_with_a_reason_that_says_so(agent_process, host,
                                                                                    admin_user, template_name):
    agent_process.extra_env["PANEL_STOP_GRACE"] = "2"
    agent = agent_process.start()
    ct = running_ct(agent, host, admin_user, template_name, 9132)
    task = services.exec_in_container(ct, admin_user, ["sleep", "600"])
    wait_until(lambda: type(task).objects.get(pk=task.pk).status == TaskStatus.RUNNING, 30, message="it to run")
    agent.proc.send_signal(signal.SIGTERM)
    agent.proc.wait(30)  # the agent ends its own grace period: nobody has to kill it
    assert "did not finish within the 2 s grace period: interrupting it" in type(task).objects.get(pk=task.pk).log
    agent.start()
    task = wait_task(task, 30)
    assert task.status == TaskStatus.FAILED
    assert "did not finish within the 2 s grace period (PANEL_STOP_GRACE)" in task.error, task.error
    still_usable(ct, admin_user)


def test_only_the_real_freeze_watchdog_outlives_a_stopping_agent():
    """The grace period's end spares the watchdog by its exact command line, never by a word a
    tenant can put into its own exec's arguments."""
    import sys
    from containers.engine import freezewatch
    from hosts.recovery import is_freeze_watchdog
    assert is_freeze_watchdog([sys.executable, freezewatch.__file__, "/var/lib/lxc", "101", "60"])
    assert not is_freeze_watchdog(["lxc-attach", "-n", "101", "--", "sleep", "freezewatch"])
    assert not is_freeze_watchdog(["/bin/sh", freezewatch.__file__])
