"""Secrets for a task (a password to set) travel through Redis only, never the database.

The web process stashes the secret under a key that expires in ten minutes; the
agent takes it with GETDEL, so it exists in one place for as short as possible.
The key names the task's host: the web side may only write such keys, and each host's
Redis user may only read its own (tasks/redis_acl.py).
"""
from __future__ import annotations

from .models import Task
from .queue import redis_connection

TTL_SECONDS = 600
# A password already hashed in the web process (a create's root password) may wait longer: a create
# can sit in its host's queue behind others, and what is kept is no clear text.
HASH_TTL_SECONDS = 24 * 3600


def _key(task_id: int) -> str:
    host_name = Task.objects.filter(pk=task_id).values_list("host__name", flat=True).first()
    return f"vzpanel:task-secret:{host_name}:{task_id}"


def stash_secret(task_id: int, value: str, ttl: int = TTL_SECONDS) -> None:
    redis_connection().set(_key(task_id), value.encode(), ex=ttl)


def take_secret(task_id: int) -> str | None:
    raw = redis_connection().getdel(_key(task_id))
    return raw.decode() if raw is not None else None
