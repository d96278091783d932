"""What the agent puts right after it died in the middle of a task, so that no container is left
in a state only the database shell could get it out of.

Runs at agent start for every task that was running (it is failed as interrupted first), and
for every container at each reconcile: a container frozen without a running task is thawed.
Each decision is written into the interrupted task's log and, where the container's row
changes, as an event on the container.
"""
from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

from containers.choices import ContainerStatus
from containers.engine.lxc import Lxc, LxcError
from containers.jobs import refresh_state
from containers.models import Container
from metrics.models import ContainerEvent
from tasks.choices import TaskType
from tasks.models import Task

logger = logging.getLogger(__name__)

# Tasks whose container row is "creating" until they finish: the row of a new container.
BUILDING_TASKS = (TaskType.CT_CREATE, TaskType.CT_RESTORE)


def _event(ct: Container, message: str) -> None:
    ContainerEvent.objects.create(container=ct if ct.pk else None, ctid=ct.ctid, tenant=ct.tenant, host=ct.host,
                                  kind="recovered", message=message[:300])


def thaw_if_frozen(ct: Container, lxc: Lxc, note) -> bool:
    """The panel never leaves a container frozen on purpose: thaw one no task holds."""
    try:
        if lxc.state(ct.ctid) != "FROZEN":
            return False
        lxc.unfreeze(ct.ctid)
    except LxcError as exc:
        logger.warning("CT %s is frozen and could not be thawed: %s", ct.ctid, exc)
        return False
    note(f"Container {ct.ctid} was left frozen; thawed it")
    refresh_state(ct, lxc)
    _event(ct, "thawed: it was left frozen by an interrupted task")
    return True


def recover_interrupted(task: Task, lxc: Lxc, hints: dict) -> None:
    """Bring the container of a task the agent died in back to a state a user can act on.
    `hints`: what the task said to undo if it was cut short (Task.note_recovery)."""
    ct = task.container
    if ct is None:
        return
    note = task.append_log
    thaw_if_frozen(ct, lxc, note)
    if task.type in BUILDING_TASKS and ct.status == ContainerStatus.CREATING:
        # A new container is whole once it has been renamed into place (Lxc.build's last step);
        # before that, the agent's start removed its partial directory.
        if lxc.exists(ct.ctid):
            refresh_state(ct, lxc)
            note(f"Container {ct.ctid} was whole on disk: kept, {ct.status}")
            _event(ct, f"kept after the interrupted {task.get_type_display()}: it was whole on disk")
        else:
            _event(ct, f"removed after the interrupted {task.get_type_display()}: nothing of it was on disk")
            ct.delete()
            note(f"Container {ct.ctid} was not on disk yet: removed from the panel")
        return
    if task.type == TaskType.CT_DESTROY and not lxc.exists(ct.ctid):
        _event(ct, "removed: the interrupted destroy had removed it from disk already")
        ct.delete()
        note(f"Container {ct.ctid} was gone from disk already: removed from the panel")
        return
    if refresh_state(ct, lxc) == "STOPPED" and hints.get("restart_container"):
        from containers.services import start_container
        start = start_container(ct, None)
        note(f"Container {ct.ctid} was running before this task stopped it: queued its start (task {start.pk})")
        _event(ct, f"started again (task {start.pk}): an interrupted stop-mode backup had stopped it")


BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def first_start_since_boot(data_dir: Path) -> bool:
    """True once per boot of the host: the kernel's boot id differs from the one the agent wrote
    down (in its own data directory) when it last started."""
    boot_id = BOOT_ID.read_text().strip()
    seen = data_dir / "boot-id"
    try:
        if seen.read_text().strip() == boot_id:
            return False
    except FileNotFoundError:
        pass
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = seen.with_name(".boot-id.tmp")
    tmp.unlink(missing_ok=True)
    tmp.write_text(boot_id + "\n")
    tmp.replace(seen)
    return True


# Written when the agent is told to stop, removed when it stopped with nothing left running: if it
# is there at the next start, the tasks still running were cut by the stop's grace period running
# out (the agent kills itself then; runpanel and systemd kill it a little later as a backstop).
STOPPING = "stopping"


def note_stopping(data_dir: Path, grace: float) -> None:
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    (data_dir / STOPPING).write_text(f"{grace:g}\n")


def stop_cut_reason(data_dir: Path) -> str | None:
    """Why a task still running at start was interrupted, if the last stop's grace period cut it."""
    try:
        grace = float((data_dir / STOPPING).read_text())
    except (OSError, ValueError):
        return None
    return (f"interrupted: the host agent was stopped (the panel or its service stopping) and this task did "
            f"not finish within the {grace:g} s grace period (PANEL_STOP_GRACE)")


def clear_stopping(data_dir: Path) -> None:
    (data_dir / STOPPING).unlink(missing_ok=True)


def kill_own_work() -> None:
    """The grace period is over: kill what this process started for its tasks (tar, rsync, zstd,
    lxc-attach), then this process. The freeze watchdog is spared: it exists to outlive the agent
    and thaw the container the agent froze."""
    import psutil
    me = psutil.Process()
    for child in me.children(recursive=True):
        try:
            if is_freeze_watchdog(child.cmdline()):
                continue
            child.kill()
        except psutil.Error:
            pass
    os.kill(os.getpid(), signal.SIGKILL)


def is_freeze_watchdog(cmdline: list[str]) -> bool:
    """Exactly the watchdog Lxc.frozen starts (this Python, that file): a tenant's exec whose
    arguments merely mention it (`sleep freezewatch`) is killed like any other."""
    import sys
    from containers.engine import freezewatch
    return len(cmdline) >= 2 and cmdline[0] == sys.executable and cmdline[1] == freezewatch.__file__
