"""Which function runs each task type on the agent. Apps register their handlers."""
from __future__ import annotations

from typing import Callable

HANDLERS: dict[str, Callable] = {}
# Task types run in a thread of their own, so that the host's queue moves on while they run:
# a command a tenant runs in their container (up to an hour) must not hold everyone's tasks.
# Each holds its container's lock until it ends, so one container runs one at a time.
DETACHED: set[str] = set()


def handler(task_type: str, detached: bool = False):
    def register(func: Callable) -> Callable:
        HANDLERS[str(task_type)] = func
        if detached:
            DETACHED.add(str(task_type))
        return func
    return register


@handler("noop")
def noop(task, log):
    """Does nothing; measures the queue's own latency (bench/)."""
    return {"ok": True}
