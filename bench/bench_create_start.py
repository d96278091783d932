#!/usr/bin/env python3
"""Benchmarks, run by hand as root (not part of `make test`):

1. Container create+start through the panel (from the moment the task is queued
   until the container runs) against the raw tools on the same template in the
   same run: tar extraction + config + `lxc-start` + `lxc-wait`. Target: <= 1.3x.
2. Enqueue-to-agent-start latency of a no-op task. Target: median < 50 ms.

    .venv/bin/python bench/bench_create_start.py [-n 15] [--noop 200]

Everything lives in a temporary directory with its own redis-server, database,
lxcpath and agent; all of it is removed at the end.
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
RUN = Path(tempfile.mkdtemp(prefix="vzpb-"))
os.environ.update({
    "PANEL_VAR_DIR": str(RUN), "PANEL_LXCPATH": str(RUN / "lxc"), "PANEL_TEMPLATE_DIR": str(RUN / "templates"),
    "PANEL_HOST_NAME": "bench", "REDIS_URL": f"unix://{RUN}/run/redis.sock?db=0",
    "DJANGO_SETTINGS_MODULE": "panel.settings", "PANEL_AGENT_RECONCILE_SECONDS": "3600",
})
sys.path.insert(0, str(BASE))


def summary(name, values):
    ms = sorted(v * 1000 for v in values)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    print(f"{name:44s} median {statistics.median(ms):8.1f} ms  min {ms[0]:8.1f}  max {ms[-1]:8.1f}  p95 {p95:8.1f}  (n={len(ms)})")
    return statistics.median(ms)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=15, help="containers per side")
    ap.add_argument("--noop", type=int, default=200, help="no-op tasks for the latency measurement")
    args = ap.parse_args()

    import django
    django.setup()
    from django.core.management import call_command
    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model
    User = get_user_model()

    from containers import services
    from containers.engine.busybox import build_busybox_template
    from containers.engine.lxc import ContainerSpec, Lxc
    from containers.engine.templates import template_name
    from hosts.models import Host
    from tasks.models import Task
    from tasks.services import submit_task

    from tasks.redis_server import prepare
    redis_argv, redis_sock = prepare(RUN, web_group=None, persist=False)  # with its ACL users, as `make run`
    redis = subprocess.Popen(redis_argv, stdout=subprocess.DEVNULL)
    agent = None
    lxc = Lxc(RUN / "lxc")
    try:
        while not redis_sock.exists():
            time.sleep(0.02)
        template = build_busybox_template(RUN / "templates")
        tname = template_name(template.name)
        user = User.objects.create_superuser("bench", "", "bench-pass-123")
        call_command("register_host", "bench", verbosity=0, stdout=open(os.devnull, "w"))
        host = Host.objects.get(name="bench")
        from hosts.services import issue_token
        agent_env = dict(os.environ, PANEL_HOST_TOKEN=issue_token(None, host))
        agent = subprocess.Popen([sys.executable, str(BASE / "manage.py"), "agent", "--host", "bench"], env=agent_env,
                                 cwd=BASE, stdout=open(RUN / "agent.log", "w"), stderr=subprocess.STDOUT)
        while not Host.objects.get(pk=host.pk).agent_seen_at or not host.templates.exists():
            time.sleep(0.05)
        time.sleep(0.5)

        def wait(task):
            while True:
                task.refresh_from_db()
                if task.status not in ("queued", "running"):
                    assert task.status == "ok", task.log
                    return
                time.sleep(0.002)

        panel_times, raw_times, raw_image_times = [], [], []
        submit_times, agent_times = [], []
        for i in range(args.n):
            # Alternate sides so drift on the machine hits both alike.
            ctid = 20000 + i
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

            ctid = 30000 + i
            path = RUN / "lxc" / str(ctid)
            t0 = time.perf_counter()
            (path / "rootfs").mkdir(parents=True)
            subprocess.run(["tar", "-x", "-p", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-f", str(template),
                            "-C", str(path / "rootfs")], check=True)
            (path / "config").write_text(lxc.render_config(ContainerSpec(ctid, f"r{ctid}")))
            subprocess.run(["lxc-start", "-n", str(ctid), "-P", str(RUN / "lxc"), "-d"], check=True)
            subprocess.run(["lxc-wait", "-n", str(ctid), "-P", str(RUN / "lxc"), "-s", "RUNNING", "-t", "30"], check=True)
            raw_times.append(time.perf_counter() - t0)
            subprocess.run(["lxc-stop", "-n", str(ctid), "-P", str(RUN / "lxc"), "-k"], check=True)
            shutil.rmtree(path)

            # The same by hand on the panel's disk layout: an XFS image, loop-mounted, as rootfs.
            ctid = 40000 + i
            path = RUN / "lxc" / str(ctid)
            t0 = time.perf_counter()
            (path / "rootfs").mkdir(parents=True)
            with open(path / "root.img", "wb") as fh:
                fh.truncate((2048 + 64) * 1024 * 1024)
            subprocess.run(["mkfs.xfs", "-q", "-f", "-K", str(path / "root.img")], check=True)
            subprocess.run(["mount", "-o", "loop,noatime", str(path / "root.img"), str(path / "rootfs")], check=True)
            subprocess.run(["tar", "-x", "-p", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-f", str(template),
                            "-C", str(path / "rootfs")], check=True)
            (path / "config").write_text(lxc.render_config(ContainerSpec(ctid, f"r{ctid}")))
            subprocess.run(["lxc-start", "-n", str(ctid), "-P", str(RUN / "lxc"), "-d"], check=True)
            subprocess.run(["lxc-wait", "-n", str(ctid), "-P", str(RUN / "lxc"), "-s", "RUNNING", "-t", "30"], check=True)
            raw_image_times.append(time.perf_counter() - t0)
            subprocess.run(["lxc-stop", "-n", str(ctid), "-P", str(RUN / "lxc"), "-k"], check=True)
            subprocess.run(["umount", str(path / "rootfs")], check=True)
            shutil.rmtree(path)

        print(f"Create+start of {tname} ({template.stat().st_size // 1024} KiB), {args.n} each, same run:")
        panel = summary("panel (queued -> running)", panel_times)
        summary("  of which: request (validate, queue)", submit_times)
        summary("  of which: agent (task start -> end)", agent_times)
        raw = summary("raw, rootfs on / (tar + lxc-start)", raw_times)
        raw_image = summary("raw, same disk image (mkfs+mount+tar+start)", raw_image_times)
        print(f"{'ratio panel/raw, same layout':34s} {panel / raw_image:.2f}x   target <= 1.3x")
        print(f"{'ratio panel/raw, rootfs on /':34s} {panel / raw:.2f}x")

        latencies = []
        for _ in range(args.noop):
            task = submit_task(type="noop", host=host)  # autocommit: enqueued at once
            t_enqueued = time.time()
            wait(task)
            latencies.append(max(0.0, task.started_at.timestamp() - t_enqueued))
        print("Enqueue -> agent start of a no-op task:")
        med = summary("latency", latencies)
        print(f"{'':34s} target: median < 50 ms -> {'met' if med < 50 else 'NOT met'}")
    finally:
        if agent:
            agent.terminate()
            agent.wait(20)
        for entry in (RUN / "lxc").glob("*"):
            subprocess.run(["lxc-stop", "-n", entry.name, "-P", str(RUN / "lxc"), "-k"], capture_output=True)
            subprocess.run(["umount", str(entry / "rootfs")], capture_output=True)
        redis.terminate()
        shutil.rmtree(RUN, ignore_errors=True)


if __name__ == "__main__":
    main()
