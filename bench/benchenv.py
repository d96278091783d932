"""What the benches that run beside a live panel share: a panel of their own in a temporary directory
(settings, redis-server, database, agent), stopped containers defined by hand in the lxcpath given,
and the removal of exactly what they made."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402
from benchlib import start_redis  # noqa: E402,F401  (the benches here call benchenv.start_redis)


def start_agent(host, run: Path, code: Path = BASE):
    """benchlib.start_agent, with this module's argument order."""
    return benchlib.start_agent(host, code, run)
# A live panel's settings, never a bench's.
LIVE_VARIABLES = ("PANEL_DB_PATH", "PANEL_DATABASE_URL", "PANEL_HOST_TOKEN", "PANEL_HOST_TOKEN_FILE",
                  "PANEL_CLI_SOCKET")


def check_free(lxcpath: Path, ctids: list[int]) -> None:
    taken = [c for c in ctids if (lxcpath / str(c)).exists()]
    if taken:
        sys.exit(f"CTIDs {taken[:5]}... exist in {lxcpath} already: choose another range")


def isolate(run: Path, lxcpath: Path, host_name: str) -> None:
    """This process's settings: everything in `run` but the lxcpath; then Django set up and migrated."""
    os.environ.update({
        "PANEL_VAR_DIR": str(run), "PANEL_LXCPATH": str(lxcpath), "PANEL_TEMPLATE_DIR": str(run / "templates"),
        "PANEL_HOST_NAME": host_name, "REDIS_URL": f"unix://{run}/run/redis.sock?db=0",
        "PANEL_AGENT_DATA_DIR": str(run / "agent"), "PANEL_DUMP_DIR": str(run / "dump"),
        "DJANGO_SETTINGS_MODULE": "panel.settings",
    })
    for live in LIVE_VARIABLES:
        os.environ.pop(live, None)
    sys.path.insert(0, str(BASE))
    import django
    django.setup()
    from django.core.management import call_command
    call_command("migrate", verbosity=0)


def make_lxcpath(lxcpath: Path) -> None:
    if not lxcpath.exists():  # enter, not list: a container's root (an unprivileged id) walks through it
        lxcpath.mkdir(parents=True)
        lxcpath.chmod(0o711)


def define_stopped(lxcpath: Path, ctids: list[int], host, made: list[int]) -> None:
    """Stopped containers as rows of the panel and, in LXC, a minimal config and an empty rootfs each."""
    from containers.models import Container
    for ctid in ctids:
        path = lxcpath / str(ctid)
        (path / "rootfs").mkdir(parents=True)
        made.append(ctid)
        (path / "config").write_text(f"lxc.uts.name = {ctid}\nlxc.rootfs.path = dir:{path}/rootfs\n")
    Container.objects.bulk_create([Container(ctid=c, hostname=f"s{c}.bench", ostemplate="busybox", host=host,
                                             status="stopped") for c in ctids])


def wait(task):
    """The task once it has ended ok; the bench stops on any other end."""
    while True:
        task.refresh_from_db()
        if task.status not in ("queued", "running"):
            if task.status != "ok":
                raise SystemExit(f"task {task.pk} ({task.type}) {task.status}: {task.error}")
            return task
        time.sleep(0.01)


def stop(proc: subprocess.Popen | None) -> None:
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def remove_made(lxcpath: Path, made: list[int]) -> None:
    """Only what this run made, in a shared lxcpath too."""
    for ctid in made:
        path = lxcpath / str(ctid)
        subprocess.run(["lxc-stop", "-n", str(ctid), "-P", str(lxcpath), "-k"], capture_output=True)
        subprocess.run(["umount", str(path / "rootfs")], capture_output=True)
        if not os.path.ismount(path / "rootfs"):
            shutil.rmtree(path, ignore_errors=True)


def tear_down(run: Path, lxcpath: Path, made: list[int], redis: subprocess.Popen, *procs) -> None:
    """Stop the bench's processes (its redis last) and remove what it made."""
    for proc in procs:
        stop(proc)
    remove_made(lxcpath, made)
    redis.terminate()
    redis.wait()
    shutil.rmtree(run, ignore_errors=True)
