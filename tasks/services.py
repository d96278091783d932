"""Submitting and cancelling tasks. Callers own the transaction; enqueueing waits for commit."""
from __future__ import annotations

import logging
import secrets
import time
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Concat
from django.utils import timezone
from rq.job import Job

from .choices import ACTIVE_STATES, TaskStatus
from .models import Task
from .queue import RUNNER, WAITERS_KEY, host_queue, job_id_for, redis_connection

logger = logging.getLogger(__name__)


class TaskError(Exception):
    """A request about a task that cannot be granted; the message says why."""

    http_status = 409


def submit_task(*, type: str, host, user=None, container=None, params: dict | None = None,
                queue: bool = True) -> Task:
    """Create a queued Task and enqueue it on its host's queue once the transaction commits
    (queue=False: the caller runs it itself, as an evacuation runs its migrations)."""
    user = user if (user and user.is_authenticated) else None
    task = Task.objects.create(
        type=type, host=host, user=user, container=container, ctid=getattr(container, "ctid", None),
        params=params or {}, tenant_id=getattr(container, "tenant_id", None),
        # In the INSERT, not an UPDATE of its own: the request that queues waits for each query.
        log=Task.format_log(f"Queued on host {host.name}" + (f" by {user}" if user else "")),
    )
    task.rq_job_id = job_id_for(host.pk, task.pk)
    Task.objects.filter(pk=task.pk).update(rq_job_id=task.rq_job_id)
    if queue:
        transaction.on_commit(partial(enqueue, task))
    return task


def enqueue(task: Task | int) -> None:
    """Put the task's job on its host's queue; if Redis is unreachable, fail the task. Given the
    row (with its host) that submit_task has just made, it is not read again."""
    if not isinstance(task, Task):
        task = Task.objects.select_related("host").get(pk=task)
    try:
        host_queue(task.host).enqueue(
            RUNNER, task.pk, job_id=task.rq_job_id,
            job_timeout=int(task.params.get("job_timeout", 3600)), result_ttl=3600, failure_ttl=7 * 86400,
        )
    except Exception as exc:  # Redis down: say so on the task rather than leave it queued forever
        logger.exception("could not enqueue task %s", task.pk)
        finish_task(task, TaskStatus.FAILED, error=f"could not queue the task: {exc}")


def finish_task(task: Task, status: str, *, error: str = "", result=None, log_text: str = "") -> bool:
    """Move an active task to a final state and release any container it locked; `log_text`:
    lines the task logged and has not written yet, which go into the same UPDATE. Returns whether
    this call finished it (False: it had ended already). Whoever waits for the end (wait_for_end)
    is told at once."""
    from containers.models import Container  # tasks must not depend on containers at import time

    now = timezone.now()
    progress = 100 if status == TaskStatus.OK else task.progress
    end_lines = (Task.format_log(f"ERROR: {error}") if error else "") + Task.format_log(f"Task {status}")
    with transaction.atomic():
        changed = Task.objects.filter(pk=task.pk, status__in=[TaskStatus.QUEUED, TaskStatus.RUNNING]).update(
            status=status, error=error, result=result, finished_at=now, progress=progress,
            log=Concat(F("log"), Value(log_text + end_lines)),
        )
        Container.objects.filter(lock_task_id=task.pk).update(lock_task=None)
    if changed:
        task.status, task.error, task.result, task.finished_at, task.progress = status, error, result, now, progress
        task.log += log_text + end_lines
        _announce_end(task)
    else:  # it ended meanwhile (cancelled, or failed by a recovering agent): its row says how
        task.write_log(log_text)
        task.refresh_from_db()
    return bool(changed)


def _announce_end(task: Task) -> None:
    """One entry on the task's end stream, for whoever waits (wait_for_end): written after the
    commit, so a waiter that sees it reads the final row. Its loss costs a waiter its timeout only."""
    from consoles.relay import KEY_TTL, task_end_key
    if task.host_id is None:
        return
    key = task_end_key(task.host_id, task.pk)
    try:
        with redis_connection().pipeline(transaction=False) as pipe:
            pipe.xadd(key, {"status": task.status})
            pipe.expire(key, KEY_TTL)
            pipe.execute()
    except Exception as exc:
        logger.info("end of task %s not announced: %s", task.pk, exc)


def _take_waiting_place(conn, timeout: float) -> str | None:
    """A place among the requests waiting for a task's end, or None when all are taken. Places of
    waiters that died mid-wait expire with their timeout (plus a margin)."""
    now = time.time()
    place = secrets.token_hex(8)
    with conn.pipeline(transaction=True) as pipe:
        pipe.zremrangebyscore(WAITERS_KEY, "-inf", now)
        pipe.zadd(WAITERS_KEY, {place: now + timeout + 5})
        pipe.zcard(WAITERS_KEY)
        waiting = pipe.execute()[-1]
    if waiting > settings.API_WAITERS:
        conn.zrem(WAITERS_KEY, place)
        return None
    return place


PROGRESS_FIELDS = ["status", "progress", "result", "error", "log", "agent_pid", "started_at", "finished_at"]


def wait_for_end(task: Task, timeout: float) -> Task:
    """Wait up to `timeout` seconds for the task to end, without polling: blocked on its end
    stream in Redis (an end announced before the wait began counts too), then the row is read.
    At most settings.API_WAITERS callers wait at once across the panel (each holds a web worker);
    past that it does not wait. Returns the task as its row says, ended or not."""
    from consoles.relay import task_end_key
    if task.status in ACTIVE_STATES and task.host_id is not None and timeout > 0:
        try:
            conn = redis_connection()
            place = _take_waiting_place(conn, timeout)
            if place:
                try:
                    conn.xread({task_end_key(task.host_id, task.pk): "0-0"}, count=1,
                               block=max(1, int(timeout * 1000)))
                finally:
                    conn.zrem(WAITERS_KEY, place)
        except Exception as exc:  # Redis gone: the row says what there is to say
            logger.info("cannot wait for the end of task %s: %s", task.pk, exc)
    # What a task's run changes; its host and user stay loaded (the answer names them).
    task.refresh_from_db(fields=PROGRESS_FIELDS)
    return task


def cancel_task(task: Task, user=None) -> Task:
    """Cancel a queued task. A task that has started cannot be cancelled."""
    if task.status != TaskStatus.QUEUED:
        raise TaskError(f"Task #{task.pk} is {task.status}; only a queued task can be cancelled.")
    who = f" by {user}" if user and user.is_authenticated else ""
    if not finish_task(task, TaskStatus.CANCELLED, error=""):
        task.refresh_from_db()
        raise TaskError(f"Task #{task.pk} is {task.status}; only a queued task can be cancelled.")
    task.append_log(f"Cancelled{who}")
    if task.host is not None:
        _remove_job(task)
    return task


def _remove_job(task: Task) -> None:
    """Take a cancelled task's job off its queue. Only removed, never read back: a job's content is
    not the web side's to decode. An agent may not remove another host's jobs (a migration
    cancelling a step); the agent there skips the cancelled task anyway."""
    try:
        host_queue(task.host).remove(task.rq_job_id)
        redis_connection().delete(Job.key_for(task.rq_job_id))
    except Exception as exc:
        logger.info("job %s of cancelled task %s left on the queue: %s", task.rq_job_id, task.pk, exc)
