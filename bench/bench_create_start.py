#!/usr/bin/env python3
"""Benchmarks, run by hand as root (not part of `make test`):

1. Container create+start through the panel (from the moment the service is called until the
   container runs, as a user of the API waits) against the raw tools on the same template, in the
   same run, interleaved: on the panel's disk layout (an XFS image: truncate, mkfs.xfs, mount,
   tar -x, config, `lxc-start -d`) and with the rootfs a plain directory. Neither side runs
   `lxc-wait -s RUNNING`: `lxc-start -d` exits 0 only once LXC has reported RUNNING (LXC >= 3).
   Target: within 1.2x of the raw tools on the same layout (issue 22).
2. Enqueue-to-agent-start latency of a no-op task. Target: median < 50 ms.

    .venv/bin/python bench/bench_create_start.py [--ctids 73000-73099] [--lxcpath DIR] [-n 15]
                                                 [--noop 200] [--code CHECKOUT]

Everything but the lxcpath lives in a temporary directory with its own redis-server, database and
agent; it uses only the CTIDs given (3 per round: panel, raw image, raw directory), refuses any
that exist in the lxcpath already, and removes what it made at the end, so it can run beside a
live panel without touching it. --code runs the agent of another checkout (the same database
schema), for example main's, to compare before and after.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
RUN = Path(tempfile.mkdtemp(prefix="vzpb-create-"))
sys.path.insert(0, str(BASE))
from bench.benchlib import (claim_ctids, ctid_range, remove_containers, start_agent, start_redis,  # noqa: E402
                            stop_process, summary, use_own_panel)

TAR_X = ["tar", "-x", "-p", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-f"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ctids", default="73000-73099", help="FIRST-LAST: the CTIDs the bench may use (3 per round)")
    ap.add_argument("--lxcpath", default=str(RUN / "lxc"), help="where the containers go (root's alone)")
    ap.add_argument("-n", type=int, default=15, help="containers per side")
    ap.add_argument("--noop", type=int, default=200, help="no-op tasks for the latency measurement")
    ap.add_argument("--code", default=str(BASE), help="the checkout whose agent runs the tasks")
    args = ap.parse_args()
    lxcpath, code = Path(args.lxcpath), Path(args.code)
    ctids = ctid_range(args.ctids)
    if len(ctids) < 3 * args.n:
        sys.exit(f"--ctids names {len(ctids)} CTIDs; {args.n} rounds need {3 * args.n}")
    ctids = ctids[:3 * args.n]
    claim_ctids(lxcpath, ctids)
    use_own_panel(RUN, lxcpath, "bench-create", PANEL_AGENT_RECONCILE_SECONDS="3600")

    import django
    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    call_command("migrate", verbosity=0)

    from containers import services
    from containers.engine.busybox import build_busybox_template
    from containers.engine.lxc import ContainerSpec, Lxc
    from containers.engine.templates import template_name
    from hosts.models import Host
    from tasks.services import submit_task

    redis = agent = None
    lxc = Lxc(lxcpath)
    base = ["-P", str(lxcpath)]
    try:
        redis = start_redis(RUN)
        template = build_busybox_template(RUN / "templates")
        tname = template_name(template.name)
        user = get_user_model().objects.create_superuser("bench", "", "bench-pass-123")
        call_command("register_host", "bench-create", verbosity=0, stdout=open(os.devnull, "w"))
        host = Host.objects.get(name="bench-create")
        agent = start_agent(host, code, RUN)
        disk_mb = settings.DEFAULT_LIMITS["disk_mb"]  # the panel's own default, for the raw image too

        def wait(task):
            while True:
                task.refresh_from_db()
                if task.status not in ("queued", "running"):
                    if task.status != "ok":
                        raise SystemExit(f"task {task.pk} ({task.type}) {task.status}: {task.error}")
                    return
                time.sleep(0.002)

        def raw_create_start(ctid: int, image: bool) -> float:
            path = lxcpath / str(ctid)
            t0 = time.perf_counter()
            (path / "rootfs").mkdir(parents=True)
            if image:
                with open(path / "root.img", "wb") as fh:
                    fh.truncate((disk_mb + 64) * 1024 * 1024)
                subprocess.run(["mkfs.xfs", "-q", "-f", "-K", str(path / "root.img")], check=True)
                subprocess.run(["mount", "-o", "loop,noatime", str(path / "root.img"), str(path / "rootfs")],
                               check=True)
            subprocess.run([*TAR_X, str(template), "-C", str(path / "rootfs")], check=True)
            (path / "config").write_text(lxc.render_config(ContainerSpec(ctid, f"r{ctid}")))
            subprocess.run(["lxc-start", "-n", str(ctid), *base, "-d"], check=True)
            elapsed = time.perf_counter() - t0
            subprocess.run(["lxc-stop", "-n", str(ctid), *base, "-k"], check=True)
            if image:
                subprocess.run(["umount", str(path / "rootfs")], check=True)
            shutil.rmtree(path)
            return elapsed

        panel_times, submit_times, agent_times, raw_image_times, raw_dir_times = [], [], [], [], []
        for i in range(args.n):
            # Alternate sides so that drift on the machine hits all alike.
            ctid = ctids[3 * i]
            t0 = time.perf_counter()
            task = services.create_container(user=user, ctid=ctid, ostemplate=tname, hostname=f"b{ctid}",
                                             host=host, start=True)
            submitted = time.perf_counter()
            wait(task)
            panel_times.append(time.perf_counter() - t0)
            submit_times.append(submitted - t0)
            agent_times.append((task.finished_at - task.started_at).total_seconds())
            ct = task.container
            wait(services.stop_container(ct, user))
            wait(services.destroy_container(ct, user, ctid))

            raw_image_times.append(raw_create_start(ctids[3 * i + 1], image=True))
            raw_dir_times.append(raw_create_start(ctids[3 * i + 2], image=False))

        print(f"Create+start of {tname} ({template.stat().st_size // 1024} KiB), {args.n} each, interleaved; "
              f"agent from {code}, containers in {lxcpath}:")
        panel = summary("panel (service called -> running)", panel_times)
        summary("  of which: request (validate, queue)", submit_times)
        summary("  of which: agent (task start -> end)", agent_times)
        raw_image = summary("raw, same disk image (mkfs+mount+tar+start)", raw_image_times)
        raw_dir = summary("raw, rootfs a directory (tar + lxc-start)", raw_dir_times)
        print(f"{'ratio panel / raw, same layout':46s} {panel / raw_image:.2f}x   target <= 1.2x")
        print(f"{'ratio panel / raw, rootfs a directory':46s} {panel / raw_dir:.2f}x")

        latencies = []
        for _ in range(args.noop):
            task = submit_task(type="noop", host=host)  # autocommit: enqueued at once
            t_enqueued = time.time()
            wait(task)
            latencies.append(max(0.0, task.started_at.timestamp() - t_enqueued))
        print("Enqueue -> agent start of a no-op task:")
        med = summary("latency", latencies)
        print(f"{'':46s} target: median < 50 ms -> {'met' if med < 50 else 'NOT met'}")
    finally:
        stop_process(agent)
        remove_containers(lxcpath, ctids)
        stop_process(redis)
        shutil.rmtree(RUN, ignore_errors=True)


if __name__ == "__main__":
    main()
