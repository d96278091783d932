"""The RQ job that the host agent runs for every task."""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from django.db import close_old_connections, connection
from django.utils import timezone
from rq import get_current_job

from containers.engine.cgroups import CgroupError
from containers.engine.commands import CommandError
from containers.engine.diskimage import DiskImageError
from containers.engine.lxc import LxcError
from containers.engine.safefs import SafeFsError
from containers.engine.transfer import TransferError

from .choices import TaskStatus
from .models import Task
from .registry import DETACHED, HANDLERS
from .services import finish_task

logger = logging.getLogger(__name__)


class TaskFailed(Exception):
    """A handler's way to fail a task with a message for the user (no traceback)."""


# Errors whose text is meant for users: logged as they are, without a traceback.
EXPECTED_ERRORS = (TaskFailed, LxcError, CommandError, CgroupError, DiskImageError, TransferError, SafeFsError)


class TaskLog:
    """The `log` a handler writes to. A line reaches the task row at once, or, when the last write
    was less than 0.25 s ago, within 0.25 s from a timer thread: a fast task does not pay one
    database write per line, and a line before a long step ("Freezing ...") is on the page while
    that step runs, not when the next line comes."""

    FLUSH_SECONDS = 0.25

    def __init__(self, task: Task):
        self.task = task
        self.pending: list[str] = []
        self.last_flush = time.monotonic()
        self.lock = threading.RLock()  # the timer's flush and the handler's keep lines in order
        self.timer: threading.Timer | None = None

    def __call__(self, line: str) -> None:
        with self.lock:
            self.pending.append(Task.format_log(line))
            wait = self.FLUSH_SECONDS - (time.monotonic() - self.last_flush)
            if wait <= 0:
                self.flush()
            elif self.timer is None:
                self.timer = threading.Timer(wait, self._flush_in_timer)
                self.timer.daemon = True
                self.timer.start()

    def _flush_in_timer(self) -> None:
        try:
            self.flush()
        finally:
            connection.close()  # the timer thread's own database connection

    def flush(self) -> None:
        with self.lock:
            self.task.write_log(self.take())

    def take(self) -> str:
        """The lines not written yet, for the caller to write (the task's final UPDATE)."""
        with self.lock:
            if self.timer is not None and self.timer is not threading.current_thread():
                self.timer.cancel()
            self.timer = None
            text, self.pending = "".join(self.pending), []
            self.last_flush = time.monotonic()
            return text


if TYPE_CHECKING:
    from hosts.models import Host

# The host whose agent this process is (hosts.agent sets it): run_task runs that host's tasks only.
_serving: Host | None = None


def serve_host(host: Host) -> None:
    global _serving
    _serving = host


def run_task(task_id: int) -> str:
    """Claim the task (if still queued and this agent's host's), run its handler, record the outcome.
    Which host a task is for is the database row's word, not the queue's."""
    close_old_connections()
    if _serving is None:
        raise RuntimeError("run_task runs only in a host agent")
    claimed = Task.objects.filter(pk=task_id, host_id=_serving.pk, status=TaskStatus.QUEUED).update(
        status=TaskStatus.RUNNING, started_at=timezone.now(), agent_pid=os.getpid())
    if not claimed:
        owner = Task.objects.filter(pk=task_id).values_list("host__name", flat=True).first()
        if owner == _serving.name:
            return "skipped: no longer queued"
        job = get_current_job()
        reason = f"task {task_id} is for host {owner}" if owner else f"there is no task {task_id} for this host"
        _serving.record_queue_refusal(job.id if job else f"task {task_id}", reason)
        return f"refused: {reason}"
    task = Task.objects.select_related("host", "container", "user").get(pk=task_id)
    if task.type in DETACHED:
        thread = threading.Thread(target=_run_detached, args=(task,), name=f"task-{task.pk}", daemon=True)
        with _detached_lock:
            _detached.add(thread)
        thread.start()
        return "detached"
    return _execute(task)


_detached: set[threading.Thread] = set()
_detached_lock = threading.Lock()


def _run_detached(task: Task) -> None:
    try:
        _execute(task)
    finally:
        connection.close()  # this thread's own database connection
        with _detached_lock:
            _detached.discard(threading.current_thread())


def wait_for_detached(timeout: float) -> int:
    """Let detached tasks finish (the agent is stopping); returns how many are still running."""
    deadline = time.monotonic() + timeout
    with _detached_lock:
        running = list(_detached)
    for thread in running:
        thread.join(max(0.0, deadline - time.monotonic()))
    return sum(thread.is_alive() for thread in running)


def _execute(task: Task) -> str:
    """Run the task's handler and record the outcome."""
    log = TaskLog(task)
    log(f"Started on host {task.host.name} (agent pid {os.getpid()})")
    handler = HANDLERS.get(task.type)
    try:
        if handler is None:
            raise TaskFailed(f"this agent does not know task type {task.type!r}")
        result = handler(task, log)
    except EXPECTED_ERRORS as exc:
        finish_task(task, TaskStatus.FAILED, error=str(exc), log_text=log.take())
        return "failed"
    except Exception as exc:
        # A bug, not a message for the user: one line for them, the traceback for the agent's log.
        logger.exception("task %s (%s) failed unexpectedly", task.pk, task.type)
        detail = " ".join(str(exc).split())[:300]
        finish_task(task, TaskStatus.FAILED, error=f"internal error in the agent: {type(exc).__name__}: {detail}; "
                                                   "details in the agent's log", log_text=log.take())
        return "failed"
    finally:
        close_old_connections()
    # The last lines and the outcome in one write.
    finish_task(task, TaskStatus.OK, result=result, log_text=log.take())
    return "ok"
