"""The RQ side of tasks: one queue per host, jobs named after their task."""
from __future__ import annotations

import django_rq
from rq import Queue


def redis_connection():
    return django_rq.get_connection("default")


def host_queue(host) -> Queue:
    return Queue(host.queue_name, connection=redis_connection())


def job_id_for(task_id: int) -> str:
    return f"vzpanel-task-{task_id}"
