#!/usr/bin/env python3
"""Benchmarks for resources and beancounters, run by hand as root (not part of `make test`):

1. Sampling cost: the agent's CPU time per sampling round with 20 and with 50 running
   containers, as a percentage of one core at the 10 s interval (target: under 2 %),
   against the floor: reading the same cgroup files with plain open() and nothing else.
2. The Resources tab with a week of samples: server time of the page and of the week's
   series.json (target: under 200 ms), against the raw SQL query for the same rows.

    .venv/bin/python bench/bench_resources.py [--counts 20,50] [--rounds 10] [--ctid-range 50000-50049]
                                              [--lxcpath DIR]

Containers here are busybox ones on plain directories (no disk images: 50 images would
write 3 GB of XFS logs for nothing the sampler measures differently). It uses as many CTIDs of
the range as the largest count, refuses to start when one of them is a container of the live
panel or has anything under the lxcpath, and keeps its own database in a temporary directory, so
it runs beside a live panel without touching it.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import benchlib

BASE = Path(__file__).resolve().parent.parent
RUN = benchlib.run_dir("vzpb-res-")
sys.path.insert(0, str(BASE))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", default="20,50")
    ap.add_argument("--rounds", type=int, default=10)
    benchlib.add_arguments(ap, "50000-50049", RUN / "lxc")
    args = ap.parse_args()
    counts = [int(n) for n in args.counts.split(",")]
    ctids = benchlib.refuse_taken(args, need=max(counts))
    lxcpath = args.lxcpath.resolve()
    benchlib.use_own_panel(RUN, lxcpath)

    import django
    django.setup()
    from django.core.management import call_command
    call_command("migrate", verbosity=0)
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.utils import timezone

    from containers.engine.busybox import build_busybox_template
    from containers.engine.cgroups import Cgroup
    from containers.engine.lxc import ContainerSpec, Lxc
    from containers.models import Container
    from hosts.models import Host
    from metrics.models import Sample
    from metrics.sampler import Sampler

    template = build_busybox_template(RUN / "templates")
    host = Host.objects.create(name="bench", lxcpath=str(lxcpath), template_dir=str(RUN / "templates"))
    lxc = Lxc(lxcpath)
    started = []
    try:
        for target in counts:
            while len(started) < target:
                ctid = ctids[len(started)]
                lxc.create(ContainerSpec(ctid, f"s{ctid}"), template)
                lxc.start(ctid)
                Container.objects.create(ctid=ctid, hostname=f"s{ctid}", ostemplate="busybox", host=host,
                                         status="running")
                started.append(ctid)
            sampler = Sampler(host, lxc)
            sampler.round()  # warm up: first readings, rows created
            cpu, wall = [], []
            for _ in range(args.rounds):
                c0, w0 = time.process_time(), time.perf_counter()
                assert sampler.round() == target
                cpu.append(time.process_time() - c0)
                wall.append(time.perf_counter() - w0)
            raw = []
            for _ in range(args.rounds):
                c0 = time.process_time()
                for ctid in started:
                    base = Path("/sys/fs/cgroup")
                    for rel in RAW_FILES:
                        try:
                            (base / rel.split("/")[0] / f"lxc.payload.{ctid}" / rel.split("/", 1)[1]).read_text()
                        except OSError:
                            pass
                raw.append(time.process_time() - c0)
            med, raw_med = statistics.median(cpu), statistics.median(raw)
            interval = settings.SAMPLE_SECONDS
            print(f"sampling {target:3d} containers: CPU {med * 1000:7.1f} ms/round (wall {statistics.median(wall) * 1000:.1f} ms)"
                  f" = {100 * med / interval:.2f} % of one core at {interval} s   target < 2 %")
            print(f"  raw floor (read the cgroup files only): {raw_med * 1000:.1f} ms/round; ratio {med / raw_med:.1f}x")

        # A week of samples for one container, then the page and the data behind its week graph.
        ct = Container.objects.get(ctid=started[0])
        Sample.objects.filter(container=ct).delete()
        now = timezone.now()
        rows = []
        for tier, step, count in ((0, 10, 360), (1, 60, 1440), (2, 1800, 336)):
            rows += [Sample(container=ct, tier=tier, at=now - timedelta(seconds=step * k), cpu_pct=1.0, cpu_pct_max=2.0,
                            mem_bytes=1 << 20, mem_bytes_max=1 << 21, nproc=3, nproc_max=4, net_rx_bps=10.0,
                            net_tx_bps=5.0, disk_read_bps=1.0, disk_write_bps=1.0, disk_used=1 << 25,
                            inodes_used=100) for k in range(count)]
        Sample.objects.bulk_create(rows)
        client = Client(HTTP_HOST="localhost")
        client.force_login(get_user_model().objects.create_superuser("bench", "", "bench-pass-123"))
        page, data = [], []
        for _ in range(20):
            t0 = time.perf_counter()
            assert client.get(f"/containers/{ct.ctid}/?tab=resources").status_code == 200
            page.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            assert client.get(f"/containers/{ct.ctid}/series.json?range=week").status_code == 200
            data.append(time.perf_counter() - t0)
        raw = []
        db = sqlite3.connect(settings.DATABASES["default"]["NAME"])
        for _ in range(20):
            t0 = time.perf_counter()
            db.execute("SELECT * FROM metrics_sample WHERE container_id=? AND tier=2 AND at >= ? ORDER BY at",
                       (ct.pk, (now - timedelta(days=7)).isoformat())).fetchall()
            raw.append(time.perf_counter() - t0)
        print(f"Resources tab page:      median {statistics.median(page) * 1000:6.1f} ms   target < 200 ms")
        print(f"week series.json:        median {statistics.median(data) * 1000:6.1f} ms   target < 200 ms")
        print(f"raw SQL for the same rows: median {statistics.median(raw) * 1000:.1f} ms; "
              f"ratio series/raw {statistics.median(data) / statistics.median(raw):.1f}x")
    finally:
        for ctid in started:
            lxc.kill(ctid)
            lxc.destroy(ctid)
        shutil.rmtree(RUN, ignore_errors=True)


RAW_FILES = ["memory/memory.usage_in_bytes", "memory/memory.max_usage_in_bytes", "memory/memory.limit_in_bytes",
             "memory/memory.soft_limit_in_bytes", "memory/memory.failcnt", "memory/memory.memsw.usage_in_bytes",
             "memory/memory.memsw.limit_in_bytes", "memory/memory.memsw.failcnt", "memory/memory.kmem.usage_in_bytes",
             "memory/memory.kmem.max_usage_in_bytes", "memory/memory.kmem.failcnt", "memory/memory.kmem.tcp.usage_in_bytes",
             "memory/memory.oom_control", "pids/pids.current", "pids/pids.max", "pids/pids.peak", "pids/pids.events",
             "cpuacct/cpuacct.usage", "blkio/blkio.throttle.io_service_bytes_recursive"]


if __name__ == "__main__":
    main()
