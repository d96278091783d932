#!/usr/bin/env python3
"""btrfs storage pools (issue 21), run by hand as root (not part of `make test`): the panel's engine
next to the raw btrfs commands, interleaved in the same run, each pair on the same pool.

    .venv/bin/python bench/bench_btrfs.py [--ctids 72100-72109] [--lxcpath DIR] [--rounds 9] [--pool-mb 2048]

What is measured, median and worst of --rounds:
- snapshot: `Lxc.snapshot` of a running busybox container (the panel's path: watchdog, freeze,
  `btrfs subvolume snapshot -r`, thaw), its frozen window (from just before the freeze to just
  after the thaw), next to a raw `btrfs subvolume snapshot -r` of the same subvolume;
- create: `Lxc.create` of a container from the busybox template on the pool (subvolume, qgroup
  limit, bind mount, the template unpacked through the panel's archive checks, identity, config),
  next to raw `btrfs subvolume create` + `tar -xf` of the same template into it.

It makes its own pool (a sparse loop file in the lxcpath's .pools, removed at the end with all it
made) and uses only the CTIDs given, refusing any that exist in the lxcpath, so it can run beside a
live panel.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))

from containers.engine.busybox import build_busybox_template  # noqa: E402
from containers.engine.lxc import ContainerSpec, Lxc  # noqa: E402
from containers.engine.storage import BtrfsPool  # noqa: E402


def ctid_range(text: str) -> range:
    first, _, last = text.partition("-")
    return range(int(first), int(last or first) + 1)


def timed(call) -> float:
    began = time.perf_counter()
    call()
    return time.perf_counter() - began


def report(name: str, panel: list[float], raw: list[float]) -> None:
    p, r = statistics.median(panel), statistics.median(raw)
    print(f"{name:<34} panel median {p * 1000:8.1f} ms (worst {max(panel) * 1000:8.1f})   "
          f"raw median {r * 1000:8.1f} ms (worst {max(raw) * 1000:8.1f})   ratio {p / r:6.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ctids", type=ctid_range, default=ctid_range("72100-72109"))
    parser.add_argument("--lxcpath", default="/var/lib/lxc")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--pool-mb", type=int, default=2048)
    args = parser.parse_args()
    lxcpath = Path(args.lxcpath)
    if len(args.ctids) < 2:
        sys.exit("give at least two CTIDs (one runs, the others are created)")
    taken = [c for c in args.ctids if (lxcpath / str(c)).exists()]
    if taken:
        sys.exit(f"CTIDs already in {lxcpath}: {taken}")
    os.chmod(lxcpath, os.stat(lxcpath).st_mode | 0o001) if lxcpath.exists() else None
    work = Path(tempfile.mkdtemp(prefix="vzpb-btrfs-"))
    template = build_busybox_template(work / "templates")
    name = f"bench{os.getpid()}"
    pool = BtrfsPool(lxcpath / ".pools" / name, loop_file=lxcpath / ".pools" / f"{name}.img")
    ctids = list(args.ctids)
    lxc = Lxc(lxcpath, storage_of=lambda ctid: pool if ctid in args.ctids else None)
    pool.make(args.pool_mb)
    try:
        runner = ctids[0]
        lxc.create(ContainerSpec(ctid=runner, hostname="bench.test", disk_mb=512), template)
        lxc.start(runner)
        lxc.attach(runner, ["sh", "-c", "dd if=/dev/urandom of=/data bs=1M count=50 2>/dev/null; sync"], timeout=120)
        panel, raw, frozen = [], [], []
        for i in range(args.rounds):
            window = {}
            panel.append(timed(lambda: window.update(s=lxc.snapshot(runner, f"p{i}", running=True))))
            frozen.append(window["s"])
            raw.append(timed(lambda: subprocess.run(
                ["btrfs", "subvolume", "snapshot", "-r", str(pool.subvolume_path(runner)),
                 str(pool.mountpoint / "snap" / str(runner) / f"r{i}")], check=True, capture_output=True)))
        report("snapshot of a running container", panel, raw)
        print(f"{'  its frozen window':<34} median {statistics.median(frozen) * 1000:8.1f} ms, "
              f"worst {max(frozen) * 1000:8.1f} ms")
        panel, raw = [], []
        spare = ctids[1:]
        for i in range(args.rounds):
            ctid = spare[i % len(spare)]
            panel.append(timed(lambda: lxc.create(ContainerSpec(ctid=ctid, hostname="b.test", disk_mb=512), template)))
            lxc.destroy(ctid)
            target = pool.mountpoint / "ct" / f"raw{i}"

            def raw_create():
                subprocess.run(["btrfs", "subvolume", "create", str(target)], check=True, capture_output=True)
                subprocess.run(["tar", "-xf", str(template), "-C", str(target)], check=True, capture_output=True)
            raw.append(timed(raw_create))
            pool.delete_subvolume(target)
        report("create from the busybox template", panel, raw)
    finally:
        for ctid in ctids:
            if lxc.exists(ctid):
                lxc.kill(ctid)
                lxc.destroy(ctid)
        pool.remove()
        subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
