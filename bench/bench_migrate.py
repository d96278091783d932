#!/usr/bin/env python3
"""Migration downtime, run by hand as root (not part of `make test`), through two real agents.

A running container with a 1 GB root filesystem (about 10,000 files) moves between two hosts
on this machine (separate lxcpaths, local copies). While the first copy runs, a process
inside changes 10 MB. Downtime is from the freeze (or stop) until the container runs at the
destination. Printed, each as the median of -n runs, all in the same run:

  panel       vzmigrate --online through the queue and both agents
  (a) raw     the same two-pass sequence by hand with the same tools: rsync while running,
              lxc-freeze, rsync again, kill, lxc-start at the destination
  (b) plain   stop, copy everything, start at the destination

Targets: panel under 2 s, within 1.5x of (a), and far below (b).

    .venv/bin/python bench/bench_migrate.py [-n 3] [--size-mb 1024] [--ctid-range 60010-60019]
                                            [--lxcpath DIR] [--dest-lxcpath DIR]

The two hosts have the lxcpaths given (the destination's by default in the bench's temporary
directory). It uses the first CTID of the range, refuses to start when it is a container of the
live panel or has anything under either lxcpath, and keeps its own database, Redis and agents in
a temporary directory, so it runs beside a live panel without touching it.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import benchlib

BASE = Path(__file__).resolve().parent.parent
RUN = benchlib.run_dir("vzpb-mig-")
sys.path.insert(0, str(BASE))
CHURN = "for i in 1 2 3 4 5 6 7 8 9 10; do dd if=/dev/urandom of=/churn$i bs=1M count=1 2>/dev/null; usleep 150000; done"


def fill(rootfs: Path, size_mb: int) -> None:
    """About `size_mb` of files of 100 KiB in 100 directories (incompressible, so nothing is cheap)."""
    block = os.urandom(100 * 1024)
    for n in range(size_mb * 10):
        d = rootfs / "data" / f"d{n % 100:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{n}").write_bytes(block[n % 97:] + block[:n % 97])


def churn(lxc, ctid):
    """10 MB changed inside while the first copy runs."""
    return threading.Thread(target=lambda: lxc.attach(ctid, ["sh", "-c", CHURN], timeout=120), daemon=True)


def make_destination_disk(lxc_dst, ctid) -> None:
    """An empty 2 GiB disk image mounted at the destination, as the panel's prepare step makes."""
    from containers.engine.diskimage import DiskImage, IMAGE_NAME
    dst = lxc_dst.path(ctid)
    (dst / "rootfs").mkdir(parents=True)
    image = DiskImage(dst / IMAGE_NAME, dst / "rootfs")
    image.create(2048)
    image.mount()


def start_there_then_undo(lxc_src, lxc_dst, ctid, spec_text: str, t0: float) -> float:
    """Start the copy at the destination; return the downtime since t0, then put things back."""
    (lxc_dst.path(ctid) / "config").write_text(spec_text.replace(str(lxc_src.lxcpath), str(lxc_dst.lxcpath)))
    lxc_dst.start(ctid)
    downtime = time.monotonic() - t0
    lxc_dst.kill(ctid)
    lxc_dst.destroy(ctid)
    lxc_src.start(ctid)
    return downtime


def raw_two_pass(lxc_src, lxc_dst, ctid, spec_text: str) -> float:
    """(a): what an administrator would type, with the same tools the panel uses."""
    from containers.engine.transfer import LocalTransport
    make_destination_disk(lxc_dst, ctid)
    transport = LocalTransport(str(lxc_dst.lxcpath))
    writer = churn(lxc_src, ctid)
    writer.start()
    transport.rsync(lxc_src.rootfs(ctid), f"{ctid}/rootfs", live=True)
    writer.join()
    t0 = time.monotonic()
    lxc_src.freeze(ctid)
    transport.rsync(lxc_src.rootfs(ctid), f"{ctid}/rootfs")
    lxc_src.kill_frozen(ctid)
    return start_there_then_undo(lxc_src, lxc_dst, ctid, spec_text, t0)


def plain_stop_copy_start(lxc_src, lxc_dst, ctid, spec_text: str) -> float:
    """(b): stop, copy the whole root filesystem, start there (the disk is made inside the downtime)."""
    from containers.engine.transfer import LocalTransport
    t0 = time.monotonic()
    lxc_src.kill(ctid)
    make_destination_disk(lxc_dst, ctid)
    LocalTransport(str(lxc_dst.lxcpath)).rsync(lxc_src.rootfs(ctid), f"{ctid}/rootfs")
    return start_there_then_undo(lxc_src, lxc_dst, ctid, spec_text, t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=3)
    ap.add_argument("--size-mb", type=int, default=1024)
    benchlib.add_arguments(ap, "60010-60019", RUN / "a" / "lxc")
    ap.add_argument("--dest-lxcpath", type=Path, default=RUN / "b" / "lxc", help="the destination host's lxcpath")
    args = ap.parse_args()
    lxcpaths = {"bench-a": args.lxcpath.resolve(), "bench-b": args.dest_lxcpath.resolve()}
    if lxcpaths["bench-a"] == lxcpaths["bench-b"]:
        sys.exit("--lxcpath and --dest-lxcpath must differ: two hosts never share an lxcpath")
    CTID = benchlib.refuse_taken(args, need=1)[0]
    if taken := benchlib.lxcpath_ctids(lxcpaths["bench-b"], [CTID]):
        sys.exit(f"refusing to start: {lxcpaths['bench-b']} holds CTID {taken[0]}. Choose another --ctid-range.")
    benchlib.use_own_panel(RUN, lxcpaths["bench-a"], "bench-a")

    import django
    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    call_command("migrate", verbosity=0)

    from containers import services
    from containers.engine.busybox import build_busybox_template
    from containers.engine.lxc import Lxc
    from containers.engine.templates import template_name
    from containers.models import Container
    from hosts.models import Host
    from hosts.services import issue_token
    from tasks.models import Task

    from tasks.redis_server import prepare
    redis_argv, redis_sock = prepare(RUN, web_group=None, persist=False)  # with its ACL users, as `make run`
    redis = subprocess.Popen(redis_argv, stdout=subprocess.DEVNULL)
    agents = []
    try:
        while not redis_sock.exists():
            time.sleep(0.02)
        template = build_busybox_template(RUN / "templates")
        user = get_user_model().objects.create_superuser("bench", "", "bench-pass-123")
        hosts = []
        for name in ("bench-a", "bench-b"):
            lxcpaths[name].mkdir(mode=0o700, parents=True, exist_ok=True)
            hosts.append(Host.objects.create(name=name, lxcpath=str(lxcpaths[name]),
                                             template_dir=str(RUN / "templates"), dump_dir=str(RUN / "dump")))
        for host in hosts:
            env = dict(os.environ, PANEL_HOST_TOKEN=issue_token(None, host))
            agents.append(subprocess.Popen([sys.executable, str(BASE / "manage.py"), "agent", "--host", host.name],
                                           cwd=BASE, env=env, stdout=open(RUN / f"agent-{host.name}.log", "w"),
                                           stderr=subprocess.STDOUT))
        for host in hosts:
            while not Host.objects.get(pk=host.pk).agent_seen_at or not host.templates.exists():
                time.sleep(0.05)
        a, b = hosts
        lxc = {a.pk: Lxc(a.lxcpath), b.pk: Lxc(b.lxcpath)}
        task = services.create_container(user=user, ctid=CTID, ostemplate=template_name(template.name),
                                         hostname="bench.test", host=a, limits={"disk_mb": 2048, "ram_mb": 512})
        while Task.objects.get(pk=task.pk).status in ("queued", "running"):
            time.sleep(0.05)
        print(f"Filling the root filesystem with {args.size_mb} MB ...", flush=True)
        fill(lxc[a.pk].rootfs(CTID), args.size_mb)
        ct = Container.objects.get(ctid=CTID)
        task = services.start_container(ct, user)
        while Task.objects.get(pk=task.pk).status in ("queued", "running"):
            time.sleep(0.05)
        spec_text = (lxc[a.pk].path(CTID) / "config").read_text()
        used = lxc[a.pk].disk_usage(CTID).used_bytes
        print(f"Container {CTID}: {used / 1e6:.0f} MB used, {args.n} runs of each", flush=True)

        panel, raw, plain = [], [], []
        here, there = a, b
        for i in range(args.n):
            src_lxc, dst_lxc = lxc[here.pk], lxc[there.pk]
            raw.append(raw_two_pass(src_lxc, dst_lxc, CTID, spec_text.replace(str(a.lxcpath), str(here.lxcpath))))
            plain.append(plain_stop_copy_start(src_lxc, dst_lxc, CTID,
                                               spec_text.replace(str(a.lxcpath), str(here.lxcpath))))
            ct = Container.objects.get(ctid=CTID)
            writer = churn(src_lxc, CTID)
            writer.start()
            task = services.migrate_container(ct, user, there, online=True)
            while Task.objects.get(pk=task.pk).status in ("queued", "running"):
                time.sleep(0.05)
            writer.join()
            task = Task.objects.get(pk=task.pk)
            if task.status != "ok":
                raise SystemExit(f"migration failed: {task.error}\n{task.log}")
            panel.append(task.result["downtime_seconds"])
            print(f"run {i + 1}: panel {panel[-1]:.3f} s (first copy {task.result['copy_seconds']:.2f} s, "
                  f"second {task.result['second_copy_seconds']:.3f} s), raw two-pass {raw[-1]:.3f} s, "
                  f"stop-copy-start {plain[-1]:.3f} s", flush=True)
            here, there = there, here

        med = statistics.median
        print()
        print(f"{'panel vzmigrate --online downtime':42s} median {med(panel):6.3f} s  (min {min(panel):.3f}, max {max(panel):.3f})")
        print(f"{'(a) raw two-pass by hand':42s} median {med(raw):6.3f} s  (min {min(raw):.3f}, max {max(raw):.3f})")
        print(f"{'(b) plain stop-copy-start':42s} median {med(plain):6.3f} s  (min {min(plain):.3f}, max {max(plain):.3f})")
        print(f"panel / (a) = {med(panel) / med(raw):.2f}x (target <= 1.5x); panel / (b) = {med(panel) / med(plain):.3f}x; "
              f"panel under 2 s: {'yes' if med(panel) < 2 else 'NO'}")
    finally:
        for agent in agents:
            agent.terminate()
        for agent in agents:
            try:
                agent.wait(20)
            except subprocess.TimeoutExpired:
                agent.kill()
        for lxcpath in lxcpaths.values():  # only what is ours: the lxcpaths may hold other containers
            if lxcpath.is_dir():
                for entry in lxcpath.iterdir():
                    if entry.name == str(CTID) or f"-{CTID}-" in entry.name:
                        subprocess.run(["lxc-stop", "-n", str(CTID), "-P", str(lxcpath), "-k"], capture_output=True)
                        subprocess.run(["umount", "-l", str(entry / "rootfs")], capture_output=True)
                        shutil.rmtree(entry, ignore_errors=True)
        redis.terminate()
        shutil.rmtree(RUN, ignore_errors=True)


if __name__ == "__main__":
    main()
