#!/usr/bin/env python3
"""Backup benchmarks, run by hand as root (not part of `make test`), through the real agent:

1. Backup (stop mode, zstd), the task's own time, against raw `tar | zstd -T0` of the same
   root filesystem. Target (issue 22): at least 0.95x the raw throughput.
2. Restore, the task's own time, against raw mkfs+mount of the same kind of disk (an XFS
   image) and `zstd -d | tar -x` into it. Target: at least 0.95x the raw throughput.
3. Suspend mode's frozen window against a raw second rsync pass (synthetic tree only).
   Target: at most 1.5x.

Each on two trees: the synthetic one (busybox plus copies of the --source trees, about 240 MB
of real files by default) and a real Debian 12 root filesystem, the default OS template's (what
the panel's template build makes: debootstrap from this host's Debian mirror, prepared for a
container), built once into --debian-rootfs when missing. Panel and raw runs alternate, each
side first in every other round, with the page cache written back (sync) before each; the
medians and their ratio are printed. The raw tools get the same tar options as the panel.

    .venv/bin/python bench/bench_backup.py [--ctid-range 60000-60009] [--lxcpath DIR] [-n 5]
        [--source /usr/share/locale --source /usr/lib/python3] [--debian-rootfs DIR] [--trees synthetic,debian]

It uses three CTIDs of the range, refuses to start when any of them is a container of the live
panel or has anything under the lxcpath, and keeps its database, Redis and agent in a
temporary directory, so it runs beside a live panel without touching it. Everything it made is
removed at the end.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import benchlib

BASE = Path(__file__).resolve().parent.parent
RUN = benchlib.run_dir("vzpb-bk-")
DEBIAN_CACHE = Path("/var/tmp/vzpanel-bench-cache/debian-12-rootfs")
TAR_OPTIONS = ["--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls", "--sparse"]  # the panel's
sys.path.insert(0, str(BASE))


def med(values):
    return statistics.median(values)


def line(name, seconds, size):
    print(f"{name:48s} median {med(seconds):7.2f} s  ({size / med(seconds) / 1e6:7.1f} MB/s)  "
          f"min {min(seconds):.2f}  max {max(seconds):.2f}")


def ratio(name, panel, raw, target):
    print(f"  {name} throughput ratio panel/raw: {med(raw) / med(panel):.2f}x   target >= {target}x   "
          f"(per round: {', '.join(f'{r / p:.2f}' for p, r in zip(panel, raw))})")


def debian_rootfs(path: Path) -> Path:
    """A Debian 12 root filesystem as the panel's template build makes it, built once."""
    if (path / "etc" / "debian_version").is_file():
        return path
    from containers.engine.osbuild import debootstrap, host_debian_mirror, prepare_for_container
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"Building a Debian 12 root filesystem into {path} (once; minutes)")
    debootstrap(partial, "bookworm", host_debian_mirror())
    prepare_for_container(partial)
    partial.rename(path)
    return path


def tree_size(root: Path) -> tuple[int, int]:
    size = int(subprocess.run(["du", "-sb", str(root)], capture_output=True, text=True).stdout.split()[0])
    paths = subprocess.run(["find", str(root)], capture_output=True, text=True).stdout.count("\n")
    return size, paths


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    benchlib.add_arguments(ap, "60000-60009", RUN / "lxc")
    ap.add_argument("--source", action="append", default=[], help="trees copied into the synthetic root")
    ap.add_argument("--debian-rootfs", type=Path, default=DEBIAN_CACHE)
    ap.add_argument("--trees", default="synthetic,debian")
    ap.add_argument("--no-suspend", action="store_true", help="leave out the suspend-mode measurement")
    ap.add_argument("-n", type=int, default=5, help="rounds of each (panel and raw alternate)")
    args = ap.parse_args()
    sources = args.source or ["/usr/share/locale", "/usr/lib/python3"]
    trees = [t for t in args.trees.split(",") if t]
    ctids = benchlib.refuse_taken(args, need=3)
    lxcpath = args.lxcpath.resolve()
    benchlib.use_own_panel(RUN, lxcpath)

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

    if "debian" in trees:
        debian = debian_rootfs(args.debian_rootfs)
    redis_argv, redis_sock = prepare(RUN, web_group=None, persist=False)  # with its ACL users, as `make run`
    redis = subprocess.Popen(redis_argv, stdout=subprocess.DEVNULL)
    agent = None
    raw_mounts = []
    made = []
    try:
        while not redis_sock.exists():
            time.sleep(0.02)
        template = build_busybox_template(RUN / "templates")
        user = get_user_model().objects.create_superuser("bench", "", "bench-pass-123")
        call_command("register_host", "bench", verbosity=0, stdout=open(os.devnull, "w"))
        host = Host.objects.get(name="bench")
        from hosts.services import issue_token
        agent_env = dict(os.environ, PANEL_HOST_TOKEN=issue_token(None, host))
        agent = subprocess.Popen([sys.executable, str(BASE / "manage.py"), "agent", "--host", "bench"],
                                 env=agent_env, cwd=BASE, stdout=open(RUN / "agent.log", "w"), stderr=subprocess.STDOUT)
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

        def container_with(ctid: int, fill) -> tuple[Container, Path]:
            made.append(ctid)
            wait(services.create_container(user=user, ctid=ctid, ostemplate=template_name(template.name),
                                           hostname=f"bk{ctid}.bench", host=host, limits={"disk_mb": 4096}))
            rootfs = lxcpath / str(ctid) / "rootfs"
            fill(rootfs)
            return Container.objects.get(ctid=ctid), rootfs

        def synthetic(rootfs: Path):
            (rootfs / "srv").mkdir(exist_ok=True)
            for src in sources:
                subprocess.run(["cp", "-a", src, str(rootfs / "srv" / Path(src).name)], check=True)

        def debian_tree(rootfs: Path):
            # The Debian tree in place of busybox's: what a container made from the Debian template holds.
            for entry in rootfs.iterdir():
                subprocess.run(["rm", "-rf", "--one-file-system", str(entry)], check=True)
            subprocess.run(["cp", "-a", f"{debian}/.", str(rootfs)], check=True)

        restore_ctid = ctids[2]
        for index, tree in enumerate(trees):
            ct, rootfs = container_with(ctids[index], synthetic if tree == "synthetic" else debian_tree)
            size, paths = tree_size(rootfs)
            print(f"\n=== {tree} tree: {size / 1e6:.0f} MB in {paths} paths (CTID {ct.ctid}, {args.n} rounds each) ===")

            panel_backup, raw_backup = [], []
            raw = RUN / "raw.tar.zst"

            def panel_backup_once():
                os.sync()
                task = wait(backup_container(ct, user, mode="stop", compress="zst"))
                panel_backup.append(elapsed(task))
                ct.refresh_from_db()

            def raw_backup_once():
                os.sync()
                t0 = time.perf_counter()
                tar = subprocess.Popen(["tar", "-c", *TAR_OPTIONS, "-f", "-", "-C", str(rootfs), "."],
                                       stdout=subprocess.PIPE)
                subprocess.run(["zstd", "-q", "-T0", "-3", "-o", str(raw)], stdin=tar.stdout, check=True)
                tar.stdout.close()
                tar.wait()
                raw_backup.append(time.perf_counter() - t0)
                raw.unlink()

            benchlib.alternate(args.n, panel_backup_once, raw_backup_once)
            print("Backup, stop mode, zstd:")
            line("  panel (task start -> end, sha256 included)", panel_backup, size)
            line("  raw tar -c (the panel's options) | zstd -T0 -3", raw_backup, size)
            ratio("backup", panel_backup, raw_backup, 0.95)

            backup = Backup.objects.filter(ctid=ct.ctid, mode="stop").order_by("pk").first()
            panel_restore, raw_restore = [], []

            def panel_restore_once():
                os.sync()  # each side starts with the same (clean) page cache state
                task = wait(restore_backup(backup, user, ctid=restore_ctid))
                panel_restore.append(elapsed(task))
                wait(services.destroy_container(Container.objects.get(ctid=restore_ctid), user, restore_ctid))

            def raw_restore_once():
                target = RUN / "raw-restore"
                target.mkdir()
                os.sync()
                t0 = time.perf_counter()
                image = DiskImage(target / "root.img", target / "rootfs")
                image.create(4096)
                image.mount()
                raw_mounts.append(image)
                dec = subprocess.Popen(["zstd", "-q", "-dc", backup.path], stdout=subprocess.PIPE)
                subprocess.run(["tar", "-x", "-p", *TAR_OPTIONS[:4], "-f", "-", "-C", str(target / "rootfs")],
                               stdin=dec.stdout, check=True)
                dec.stdout.close()
                dec.wait()
                raw_restore.append(time.perf_counter() - t0)
                image.umount()
                raw_mounts.remove(image)
                shutil.rmtree(target)

            made.append(restore_ctid)
            benchlib.alternate(args.n, panel_restore_once, raw_restore_once)
            print("Restore:")
            line("  panel (task start -> end, checks and sha256)", panel_restore, size)
            line("  raw mkfs+mount + zstd -d | tar -x", raw_restore, size)
            ratio("restore", panel_restore, raw_restore, 0.95)

            if tree == "synthetic" and not args.no_suspend:
                # Suspend: the frozen window against a raw second rsync pass over the same tree.
                wait(services.start_container(ct, user))
                ct.refresh_from_db()
                frozen, raw_second = [], []
                for _ in range(args.n):
                    task = wait(backup_container(ct, user, mode="suspend", compress="zst"))
                    ms = [float(entry.split("Frozen for ")[1].split(" ms")[0]) for entry in task.log.splitlines()
                          if "Frozen for" in entry]
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
                print(f"  frozen window       median {med(frozen) * 1000:7.1f} ms  min {min(frozen) * 1000:.1f}  "
                      f"max {max(frozen) * 1000:.1f}")
                print(f"  raw 2nd rsync pass  median {med(raw_second) * 1000:7.1f} ms  "
                      f"min {min(raw_second) * 1000:.1f}  max {max(raw_second) * 1000:.1f}")
                print(f"  ratio frozen/raw: {med(frozen) / med(raw_second):.2f}x   target <= 1.5x")
                wait(services.stop_container(ct, user))
    finally:
        for image in raw_mounts:
            image.umount()
        if agent:
            agent.terminate()  # it lets a task under way finish (PANEL_STOP_GRACE); on a loaded host, slowly
            try:
                agent.wait(120)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()
        for ctid in made:
            path = lxcpath / str(ctid)
            if path.exists():
                subprocess.run(["lxc-stop", "-n", str(ctid), "-P", str(lxcpath), "-k"], capture_output=True)
                subprocess.run(["umount", str(path / "rootfs")], capture_output=True)
                shutil.rmtree(path, ignore_errors=True)
        for entry in lxcpath.glob(".vzpanel-*") if lxcpath.is_dir() else []:
            if any(f"-{c}-" in entry.name for c in made):
                subprocess.run(["umount", str(entry / "rootfs")], capture_output=True)
                shutil.rmtree(entry, ignore_errors=True)
        redis.terminate()
        redis.wait()
        shutil.rmtree(RUN, ignore_errors=True)


if __name__ == "__main__":
    main()
