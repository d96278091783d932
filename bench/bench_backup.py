#!/usr/bin/env python3
"""Backup benchmarks, run by hand as root (not part of `make test`), through the real agent:

1. Backup throughput (stop mode, zstd) against raw `tar | zstd -T0` of the same root
   filesystem in the same run. Target: at least 0.9x the raw throughput.
2. Suspend mode's frozen window against a raw second rsync pass. Target: at most 1.5x.
3. Restore against raw `zstd -d | tar -x` into the same kind of disk (an XFS image).
   Target: at least 0.9x the raw throughput.

    .venv/bin/python bench/bench_backup.py [--source /usr/share/locale --source /usr/lib/python3] [-n 3]

The container's root filesystem is busybox plus copies of the --source trees
(about 240 MB of real files by default).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
RUN = Path(tempfile.mkdtemp(prefix="vzpb-bk-"))
os.environ.update({
    "PANEL_VAR_DIR": str(RUN), "PANEL_LXCPATH": str(RUN / "lxc"), "PANEL_TEMPLATE_DIR": str(RUN / "templates"),
    "PANEL_DUMP_DIR": str(RUN / "dump"), "PANEL_HOST_NAME": "bench", "REDIS_URL": f"unix://{RUN}/run/redis.sock?db=0",
    "DJANGO_SETTINGS_MODULE": "panel.settings", "PANEL_AGENT_RECONCILE_SECONDS": "3600",
    "PANEL_SAMPLE_SECONDS": "3600",
})
sys.path.insert(0, str(BASE))


def med(values):
    return statistics.median(values)


def line(name, seconds, size):
    print(f"{name:46s} median {med(seconds):7.2f} s  ({size / med(seconds) / 1e6:7.1f} MB/s)  "
          f"min {min(seconds):.2f}  max {max(seconds):.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", action="append", default=[])
    ap.add_argument("-n", type=int, default=3)
    args = ap.parse_args()
    sources = args.source or ["/usr/share/locale", "/usr/lib/python3"]

    import django
    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    call_command("migrate", verbosity=0)

    from backups.models import Backup
    from backups.services import backup_container, restore_backup
    from containers import services
    from containers.engine.busybox import build_busybox_template
    from containers.engine.diskimage import DiskImage
    from containers.engine.templates import template_name
    from containers.models import Container
    from hosts.models import Host

    from tasks.redis_server import prepare
    redis_argv, redis_sock = prepare(RUN, web_group=None, persist=False)  # with its ACL users, as `make run`
    redis = subprocess.Popen(redis_argv, stdout=subprocess.DEVNULL)
    agent = None
    raw_mounts = []
    try:
        while not redis_sock.exists():
            time.sleep(0.02)
        template = build_busybox_template(RUN / "templates")
        user = get_user_model().objects.create_superuser("bench", "", "bench-pass-123")
        call_command("register_host", "bench", verbosity=0, stdout=open(os.devnull, "w"))
        host = Host.objects.get(name="bench")
        from hosts.services import issue_token
        agent_env = dict(os.environ, PANEL_HOST_TOKEN=issue_token(None, host))
        agent = subprocess.Popen([sys.executable, str(BASE / "manage.py"), "agent", "--host", "bench"], env=agent_env, cwd=BASE,
                                 stdout=open(RUN / "agent.log", "w"), stderr=subprocess.STDOUT)
        while not Host.objects.get(pk=host.pk).agent_seen_at or not host.templates.exists():
            time.sleep(0.05)

        def wait(task):
            while True:
                task.refresh_from_db()
                if task.status not in ("queued", "running"):
                    assert task.status == "ok", task.log
                    return task
                time.sleep(0.01)

        def elapsed(task):
            return (task.finished_at - task.started_at).total_seconds()

        wait(services.create_container(user=user, ctid=60001, ostemplate=template_name(template.name),
                                       hostname="bench.test", host=host, limits={"disk_mb": 4096}))
        ct = Container.objects.get(ctid=60001)
        rootfs = RUN / "lxc" / "60001" / "rootfs"
        for src in sources:
            subprocess.run(["cp", "-a", src, str(rootfs / "srv")], check=True) if not (rootfs / "srv").exists() \
                else subprocess.run(["cp", "-a", src, str(rootfs / "srv" / Path(src).name)], check=True)
        size = int(subprocess.run(["du", "-sb", str(rootfs)], capture_output=True, text=True).stdout.split()[0])
        print(f"root filesystem: {size / 1e6:.0f} MB in "
              f"{subprocess.run(['find', str(rootfs)], capture_output=True, text=True).stdout.count(chr(10))} paths")

        panel_backup, raw_backup = [], []
        for _ in range(args.n):
            os.sync()
            task = wait(backup_container(ct, user, mode="stop", compress="zst"))
            panel_backup.append(elapsed(task))
            ct.refresh_from_db()
            raw = RUN / "raw.tar.zst"
            os.sync()
            t0 = time.perf_counter()
            tar = subprocess.Popen(["tar", "-c", "--numeric-owner", "--xattrs", "--acls", "-C", str(rootfs), "."],
                                   stdout=subprocess.PIPE)
            subprocess.run(["zstd", "-q", "-T0", "-3", "-o", str(raw)], stdin=tar.stdout, check=True)
            tar.wait()
            raw_backup.append(time.perf_counter() - t0)
            raw.unlink()
        print("Backup, stop mode, zstd:")
        line("  panel (task start -> end, incl. sha256)", panel_backup, size)
        line("  raw tar | zstd -T0", raw_backup, size)
        print(f"  throughput ratio panel/raw: {med(raw_backup) / med(panel_backup):.2f}x   target >= 0.9x")

        # Suspend: the frozen window against a raw second rsync pass over the same tree.
        wait(services.start_container(ct, user))
        ct.refresh_from_db()
        frozen, raw_second = [], []
        for _ in range(args.n):
            task = wait(backup_container(ct, user, mode="suspend", compress="zst"))
            ms = [float(l.split("Frozen for ")[1].split(" ms")[0]) for l in task.log.splitlines() if "Frozen for" in l]
            frozen.append(ms[0] / 1000)
            ct.refresh_from_db()
            copy = RUN / "rsync-copy"
            argv = ["rsync", "-aHAX", "--numeric-ids", "--delete", "--one-file-system", "--sparse",
                    "--modify-window=-1", f"{rootfs}/", f"{copy}/"]
            subprocess.run(argv, check=True)
            t0 = time.perf_counter()
            subprocess.run(argv, check=True)
            raw_second.append(time.perf_counter() - t0)
            shutil.rmtree(copy)
        print("Suspend mode:")
        print(f"  frozen window       median {med(frozen) * 1000:7.1f} ms  min {min(frozen) * 1000:.1f}  max {max(frozen) * 1000:.1f}")
        print(f"  raw 2nd rsync pass  median {med(raw_second) * 1000:7.1f} ms  min {min(raw_second) * 1000:.1f}  max {max(raw_second) * 1000:.1f}")
        print(f"  ratio frozen/raw: {med(frozen) / med(raw_second):.2f}x   target <= 1.5x")
        wait(services.stop_container(ct, user))

        # Restore: the first (stop-mode) archive, to new CTIDs, against zstd -d | tar -x into an XFS image.
        backup = Backup.objects.filter(mode="stop").first()
        panel_restore, raw_restore = [], []
        for i in range(args.n):
            os.sync()  # start each side with the same (clean) page cache state
            task = wait(restore_backup(backup, user, ctid=60100 + i))
            panel_restore.append(elapsed(task))
            target = RUN / f"raw-restore-{i}"
            target.mkdir()
            os.sync()
            t0 = time.perf_counter()
            image = DiskImage(target / "root.img", target / "rootfs")
            image.create(4096)
            image.mount()
            raw_mounts.append(image)
            dec = subprocess.Popen(["zstd", "-q", "-dc", backup.path], stdout=subprocess.PIPE)
            subprocess.run(["tar", "-x", "-p", "--numeric-owner", "--xattrs", "--acls", "-C", str(target / "rootfs")],
                           stdin=dec.stdout, check=True)
            dec.wait()
            raw_restore.append(time.perf_counter() - t0)
        print("Restore:")
        line("  panel (task start -> end, incl. checks)", panel_restore, size)
        line("  raw mkfs+mount + zstd -d | tar -x", raw_restore, size)
        print(f"  throughput ratio panel/raw: {med(raw_restore) / med(panel_restore):.2f}x   target >= 0.9x")
    finally:
        for image in raw_mounts:
            image.umount()
        if agent:
            agent.terminate()
            agent.wait(30)
        for entry in (RUN / "lxc").glob("*"):
            subprocess.run(["lxc-stop", "-n", entry.name, "-P", str(RUN / "lxc"), "-k"], capture_output=True)
            subprocess.run(["umount", str(entry / "rootfs")], capture_output=True)
        redis.terminate()
        shutil.rmtree(RUN, ignore_errors=True)


if __name__ == "__main__":
    main()
