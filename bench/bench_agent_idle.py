#!/usr/bin/env python3
"""The agent at rest, run by hand as root (not part of `make test`): its CPU use per second with
N stopped containers, next to the raw floor of reading the same things directly, in the same run.

    .venv/bin/python bench/bench_agent_idle.py [--ctid-range 70000-70999] [--lxcpath DIR] [--calls 9]

What runs: the agent's housekeeping duties as its housekeeping process runs them (heartbeat,
reconcile with the template and network listings, a sampling round, a consolidation pass),
each called --calls times; its cost is the CPU time of this process and of the commands it
runs (lxc-ls), and a duty's share of a core is its cost per call over its interval. Not
measured: re-queueing lost jobs (one Redis LRANGE per reconcile) and the RQ worker, which
sleeps in a blocking Redis call. The containers are rows plus a minimal LXC config and an empty
rootfs directory each (what lxc-ls and the agent read of a stopped container; no disk images,
which reconcile would loop-mount), with an hour of raw samples and two hours of minute rows
from before they stopped, so consolidation and pruning have real rows to pass over.

The floor, per duty: the same reads done directly (sqlite3 on the same database, lxc-ls with the
same arguments, /proc/self/mountinfo, the heartbeat's psutil figures).

Its own database (a temporary PANEL_VAR_DIR) and only the CTIDs given, in the lxcpath given: it
refuses CTIDs that are containers of the live panel or have anything under the lxcpath already
(bench/benchlib.py), so it can run beside a live panel without touching it.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import benchlib  # first: it keeps the environment the bench started in, to find the live panel's database

BASE = Path(__file__).resolve().parent.parent
RUN = benchlib.run_dir("vzpb-idle-")
os.environ.update({
    "PANEL_VAR_DIR": str(RUN), "PANEL_TEMPLATE_DIR": str(RUN / "templates"), "PANEL_HOST_NAME": "bench-idle",
    "PANEL_AGENT_DATA_DIR": str(RUN / "agent"), "DJANGO_SETTINGS_MODULE": "panel.settings",
    # no Redis administration from here: the heartbeat's ACL step finds no password and does nothing
    "PANEL_REDIS_ADMIN_PASSWORD_FILE": str(RUN / "no-redis-admin.pass"),
})
for live in ("PANEL_DB_PATH", "PANEL_DATABASE_URL"):  # a live panel's database is never this bench's
    os.environ.pop(live, None)
sys.path.insert(0, str(BASE))


def cpu_seconds() -> float:
    """CPU time of this process and of the commands it waited for (microseconds; os.times counts ticks)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def cost(call, times: int) -> float:
    """Median CPU seconds of one call."""
    call()  # warm: first queries compiled, caches filled
    samples = []
    for _ in range(times):
        c0 = cpu_seconds()
        call()
        samples.append(cpu_seconds() - c0)
    samples.sort()
    return samples[len(samples) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    benchlib.add_arguments(ap, "70000-70999", RUN / "lxc")
    ap.add_argument("--calls", type=int, default=9, help="calls of each duty measured")
    args = ap.parse_args()
    ctids = benchlib.refuse_taken(args)
    first, last = ctids[0], ctids[-1]
    lxcpath = args.lxcpath

    import django
    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.utils import timezone
    call_command("migrate", verbosity=0)

    from containers.engine import sysinfo
    from containers.models import Container
    from hosts.agent import CONSOLIDATE_SECONDS, Agent
    from hosts.models import Host
    from hosts.services import issue_token
    from metrics.consolidate import Consolidator
    from metrics.models import Sample
    from metrics.sampler import Sampler
    from network.jobs import refresh_host_network

    made = []
    try:
        lxcpath.mkdir(mode=0o700, parents=True, exist_ok=True)
        for ctid in ctids:
            path = lxcpath / str(ctid)
            (path / "rootfs").mkdir(parents=True)
            made.append(path)
            (path / "config").write_text(f"lxc.uts.name = {ctid}\nlxc.rootfs.path = dir:{path}/rootfs\n")
        host = Host.objects.create(name="bench-idle", lxcpath=str(lxcpath), template_dir=str(RUN / "templates"),
                                   dump_dir=str(RUN / "dump"))
        token = issue_token(None, host)
        Container.objects.bulk_create([Container(ctid=c, hostname=f"idle{c}.bench", ostemplate="busybox", host=host,
                                                 status="stopped") for c in ctids])
        cts = list(Container.objects.filter(host=host))
        stopped_at = timezone.now() - timedelta(minutes=10)
        history = []
        for ct in cts:
            history += [Sample(container=ct, tier=0, at=stopped_at - timedelta(seconds=10 * k), cpu_pct=1.0,
                               mem_bytes=1 << 20, nproc=3) for k in range(300)]
            history += [Sample(container=ct, tier=1, at=stopped_at - timedelta(minutes=5 + k), cpu_pct=1.0,
                               cpu_pct_max=2.0, mem_bytes=1 << 20, mem_bytes_max=1 << 21, nproc=3, nproc_max=4)
                        for k in range(120)]
            if len(history) > 50000:
                Sample.objects.bulk_create(history)
                history = []
        Sample.objects.bulk_create(history)
        print(f"{len(cts)} stopped containers (CTIDs {first}-{last}) in {lxcpath}, "
              f"{Sample.objects.count()} sample rows; database {settings.DATABASES['default']['NAME']}")

        agent = Agent(host, token)
        sampler = Sampler(host, agent.lxc)
        consolidator = Consolidator(Container.objects.filter(host=host))
        clock = [timezone.now()]

        def consolidate():
            clock[0] += timedelta(seconds=CONSOLIDATE_SECONDS)
            consolidator.run(clock[0])

        def reconcile():  # _reconcile_all without re-queueing lost jobs (Redis)
            agent.sync_authorized_keys()
            agent.reconcile()
            agent.sync_templates()
            refresh_host_network(host)

        c0 = cpu_seconds()
        consolidate()  # the first pass after a start looks at every container once
        first_pass = cpu_seconds() - c0
        agent.reconcile()  # the agent's own at start
        duties = {  # name: (call, interval in seconds)
            "heartbeat": (agent.heartbeat, settings.AGENT_HEARTBEAT_SECONDS),
            "reconcile": (reconcile, settings.AGENT_RECONCILE_SECONDS),
            "sample": (sampler.round, settings.SAMPLE_SECONDS),
            "consolidate": (consolidate, CONSOLIDATE_SECONDS),
        }
        db = sqlite3.connect(settings.DATABASES["default"]["NAME"])
        lxc_ls = ["lxc-ls", "-P", str(lxcpath), "--fancy", "-F", "NAME,STATE"]

        def raw_heartbeat():
            stats = sysinfo.host_stats(str(lxcpath))
            db.execute("UPDATE hosts_host SET agent_seen_at=?, stats=? WHERE id=?",
                       (timezone.now().isoformat(), json.dumps(stats), host.pk))
            db.commit()

        def raw_reconcile():
            subprocess.run(lxc_ls, capture_output=True, check=True)
            db.execute("SELECT id, ct_id, status, nproc, lock_task_id FROM containers_container WHERE host_id=?",
                       (host.pk,)).fetchall()
            Path("/proc/self/mountinfo").read_text()

        def raw_sample():
            db.execute("SELECT id FROM containers_container WHERE host_id=? AND status='running'", (host.pk,)).fetchall()

        def raw_consolidate():
            ids = [r[0] for r in db.execute("SELECT id FROM containers_container WHERE host_id=?", (host.pk,))]
            db.execute(f"SELECT DISTINCT container_id FROM metrics_sample WHERE tier=0 AND at>=? AND "
                       f"container_id IN ({','.join('?' * len(ids))})", (clock[0].isoformat(), *ids)).fetchall()

        floors = {"heartbeat": raw_heartbeat, "reconcile": raw_reconcile, "sample": raw_sample,
                  "consolidate": raw_consolidate}
        total = floor_total = 0.0
        print(f"{'duty':12s} {'every':>6s} {'agent ms/call':>14s} {'floor ms/call':>14s} {'agent % core':>13s}"
              f" {'floor % core':>13s}")
        for name, (call, every) in duties.items():
            agent_cost, floor_cost = cost(call, args.calls), cost(floors[name], args.calls)
            total += agent_cost / every
            floor_total += floor_cost / every
            print(f"{name:12s} {every:5d}s {agent_cost * 1000:14.1f} {floor_cost * 1000:14.1f}"
                  f" {100 * agent_cost / every:12.3f}% {100 * floor_cost / every:12.3f}%")
        print(f"agent at rest with {len(cts)} stopped containers: {100 * total:.3f} % of one core "
              f"(target < 1 %); raw floor {100 * floor_total:.3f} %; ratio {total / floor_total:.2f}x")
        print(f"first consolidation pass after a start (every container looked at once): {first_pass * 1000:.0f} ms CPU")
        changed = Container.objects.filter(host=host).exclude(status="stopped").count()
        print(f"rows reconcile changed: {changed} (all stopped, as LXC says)")
    finally:
        for path in made:  # only what this run made, in a shared lxcpath too
            shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(RUN, ignore_errors=True)


if __name__ == "__main__":
    main()
