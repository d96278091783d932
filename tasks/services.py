"""Submitting and cancelling tasks. Callers own the transaction; enqueueing waits for commit."""
from __future__ import annotations

import logging
from functools import partial

from django.db import transaction
from django.utils import timezone
from rq.job import Job

from .choices import TaskStatus
from .models import Task
from .queue import RUNNER, host_queue, job_id_for, redis_connection

logger = logging.getLogger(__name__)


class TaskError(Exception):
    """A request about a task that cannot be granted; the message says why."""

    http_status = 409


def submit_task(*, type: str, host, user=None, container=None, params: dict | None = None,
                queue: bool = True) -> Task:
    """Create a queued Task and enqueue it on its host's queue once the transaction commits
    (queue=False: the caller runs it itself, as an evacuation runs its migrations)."""
    task = Task.objects.create(
        type=type, host=host, user=user if (user and user.is_authenticated) else None,
        container=container, ctid=getattr(container, "ctid", None), params=params or {},
        tenant_id=getattr(container, "tenant_id", None),
    )
    task.rq_job_id = job_id_for(host.pk, task.pk)
    Task.objects.filter(pk=task.pk).update(rq_job_id=task.rq_job_id)
    task.append_log(f"Queued on host {host.name}" + (f" by {task.user}" if task.user else ""))
    if queue:
        transaction.on_commit(partial(enqueue, task.pk))
    return task


def enqueue(task_id: int) -> None:
    """Put the task's job on its host's queue; if Redis is unreachable, fail the task."""
    task = Task.objects.select_related("host").get(pk=task_id)
    try:
        host_queue(task.host).enqueue(
            RUNNER, task.pk, job_id=task.rq_job_id,
            job_timeout=int(task.params.get("job_timeout", 3600)), result_ttl=3600, failure_ttl=7 * 86400,
        )
    except Exception as exc:  # Redis down: say so on the task rather than leave it queued forever
        logger.exception("could not enqueue task %s", task_id)
        finish_task(task, TaskStatus.FAILED, error=f"could not queue the task: {exc}")


def finish_task(task: Task, status: str, *, error: str = "", result=None) -> bool:
    """Move an active task to a final state and release any container it locked."""
    from containers.models import Container  # tasks must not depend on containers at import time

    with transaction.atomic():
        changed = Task.objects.filter(pk=task.pk, status__in=[TaskStatus.QUEUED, TaskStatus.RUNNING]).update(
            status=status, error=error, result=result, finished_at=timezone.now(),
            progress=100 if status == TaskStatus.OK else task.progress,
        )
        Container.objects.filter(lock_task_id=task.pk).update(lock_task=None)
    if changed:
        task.write_log((Task.format_log(f"ERROR: {error}") if error else "") + Task.format_log(f"Task {status}"))
    task.refresh_from_db()
    return bool(changed)


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
