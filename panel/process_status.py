"""The panel's own processes (web, agent, scheduler, redis) and their deaths, for the dashboard.

Whatever supervises them writes one JSON file in VAR_DIR: runpanel under `make run` (it knows
each child's pid and exit), the systemd units in production through `manage.py process_status`
in their ExecStartPost/ExecStopPost (systemd passes the exit in SERVICE_RESULT, EXIT_CODE and
EXIT_STATUS). Per process: pid (None while it waits to be started again), restarts, last exit
status (negative: the signal that killed it, as subprocess reports it) and when.
"""
from __future__ import annotations

import fcntl
import json
import os
import signal
import time
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

STATUS_FILE = "process-status.json"
# Restart back-off, the same under runpanel and systemd: 1 s after a crash, doubling with each crash
# that follows a short run, at most BACKOFF_MAX; a process that ran that long starts a new count.
# (Debian 12's systemd, 252, has no RestartSteps: the units' ExecStartPre waits the back-off.)
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 60.0


def next_backoff(previous: float | None, ran_seconds: float) -> float:
    """The wait before restarting a process that died after running `ran_seconds`, when the wait
    before its last start was `previous` (None: it had not crashed before)."""
    if previous is None or ran_seconds >= BACKOFF_MAX:
        return BACKOFF_FIRST
    return min(previous * 2, BACKOFF_MAX)


def status_path() -> Path:
    return Path(settings.VAR_DIR) / STATUS_FILE


def read(path: Path | None = None) -> dict:
    try:
        data = json.loads((path or status_path()).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write(data: dict, path: Path | None = None) -> None:
    path = path or status_path()
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.write_text(json.dumps(data))
    os.chmod(tmp, 0o644)  # the web user reads it
    tmp.replace(path)


@contextmanager
def _locked(path: Path):
    """Two units' hooks may run at once: one read-modify-write at a time."""
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def note_started(name: str, pid: int | None) -> None:
    path = status_path()
    with _locked(path):
        data = read(path)
        entry = data.setdefault(name, {"restarts": 0, "last_exit": None, "last_exit_at": None})
        entry["pid"], entry["supervisor"], entry["started_at"] = pid, "systemd", time.time()
        write(data, path)


def exit_status(exit_code: str, exit_status: str) -> int | None:
    """systemd's EXIT_CODE/EXIT_STATUS as subprocess would report it: the status when it exited,
    minus the signal number when a signal killed it ("killed", "KILL" → -9)."""
    if exit_code == "exited":
        return int(exit_status) if exit_status.lstrip("-").isdigit() else None
    try:
        return -int(getattr(signal, f"SIG{exit_status}") if not exit_status.isdigit() else exit_status)
    except (AttributeError, ValueError):
        return None


def note_exited(name: str, failed: bool, status: int | None) -> None:
    """A stop asked for (failed=False) is not a death; a failure counts as one."""
    path = status_path()
    with _locked(path):
        data = read(path)
        entry = data.setdefault(name, {"restarts": 0, "last_exit": None, "last_exit_at": None})
        entry["pid"], entry["supervisor"] = None, "systemd"
        if failed:
            now = time.time()
            entry["restarts"] = int(entry.get("restarts") or 0) + 1
            entry["last_exit"], entry["last_exit_at"] = status, now
            ran = now - float(entry.get("started_at") or 0)
            entry["backoff"] = next_backoff(entry.get("backoff"), ran)
        else:
            entry.pop("backoff", None)  # stopped on purpose: the next start waits for nothing
        write(data, path)


def backoff_wait(name: str) -> float:
    """The seconds a unit's ExecStartPre waits before `name` starts again: the back-off its last
    crash earned, less the time since that crash (systemd's RestartSec counts too)."""
    entry = read().get(name) or {}
    if entry.get("backoff") is None or entry.get("last_exit_at") is None:
        return 0.0
    return max(0.0, float(entry["backoff"]) - (time.time() - float(entry["last_exit_at"])))
