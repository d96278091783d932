"""Fixtures: a real redis-server, a real host agent, real LXC; all cleaned up, also on failure."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

BASE_DIR = Path(__file__).resolve().parent.parent
RUN_DIR = Path(os.environ["VZPANEL_TEST_RUN_DIR"])
LXCPATH = Path(settings.PANEL_LXCPATH)
TEMPLATE_DIR = Path(settings.PANEL_TEMPLATE_DIR)
DUMP_DIR = Path(settings.PANEL_DUMP_DIR)


def wait_until(predicate, timeout=30.0, interval=0.05, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")


def lxc_info_state(ctid) -> str:
    """LXC's own view: the STATE lxc-info prints, or 'ABSENT'."""
    res = subprocess.run(["lxc-info", "-n", str(ctid), "-P", str(LXCPATH), "-sH"],
                         capture_output=True, text=True)
    return res.stdout.strip() if res.returncode == 0 else "ABSENT"


def _unmount_under(path: Path) -> None:
    """Unmount every filesystem mounted below `path` (containers' disk images), deepest first."""
    with open("/proc/self/mountinfo") as fh:
        points = [line.split()[4] for line in fh]
    for point in sorted((p for p in points if p.startswith(str(path) + "/")), key=len, reverse=True):
        subprocess.run(["umount", point], capture_output=True)
        subprocess.run(["umount", "-l", point], capture_output=True)


def destroy_containers_in(lxcpath: Path, prefix: list[str] | None = None) -> None:
    """Stop and remove every container (and partial or incoming copy) under an lxcpath, unmounting
    first. `prefix` enters the network namespace the containers were started in (LXC's command
    socket is an abstract socket, which belongs to a network namespace)."""
    prefix = prefix or []
    if not lxcpath.is_dir():
        return
    for entry in lxcpath.iterdir():
        if (entry / "config").exists():
            subprocess.run([*prefix, "lxc-stop", "-n", entry.name, "-P", str(lxcpath), "-k"], capture_output=True)
    _unmount_under(lxcpath)
    for entry in lxcpath.iterdir():
        if (entry / "config").exists():
            subprocess.run([*prefix, "lxc-destroy", "-n", entry.name, "-P", str(lxcpath)], capture_output=True)
        shutil.rmtree(entry, ignore_errors=True)


def lxcpath_entries() -> list[str]:
    """What is in the test lxcpath besides the panel's own syscall filter profile."""
    from containers.engine.lxc import SECCOMP_NAME
    return [p.name for p in LXCPATH.iterdir() if p.name != SECCOMP_NAME]


def _destroy_all_test_containers():
    destroy_containers_in(LXCPATH)


SYSCTLS = ["/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"]


@pytest.fixture(scope="session", autouse=True)
def run_dir():
    """The whole run's directory; removed at the end with every container in it. The forwarding
    switches the agent turns on for venet are put back as they were, unless the caller does it
    (tests/run_suite.py runs three pytest processes at once: one ending first must not switch
    them off under the others)."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    restore = not os.environ.get("VZPANEL_TEST_SYSCTLS_BY_CALLER")
    saved = {p: Path(p).read_text() for p in SYSCTLS if Path(p).exists()} if restore else {}
    yield RUN_DIR
    _destroy_all_test_containers()
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    for path, value in saved.items():
        Path(path).write_text(value)


class RedisServer:
    """redis-server as `make run` starts it (tasks/redis_server.py); a test may kill it for real and
    start it again (it keeps nothing: what was queued is lost, as after a crash without a save)."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.proc: subprocess.Popen | None = None
        self.sock: Path | None = None

    def start(self) -> Path:
        from tasks.redis_server import prepare
        argv, self.sock = prepare(self.run_dir, web_group=None, persist=False)
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self.sock.exists, 10, message="redis-server socket")
        return self.sock

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self.sock.unlink(missing_ok=True)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


REDIS = RedisServer(RUN_DIR)


@pytest.fixture(scope="session")
def redis_server(run_dir):
    """As the redis user, everyone logs in. The tests talk to it as the web side does
    (vzpanel-web), agents as their hosts' users."""
    try:
        yield REDIS.start()
    finally:
        REDIS.stop()


def redis_admin():
    """The Redis administrator's client (what the panel machine's agent reconciles the ACLs with)."""
    from tasks.redis_acl import admin_connection
    return admin_connection(settings.REDIS_ADMIN_PASSWORD_FILE)


@pytest.fixture
def redis_conn(redis_server):
    """The administrator's client, on an empty database without the host users of earlier tests."""
    from tasks.redis_acl import HOST_USER_PREFIX
    conn = redis_admin()
    conn.flushdb()  # no job of an earlier test may reach this test's agent
    for user in conn.acl_users():
        if user.startswith(HOST_USER_PREFIX):
            conn.acl_deluser(user)
    return conn


@pytest.fixture(scope="session")
def busybox_template(run_dir):
    from containers.engine.busybox import build_busybox_template
    return build_busybox_template(TEMPLATE_DIR)


@pytest.fixture
def host(db, busybox_template):
    from containers.models import OSTemplate
    from hosts.models import Host
    from containers.engine.templates import list_templates
    from datetime import datetime, timezone as tz
    LXCPATH.mkdir(parents=True, exist_ok=True)
    host = Host.objects.create(name=settings.PANEL_HOST_NAME, lxcpath=str(LXCPATH), template_dir=str(TEMPLATE_DIR),
                               dump_dir=str(DUMP_DIR))
    # What the agent would list at start, so tests without an agent can create too.
    for info in list_templates(TEMPLATE_DIR):
        OSTemplate.objects.create(host=host, name=info.name, filename=info.filename, size=info.size,
                                  sha256=info.sha256, modified_at=datetime.fromtimestamp(info.mtime, tz.utc))
    return host


@pytest.fixture
def template_name(busybox_template):
    from containers.engine.templates import template_name
    return template_name(busybox_template.name)


@pytest.fixture
def admin_user(db):
    from accounts.models import User
    return User.objects.create_superuser("admin", "admin@example.test", "admin-pass-123")


@pytest.fixture
def owner(db):
    from accounts.models import User
    return User.objects.create_user("owner", "owner@example.test", "owner-pass-123")


@pytest.fixture
def outsider(db):
    from accounts.models import User
    return User.objects.create_user("outsider", "outsider@example.test", "outsider-pass-123")


def subprocess_env() -> dict:
    """The environment for a panel process the tests start (agent, CLI): the same settings,
    pointed at the test database (a SQLite file, or the test database on PostgreSQL)."""
    from django.db import connection
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings")
    name = str(connection.settings_dict["NAME"])
    if connection.vendor == "postgresql":
        from urllib.parse import urlparse, urlunparse
        url = urlparse(env["PANEL_DATABASE_URL"])
        env["PANEL_DATABASE_URL"] = urlunparse(url._replace(path=f"/{name}"))
    else:
        env["PANEL_DB_PATH"] = name
    return env


def give_token(host_name: str) -> str:
    """A fresh agent token for a host, as `hostctl token` makes (without the audit record)."""
    import secrets
    from hosts.models import Host
    from hosts.services import TOKEN_PREFIX, token_hash
    token = TOKEN_PREFIX + secrets.token_urlsafe(16)
    Host.objects.filter(name=host_name).update(token_hash=token_hash(token))
    return token


class AgentProcess:
    """`manage.py agent` as a real subprocess against the test database."""

    def __init__(self, host_name: str, extra_env: dict | None = None, prefix: list[str] | None = None):
        self.host_name = host_name
        self.extra_env = extra_env or {}
        self.prefix = prefix or []  # e.g. nsenter into the network namespace of a second host
        self.token = ""
        self.proc: subprocess.Popen | None = None
        self.log_path = RUN_DIR / f"agent-{host_name}.log"

    def env(self):
        return {**subprocess_env(), "PANEL_HOST_TOKEN": self.token, **self.extra_env}

    def start(self, wait=True):
        from hosts.models import Host
        if not self.token:
            self.token = give_token(self.host_name)
        started_before = Host.objects.get(name=self.host_name).agent_started_at
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen([*self.prefix, sys.executable, str(BASE_DIR / "manage.py"), "agent",
                                      "--host", self.host_name],
                                     cwd=BASE_DIR, env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        if wait:
            def ready():
                h = Host.objects.get(name=self.host_name)
                if self.proc.poll() is not None:
                    raise AssertionError(f"agent exited: {self.log_path.read_text()[-2000:]}")
                return h.agent_started_at and h.agent_started_at != started_before and h.agent_seen_at
            wait_until(ready, 60, message="the agent to start")  # past recovery, reconcile and onboot
        return self

    def stop(self, timeout: float = 20):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self):
        self.stop()
        return self.start()


@pytest.fixture
def agent_process(transactional_db, host, redis_conn):
    """An agent for `host`, not yet started (tests that need it offline at first)."""
    agent = AgentProcess(host.name)
    try:
        yield agent
    finally:
        agent.kill()
        _destroy_all_test_containers()
        shutil.rmtree(DUMP_DIR, ignore_errors=True)


@pytest.fixture
def agent(agent_process):
    """A running agent for `host`."""
    return agent_process.start()


def wait_task(task, timeout=60):
    """Wait until a task has finished; return it fresh from the database."""
    from tasks.choices import ACTIVE_STATES

    def done():
        task.refresh_from_db()
        return task.status not in ACTIVE_STATES
    wait_until(done, timeout, message=f"task #{task.pk} ({task.type}) to finish")
    return task
from .tenancy_fixtures import acme, other_tenant, people, plan, student_ct  # noqa: E402,F401


# -- a real SMTP server (aiosmtpd) on loopback, for every test that sends mail ----------------
class CollectingHandler:
    def __init__(self):
        self.messages = []
        self.port = None

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server(request, settings):
    """Mail goes to a local aiosmtpd; the returned handler's .messages are the envelopes received."""
    from aiosmtpd.controller import Controller
    handler = CollectingHandler()
    handler.port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    request.addfinalizer(controller.stop)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = handler.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.PANEL_URL = "http://testserver"
    settings.DEFAULT_FROM_EMAIL = "vzpanel@example.test"
    return handler


def form_errors(response) -> list[str]:
    """The errors of the bound forms a page shows (a form in error: panel.forms), "Label: error" for a
    field's, the message alone for a refusal."""
    from django import forms
    errors, seen = [], set()
    for value in [v for context in response.context or [] for v in context.flatten().values()]:
        if isinstance(value, forms.BaseForm) and value.is_bound and id(value) not in seen:
            seen.add(id(value))
            for name, messages in value.errors.items():
                label = "" if name == "__all__" else f"{value[name].label}: "
                errors += [label + m for m in messages]
    return errors
