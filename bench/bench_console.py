#!/usr/bin/env python3
"""Benchmark of browser consoles, run by hand as root (not part of `make test`):

1. N consoles open at once (default 20) on one container, through the real path: uvicorn with
   panel.asgi (as runpanel starts it), Redis, the agent, lxc-attach on a PTY. Reports the memory
   each costs (resident memory of the agent, its consoles' processes, uvicorn and redis-server,
   after minus before, divided by N).
2. The keystroke round trip (a key sent until its echo comes back), median and p95, over the N
   consoles at once, next to the same round trip of `lxc-attach` on a PTY with no panel between.

    .venv/bin/python bench/bench_console.py [-n 20] [--keys 50] [--ctid-range 60020-60029] [--lxcpath DIR]

Everything but the lxcpath lives in a temporary directory with its own redis-server, database,
agent and uvicorn; all of it is removed at the end. It uses the first CTID of the range and
refuses to start when it is a container of the live panel or has anything under the lxcpath, so
it runs beside a live panel without touching it.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import benchlib

BASE = Path(__file__).resolve().parent.parent
RUN = benchlib.run_dir("vzpb-")
sys.path.insert(0, str(BASE))
CTID = None  # from --ctid-range: cgroups and interfaces are named by CTID machine-wide
PROMPT = b"# "
DSR = b"\x1b[6n"  # busybox's shell asks where the cursor is; a terminal answers


def summary(name, values):
    ms = sorted(v * 1000 for v in values)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    print(f"{name:46s} median {statistics.median(ms):7.2f} ms  p95 {p95:7.2f}  max {ms[-1]:7.2f}  (n={len(ms)})")


def rss_of(pids: list[int]) -> int:
    """Resident bytes of these processes and all their descendants."""
    import psutil
    total, seen = 0, set()
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            for p in [proc, *proc.children(recursive=True)]:
                if p.pid not in seen:
                    seen.add(p.pid)
                    total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


async def panel_console(port: int, url: str, cookie: str):
    import websockets
    ws = await websockets.connect(f"ws://127.0.0.1:{port}{url}", origin=f"http://127.0.0.1:{port}",
                                  additional_headers={"Cookie": cookie}, max_size=None)
    seen = b""
    while PROMPT not in seen:
        message = await ws.recv()
        if isinstance(message, bytes):
            seen += message
            if DSR in message:
                await ws.send(b"\x1b[1;1R")
    return ws


async def round_trips(ws, keys: int) -> list[float]:
    times = []
    for i in range(keys):
        key = b"abcdefghij"[i % 10:i % 10 + 1]
        start = time.perf_counter()
        await ws.send(key)
        while True:
            message = await ws.recv()
            if isinstance(message, bytes) and key in message:
                break
        times.append(time.perf_counter() - start)
    await ws.send(b"\x15")  # Ctrl-U: the line is empty again
    return times


def raw_round_trips(lxcpath: Path, keys: int) -> list[float]:
    from containers.engine.terminal import Terminal, shell_argv
    terminal = Terminal(shell_argv(lxcpath, CTID))
    try:
        seen = b""
        while PROMPT not in seen:
            chunk = terminal.read(5) or b""
            seen += chunk
            if DSR in chunk:
                terminal.write(b"\x1b[1;1R")
        times = []
        for i in range(keys):
            key = b"abcdefghij"[i % 10:i % 10 + 1]
            start = time.perf_counter()
            terminal.write(key)
            while key not in (terminal.read(5) or b""):
                pass
            times.append(time.perf_counter() - start)
        return times
    finally:
        terminal.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=20, help="consoles open at once")
    ap.add_argument("--keys", type=int, default=50, help="keystrokes timed per console")
    benchlib.add_arguments(ap, "60020-60029", RUN / "lxc")
    args = ap.parse_args()
    global CTID
    CTID = benchlib.refuse_taken(args, need=1)[0]
    lxcpath = args.lxcpath.resolve()
    benchlib.use_own_panel(RUN, lxcpath, PANEL_WEB_USER="")

    import django
    django.setup()
    from django.core.management import call_command
    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model
    from django.test import Client

    from consoles.services import new_ticket
    from containers import services
    from containers.engine.busybox import build_busybox_template
    from containers.engine.templates import template_name
    from hosts.models import Host
    from tasks.redis_server import prepare

    redis_argv, redis_sock = prepare(RUN, web_group=None, persist=False)
    redis = subprocess.Popen(redis_argv, stdout=subprocess.DEVNULL)
    agent = web = None
    try:
        while not redis_sock.exists():
            time.sleep(0.02)
        tname = template_name(build_busybox_template(RUN / "templates").name)
        user = get_user_model().objects.create_superuser("bench", "", "bench-pass-123")
        call_command("register_host", "bench", verbosity=0, stdout=open(os.devnull, "w"))
        host = Host.objects.get(name="bench")
        from hosts.services import issue_token
        agent = subprocess.Popen([sys.executable, str(BASE / "manage.py"), "agent", "--host", "bench"],
                                 env=dict(os.environ, PANEL_HOST_TOKEN=issue_token(None, host)), cwd=BASE,
                                 stdout=open(RUN / "agent.log", "w"), stderr=subprocess.STDOUT)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        web = subprocess.Popen([sys.executable, "-m", "uvicorn", "panel.asgi:application", "--host", "127.0.0.1",
                                "--port", str(port), "--no-access-log"], cwd=BASE,
                               stdout=open(RUN / "uvicorn.log", "w"), stderr=subprocess.STDOUT)
        while not Host.objects.get(pk=host.pk).agent_seen_at or not host.templates.exists():
            time.sleep(0.05)
        task = services.create_container(user=user, ctid=CTID, ostemplate=tname, hostname="console.bench",
                                         host=host, start=True)
        while task.status in ("queued", "running"):
            time.sleep(0.1)
            task.refresh_from_db()
        assert task.status == "ok", task.log
        ct = task.container
        client = Client()
        client.force_login(user)
        cookie = f"sessionid={client.session.session_key}"

        measured = [agent.pid, web.pid, redis.pid]
        before = rss_of(measured)

        async def run():
            urls = []
            for _ in range(args.n):
                session, ticket = await asyncio.to_thread(new_ticket, user, ct, "shell", "", client.session.session_key)
                urls.append(f"/ws/containers/{CTID}/console/shell/?ticket={ticket}")
            consoles = await asyncio.gather(*(panel_console(port, url, cookie) for url in urls))
            await asyncio.sleep(2)  # the agent's threads settle
            after = await asyncio.to_thread(rss_of, measured)
            times = sum(await asyncio.gather(*(round_trips(ws, args.keys) for ws in consoles)), [])
            for ws in consoles:
                await ws.close()
            return after, times
        after, times = asyncio.run(run())
        print(f"{args.n} consoles open at once on CT {CTID} (busybox), {args.keys} keystrokes each:")
        print(f"{'memory per console (agent+children, uvicorn, redis)':46s} {(after - before) / args.n / 2**20:7.2f} MiB"
              f"  (total {before / 2**20:.0f} -> {after / 2**20:.0f} MiB)")
        summary("keystroke round trip, through the panel", times)
        summary("keystroke round trip, lxc-attach on a PTY", raw_round_trips(lxcpath, args.keys * 4))
    finally:
        for proc in (web, agent):
            if proc:
                proc.terminate()
                proc.wait(30)
        subprocess.run(["lxc-stop", "-n", str(CTID), "-P", str(lxcpath), "-k"], capture_output=True)
        subprocess.run(["umount", str(lxcpath / str(CTID) / "rootfs")], capture_output=True)
        shutil.rmtree(lxcpath / str(CTID), ignore_errors=True)
        redis.terminate()
        shutil.rmtree(RUN, ignore_errors=True)


if __name__ == "__main__":
    main()
