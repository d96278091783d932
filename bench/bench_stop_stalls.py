#!/usr/bin/env python3
"""Stalls of tasks while the agent does its housekeeping (issue 22), run by hand as root (not part
of `make test`):

    .venv/bin/python bench/bench_stop_stalls.py [--ctid-range 71000-71999] [--lxcpath DIR] [-n 30]
                                                [--stopped 0] [--cycles 100] [--code CHECKOUT]

With N running busybox containers made through the panel and a real agent (`manage.py agent`)
doing its housekeeping (heartbeat, reconcile, sampling every 10 s, consolidation every minute),
it runs --cycles stop+start cycles, one container after the other, and beside each panel stop,
interleaved, a raw `lxc-stop` (the agent's own arguments) of another of the same containers,
then a raw `lxc-start` back. A cycle takes some seconds, so 100 of them take several minutes and
several consolidation passes fall among them. It prints the median, p95 and p99 of the panel's
stop (queued to done, as a user waits, and the task's own time in the agent) next to raw
`lxc-stop` from the same run, and the slowest panel stops with their second in the minute.

--stopped M adds M stopped containers with an hour of samples each (rows, a minimal LXC config
and an empty rootfs, as bench_agent_idle makes them), which give consolidation and reconcile the
weight of a full host. --code runs the agent from another checkout (the same database schema),
for example main's, whose housekeeping is a thread of the agent, to compare the two.

Everything but the lxcpath lives in a temporary directory with its own redis-server, database
and agent; it uses only the CTIDs given, refuses any that is a container of the live panel or has
anything under the lxcpath already (bench/benchlib.py), and
removes what it made at the end, so it can run beside a live panel without touching it.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import benchlib  # first: it keeps the environment the bench started in, to find the live panel's database
import benchenv

BASE = benchenv.BASE
RUN = benchlib.run_dir("vzpb-stalls-")


def percentile(sorted_values: list[float], p: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(round(p * (len(sorted_values) - 1))))]


def summary(name: str, values: list[float]) -> None:
    ms = sorted(v * 1000 for v in values)
    print(f"{name:46s} median {statistics.median(ms):7.0f} ms  p95 {percentile(ms, 0.95):7.0f}  "
          f"p99 {percentile(ms, 0.99):7.0f}  max {ms[-1]:7.0f}  (n={len(ms)})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    benchlib.add_arguments(ap, "71000-71999", RUN / "lxc")
    ap.add_argument("-n", type=int, default=30, help="running busybox containers")
    ap.add_argument("--stopped", type=int, default=0, help="stopped containers with sample history besides")
    ap.add_argument("--cycles", type=int, default=100, help="panel stop+start cycles (as many raw ones)")
    ap.add_argument("--code", default=str(BASE), help="the checkout whose manage.py runs the agent")
    args = ap.parse_args()
    if args.n < 2:
        sys.exit("need at least 2 running containers")
    lxcpath = Path(args.lxcpath)
    ctids = benchlib.refuse_taken(args, need=args.n + args.stopped)
    benchenv.isolate(RUN, lxcpath, "bench-stalls")
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.utils import timezone

    from containers import services
    from containers.engine.busybox import build_busybox_template
    from containers.engine.templates import template_name
    from containers.models import Container
    from hosts.models import Host
    from metrics.models import Sample

    redis = benchenv.start_redis(RUN)
    agent = None
    made: list[int] = []
    wait = benchenv.wait
    try:
        benchenv.make_lxcpath(lxcpath)
        template = build_busybox_template(RUN / "templates")
        user = get_user_model().objects.create_superuser("bench", "", "bench-pass-123")
        call_command("register_host", "bench-stalls", verbosity=0, stdout=open(os.devnull, "w"))
        host = Host.objects.get(name="bench-stalls")

        stopped_ctids = ctids[args.n:]
        benchenv.define_stopped(lxcpath, stopped_ctids, host, made)
        stopped_at, history = timezone.now() - timedelta(minutes=10), []
        for ct in Container.objects.filter(ctid__in=stopped_ctids):
            history += [Sample(container=ct, tier=0, at=stopped_at - timedelta(seconds=10 * k), cpu_pct=1.0,
                               mem_bytes=1 << 20, nproc=3) for k in range(300)]
            if len(history) > 50000:
                Sample.objects.bulk_create(history)
                history = []
        Sample.objects.bulk_create(history)
        agent = benchenv.start_agent(host, RUN, Path(args.code))

        stale = []

        def settled(ct, status: str) -> None:
            """Wait until the row says `status` (it does at once unless a reconcile raced the last task)."""
            ct.refresh_from_db()
            if ct.status != status:
                t0 = time.perf_counter()
                while ct.status != status:
                    if time.perf_counter() - t0 > 60:
                        raise SystemExit(f"CT {ct.ctid} still says {ct.status}, not {status}")
                    time.sleep(0.1)
                    ct.refresh_from_db()
                stale.append(time.perf_counter() - t0)

        tname = template_name(template.name)
        running = []
        for ctid in ctids[:args.n]:
            made.append(ctid)
            task = services.create_container(user=user, ctid=ctid, ostemplate=tname, hostname=f"r{ctid}.bench",
                                              host=host, start=True)
            wait(task)
            running.append(Container.objects.get(ctid=ctid, host=host))
        print(f"{args.n} running busybox containers, {args.stopped} stopped with history, in {lxcpath}; "
              f"agent from {args.code}")

        # Half the containers for the panel's stops, half for the raw ones: each is stopped once
        # every few cycles, and the two sides alternate so that whatever the machine does hits both.
        panel_cts, raw_cts = running[::2], running[1::2]
        base = ["-P", str(lxcpath)]
        panel_stop, panel_stop_agent, panel_start, raw_stop, raw_start, when = [], [], [], [], [], []
        began = time.monotonic()
        for cycle in range(args.cycles):
            ct = panel_cts[cycle % len(panel_cts)]
            settled(ct, "running")
            t0 = time.perf_counter()
            task = services.stop_container(ct, user)
            wait(task)
            panel_stop.append(time.perf_counter() - t0)
            panel_stop_agent.append((task.finished_at - task.started_at).total_seconds())
            when.append(time.monotonic() - began)

            raw = str(raw_cts[cycle % len(raw_cts)].ctid)
            t0 = time.perf_counter()
            subprocess.run(["lxc-stop", "-n", raw, *base, "-t", "30"], check=True, capture_output=True)
            raw_stop.append(time.perf_counter() - t0)

            settled(ct, "stopped")
            t0 = time.perf_counter()
            wait(services.start_container(ct, user))
            panel_start.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            subprocess.run(["lxc-start", "-n", raw, *base, "-d"], check=True, capture_output=True)
            subprocess.run(["lxc-wait", "-n", raw, *base, "-s", "RUNNING", "-t", "30"], check=True,
                           capture_output=True)
            raw_start.append(time.perf_counter() - t0)
        minutes = (time.monotonic() - began) / 60

        print(f"{args.cycles} cycles over {minutes:.1f} minutes (about {int(minutes)} consolidation passes):")
        summary("panel stop (queued -> done, as a user waits)", panel_stop)
        summary("  of which in the agent (task start -> end)", panel_stop_agent)
        summary("raw lxc-stop (same arguments), interleaved", raw_stop)
        summary("panel start (queued -> done)", panel_start)
        summary("raw lxc-start -d + lxc-wait RUNNING", raw_start)
        p99_panel, p99_raw = percentile(sorted(panel_stop), 0.99), percentile(sorted(raw_stop), 0.99)
        print(f"{'p99 panel stop / p99 raw lxc-stop':46s} {p99_panel / p99_raw:.2f}x")
        print(f"rows that said the state before a finished task (reconcile raced it): {len(stale)}"
              + (f", wrong for up to {max(stale):.1f} s" if stale else ""))
        slowest = sorted(zip(panel_stop, when), reverse=True)[:5]
        print("slowest panel stops (ms @ seconds since the first cycle):",
              ", ".join(f"{s * 1000:.0f} @ {w:.0f}" for s, w in slowest))
    finally:
        benchenv.tear_down(RUN, lxcpath, made, redis, agent)


if __name__ == "__main__":
    main()
