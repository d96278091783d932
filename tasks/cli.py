"""Shared by the management commands: act as a user, wait for a task and print its log."""
from __future__ import annotations

import sys
import time

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from .choices import ACTIVE_STATES, TaskStatus
from .models import Task


def acting_user(username: str | None):
    """The user the command acts as: the named one, or the first superuser (root at the shell)."""
    from accounts.audit import current_address
    current_address.set("cli")
    User = get_user_model()
    if username:
        try:
            return User.objects.get(username=username, is_active=True)
        except User.DoesNotExist:
            raise CommandError(f"no active user {username!r}") from None
    user = User.objects.filter(is_superuser=True, is_active=True).order_by("pk").first()
    if user is None:
        raise CommandError("no superuser exists; run 'manage.py ensure_admin' or pass --user")
    return user


def local_host():
    """The panel's host for this machine: the one named PANEL_HOST_NAME, else the one host whose
    agent reported this machine's id; None when neither is known."""
    from django.conf import settings

    from containers.engine.transfer import machine_id
    from hosts.models import Host
    host = Host.objects.filter(name=settings.PANEL_HOST_NAME).first()
    if host is None:
        mine = list(Host.objects.filter(machine_id=machine_id())[:2])
        host = mine[0] if len(mine) == 1 else None
    return host


def follow_output(task: Task, out, err, timeout: float | None = None) -> bool:
    """vzctl exec: print the command's output as the agent streams it (consoles/relay.py's task
    output stream) until its end, the task's end, or `timeout`. True if the stream carried the
    output (else the caller prints the task's result)."""
    from consoles import relay

    from .queue import redis_connection
    key = relay.task_output_key(task.host_id, task.pk)
    deadline = time.monotonic() + timeout if timeout else None
    last, streamed, ended, warned_offline = "0-0", False, False, False
    while not (deadline and time.monotonic() > deadline):
        found = redis_connection().xread({key: last}, count=200, block=None if ended else 250)
        last, messages = relay.read_back(found, last)
        for message in messages:
            if message.kind == relay.CLOSE:
                return True
            streamed = True
            target = out if message.kind == relay.DATA else err
            target.write(message.data)
            target.flush()
        if ended:
            return streamed
        task.refresh_from_db(fields=["status"])
        ended = task.status not in ACTIVE_STATES  # one more read: what came before the end
        if not warned_offline and (note := waiting_note(task)):
            sys.stderr.write(note)
            warned_offline = True
    return streamed


def waiting_note(task: Task) -> str | None:
    """What to tell someone waiting for a queued task whose host's agent is not there."""
    if task.status == TaskStatus.QUEUED and not task.host.agent_online:
        return f"Waiting: host {task.host.name} {task.host.agent_status_text}\n"
    return None


def finish_task(task: Task, out=None, timeout: float | None = None, quiet: bool = False) -> Task:
    """wait_for_task(), and a CommandError with the task's one-line reason unless it ended ok."""
    task = wait_for_task(task, out, timeout=timeout, quiet=quiet)
    if task.status != TaskStatus.OK:
        raise CommandError(task.error or f"task #{task.pk} {task.status}")
    return task


# How often wait_for_task reads the task's row: every POLL_FIRST seconds for its first
# POLL_FIRST_COUNT reads (a short task, or one whose output stream has just ended, is done within
# milliseconds, and vzctl exec or vzdump at the shell would otherwise wait most of an interval for
# nothing: a read costs well under a millisecond), then less often, up to every POLL_MAX seconds.
POLL_FIRST, POLL_FIRST_COUNT, POLL_MAX = 0.005, 20, 0.1


def poll_intervals():
    for _ in range(POLL_FIRST_COUNT):
        yield POLL_FIRST
    interval = POLL_FIRST
    while True:
        interval = min(interval * 2, POLL_MAX)
        yield interval


def wait_for_task(task: Task, out=None, timeout: float | None = None, quiet: bool = False) -> Task:
    """Follow a task until it finishes, printing new log lines as they arrive."""
    out = out or sys.stdout
    printed = 0
    deadline = time.monotonic() + timeout if timeout else None
    warned_offline = False
    intervals = poll_intervals()
    while True:
        task.refresh_from_db()
        if not quiet and len(task.log) > printed:
            out.write(task.log[printed:])
            out.flush()
            printed = len(task.log)
        if task.status not in ACTIVE_STATES:
            return task
        if not warned_offline and (note := waiting_note(task)):
            out.write(note)
            warned_offline = True
        if deadline and time.monotonic() > deadline:
            raise CommandError(f"task #{task.pk} still {task.status} after {timeout:g} s")
        time.sleep(next(intervals))
