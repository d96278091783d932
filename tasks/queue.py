"""The RQ side of tasks: one queue per host, one JSON job per task, named after the task and its host.

Who talks to Redis as whom (tasks/redis_acl.py says what each of them may do there):
- the web process, the scheduler and the CLI: the Redis user vzpanel-web, whose password is
  PANEL_REDIS_PASSWORD(_FILE) or the file `make run` makes (var/redis-web.pass), unless
  REDIS_URL names a user itself;
- a host agent: its host's own Redis user, whose password is the agent's token (`use_identity`).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from django.conf import settings
from redis import Redis
from redis.connection import ConnectionPool, parse_url
from rq import Queue
from rq.serializers import JSONSerializer

# Jobs are JSON, never pickle: whatever is read back from Redis is parsed, never executed.
SERIALIZER = JSONSerializer
# The only function an agent runs; its one argument is a task id.
RUNNER = "tasks.runner.run_task"
SCHEDULER_LOCK_KEY = "vzpanel:scheduler:pass"
# The requests waiting for a task's end (tasks.services.wait_for_end): a sorted set of request
# tokens by the time each gives up, so that a worker killed mid-wait frees its place.
WAITERS_KEY = "vzpanel:task-waiters"
# The panel needs Redis 7 (ACL selectors). Told so, RQ does not ask the server with INFO, an
# administrative command that no panel user but the administrator may run.
REDIS_VERSION = (7, 0, 0)
_JOB_ID = re.compile(r"vzpanel-h(\d+)-task-(\d+)")

_identity: tuple[str, str] | None = None
_clients: dict[tuple, Redis] = {}


def use_identity(username: str, password: str) -> None:
    """From now on this process talks to Redis as `username` (an agent: its host's user and token)."""
    global _identity
    _identity = (username, password)
    _clients.clear()


def _read_secret_file(path: str) -> str | None:
    try:
        return Path(path).read_text().strip() or None
    except OSError:
        return None


def _web_credentials(url_options: dict) -> tuple[str | None, str | None]:
    if url_options.get("username") or url_options.get("password"):
        return url_options.get("username"), url_options.get("password")
    password = settings.REDIS_PASSWORD or _read_secret_file(settings.REDIS_PASSWORD_FILE)
    return (settings.REDIS_USER, password) if password else (None, None)


def connect(username: str | None, password: str | None) -> Redis:
    """A new client for REDIS_URL as the given user (the URL's own user and password are replaced)."""
    options = parse_url(settings.REDIS_URL)
    options.update(username=username, password=password)
    client = Redis(connection_pool=ConnectionPool(**options))
    setattr(client, "__rq_redis_server_version", REDIS_VERSION)
    return client


def redis_connection() -> Redis:
    """This process's client (one per process and credentials; redis-py pools the connections).
    The credentials are looked up at each call, so a password file that appears or changes after a
    first call (redis-server started later, a new password) is used, not a stale client."""
    username, password = _identity or _web_credentials(parse_url(settings.REDIS_URL))
    key = (os.getpid(), username, password)
    if key not in _clients:
        _clients[key] = connect(username, password)
    return _clients[key]


def async_connection():
    """A new asyncio client as this process's Redis user, for a WebSocket consumer (one per
    connection: it lives on that connection's event loop)."""
    from redis.asyncio import from_url
    username, password = _identity or _web_credentials(parse_url(settings.REDIS_URL))
    return from_url(settings.REDIS_URL, username=username, password=password, socket_timeout=30)


def host_queue(host) -> Queue:
    return Queue(host.queue_name, connection=redis_connection(), serializer=SERIALIZER)


def job_id_for(host_id: int, task_id: int) -> str:
    """The job id carries the host, so each host's Redis user can be given its own jobs' keys only."""
    return f"{job_prefix(host_id)}{task_id}"


def job_prefix(host_id: int) -> str:
    return f"vzpanel-h{host_id}-task-"


def parse_job_id(job_id: str) -> tuple[int, int] | None:
    """(host id, task id) of a job id the panel made, else None."""
    match = _JOB_ID.fullmatch(job_id)
    return (int(match[1]), int(match[2])) if match else None
