"""What the benches share: the CTIDs and the lxcpath a bench may use, so that it runs beside a
live panel without touching it.

Every bench takes `--ctid-range A-B` and `--lxcpath DIR`, and refuses to start when one of its
CTIDs is a container of the live panel (its database: this checkout's settings in the
environment the bench was started with, or `--panel-db`) or has anything under the lxcpath (a
container, a half-built one, an incoming migration). Each bench keeps its own database, Redis
and agent in a temporary directory; only the lxcpath may be shared.

Import this module before the bench points PANEL_* at its temporary directory: it keeps the
environment it was started in (LIVE_ENV) to find the live panel's database.
"""
from __future__ import annotations

import argparse
import atexit
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

BASE = Path(__file__).resolve().parent.parent
LIVE_ENV = dict(os.environ)  # before the bench changes it


def run_dir(prefix: str) -> Path:
    """The bench's temporary directory, removed when it exits however it does (--help, a refusal)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o711)  # enter, not list: a container's root (an unprivileged id) walks through to its lxcpath
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def use_own_panel(run: Path, lxcpath: Path, host_name: str = "bench", **extra: str) -> None:
    """Point this process (and the agents it starts) at the bench's own database, Redis, agent data
    and dump directory in `run`, and at `lxcpath`; whatever of a live panel's the environment named
    (its database, its Redis password files, a host token) is dropped."""
    for live in ("PANEL_DB_PATH", "PANEL_DATABASE_URL", "PANEL_REDIS_PASSWORD_FILE", "PANEL_HOST_TOKEN",
                 "PANEL_HOST_TOKEN_FILE"):
        os.environ.pop(live, None)
    os.environ.update({
        "PANEL_VAR_DIR": str(run), "PANEL_LXCPATH": str(lxcpath), "PANEL_TEMPLATE_DIR": str(run / "templates"),
        "PANEL_DUMP_DIR": str(run / "dump"), "PANEL_HOST_NAME": host_name,
        "REDIS_URL": f"unix://{run}/run/redis.sock?db=0", "DJANGO_SETTINGS_MODULE": "panel.settings",
        "PANEL_AGENT_RECONCILE_SECONDS": "3600", "PANEL_SAMPLE_SECONDS": "3600",
        "PANEL_AGENT_DATA_DIR": str(run / "agent"), "PANEL_REDIS_ADMIN_PASSWORD_FILE": str(run / "redis-admin.pass"),
        **extra,
    })


def alternate(rounds: int, panel_once, raw_once) -> None:
    """Panel and raw runs interleaved, each side first in every other round (neither always gets the
    warmer cache or the quieter moment)."""
    for i in range(rounds):
        for run in ((panel_once, raw_once) if i % 2 == 0 else (raw_once, panel_once)):
            run()


def ctid_range(text: str) -> list[int]:
    first, dash, last = text.partition("-")
    if not dash or not first.isdigit() or not last.isdigit() or not 100 <= int(first) <= int(last) <= 999_999_999:
        raise argparse.ArgumentTypeError(f"{text!r} is not a CTID range FIRST-LAST (100 to 999999999, FIRST <= LAST)")
    return list(range(int(first), int(last) + 1))


def add_arguments(ap: argparse.ArgumentParser, default_range: str, default_lxcpath: Path) -> None:
    ap.add_argument("--ctid-range", "--ctids", dest="ctids", type=ctid_range, default=ctid_range(default_range),
                    metavar="FIRST-LAST", help=f"the CTIDs the bench may use (default {default_range})")
    ap.add_argument("--lxcpath", type=Path, default=default_lxcpath,
                    help="where its containers go (default: in its temporary directory)")
    ap.add_argument("--panel-db", default=None, metavar="PATH|URL",
                    help="the live panel's database, checked for the CTIDs (default: what this checkout's settings "
                         "use in the environment the bench started in)")


def live_database(given: str | None) -> str:
    """The live panel's database as its settings name it: a PostgreSQL URL or an SQLite path."""
    if given:
        return given
    if LIVE_ENV.get("PANEL_DATABASE_URL"):
        return LIVE_ENV["PANEL_DATABASE_URL"]
    var_dir = Path(LIVE_ENV.get("PANEL_VAR_DIR") or BASE / "var")
    return LIVE_ENV.get("PANEL_DB_PATH") or str(var_dir / "panel.sqlite3")


def panel_ctids(database: str, ctids: list[int]) -> list[int]:
    """CTIDs in the range that the live panel has as containers (read only; nothing is created)."""
    query = "SELECT ctid FROM containers_container WHERE ctid BETWEEN %s AND %s ORDER BY ctid"
    if database.startswith(("postgres://", "postgresql://")):
        import psycopg
        url = urlparse(database)
        params = dict(p.split("=", 1) for p in url.query.split("&") if "=" in p)
        with psycopg.connect(dbname=url.path.lstrip("/"), user=unquote(url.username or ""),
                             password=unquote(url.password or ""), host=params.get("host", url.hostname or ""),
                             port=url.port or 5432) as conn:
            return [row[0] for row in conn.execute(query, (ctids[0], ctids[-1]))]
    if not Path(database).is_file():
        return []  # no panel has run from here
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return [row[0] for row in conn.execute(query.replace("%s", "?"), (ctids[0], ctids[-1]))]
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []  # a database never migrated holds no containers
        raise
    finally:
        conn.close()


def lxcpath_ctids(lxcpath: Path, ctids: list[int]) -> list[int]:
    """CTIDs in the range with anything of theirs under the lxcpath (a container, a partial build,
    an incoming migration, a swap left by a crash)."""
    if not lxcpath.is_dir():
        return []
    wanted, found = set(ctids), set()
    for entry in os.listdir(lxcpath):
        digits = entry if entry.isdigit() else next((p for p in entry.split("-") if p.isdigit()), "")
        if digits and int(digits) in wanted:
            found.add(int(digits))
    return sorted(found)


def refuse_taken(args, need: int | None = None) -> list[int]:
    """The bench's CTIDs, after checking that none is in use; exits saying which otherwise.
    `need`: how many the bench uses (the range must hold that many)."""
    ctids = args.ctids
    if need is not None and len(ctids) < need:
        sys.exit(f"the bench needs {need} CTIDs; {ctids[0]}-{ctids[-1]} holds {len(ctids)}")
    ctids = ctids[:need] if need is not None else ctids
    database = live_database(args.panel_db)
    in_panel = panel_ctids(database, ctids)
    on_disk = lxcpath_ctids(args.lxcpath, ctids)
    if in_panel or on_disk:
        said = []
        if in_panel:
            said.append(f"the panel ({database.split('@')[-1]}) has containers {_few(in_panel)}")
        if on_disk:
            said.append(f"{args.lxcpath} holds {_few(on_disk)}")
        sys.exit(f"refusing to start: CTIDs {ctids[0]}-{ctids[-1]} are in use: " + "; ".join(said)
                 + ". Choose another --ctid-range (or --lxcpath).")
    return ctids


def _few(ctids: list[int]) -> str:
    return ", ".join(map(str, ctids[:5])) + (f" and {len(ctids) - 5} more" if len(ctids) > 5 else "")


# -- a panel of the bench's own: its redis-server and agent, and the removal of what it made -------
def percentile(sorted_values: list[float], p: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(round(p * (len(sorted_values) - 1))))]


def summary(name: str, values: list[float], width: int = 46) -> float:
    """One line: median, p95 and min in milliseconds; returns the median (ms)."""
    ms = sorted(v * 1000 for v in values)
    median = statistics.median(ms)
    print(f"{name:{width}s} median {median:7.1f} ms  p95 {percentile(ms, 0.95):7.1f}  min {ms[0]:7.1f}  "
          f"(n={len(ms)})")
    return median


def claim_ctids(lxcpath: Path, ctids: list[int]) -> None:
    """Refuse to run when any of the CTIDs is taken in the lxcpath (by a live panel, another run);
    make the lxcpath if it is not there yet."""
    taken = [c for c in ctids if (lxcpath / str(c)).exists()]
    if taken:
        sys.exit(f"CTIDs {taken[:5]}... exist in {lxcpath} already: choose another range")
    if not lxcpath.exists():  # enter, not list: a container's root (an unprivileged id) walks through it
        lxcpath.mkdir(parents=True)
        lxcpath.chmod(0o711)


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
