"""The production install (deploy/install.sh, `make install-production`) laid out under a scratch root.

What needs systemd as PID 1 (services, the database, packages) is only printed with INSTALL_ROOT;
the whole install is proved in a Debian 12 VM with systemd. Here: the files, their owners and
modes, the units (systemd-analyze verify and their key settings), the nginx site, and that the
installed configuration passes `manage.py check --deploy` without a warning.
"""
from __future__ import annotations

import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import RequestFactory, override_settings

from panel.middleware import ProxiedClientAddressMiddleware

REPO = Path(__file__).resolve().parent.parent
INSTALL = REPO / "deploy" / "install.sh"
UNIT_DIR = REPO / "deploy" / "systemd"
WEB_USER = "vzpanel"
SERVICES = ["vzpanel-redis.service", "vzpanel-agent.service", "vzpanel-scheduler.service", "vzpanel-web.service",
            "vzpanel-consoles.service", "vzpanel-cli.service"]


def _ensure_web_user() -> bool:
    """The user the install gives files to, made as install.sh and `make run` make it (a fresh
    machine has none yet: these tests must not depend on another test having made it)."""
    if os.geteuid() != 0:
        return False
    try:
        pwd.getpwnam(WEB_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", WEB_USER], check=True)
    return True


needs_root_and_web_user = pytest.mark.skipif(
    not _ensure_web_user(), reason=f"the install runs as root and gives files to the user {WEB_USER}")


def run_install(root: Path, *args: str, **variables: str) -> subprocess.CompletedProcess:
    """deploy/install.sh under `root`, with nothing of the test run's environment but PATH."""
    env = {"PATH": os.environ["PATH"], "INSTALL_ROOT": str(root), **variables}
    return subprocess.run([str(INSTALL), *args], env=env, capture_output=True, text=True, timeout=300)


def read_env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit file as {section: {key: [values, in order]}}, continuation lines joined."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        else:
            key, value = line.split("=", 1)
            current.setdefault(key, []).append(value)
    return sections


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """One install into a scratch root, as an administrator would run it with a name of their own."""
    if not _ensure_web_user():
        pytest.skip(f"the install runs as root and gives files to the user {WEB_USER}")
    root = tmp_path_factory.mktemp("prodroot")
    result = run_install(root, SERVER_NAMES="panel.example.org, 192.0.2.10")
    assert result.returncode == 0, result.stderr + result.stdout
    yield root, result.stdout
    shutil.rmtree(root, ignore_errors=True)


def test_install_lays_out_code_units_site_and_state(installed):
    root, _ = installed
    app = root / "opt/vzpanel/app"
    assert (app / "manage.py").is_file() and (app / "panel/settings.py").is_file()
    assert (app / "static/vendor/htmx.min.js").is_file(), "front-end files come from the checkout"
    for left_out in (".venv", "node_modules", "var", ".git"):
        assert not (app / left_out).exists(), left_out
    assert not list(app.rglob("*.pyc"))
    # Code that root runs is root's and nobody else may change it.
    for path in (app, app / "manage.py", app / "hosts/agent.py", app / "panel/cli_client.py"):
        info = path.stat()
        assert (info.st_uid, info.st_gid) == (0, 0) and not info.st_mode & 0o022, path
    assert "django>=5.2" in (root / "opt/vzpanel/requirements.txt").read_text().lower()
    for unit in ["vzpanel.target", "vzpanel-web.socket", "vzpanel-consoles.socket", *SERVICES]:
        assert (root / "etc/systemd/system" / unit).read_text() == (UNIT_DIR / unit).read_text()
    assert (root / "etc/systemd/system/lxc.service.d/vzpanel.conf").is_file()
    site = root / "etc/nginx/sites-available/vzpanel"
    assert site.read_text() == (REPO / "deploy/nginx/vzpanel.conf").read_text()
    assert os.readlink(root / "etc/nginx/sites-enabled/vzpanel") == "/etc/nginx/sites-available/vzpanel"
    assert os.access(root / "usr/local/sbin/vzpanel-manage", os.X_OK)
    for command in ("vzctl", "vzlist", "vzdump", "vzrestore", "vzmigrate", "vzcalc", "vzmemcheck"):
        wrapper = (root / "usr/local/sbin" / command).read_text()  # OpenVZ's names, this configuration
        assert '. "/etc/vzpanel/vzpanel.env"' in wrapper and f"/opt/vzpanel/app/panel/cli_client.py\" {command} " in wrapper
    state = root / "var/lib/vzpanel"
    assert stat.S_IMODE(state.stat().st_mode) == 0o755 and state.stat().st_uid == 0
    agent = state / "agent"
    assert stat.S_IMODE(agent.stat().st_mode) == 0o700 and agent.stat().st_uid == 0
    panel = state / "panel"
    assert panel.stat().st_gid == pwd.getpwnam(WEB_USER).pw_gid and stat.S_IMODE(panel.stat().st_mode) == 0o770


def test_install_says_what_it_would_run_instead_of_touching_the_system(installed):
    _, output = installed
    for step in ("make -s -C", "systemctl daemon-reload", "systemctl enable vzpanel.target",
                 "systemctl start vzpanel.target", "manage.py migrate", "nginx -t"):
        assert "would run" in output and step in output, step


def test_env_file_is_root_and_web_group_0640_with_a_secret_key(installed):
    root, _ = installed
    path = root / "etc/vzpanel/vzpanel.env"
    info = path.stat()
    assert (info.st_uid, info.st_gid) == (0, pwd.getpwnam(WEB_USER).pw_gid)
    assert stat.S_IMODE(info.st_mode) == 0o640
    values = read_env_file(path)
    assert values["PANEL_ENV"] == "production"
    assert len(values["PANEL_SECRET_KEY"]) >= 50 and len(set(values["PANEL_SECRET_KEY"])) >= 5
    hosts = values["PANEL_ALLOWED_HOSTS"].split(",")
    assert hosts[:2] == ["panel.example.org", "192.0.2.10"]
    assert {"localhost", "127.0.0.1", "[::1]"} <= set(hosts)
    assert values["PANEL_URL"] == "https://panel.example.org"
    assert values["PANEL_VAR_DIR"].startswith("/var/lib/vzpanel/")
    assert "PANEL_HOST_TOKEN" not in path.read_text()


def test_self_signed_certificate_names_the_host(installed):
    root, _ = installed
    tls = root / "etc/vzpanel/tls"
    assert stat.S_IMODE((tls / "key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE(tls.stat().st_mode) == 0o700
    san = subprocess.run(["openssl", "x509", "-in", str(tls / "cert.pem"), "-noout", "-ext", "subjectAltName"],
                         capture_output=True, text=True, check=True).stdout
    assert "DNS:panel.example.org" in san and "IP Address:192.0.2.10" in san and "DNS:localhost" in san


@needs_root_and_web_user
def test_second_install_keeps_env_file_secret_and_certificate(tmp_path):
    first = run_install(tmp_path, SERVER_NAMES="one.example.org")
    assert first.returncode == 0, first.stderr
    env_file, cert = tmp_path / "etc/vzpanel/vzpanel.env", tmp_path / "etc/vzpanel/tls/cert.pem"
    before, cert_before = env_file.read_text(), cert.read_bytes()
    (tmp_path / "opt/vzpanel/app/stale.py").write_text("left from an old version\n")
    again = run_install(tmp_path, SERVER_NAMES="two.example.org")
    assert again.returncode == 0, again.stderr
    assert env_file.read_text() == before and cert.read_bytes() == cert_before
    assert "keeping /etc/vzpanel/vzpanel.env" in again.stdout
    assert not (tmp_path / "opt/vzpanel/app/stale.py").exists(), "the code is replaced whole"
    upgrade = run_install(tmp_path, "--upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    assert env_file.read_text() == before
    assert "systemctl restart vzpanel-agent.service" in upgrade.stdout
    assert upgrade.stdout.index("vzpanel-web.service") < upgrade.stdout.index("restart vzpanel-agent")


@needs_root_and_web_user
def test_administrators_certificate_is_used_through_links(tmp_path):
    root, own = tmp_path / "root", tmp_path / "own"
    own.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=own",
                    "-keyout", str(own / "key.pem"), "-out", str(own / "cert.pem")], capture_output=True, check=True)
    result = run_install(root, CERT=str(own / "cert.pem"), KEY=str(own / "key.pem"))
    assert result.returncode == 0, result.stderr
    assert os.readlink(root / "etc/vzpanel/tls/cert.pem") == str(own / "cert.pem")
    assert os.readlink(root / "etc/vzpanel/tls/key.pem") == str(own / "key.pem")


@needs_root_and_web_user
def test_bad_input_is_refused_and_changes_nothing(tmp_path):
    upgrade = run_install(tmp_path, "--upgrade")
    assert upgrade.returncode != 0 and "is vzpanel installed here?" in upgrade.stderr
    assert not (tmp_path / "etc").exists()
    names = run_install(tmp_path, SERVER_NAMES="panel.example.org;touch /tmp/x")
    assert names.returncode != 0 and "SERVER_NAMES" in names.stderr
    half = run_install(tmp_path, CERT="/nonexistent/cert.pem")
    assert half.returncode != 0 and "CERT and KEY must both name files" in half.stderr
    assert not list(tmp_path.iterdir())


def test_check_deploy_gives_no_warnings_with_the_installed_configuration(installed, tmp_path):
    root, _ = installed
    values = read_env_file(root / "etc/vzpanel/vzpanel.env")
    # The installed paths are the target host's: the check runs with scratch ones.
    values.update(PANEL_VAR_DIR=str(tmp_path / "var"), PANEL_AGENT_DATA_DIR=str(tmp_path / "agent"),
                  PANEL_STATIC_ROOT=str(tmp_path / "static"))
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **values}
    result = subprocess.run([sys.executable, str(REPO / "manage.py"), "check", "--deploy", "--fail-level", "WARNING"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_development_settings_stay_as_make_run_has_them(tmp_path):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PANEL_VAR_DIR": str(tmp_path),
           "DJANGO_SETTINGS_MODULE": "panel.settings"}
    code = ("from django.conf import settings as s; "
            "print(s.SECURE_SSL_REDIRECT, s.SECURE_PROXY_SSL_HEADER, s.SECURE_HSTS_SECONDS, "
            "repr(s.PROXY_CLIENT_ADDRESS_HEADER), s.SESSION_COOKIE_SECURE, s.STATIC_ROOT)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.split() == ["False", "None", "0", "''", "False", str(tmp_path / "staticfiles")]


def test_units_pass_systemd_analyze_verify(tmp_path):
    # The virtualenv's python is /opt/vzpanel/venv/bin/python on the host; here, this one.
    for unit in UNIT_DIR.glob("vzpanel*"):
        (tmp_path / unit.name).write_text(unit.read_text().replace("/opt/vzpanel/venv/bin/python", sys.executable))
    names = sorted(p.name for p in tmp_path.iterdir())
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *names], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_units_key_settings():
    units = {path.name: parse_unit(path) for path in UNIT_DIR.glob("vzpanel*")}
    target = units["vzpanel.target"]
    assert set(target["Unit"]["Wants"][0].split()) == set(SERVICES)
    for name in SERVICES:
        service = units[name]["Service"]
        assert service["Restart"] == ["on-failure"] and service["RestartSec"], name
        assert service["EnvironmentFile"] == ["/etc/vzpanel/vzpanel.env"], name
        assert units[name]["Install"]["WantedBy"] == ["vzpanel.target"], name
        assert units[name]["Unit"]["PartOf"] == ["vzpanel.target"], name
        assert "StartLimitIntervalSec" in units[name]["Unit"], name
    agent = units["vzpanel-agent.service"]
    assert "User" not in agent["Service"], "the agent is the one process that runs as root"
    assert agent["Service"]["KillMode"] == ["mixed"]
    grace = 300  # PANEL_STOP_GRACE as the install writes it
    assert int(agent["Service"]["TimeoutStopSec"][0]) > grace + 30
    assert agent["Service"]["ExecStart"][0].endswith("manage.py agent --issue-token")
    after = agent["Unit"]["After"][0].split()
    assert {"network-online.target", "vzpanel-redis.service", "lxc.service"} <= set(after)
    for name in ("vzpanel-web.service", "vzpanel-consoles.service", "vzpanel-scheduler.service"):
        assert units[name]["Service"]["User"] == [WEB_USER] and units[name]["Service"]["Group"] == [WEB_USER]
        assert units[name]["Service"]["NoNewPrivileges"] == ["yes"]
    cli = units["vzpanel-cli.service"]["Service"]
    assert "User" not in cli, "the shell commands' server runs them as root, as root typed them"
    assert cli["ExecStart"][0].endswith("manage.py cliserver")
    assert cli["KillMode"] == ["process"], "a restart must not end the commands under way"
    for sandbox in ("PrivateTmp", "ProtectSystem", "ProtectHome", "PrivateMounts", "RootDirectory"):
        assert sandbox not in cli, f"{sandbox}: a mount namespace of its own makes every caller fall back"
    redis = units["vzpanel-redis.service"]["Service"]
    assert redis["User"] == ["redis"] and redis["ExecStartPre"][0].startswith("+")
    for name, path in (("vzpanel-web.socket", "/run/vzpanel/web.sock"),
                       ("vzpanel-consoles.socket", "/run/vzpanel/consoles.sock")):
        socket = units[name]["Socket"]
        assert socket["ListenStream"] == [path]
        assert (socket["SocketGroup"], socket["SocketMode"]) == (["www-data"], ["0660"])
    site = (REPO / "deploy/nginx/vzpanel.conf").read_text()
    assert "server unix:/run/vzpanel/web.sock;" in site and "alias /opt/vzpanel/static/;" in site
    for header in ("X-Forwarded-Proto $scheme", "X-Real-IP $remote_addr"):
        assert f"proxy_set_header {header};" in site
    assert "return 301 https://$host$request_uri;" in site
    # The consoles' WebSockets: upgraded, to their own server.
    assert "server unix:/run/vzpanel/consoles.sock;" in site and "proxy_pass http://vzpanel_consoles;" in site
    for header in ("Upgrade $http_upgrade", 'Connection "upgrade"'):
        assert f"proxy_set_header {header};" in site


@pytest.mark.parametrize("configured, sent, seen", [
    ("HTTP_X_REAL_IP", "198.51.100.7", "198.51.100.7"),
    ("HTTP_X_REAL_IP", "2001:db8::7", "2001:db8::7"),
    ("HTTP_X_REAL_IP", "not an address", "192.0.2.1"),
    ("", "198.51.100.7", "192.0.2.1"),  # development: a client could send the header itself
])
def test_client_address_comes_from_the_proxy_only_when_configured(configured, sent, seen):
    request = RequestFactory().get("/", REMOTE_ADDR="192.0.2.1", HTTP_X_REAL_IP=sent)
    with override_settings(PROXY_CLIENT_ADDRESS_HEADER=configured):
        ProxiedClientAddressMiddleware(lambda r: r.META["REMOTE_ADDR"])(request)
    assert request.META["REMOTE_ADDR"] == seen
