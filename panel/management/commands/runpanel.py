"""Start the whole panel under one supervisor: redis-server, the host agent, the scheduler, gunicorn
(pages), uvicorn (the browser consoles' WebSockets) and the shell commands' server (cliserver).

A process that dies is started again after a back-off (1 s, doubling to a minute; back to 1 s once
it has run for a minute) while the others keep serving; each death is logged and written to
var/process-status.json, which the dashboard shows to administrators. Ctrl-C (or SIGTERM) stops
them all: the web server first, then the agent, which finishes its running task first (up to
PANEL_STOP_GRACE seconds, then it interrupts the task itself, saying why), redis last.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from panel import process_status
from panel.env import env, envint


class Command(BaseCommand):
    help = ("Run redis-server (unless REDIS_URL is set), the host agent, the scheduler, the web server, "
            "the consoles' WebSocket server and the shell commands' server.")

    def handle(self, *args, **opts):
        var = Path(settings.VAR_DIR)
        python = sys.executable
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        bind = env("PANEL_BIND", "127.0.0.1:8000")
        procs: list[tuple[str, subprocess.Popen]] = []
        # Everything but the host agent runs as the web user when there is one (see setup_panel).
        unprivileged = []
        if settings.WEB_USER and os.geteuid() == 0:
            import pwd
            try:
                pwd.getpwnam(settings.WEB_USER)
                unprivileged = ["setpriv", f"--reuid={settings.WEB_USER}", f"--regid={settings.WEB_USER}",
                                "--init-groups", "--"]
            except KeyError:
                self.stderr.write(f"[runpanel] user {settings.WEB_USER} does not exist: run 'make setup'")

        children: dict[str, Child] = {}

        def spawn(name, argv, env=None):
            self.stdout.write(f"[runpanel] starting {name}: {' '.join(argv)}")
            children[name] = Child(name, argv, env)
            children[name].start()
            procs.append((name, children[name].proc))

        if not os.environ.get("REDIS_URL"):
            # As the redis system user, never the web user (who could then read its memory and
            # configuration); every client logs in, the web user as a user without ACL or CONFIG.
            from tasks.redis_server import RedisSetupError, prepare
            try:
                argv, sock = prepare(var, web_group=settings.WEB_USER if unprivileged else None)
            except RedisSetupError as exc:
                raise CommandError(str(exc)) from None
            spawn("redis", argv)
            deadline = time.monotonic() + 10
            while not sock.exists():
                if time.monotonic() > deadline or procs[-1][1].poll() is not None:
                    self._stop(procs)
                    raise CommandError("redis-server did not start")
                time.sleep(0.05)
        # This machine's agent gets a fresh token at each start (other hosts' agents get theirs from
        # the host page or `manage.py hostctl token NAME`); it travels in the environment only.
        # The agent (root: it reads the Redis administrator's password) makes the Redis users.
        from hosts.models import Host
        from hosts.services import issue_token
        local = Host.objects.filter(name=settings.PANEL_HOST_NAME).first()
        agent_env = dict(os.environ)
        if local is not None:
            agent_env["PANEL_HOST_TOKEN"] = issue_token(None, local)
        spawn("agent", [python, manage, "agent"], env=agent_env)
        spawn("scheduler", [*unprivileged, python, manage, "scheduler"])
        # The shell commands' server (panel/cliserver.py): as the user who runs the panel, like the
        # shell commands it serves (root's vzctl is served by a root server, nobody else's); with
        # the environment runpanel was started with (no agent token), which a caller's must match.
        spawn("cli", [python, manage, "cliserver"])
        spawn("web", [*unprivileged, python, "-m", "gunicorn", "panel.wsgi:application", "--bind", bind,
                      "--no-control-socket",
                      "--workers", env("PANEL_WEB_WORKERS", "3"), "--access-logfile", "-",
                      "--forwarded-allow-ips", "127.0.0.1"])
        # The browser consoles' WebSockets (consoles/): Django Channels under uvicorn, beside gunicorn,
        # whose sync workers keep streaming uploads to disk as they come (Django under ASGI would not).
        console_host, _, console_port = settings.CONSOLE_BIND.rpartition(":")
        spawn("consoles", [*unprivileged, python, "-m", "uvicorn", "panel.asgi:application",
                           "--host", console_host.strip("[]"), "--port", console_port, "--no-access-log",
                           "--ws-max-size", "1048576"])
        self.stdout.write(f"[runpanel] the panel is at http://{bind}/  (Ctrl-C stops everything)")

        stopping = False

        def on_signal(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        status = SupervisorStatus(var / process_status.STATUS_FILE)
        status.write(children.values())
        try:
            while not stopping:
                for child in children.values():
                    if child.proc.poll() is not None and child.restart_at is None:
                        delay = child.died()
                        self.stderr.write(f"[runpanel] {child.name} exited with status {child.proc.returncode}; "
                                          f"starting it again in {delay:g} s (restart {child.restarts})")
                        status.write(children.values())
                    elif child.restart_at is not None and time.monotonic() >= child.restart_at:
                        child.start()
                        self.stdout.write(f"[runpanel] {child.name} started again (pid {child.proc.pid})")
                        status.write(children.values())
                time.sleep(0.3)
        finally:
            self._stop([(child.name, child.proc) for child in children.values()])
            status.remove()

    def _stop(self, procs):
        # Web first, then the agent (it finishes its current job), redis last.
        for name, proc in reversed(procs):
            if proc.poll() is None:
                # The agent alone gets the signal, not its process group: its running tar or rsync
                # must not die under it while it finishes the task.
                if name == "agent":
                    os.kill(proc.pid, signal.SIGTERM)
                else:
                    os.killpg(proc.pid, signal.SIGTERM)
                # The agent ends its own grace period (PANEL_STOP_GRACE); this is the backstop.
                grace = envint("PANEL_STOP_GRACE", 300) + 15 if name == "agent" else 30
                try:
                    proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    self.stderr.write(f"[runpanel] {name} still busy after {grace} s: killing it")
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            self.stdout.write(f"[runpanel] {name} stopped")


class Child:
    """One supervised process and its restarts."""

    def __init__(self, name: str, argv: list[str], env: dict | None):
        self.name, self.argv, self.env = name, argv, env
        self.proc: subprocess.Popen | None = None
        self.started = 0.0
        self.restarts = 0
        self.backoff: float | None = None  # the last restart's wait; None: no crash yet
        self.restart_at: float | None = None
        self.last_exit: int | None = None
        self.last_exit_at: float | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, cwd=settings.BASE_DIR, start_new_session=True, env=self.env)
        self.started = time.monotonic()
        self.restart_at = None

    def died(self) -> float:
        """Note the death; returns the seconds until the restart."""
        delay = self.backoff = process_status.next_backoff(self.backoff, time.monotonic() - self.started)
        self.restarts += 1
        self.last_exit, self.last_exit_at = self.proc.returncode, time.time()
        self.restart_at = time.monotonic() + delay
        return delay


class SupervisorStatus:
    """Each child's pid, restarts and last exit, for the dashboard (panel/process_status.py)."""

    def __init__(self, path: Path):
        self.path = path

    def write(self, children) -> None:
        process_status.write({child.name: {"pid": child.proc.pid if child.restart_at is None else None,
                                           "restarts": child.restarts, "last_exit": child.last_exit,
                                           "last_exit_at": child.last_exit_at} for child in children}, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
