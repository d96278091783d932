"""What the benchmarks share: a panel of their own (a run directory with its own database, redis-server
and agent) beside whatever runs on the machine, in a CTID range and lxcpath they are given, and the
way they print figures. Imported by the bench scripts after they have put the checkout on sys.path."""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

# A live panel's settings that must never reach a bench's processes.
LIVE_SETTINGS = ("PANEL_DB_PATH", "PANEL_DATABASE_URL", "PANEL_HOST_TOKEN", "PANEL_HOST_TOKEN_FILE")


def percentile(sorted_values: list[float], p: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(round(p * (len(sorted_values) - 1))))]


def summary(name: str, values: list[float], width: int = 46) -> float:
    """One line: median, p95 and min in milliseconds; returns the median (ms)."""
    ms = sorted(v * 1000 for v in values)
    median = statistics.median(ms)
    print(f"{name:{width}s} median {median:7.1f} ms  p95 {percentile(ms, 0.95):7.1f}  min {ms[0]:7.1f}  "
          f"(n={len(ms)})")
    return median


def ctid_range(text: str) -> list[int]:
    """'FIRST-LAST' as the CTIDs it names."""
    first, _, last = text.partition("-")
    try:
        ctids = list(range(int(first), int(last or first) + 1))
    except ValueError:
        sys.exit(f"--ctids takes FIRST-LAST, not {text!r}")
    if not ctids:
        sys.exit(f"--ctids {text} names no CTID")
    return ctids


def claim_ctids(lxcpath: Path, ctids: list[int]) -> None:
    """Refuse to run when any of the CTIDs is taken in the lxcpath (by a live panel, another run);
    make the lxcpath if it is not there yet."""
    taken = [c for c in ctids if (lxcpath / str(c)).exists()]
    if taken:
        sys.exit(f"CTIDs {taken[:5]}... exist in {lxcpath} already: choose another range")
    if not lxcpath.exists():  # enter, not list: a container's root (an unprivileged id) walks through it
        lxcpath.mkdir(parents=True)
        lxcpath.chmod(0o711)


def use_own_panel(run: Path, lxcpath: Path, host_name: str, **extra: str) -> None:
    """Point this process (and the processes it starts) at the bench's own panel: its database,
    redis-server, templates and agent data under `run`, its containers in `lxcpath`."""
    os.environ.update({
        "PANEL_VAR_DIR": str(run), "PANEL_LXCPATH": str(lxcpath), "PANEL_TEMPLATE_DIR": str(run / "templates"),
        "PANEL_HOST_NAME": host_name, "REDIS_URL": f"unix://{run}/run/redis.sock?db=0",
        "PANEL_AGENT_DATA_DIR": str(run / "agent"), "PANEL_DUMP_DIR": str(run / "dump"),
        "DJANGO_SETTINGS_MODULE": "panel.settings", **extra,
    })
    for name in LIVE_SETTINGS:
        os.environ.pop(name, None)


def start_redis(run: Path) -> subprocess.Popen:
    """redis-server with the panel's users, as `make run` starts it (Django must be set up)."""
    from tasks.redis_server import prepare
    argv, sock = prepare(run, web_group=None, persist=False)
    redis = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    while not sock.exists():
        time.sleep(0.02)
    return redis


def start_agent(host, code: Path, run: Path) -> subprocess.Popen:
    """`manage.py agent` of checkout `code` for `host`, once it serves (recovery, reconcile done)."""
    from hosts.models import Host
    from hosts.services import issue_token
    agent = subprocess.Popen([sys.executable, str(code / "manage.py"), "agent", "--host", host.name],
                             env=dict(os.environ, PANEL_HOST_TOKEN=issue_token(None, host)), cwd=code,
                             stdout=open(run / "agent.log", "w"), stderr=subprocess.STDOUT)
    while not Host.objects.get(pk=host.pk).agent_started_at or not host.templates.exists():
        if agent.poll() is not None:
            sys.exit(f"the agent exited: {(run / 'agent.log').read_text()[-2000:]}")
        time.sleep(0.1)
    return agent


def stop_process(proc: subprocess.Popen | None, timeout: float = 60) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def remove_containers(lxcpath: Path, ctids) -> None:
    """Stop and remove what a run made under these CTIDs, and nothing else in a shared lxcpath."""
    for ctid in ctids:
        for path in [lxcpath / str(ctid), *lxcpath.glob(f".vzpanel-partial-{ctid}-*")]:
            if not path.exists():
                continue
            subprocess.run(["lxc-stop", "-n", str(ctid), "-P", str(lxcpath), "-k"], capture_output=True)
            subprocess.run(["umount", str(path / "rootfs")], capture_output=True)
            if not os.path.ismount(path / "rootfs"):
                shutil.rmtree(path, ignore_errors=True)
