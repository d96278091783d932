#!/usr/bin/env python3
"""Density: what one container costs the host in each storage layout, run by hand as root (not
part of `make test`).

For each layout it makes and starts --count busybox containers (default 50) with the panel's
engine (containers/engine/lxc.py, as the agent does), then reports per container:

  disk      real disk used (allocated blocks: du of the container's directory on the host,
            the disk image counted as what it allocates, not its size)
  memory    the host's MemAvailable before and after (delta), and the containers' own cgroup
            memory (memory.usage_in_bytes, or memory.current on cgroup v2)
  loops     loop devices in use (delta)
  mounts    mount points (delta, this mount namespace)
  slab      kernel slab, Slab and SUnreclaim from /proc/meminfo (delta)
  time      create and start, each

then stops and removes them and checks that loop devices and mounts are back where they were.
Host-wide figures (MemAvailable, slab, loops, mounts) see everything else the machine does in
the meantime: run it on a quiet host, and read them as the order of magnitude they are.

Layouts today:
  dir        no disk quota: the root filesystem is a plain directory under the lxcpath
  xfs-image  a per-container XFS image on a loop device (the disk quota), --disk-mb in size
             (default 300, the smallest the panel makes)
Another layout is one more entry in LAYOUTS (a Layout with its spec and, if it counts disk
differently, its own disk_used): btrfs subvolumes in a storage pool, for example.

    .venv/bin/python bench/bench_density.py [--count 50] [--layouts dir,xfs-image] [--disk-mb 300]
                                             [--ctid-range 61000-61999] [--lxcpath DIR]

It uses --count CTIDs of the range, refuses to start when one of them is a container of the live
panel or has anything under the lxcpath, and removes all it made, so it runs beside a live panel.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import benchlib

BASE = Path(__file__).resolve().parent.parent
RUN = benchlib.run_dir("vzpb-density-")
sys.path.insert(0, str(BASE))

from containers.engine.cgroups import Cgroup, detect_version  # noqa: E402 (after the path is set)
from containers.engine.lxc import ContainerSpec, Lxc  # noqa: E402

MIB = 1 << 20


@dataclass
class Layout:
    name: str
    what: str

    def spec(self, ctid: int, args) -> ContainerSpec:
        return ContainerSpec(ctid, f"d{ctid}")

    def unavailable(self) -> str | None:
        """Why this host cannot make containers of this layout, or None."""
        return None

    def disk_used(self, lxc: Lxc, ctids: list[int]) -> int:
        """Bytes of real disk the containers take: allocated blocks under each container's
        directory, not crossing into mounted filesystems (a disk image counts as the blocks it
        allocates on the host, its mounted contents not again)."""
        out = subprocess.run(["du", "-s", "-x", "-B1", "--total", *[str(lxc.path(c)) for c in ctids]],
                             capture_output=True, text=True, check=True).stdout
        return int(out.splitlines()[-1].split()[0])


class PlainDirectory(Layout):
    pass


class XfsImage(Layout):
    def spec(self, ctid: int, args) -> ContainerSpec:
        return ContainerSpec(ctid, f"d{ctid}", disk_mb=args.disk_mb)

    def unavailable(self) -> str | None:
        from shutil import which
        return None if which("mkfs.xfs") else "mkfs.xfs is not installed (xfsprogs)"


LAYOUTS = [
    PlainDirectory("dir", "no disk quota: a plain directory under the lxcpath"),
    XfsImage("xfs-image", "disk quota: a per-container XFS image on a loop device"),
]


def meminfo() -> dict[str, int]:
    values = {}
    with open("/proc/meminfo") as fh:
        for line in fh:
            key, rest = line.split(":", 1)
            values[key] = int(rest.split()[0]) * 1024
    return values


def loop_devices() -> int:
    """Loop devices with a file behind them."""
    count = 0
    for dev in Path("/sys/block").glob("loop*"):
        try:
            count += bool((dev / "loop" / "backing_file").read_text().strip())
        except OSError:
            pass
    return count


def mounts() -> int:
    with open("/proc/self/mountinfo") as fh:
        return sum(1 for _ in fh)


def host_state() -> dict[str, int]:
    os.sync()
    info = meminfo()
    return {"available": info["MemAvailable"], "slab": info["Slab"], "unreclaimable": info["SUnreclaim"],
            "loops": loop_devices(), "mounts": mounts()}


def cgroup_memory(ctids: list[int]) -> int:
    version = detect_version()
    rel = "memory/memory.usage_in_bytes" if version == 1 else "memory.current"
    total = 0
    for ctid in ctids:
        try:
            total += int(Cgroup(str(ctid), version=version).path(rel).read_text())
        except (OSError, ValueError):
            pass
    return total


def measure(layout: Layout, lxc: Lxc, template: Path, ctids: list[int], args) -> dict:
    before = host_state()
    create, start, made = [], [], []
    try:
        for ctid in ctids:
            t0 = time.perf_counter()
            lxc.create(layout.spec(ctid, args), template)
            made.append(ctid)
            t1 = time.perf_counter()
            lxc.start(ctid)
            start.append(time.perf_counter() - t1)
            create.append(t1 - t0)
        time.sleep(args.settle)  # the inits settle, the kernel's lazy work is done
        after = host_state()
        figures = {
            "disk": layout.disk_used(lxc, made) / len(made),
            "available": (before["available"] - after["available"]) / len(made),
            "cgroup": cgroup_memory(made) / len(made),
            "loops": (after["loops"] - before["loops"]) / len(made),
            "mounts": (after["mounts"] - before["mounts"]) / len(made),
            "slab": (after["slab"] - before["slab"]) / len(made),
            "unreclaimable": (after["unreclaimable"] - before["unreclaimable"]) / len(made),
            "create": statistics.median(create), "start": statistics.median(start),
        }
    finally:
        for ctid in reversed(made):
            lxc.kill(ctid)
            lxc.destroy(ctid)
    left = host_state()
    figures["left"] = {k: left[k] - before[k] for k in ("loops", "mounts") if left[k] != before[k]}
    return figures


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=50, help="containers started in each layout")
    ap.add_argument("--layouts", default=",".join(layout.name for layout in LAYOUTS))
    ap.add_argument("--disk-mb", type=int, default=300, help="size of each XFS image (the panel's disk_mb)")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds waited after the last start")
    benchlib.add_arguments(ap, "61000-61999", RUN / "lxc")
    args = ap.parse_args()
    ctids = benchlib.refuse_taken(args, need=args.count)
    chosen = [layout for layout in LAYOUTS if layout.name in args.layouts.split(",")]
    if not chosen:
        sys.exit(f"no such layout: {args.layouts}; there are {', '.join(layout.name for layout in LAYOUTS)}")
    lxcpath = args.lxcpath.resolve()
    if not lxcpath.exists():  # enter, not list: a container's root (an unprivileged id) walks through it
        lxcpath.mkdir(parents=True)
        lxcpath.chmod(0o711)
    from containers.engine.busybox import build_busybox_template
    template = build_busybox_template(RUN / "templates")
    lxc = Lxc(lxcpath)
    results = {}
    for layout in chosen:
        if why := layout.unavailable():
            print(f"{layout.name}: left out, {why}")
            continue
        print(f"{layout.name}: {args.count} busybox containers ({layout.what}) ...", flush=True)
        results[layout.name] = measure(layout, lxc, template, ctids, args)

    print(f"\nPer container, {args.count} running busybox containers of each layout"
          + (f" (XFS images of {args.disk_mb} MiB)" if "xfs-image" in results else "") + ":")
    rows = [("real disk used", "disk", MIB, "MiB"), ("host MemAvailable drop", "available", MIB, "MiB"),
            ("cgroup memory (the container's own)", "cgroup", MIB, "MiB"), ("loop devices", "loops", 1, ""),
            ("mounts", "mounts", 1, ""), ("kernel slab", "slab", 1024, "KiB"),
            ("  of it unreclaimable", "unreclaimable", 1024, "KiB"), ("create (median)", "create", 0.001, "ms"),
            ("start (median)", "start", 0.001, "ms")]
    names = list(results)
    print(f"{'':38s}" + "".join(f"{name:>14s}" for name in names))
    for label, key, unit, unit_name in rows:
        print(f"{label:38s}" + "".join(f"{results[n][key] / unit:>10.1f} {unit_name:3s}" for n in names))
    for name in names:
        if results[name]["left"]:
            print(f"{name}: NOT back where it was after removal: {results[name]['left']}")
    print("Loop devices and mounts back where they were after removal: "
          + ("yes" if not any(results[n]["left"] for n in names) else "NO"))


if __name__ == "__main__":
    main()
