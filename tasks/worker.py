"""The agent's RQ worker: it runs tasks.runner.run_task(task_id) for its own host, and nothing else.

Whoever can write to Redis can put anything on a queue. So every job is checked from its raw
Redis hash before RQ decodes any of it or imports anything: its id must be one of this host's
task job ids, its data must be JSON naming the runner with exactly that task id, and none of the
fields with which RQ would import or call something (callbacks, webhooks, dependencies) may be
set. A refused job is, to RQ, a job that does not exist: the worker goes on with the next one.
Refusals are logged and shown on the host page. Used by the agent only (the web never imports it).
"""
from __future__ import annotations

import json
import os
import secrets
import warnings
import zlib
from typing import TYPE_CHECKING, Callable

from redis import Redis
from rq import Queue, SimpleWorker
from rq.exceptions import NoSuchJobError
from rq.job import Job

from .queue import RUNNER, SERIALIZER, parse_job_id
from .redis_acl import worker_name_prefix

MAX_JOB_BYTES = 64 * 1024
MAX_JOB_FIELDS = 40
# What RQ writes into a job's hash when the panel enqueues it and while a worker runs it.
KNOWN_FIELDS = {b"created_at", b"data", b"description", b"ended_at", b"enqueued_at", b"failure_ttl",
                b"last_heartbeat", b"origin", b"result_ttl", b"started_at", b"status", b"timeout",
                b"worker_name",
                # always written, always empty for the panel's jobs: a name here is something RQ imports
                b"success_callback_name", b"failure_callback_name", b"stopped_callback_name", b"group_id"}
MUST_BE_EMPTY = {b"success_callback_name", b"failure_callback_name", b"stopped_callback_name", b"group_id"}

if TYPE_CHECKING:
    from hosts.models import Host

NOT_OURS = "not a task job of this host"
# RQ asks for CLIENT LIST (every client's address) to show the worker's own; no host user may.
warnings.filterwarnings("ignore", "CLIENT LIST command not supported", Warning)
Refusal = Callable[[str, str], None]


class JobRefused(NoSuchJobError):
    """A job this agent will not run. A NoSuchJobError, so that every path in RQ passes over it."""


def _job_data(raw: bytes) -> bytes:
    """The job's call, decompressed as RQ does (zlib, else as it is), at most MAX_JOB_BYTES."""
    inflate = zlib.decompressobj()
    try:
        data = inflate.decompress(raw, MAX_JOB_BYTES)
    except zlib.error:
        return raw
    if inflate.unconsumed_tail:
        raise ValueError(f"it unpacks to more than {MAX_JOB_BYTES} bytes")
    return data


def refusal_reason(job_id: str, fields: dict[bytes, bytes], host_id: int, queue_name: str) -> str | None:
    """Why this agent must not run the job (None: it may). Looks at bytes and JSON only."""
    ids = parse_job_id(job_id)
    if ids is None or ids[0] != host_id:
        return NOT_OURS
    if sum(len(k) + len(v) for k, v in fields.items()) > MAX_JOB_BYTES:
        return f"larger than {MAX_JOB_BYTES} bytes"
    unknown = sorted(k.decode(errors="replace") for k in set(fields) - KNOWN_FIELDS)
    if unknown:
        return f"unexpected field(s) {', '.join(unknown)[:100]}"
    if any(fields.get(name) for name in MUST_BE_EMPTY):
        return "it names callbacks or a group"
    if fields.get(b"origin", b"").decode(errors="replace") != queue_name:
        return "not from this host's queue"
    try:
        call = json.loads(_job_data(fields.get(b"data", b"")))
    except (ValueError, UnicodeDecodeError) as exc:
        return f"its data is not JSON ({str(exc)[:80]})"
    expected = [RUNNER, None, [ids[1]], {}]
    if not (isinstance(call, list) and call == expected and type(call[2][0]) is int):
        return f"it is not {RUNNER}({ids[1]}): {json.dumps(call)[:120]}"
    return None


def _shown(job_id: bytes | str) -> str:
    return job_id.decode(errors="replace") if isinstance(job_id, bytes) else job_id


def make_worker(host: Host, connection: Redis, refused: Refusal,
                on_stop: Callable[[], None] | None = None) -> SimpleWorker:
    """The agent's worker for its host's queue. SimpleWorker runs jobs in this process: no fork per
    job (about 1.5 ms instead of 8 ms from enqueue to start) and no database connection shared
    across a fork. Checks at three places, each before RQ reads what it checks:
    - an id taken off the queue must be one of this host's job ids (else RQ could not even decode
      it, or would read a key this host's Redis user may not);
    - a job's hash: refusal_reason, and its size before it is loaded;
    - the ids RQ's housekeeping reads back from the list of jobs being taken.
    `on_stop` is called when the worker is first told to stop (SIGTERM, SIGINT), before RQ's warm
    shutdown lets the running job finish."""
    host_id, queue_name = host.pk, host.queue_name

    def ours(job_id: bytes | str) -> bool:
        ids = parse_job_id(_shown(job_id))
        return ids is not None and ids[0] == host_id

    def drop(intermediate_key: str, job_id: bytes) -> None:
        connection.lrem(intermediate_key, 0, job_id)
        refused(_shown(job_id), NOT_OURS)

    class GuardedJob(Job):
        def refresh(self):
            if not ours(self.id):
                self._refuse(NOT_OURS)
            # Its size first, so that a huge hash is not even loaded.
            with self.connection.pipeline(transaction=False) as pipe:
                count, size = pipe.hlen(self.key).memory_usage(self.key, samples=0).execute()
            if count > MAX_JOB_FIELDS or (size or 0) > 4 * MAX_JOB_BYTES:
                self._refuse(f"{count} fields, {size} bytes in Redis: too large")
            super().refresh()

        def restore(self, raw_data):
            reason = refusal_reason(self.id, raw_data, host_id, queue_name)
            if reason:
                self._refuse(reason)
            try:
                super().restore(raw_data)
            except Exception as exc:  # a date or number that does not parse
                self._refuse(f"a field does not parse: {type(exc).__name__}: {str(exc)[:80]}")

        def _refuse(self, reason: str):
            refused(self.id, reason)
            raise JobRefused(reason)

    class GuardedQueue(Queue):
        @classmethod
        def lmove(cls, connection, queue_key, timeout):
            while True:
                result = super().lmove(connection, queue_key, timeout)
                if result is None or ours(result[1]):
                    return result
                drop(f"{queue_key}:intermediate", result[1])

    class AgentWorker(SimpleWorker):
        def clean_registries(self):
            for queue in self.queues:
                for job_id in self.connection.lrange(queue.intermediate_queue_key, 0, -1):
                    if not ours(job_id):
                        drop(queue.intermediate_queue_key, job_id)
            super().clean_registries()

        def request_stop(self, signum, frame):
            if on_stop is not None:
                on_stop()
            super().request_stop(signum, frame)

    queue = GuardedQueue(queue_name, connection=connection, serializer=SERIALIZER, job_class=GuardedJob)
    # The name falls under this host's Redis user's worker keys and pubsub channel.
    name = f"{worker_name_prefix(host.name)}{os.getpid()}-{secrets.token_hex(4)}"
    return AgentWorker([queue], connection=connection, serializer=SERIALIZER, job_class=GuardedJob,
                       queue_class=GuardedQueue, name=name)
