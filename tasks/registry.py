"""Which function runs each task type on the agent. Apps register their handlers."""
from __future__ import annotations

from typing import Callable

HANDLERS: dict[str, Callable] = {}


def handler(task_type: str):
    def register(func: Callable) -> Callable:
        HANDLERS[str(task_type)] = func
        return func
    return register


@handler("noop")
def noop(task, log):
    """Does nothing; measures the queue's own latency (bench/)."""
    return {"ok": True}
