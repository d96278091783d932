#!/usr/bin/env python3
"""The shell commands as root types them (issue 22), run by hand as root (not part of `make test`):

    .venv/bin/python bench/bench_shell.py [--ctid-range 72000-73099] [--lxcpath DIR] [-n 15] [--list 1000]

The commands are the wrappers `make shell-commands` writes (into a directory of the bench's own),
which hand each command to a real `manage.py cliserver`. Each figure is a median of -n runs,
interleaved with its reference in the same run:
- `vzctl status CT` (target: under 150 ms) next to `lxc-info -s` and the direct `manage.py vzctl status`;
- `vzctl exec CT true` (target: within 60 ms of lxc-attach) next to `lxc-attach -n CT -- true`, with
  where the time went (client to task row, queue to the agent's start, the agent's run, the end of
  the task to the end of vzctl);
- `vzlist -a` at --list containers (target: no slower than lxc-ls -f) next to `lxc-ls -f` over the same
  lxcpath: --list stopped containers defined there (a minimal LXC config and an empty rootfs each) and
  as rows of the panel, besides the bench's two busybox containers;
- `vzdump CT` and `vzrestore ARCHIVE CT` (target: within 1.1x) next to their task's own time
  (started to finished, as the agent recorded it).

Everything but the lxcpath lives in a temporary directory with its own redis-server, database, agent
and command server; it uses only the CTIDs given, refuses any that exist in the lxcpath already, and
removes what it made at the end, so it can run beside a live panel without touching it.
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

import benchenv

BASE = benchenv.BASE
RUN = Path(tempfile.mkdtemp(prefix="vzpb-shell-"))


def ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def timed(argv: list[str], env: dict, **kwargs) -> float:
    t0 = time.perf_counter()
    res = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)
    elapsed = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: exit {res.returncode}: {res.stderr.decode()[-2000:]}")
    return elapsed


def line(name: str, value_ms: float, reference: str = "", ref_ms: float | None = None) -> None:
    text = f"{name:44s} {value_ms:8.1f} ms"
    if ref_ms is not None:
        text += f"   {reference:34s} {ref_ms:8.1f} ms   ratio {value_ms / ref_ms:5.2f}x"
    print(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ctid-range", default="72000-73099", help="FIRST-LAST: the CTIDs the bench may use")
    ap.add_argument("--lxcpath", default=str(RUN / "lxc"), help="where the containers go (root's alone)")
    ap.add_argument("-n", type=int, default=15, help="runs of each command (medians)")
    ap.add_argument("--list", type=int, default=1000, help="stopped containers for vzlist -a and lxc-ls -f")
    args = ap.parse_args()
    first, last = (int(n) for n in args.ctid_range.split("-"))
    lxcpath = Path(args.lxcpath)
    running_ctid, dump_ctid, restore_ctid = first, first + 1, first + 2
    listed = list(range(first + 3, first + 3 + args.list))
    if (listed[-1] if listed else restore_ctid) > last:
        sys.exit(f"--ctid-range needs {args.list + 3} CTIDs")
    benchenv.check_free(lxcpath, [running_ctid, dump_ctid, restore_ctid, *listed])
    benchenv.isolate(RUN, lxcpath, "bench-shell")
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from backups.models import Backup
    from containers import services
    from containers.engine.busybox import build_busybox_template
    from containers.engine.templates import template_name
    from containers.models import Container
    from hosts.models import Host
    from tasks.models import Task

    env = dict(os.environ)
    sbin = RUN / "sbin"
    subprocess.run(["make", "-s", "-C", str(BASE), "shell-commands", f"SBIN_DIR={sbin}", f"VENV_DIR={sys.prefix}"],
                   check=True, stdout=subprocess.DEVNULL)
    redis = benchenv.start_redis(RUN)
    agent = server = None
    made: list[int] = []
    wait = benchenv.wait
    try:
        benchenv.make_lxcpath(lxcpath)
        template = build_busybox_template(RUN / "templates")
        user = get_user_model().objects.create_superuser("bench", "", "bench-pass-123")
        call_command("register_host", "bench-shell", verbosity=0, stdout=open(os.devnull, "w"))
        # The listed rows promise their default RAM and disk: room for them, so that restores pass.
        Host.objects.filter(name="bench-shell").update(ram_promise=1000.0, disk_promise=1000.0)
        host = Host.objects.get(name="bench-shell")
        benchenv.define_stopped(lxcpath, listed, host, made)
        agent = benchenv.start_agent(host, RUN)
        server = subprocess.Popen([sys.executable, str(BASE / "manage.py"), "cliserver"], env=env, cwd=BASE,
                                  stdout=open(RUN / "cliserver.log", "w"), stderr=subprocess.STDOUT)

        tname = template_name(template.name)
        for ctid, start in ((running_ctid, True), (dump_ctid, False)):
            made.append(ctid)
            wait(services.create_container(user=user, ctid=ctid, ostemplate=tname, hostname=f"c{ctid}.bench",
                                           host=host, start=start))
        made.append(restore_ctid)
        while not (RUN / "cli" / "cli.sock").exists():
            if server.poll() is not None:
                sys.exit(f"cliserver exited: {(RUN / 'cliserver.log').read_text()[-2000:]}")
            time.sleep(0.1)
        print(f"busybox containers {running_ctid} (running) and {dump_ctid} (stopped), {args.list} stopped ones "
              f"listed besides, in {lxcpath}; {args.n} runs each, interleaved; medians")

        vzctl, vzlist = str(sbin / "vzctl"), str(sbin / "vzlist")
        direct = [sys.executable, str(BASE / "manage.py")]
        lxc = ["-P", str(lxcpath)]
        ct = str(running_ctid)
        for warm in range(2):  # the server's first fork, the agent's first exec, the page cache
            timed([vzctl, "status", ct], env)
            timed([vzctl, "exec", ct, "true"], env)
            timed([vzlist, "-a"], env)
        served_before = (RUN / "cliserver.log").read_text().count("exited with status")
        r: dict[str, list[float]] = {k: [] for k in (
            "status", "status_direct", "lxc_info", "exec", "exec_direct", "attach", "vzlist", "vzlist_direct",
            "lxc_ls", "vzdump", "vzdump_task", "vzrestore", "vzrestore_task",
            "exec_submit", "exec_queue", "exec_run", "exec_tail")}
        for i in range(args.n):
            r["status"].append(timed([vzctl, "status", ct], env))
            r["lxc_info"].append(timed(["lxc-info", "-n", ct, *lxc, "-s"], env))
            r["status_direct"].append(timed([*direct, "vzctl", "status", ct], env))

            began = time.time()
            r["exec"].append(timed([vzctl, "exec", ct, "true"], env))
            ended = time.time()
            task = Task.objects.filter(type="ct.exec").latest("pk")
            r["exec_submit"].append(task.created_at.timestamp() - began)
            r["exec_queue"].append((task.started_at - task.created_at).total_seconds())
            r["exec_run"].append((task.finished_at - task.started_at).total_seconds())
            r["exec_tail"].append(ended - task.finished_at.timestamp())
            r["attach"].append(timed(["lxc-attach", "-n", ct, *lxc, "--", "true"], env))
            if i < 3:  # 1 s or more each: a few are enough to show it
                r["exec_direct"].append(timed([*direct, "vzctl", "exec", ct, "true"], env))

            r["vzlist"].append(timed([vzlist, "-a"], env))
            r["lxc_ls"].append(timed(["lxc-ls", "-f", *lxc], env))
            if i < 3:
                r["vzlist_direct"].append(timed([*direct, "vzlist", "-a"], env))

            r["vzdump"].append(timed([str(sbin / "vzdump"), str(dump_ctid)], env))
            task = Task.objects.filter(type="ct.backup").latest("pk")
            r["vzdump_task"].append((task.finished_at - task.started_at).total_seconds())
            backup = Backup.objects.filter(ctid=dump_ctid).latest("pk")
            r["vzrestore"].append(timed([str(sbin / "vzrestore"), backup.filename, str(restore_ctid)], env))
            task = Task.objects.filter(type="ct.restore").latest("pk")
            r["vzrestore_task"].append((task.finished_at - task.started_at).total_seconds())
            restored = Container.objects.get(ctid=restore_ctid)
            wait(services.destroy_container(restored, user, confirm=restore_ctid))
        served = (RUN / "cliserver.log").read_text().count("exited with status") - served_before
        expected = args.n * 5  # status, exec, vzlist, vzdump, vzrestore
        if served != expected:
            log = (RUN / "cliserver.log").read_text()
            raise SystemExit(f"the command server ran {served} of {expected} commands: the rest ran directly\n"
                             + log[-3000:])

        print()
        line("vzctl status CT", ms(r["status"]), "lxc-info -s", ms(r["lxc_info"]))
        line("  (the direct manage.py vzctl status)", ms(r["status_direct"]))
        line("vzctl exec CT true", ms(r["exec"]), "lxc-attach -- true", ms(r["attach"]))
        print(f"{'  vzctl exec - lxc-attach':44s} {ms(r['exec']) - ms(r['attach']):8.1f} ms   (target: 60 ms or less)")
        line("  (the direct manage.py vzctl exec)", ms(r["exec_direct"]))
        line("  vzctl started -> task row committed", ms(r["exec_submit"]))
        line("  task row -> the agent starts it (queue)", ms(r["exec_queue"]))
        line("  the agent runs it (lxc-attach inside)", ms(r["exec_run"]))
        line("  task finished -> vzctl exited", ms(r["exec_tail"]))
        line(f"vzlist -a ({args.list + 2} containers)", ms(r["vzlist"]), "lxc-ls -f (same lxcpath)", ms(r["lxc_ls"]))
        line("  (the direct manage.py vzlist -a)", ms(r["vzlist_direct"]))
        line("vzdump CT (at the shell)", ms(r["vzdump"]), "its task (started -> finished)", ms(r["vzdump_task"]))
        line("vzrestore ARCHIVE CT (at the shell)", ms(r["vzrestore"]), "its task (started -> finished)",
             ms(r["vzrestore_task"]))
    finally:
        benchenv.tear_down(RUN, lxcpath, made, redis, server, agent)


if __name__ == "__main__":
    main()
