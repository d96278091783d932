"""The RQ job that the host agent runs for every task."""
from __future__ import annotations

import logging
import os
import time
import traceback

from django.db import close_old_connections
from django.utils import timezone

from containers.engine.cgroups import CgroupError
from containers.engine.commands import CommandError
from containers.engine.diskimage import DiskImageError
from containers.engine.lxc import LxcError
from containers.engine.transfer import TransferError

from .choices import TaskStatus
from .models import Task
from .registry import HANDLERS
from .services import finish_task

logger = logging.getLogger(__name__)


class TaskFailed(Exception):
    """A handler's way to fail a task with a message for the user (no traceback)."""


# Errors whose text is meant for users: logged as they are, without a traceback.
EXPECTED_ERRORS = (TaskFailed, LxcError, CommandError, CgroupError, DiskImageError, TransferError)


class TaskLog:
    """The `log` a handler writes to: lines reach the task row at most every 0.25 s (and at the
    end), so a fast task does not pay one database write per line and the page still follows."""

    FLUSH_SECONDS = 0.25

    def __init__(self, task: Task):
        self.task = task
        self.pending: list[str] = []
        self.last_flush = time.monotonic()

    def __call__(self, line: str) -> None:
        self.pending.append(Task.format_log(line))
        if time.monotonic() - self.last_flush >= self.FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        text, self.pending = "".join(self.pending), []
        self.task.write_log(text)
        self.last_flush = time.monotonic()


def run_task(task_id: int) -> str:
    """Claim the task (if still queued), run its handler, record the outcome."""
    close_old_connections()
    claimed = Task.objects.filter(pk=task_id, status=TaskStatus.QUEUED).update(
        status=TaskStatus.RUNNING, started_at=timezone.now(), agent_pid=os.getpid())
    if not claimed:
        return "skipped: no longer queued"
    task = Task.objects.select_related("host", "container", "user").get(pk=task_id)
    log = TaskLog(task)
    log(f"Started on host {task.host.name} (agent pid {os.getpid()})")
    handler = HANDLERS.get(task.type)
    try:
        if handler is None:
            raise TaskFailed(f"this agent does not know task type {task.type!r}")
        result = handler(task, log)
    except EXPECTED_ERRORS as exc:
        log.flush()
        finish_task(task, TaskStatus.FAILED, error=str(exc))
        return "failed"
    except Exception as exc:
        log(traceback.format_exc())
        log.flush()
        finish_task(task, TaskStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        return "failed"
    finally:
        close_old_connections()
    log.flush()
    finish_task(task, TaskStatus.OK, result=result)
    return "ok"
