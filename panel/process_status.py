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
        entry["pid"], entry["supervisor"] = pid, "systemd"
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
            entry["restarts"] = int(entry.get("restarts") or 0) + 1
            entry["last_exit"], entry["last_exit_at"] = status, time.time()
        write(data, path)
