"""Unit tests for the task and container state machines."""
import pytest

from containers.choices import ContainerStatus, refusal
from tasks.choices import TaskStatus, can_transition


@pytest.mark.parametrize("old,new,ok", [
    ("queued", "running", True), ("queued", "cancelled", True), ("running", "ok", True),
    ("running", "failed", True), ("running", "cancelled", False), ("ok", "running", False),
    ("failed", "queued", False), ("cancelled", "running", False),
])
def test_task_transitions(old, new, ok):
    assert can_transition(old, new) is ok


@pytest.mark.parametrize("status,action,reason", [
    ("running", "start", "already running"), ("stopped", "stop", "already stopped"),
    ("running", "destroy", "stop it first"), ("stopped", "exec", "start it"),
    ("creating", "start", "not possible"),
])
def test_refusals_say_why(status, action, reason):
    assert reason in refusal(status, action)


@pytest.mark.parametrize("status,action", [
    ("stopped", "start"), ("running", "stop"), ("running", "restart"), ("stopped", "destroy"),
    ("running", "exec"), ("running", "set"), ("stopped", "set"),
])
def test_allowed_actions(status, action):
    assert refusal(status, action) is None


def test_every_status_has_an_entry():
    for status in ContainerStatus:
        refusal(status, "start")  # no KeyError
    assert set(TaskStatus) == {"queued", "running", "ok", "failed", "cancelled"}
