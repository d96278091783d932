"""`make run`'s supervisor (manage.py runpanel), for real: a process that dies is started again while
the others keep serving, the dashboard says so, and stopping stops everything."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from .conftest import BASE_DIR, destroy_containers_in, wait_until

integration = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def panel_env():
    base = Path(tempfile.mkdtemp(prefix="vzpanel-runpanel-"))
    base.chmod(0o755)  # redis runs as the redis user and reads its configuration below
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PANEL_", "REDIS_", "VZPANEL_"))}
    env.update(DJANGO_SETTINGS_MODULE="panel.settings", PANEL_VAR_DIR=str(base / "var"), PANEL_WEB_USER="",
               PANEL_BIND=f"127.0.0.1:{free_port()}", PANEL_LXCPATH=str(base / "lxc"),
               PANEL_AGENT_DATA_DIR=str(base / "agent"), PANEL_DUMP_DIR=str(base / "dump"),
               PANEL_TEMPLATE_DIR=str(base / "templates"), PANEL_WEB_WORKERS="1", PANEL_HOST_NAME="supervised")
    for step in (["migrate", "--noinput", "-v", "0"], ["setup_panel"]):
        subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), *step], env=env, cwd=BASE_DIR, check=True,
                       capture_output=True, timeout=300)
    yield env, base
    destroy_containers_in(base / "lxc")
    if os.environ.get("VZPANEL_KEEP"):
        print(base)
    else:
        shutil.rmtree(base, ignore_errors=True)


def status(base: Path) -> dict:
    try:
        return json.loads((base / "var" / "process-status.json").read_text())
    except (OSError, ValueError):
        return {}


def web_answers(env) -> bool:
    try:
        with urllib.request.urlopen(f"http://{env['PANEL_BIND']}/accounts/login/", timeout=5) as resp:
            return resp.status == 200
    except OSError:
        return False


def start_panel(env, base):
    log = open(base / "runpanel.log", "w")
    panel = subprocess.Popen([sys.executable, str(BASE_DIR / "manage.py"), "runpanel"], env=env, cwd=BASE_DIR,
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    wait_until(lambda: web_answers(env) and status(base).get("agent", {}).get("pid"), 90, interval=0.3,
               message="the panel to serve")
    return panel


def stop_panel(panel, base) -> None:
    """Ctrl-C's SIGTERM; a panel that does not stop in two minutes is a failure (and is killed)."""
    panel.send_signal(signal.SIGTERM)
    try:
        panel.wait(120)
    except subprocess.TimeoutExpired:
        os.killpg(panel.pid, signal.SIGKILL)
        panel.wait()
    assert panel.returncode == 0, (base / "runpanel.log").read_text()[-3000:]


def manage(env, *argv, **kwargs):
    return subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), *argv], env=env, cwd=BASE_DIR,
                          capture_output=True, text=True, timeout=300, **kwargs)


@integration
def test_a_dead_process_is_started_again_and_the_rest_keep_serving(panel_env):
    env, base = panel_env
    panel = start_panel(env, base)
    try:
        for name in ("scheduler", "agent", "cli"):
            before = status(base)[name]["pid"]
            os.kill(before, signal.SIGKILL)
            wait_until(lambda: status(base)[name]["restarts"] == 1 and status(base)[name]["pid"] not in (None, before),
                       30, interval=0.2, message=f"{name} to be started again")
            assert status(base)[name]["last_exit"] == -signal.SIGKILL
            assert web_answers(env), "the web server went down with the " + name
        assert status(base)["web"]["restarts"] == 0 and status(base)["redis"]["restarts"] == 0
        pids = [info["pid"] for info in status(base).values()]
    finally:
        stop_panel(panel, base)
    assert not (base / "var" / "process-status.json").exists()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@integration
def test_stopping_the_panel_lets_a_running_backup_finish(panel_env):
    """Ctrl-C on `make run` during a backup: the web server stops, the agent finishes the backup
    (its tar and zstd are not signalled), then everything stops."""
    env, base = panel_env
    template = next((base / "templates").glob("*.tar.zst")).name.removesuffix(".tar.zst")
    panel = start_panel({**env, "VZPANEL_STALL_AT": "backup.thawed:6"}, base)  # a backup that takes a while
    try:
        for argv in (["vzctl", "create", "9140", "--ostemplate", template], ["vzctl", "start", "9140"]):
            res = manage(env, *argv)
            assert res.returncode == 0, res.stdout + res.stderr
        backup = subprocess.Popen([sys.executable, str(BASE_DIR / "manage.py"), "vzdump", "9140", "--mode",
                                   "suspend"], env=env, cwd=BASE_DIR, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        # The first copy lands in a temporary directory; the backup then stalls for 6 s after the thaw.
        wait_until(lambda: any((base / "dump").glob(".vzdump-tmp-9140-*")), 60, interval=0.2,
                   message="the backup to run")
    finally:
        stop_panel(panel, base)
    out, _ = backup.communicate(timeout=60)
    assert backup.returncode == 0, out
    archives = list((base / "dump").glob("vzdump-lxc-9140-*.tar.zst"))
    assert len(archives) == 1 and not list((base / "dump").glob("*.partial")), out


def test_the_dashboard_names_a_process_that_died(client, admin_user, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    (tmp_path / "process-status.json").write_text(json.dumps({
        "agent": {"pid": 4242, "restarts": 2, "last_exit": -9, "last_exit_at": time.time()},
        "web": {"pid": 4243, "restarts": 0, "last_exit": None, "last_exit_at": None}}))
    client.force_login(admin_user)
    page = client.get("/").content.decode()
    assert "process-trouble" in page and "<strong>agent</strong> process died 2 times" in page
    assert "<strong>web</strong>" not in page


def test_a_unit_that_died_under_systemd_is_named_on_the_dashboard(client, admin_user, settings, tmp_path,
                                                                  monkeypatch):
    """The production units report through ExecStartPost/ExecStopPost (deploy/systemd): a kill counts
    as a death, a stop asked for does not."""
    from django.core.management import call_command
    settings.VAR_DIR = tmp_path
    call_command("process_status", "started", "agent", "4242")
    call_command("process_status", "started", "web", "4243")
    monkeypatch.setenv("SERVICE_RESULT", "signal")
    monkeypatch.setenv("EXIT_CODE", "killed")
    monkeypatch.setenv("EXIT_STATUS", "KILL")
    call_command("process_status", "exited", "agent")
    monkeypatch.setenv("SERVICE_RESULT", "success")  # systemctl stop vzpanel-web
    monkeypatch.setenv("EXIT_CODE", "exited")
    monkeypatch.setenv("EXIT_STATUS", "0")
    call_command("process_status", "exited", "web")
    call_command("process_status", "started", "agent", "4244")  # systemd started it again
    info = json.loads((tmp_path / "process-status.json").read_text())["agent"]
    assert (info["pid"], info["restarts"], info["last_exit"]) == (4244, 1, -signal.SIGKILL)
    client.force_login(admin_user)
    page = client.get("/").content.decode()
    assert "<strong>agent</strong> process died 1 time\n" in page and "journalctl -u vzpanel-agent" in page
    assert "<strong>web</strong>" not in page


def test_restart_back_off_doubles_while_a_process_keeps_crashing_and_starts_over_after_a_long_run():
    from panel.process_status import BACKOFF_MAX, next_backoff
    waits, previous = [], None
    for _ in range(8):  # each run ends within a second of its start
        previous = next_backoff(previous, ran_seconds=0.5)
        waits.append(previous)
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60]
    assert next_backoff(60, ran_seconds=BACKOFF_MAX) == 1  # it ran a minute: a new trouble


def test_a_unit_crashing_in_a_loop_waits_its_back_off_before_systemd_starts_it_again(settings, tmp_path, monkeypatch):
    """systemd 252 restarts at a fixed RestartSec: the unit's ExecStartPre (`process_status backoff`)
    waits what runpanel would. A stop asked for costs the next start nothing."""
    from django.core.management import call_command
    from panel import process_status
    settings.VAR_DIR = tmp_path
    slept = []
    monkeypatch.setattr("panel.management.commands.process_status.time.sleep", slept.append)
    monkeypatch.setenv("SERVICE_RESULT", "exit-code")
    monkeypatch.setenv("EXIT_CODE", "exited")
    monkeypatch.setenv("EXIT_STATUS", "1")
    for _ in range(4):  # starts, crashes at once, four times over
        call_command("process_status", "backoff", "scheduler")
        call_command("process_status", "started", "scheduler", "4242")
        call_command("process_status", "exited", "scheduler")
    assert len(slept) == 3 and [round(s) for s in slept] == [1, 2, 4]
    assert process_status.read()["scheduler"]["backoff"] == 8
    assert 7 < process_status.backoff_wait("scheduler") <= 8
    monkeypatch.setenv("SERVICE_RESULT", "success")
    call_command("process_status", "started", "scheduler", "4243")
    call_command("process_status", "exited", "scheduler")  # systemctl stop
    assert process_status.backoff_wait("scheduler") == 0
