#!/usr/bin/env python3
"""`vzctl exec CT true` through the REST API against the raw tool (issue 22), run by hand as root
(not part of `make test`):

    .venv/bin/python bench/bench_exec.py [--ctids 72000-72009] [--lxcpath DIR] [-n 100]
                                         [--poll 0.005] [--lxd INSTANCE] [--code CHECKOUT]

One busybox container made through the panel; then, interleaved in the same run, n times each:
- the API as a client uses it: POST /api/containers/CT/exec/ with an API token, over one kept-alive
  HTTP connection to gunicorn (as runpanel starts it), until the command's exit status is in hand:
  with `"wait"` the answer carries it; an answer without it (202: a checkout whose API has no
  `wait`, or a wait that ran out) is followed by GET /api/tasks/ID/ every --poll seconds;
- `lxc-attach` with the agent's own arguments (--clear-env, PATH) on the same container;
- `lxc exec INSTANCE -- true` on an LXD instance you name with --lxd, when LXD's `lxc` client is
  installed (this bench never installs or creates anything in LXD).
It prints the medians, p95 and the ratios, and where the API's time goes, from the task's own
timestamps: request (POST sent until the task row exists), queue (row made until the agent claims
it), agent (claimed until finished) and answer (finished until the client has the result).

Everything but the lxcpath lives in a temporary directory with its own redis-server, database,
agent and gunicorn; it uses only the CTIDs given, refuses any that exist in the lxcpath already,
and removes what it made at the end, so it can run beside a live panel without touching it.
--code runs the agent and gunicorn from another checkout (the same database schema), for
example main's, to compare before and after.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
RUN = Path(tempfile.mkdtemp(prefix="vzpb-exec-"))
sys.path.insert(0, str(BASE))
from bench.benchlib import (claim_ctids, ctid_range, remove_containers, start_agent, start_redis,  # noqa: E402
                            stop_process, summary, use_own_panel)

LXC_ATTACH_ENV = ["--clear-env", "--set-var", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    """One kept-alive HTTP connection to the panel, authenticated with an API token."""

    def __init__(self, port: int, token: str):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Authorization": f"Token {token}", "Content-Type": "application/json",
                        "Host": "127.0.0.1"}

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        self.conn.request(method, path, json.dumps(body) if body is not None else None, self.headers)
        response = self.conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")


def api_exec(api: Api, ctid: int, poll: float) -> tuple[float, int, float, float]:
    """POST the exec and wait for its end as a client does; (seconds, task id, and the wall clock
    at the start and at the end, to place the task's own timestamps between them)."""
    wall0, t0 = time.time(), time.perf_counter()
    status, answer = api.call("POST", f"/api/containers/{ctid}/exec/", {"command": ["true"], "wait": 20})
    if status not in (200, 202):
        raise SystemExit(f"exec answered {status}: {answer}")
    task = answer["task"]
    while task["status"] in ("queued", "running"):
        time.sleep(poll)
        status, task = api.call("GET", f"/api/tasks/{task['id']}/")
    elapsed, wall1 = time.perf_counter() - t0, time.time()
    if task["status"] != "ok" or (task.get("result") or {}).get("exit_code") != 0:
        raise SystemExit(f"exec task {task['id']} ended {task['status']}: {task.get('error')}")
    return elapsed, task["id"], wall0, wall1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ctids", default="72000-72009", help="FIRST-LAST: the CTIDs the bench may use (it uses one)")
    ap.add_argument("--lxcpath", default=str(RUN / "lxc"), help="where the container goes (root's alone)")
    ap.add_argument("-n", type=int, default=100, help="execs of each kind")
    ap.add_argument("--poll", type=float, default=0.005, help="seconds between GETs of a task not yet ended")
    ap.add_argument("--lxd", default="", help="a running LXD instance to time `lxc exec` on (needs LXD's client)")
    ap.add_argument("--code", default=str(BASE), help="the checkout whose agent and gunicorn run")
    args = ap.parse_args()
    lxcpath, code = Path(args.lxcpath), Path(args.code)
    ctid = ctid_range(args.ctids)[0]
    claim_ctids(lxcpath, [ctid])
    lxd = shutil.which("lxc") if args.lxd else None
    use_own_panel(RUN, lxcpath, "bench-exec", PANEL_WEB_USER="")

    import django
    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    call_command("migrate", verbosity=0)

    from accounts.tokens import create_token
    from containers import services
    from containers.engine.busybox import build_busybox_template
    from containers.engine.templates import template_name
    from hosts.models import Host
    from tasks.models import Task

    redis = agent = web = None
    try:
        redis = start_redis(RUN)
        template = build_busybox_template(RUN / "templates")
        user = get_user_model().objects.create_superuser("bench", "", "bench-pass-123")
        _, key = create_token(user, "bench")
        call_command("register_host", "bench-exec", verbosity=0, stdout=open(os.devnull, "w"))
        host = Host.objects.get(name="bench-exec")
        agent = start_agent(host, code, RUN)
        port = free_port()
        web = subprocess.Popen([sys.executable, "-m", "gunicorn", "panel.wsgi:application", "--bind",
                                f"127.0.0.1:{port}", "--no-control-socket", "--workers", "2"], cwd=code,
                               stdout=open(RUN / "gunicorn.log", "w"), stderr=subprocess.STDOUT)
        task = services.create_container(user=user, ctid=ctid, ostemplate=template_name(template.name),
                                          hostname=f"e{ctid}.bench", host=host, start=True)
        while task.status in ("queued", "running"):
            time.sleep(0.05)
            task.refresh_from_db()
        if task.status != "ok":
            sys.exit(f"create failed: {task.error}")
        for _ in range(100):  # gunicorn answers
            try:
                api = Api(port, key)
                api.call("GET", "/api/")
                break
            except OSError:
                time.sleep(0.1)
        for _ in range(5):  # warm both gunicorn workers' imports and connections
            api_exec(api, ctid, args.poll)

        raw_argv = ["lxc-attach", "-n", str(ctid), "-P", str(lxcpath), *LXC_ATTACH_ENV, "--", "true"]
        api_times, raw_times, lxd_times, runs = [], [], [], []
        for _ in range(args.n):
            elapsed, task_id, wall0, wall1 = api_exec(api, ctid, args.poll)
            api_times.append(elapsed)
            runs.append((task_id, wall0, wall1))
            t0 = time.perf_counter()
            subprocess.run(raw_argv, check=True)
            raw_times.append(time.perf_counter() - t0)
            if lxd:
                t0 = time.perf_counter()
                subprocess.run([lxd, "exec", args.lxd, "--", "true"], check=True)
                lxd_times.append(time.perf_counter() - t0)

        hops = {"request": [], "queue": [], "agent": [], "answer": []}
        rows = Task.objects.in_bulk([task_id for task_id, _, _ in runs])
        for task_id, wall0, wall1 in runs:
            row = rows[task_id]
            hops["request"].append(row.created_at.timestamp() - wall0)
            hops["queue"].append((row.started_at - row.created_at).total_seconds())
            hops["agent"].append((row.finished_at - row.started_at).total_seconds())
            hops["answer"].append(wall1 - row.finished_at.timestamp())
        print(f"exec `true` in a running busybox container, {args.n} of each, interleaved; code from {code}:")
        panel = summary("API: POST exec until the exit status is in hand", api_times)
        summary("  request: POST sent -> task row made", hops["request"])
        summary("  queue: task row made -> claimed by the agent", hops["queue"])
        summary("  agent: claimed -> finished", hops["agent"])
        summary("  answer: finished -> result in the client", hops["answer"])
        raw = summary("raw lxc-attach (the agent's arguments)", raw_times)
        print(f"{'ratio API / lxc-attach':46s} {panel / raw:.2f}x")
        if lxd_times:
            lxd_median = summary(f"LXD: lxc exec {args.lxd} -- true", lxd_times)
            print(f"{'ratio API / LXD lxc exec':46s} {panel / lxd_median:.2f}x   target <= 1.0x")
        else:
            print("LXD: not measured (" + ("no `lxc` client installed" if args.lxd else "no --lxd INSTANCE given") + ")")
    finally:
        stop_process(web)
        stop_process(agent)
        remove_containers(lxcpath, [ctid])
        stop_process(redis)
        shutil.rmtree(RUN, ignore_errors=True)


if __name__ == "__main__":
    main()
