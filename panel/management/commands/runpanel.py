"""Start the whole panel under one supervisor: redis-server, the host agent, the scheduler, gunicorn.

Ctrl-C (or SIGTERM) stops them all; if one of them dies, the others are stopped too.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from panel.env import env


class Command(BaseCommand):
    help = "Run redis-server (unless REDIS_URL is set), the host agent, the scheduler and the web server."

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

        def spawn(name, argv, env=None):
            self.stdout.write(f"[runpanel] starting {name}: {' '.join(argv)}")
            procs.append((name, subprocess.Popen(argv, cwd=settings.BASE_DIR, start_new_session=True, env=env)))

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
        spawn("web", [*unprivileged, python, "-m", "gunicorn", "panel.wsgi:application", "--bind", bind,
                      "--no-control-socket",
                      "--workers", env("PANEL_WEB_WORKERS", "3"), "--access-logfile", "-",
                      "--forwarded-allow-ips", "127.0.0.1"])
        self.stdout.write(f"[runpanel] the panel is at http://{bind}/  (Ctrl-C stops everything)")

        stopping = False

        def on_signal(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        try:
            while not stopping:
                for name, proc in procs:
                    if proc.poll() is not None:
                        self.stderr.write(f"[runpanel] {name} exited with status {proc.returncode}; stopping the rest")
                        stopping = True
                        break
                time.sleep(0.3)
        finally:
            self._stop(procs)

    def _stop(self, procs):
        # Web first, then the agent (it finishes its current job), redis last.
        for name, proc in reversed(procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            self.stdout.write(f"[runpanel] {name} stopped")
