"""The shell commands through their server (manage.py cliserver, panel/cliserver.py) and its thin
client (panel/cli_client.py), for real: a server process, clients as root types them, other users,
a server that is down or refuses, and (marked integration) a real agent and container for exec,
runscript, Ctrl-C, a client killed mid-command and vzctl enter on a terminal. Each result is
compared with the command run directly (`manage.py COMMAND`), which is what the client falls back to."""
from __future__ import annotations

import os
import signal
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

import pytest
from django.conf import settings

from accounts.models import AuditEvent
from containers.models import Container
from panel import cli_client, cliserver

from .conftest import BASE_DIR, LXCPATH, subprocess_env, wait_task, wait_until

CLIENT = str(BASE_DIR / "panel" / "cli_client.py")
SOCKET = Path(settings.CLI_SOCKET)
WAIT = 60


def client_argv(command: str, *args: str) -> list[str]:
    return [sys.executable, "-I", "-S", CLIENT, command, *args]


def direct_argv(command: str, *args: str) -> list[str]:
    return [sys.executable, str(BASE_DIR / "manage.py"), command, *args]


def run(argv, env=None, cwd="/", **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env or subprocess_env(), cwd=cwd, capture_output=True, text=True, timeout=300,
                          **kwargs)


class CliServer:
    """`manage.py cliserver` as a real process, with the environment the clients have."""

    def __init__(self, *args: str, env: dict | None = None):
        self.args, self.env = args, env or subprocess_env()
        self.log_path = Path(os.environ["VZPANEL_TEST_RUN_DIR"]) / "cliserver.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "CliServer":
        self.log_path.write_text("")
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen([sys.executable, str(BASE_DIR / "manage.py"), "cliserver", *self.args],
                                         env=self.env, cwd=BASE_DIR, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

        def serving():
            if self.proc.poll() is not None:
                raise AssertionError(f"cliserver exited: {self.log()}")
            return "serving the shell commands" in self.log()
        wait_until(serving, WAIT, message="the command server")
        return self

    def log(self) -> str:
        return self.log_path.read_text()

    def served(self) -> int:
        """How many commands the server ran to their end."""
        return self.log().count("exited with status")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(WAIT)


@pytest.fixture
def cli_server(transactional_db):
    server = CliServer().start()
    try:
        yield server
    finally:
        server.stop()


def raw_request(command: str, args: list[str], environ: dict) -> bytes:
    return cli_client.encode_request(command, args, environ, 0o022)


# -- the protocol, alone ------------------------------------------------------------------------

def test_a_request_decodes_to_what_the_client_sent_and_nothing_else():
    environ = {"TERM": "xterm", "LC_ALL": "C.UTF-8", "PATH": "/evil", "PANEL_DEBUG": "1", "LD_PRELOAD": "/x.so",
               "PYTHONPATH": "/evil"}
    body = raw_request("vzctl", ["exec", "101", "echo a b", "ü"], environ)
    request = cliserver.decode_request(body[4:], [5, 6, 7, 8])
    assert (request.command, request.args, request.umask) == ("vzctl", ["exec", "101", "echo a b", "ü"], 0o022)
    assert request.passed_env == {"TERM": "xterm", "LC_ALL": "C.UTF-8"}  # never PATH, LD_PRELOAD, PYTHONPATH
    assert request.settings_env == {"PANEL_DEBUG": "1", "DJANGO_SETTINGS_MODULE": "panel.settings"}
    # A caller that slips in a variable that is not passed on, or garbage, is refused whole.
    forged = body[4:].replace(b"TERM=xterm", b"PATH=/evil")
    with pytest.raises(cliserver.RequestError):
        cliserver.decode_request(forged, [5, 6, 7, 8])
    for bad in (b"", b"garbage", body[4:] + b"\0extra", body[4:].replace(cli_client.PROTOCOL, b"vzpanel-cli 9")):
        with pytest.raises(cliserver.RequestError):
            cliserver.decode_request(bad, [5, 6, 7, 8])
    with pytest.raises(cliserver.RequestError):
        cliserver.decode_request(body[4:], [5, 6, 7])  # no working directory


def test_only_shell_commands_with_the_servers_settings_and_filesystem_are_taken():
    env = cli_client.settings_env(os.environ)
    namespace = cli_client.mount_namespace()
    request = cliserver.decode_request(raw_request("vzctl", ["status", "1"], os.environ)[4:], [5, 6, 7, 8])
    assert cliserver.refusal(request, env, namespace) is None
    assert "differ" in cliserver.refusal(request, {**env, "PANEL_DEBUG": "1"}, namespace)
    assert "another filesystem" in cliserver.refusal(request, env, "mnt:[1] 1:2")
    request.command = "shell"
    assert "not a shell command" in cliserver.refusal(request, env, namespace)


# -- a real server ------------------------------------------------------------------------------

def test_commands_run_in_the_server_exactly_as_directly(cli_server, admin_user, host, tmp_path):
    Container.objects.create(ctid=9801, hostname="row.example", ostemplate="busybox", host=host, status="stopped")
    (tmp_path / "here.sh").write_text("echo hi\n")
    cases = [
        ("vzctl", "status", "9801"),          # 0 and one line
        ("vzctl", "status", "9799"),          # not there: said, status 0
        ("vzctl", "start", "9799"),           # CommandError: one line, status 1
        ("vzctl", "bogus"),                   # argparse: usage, status 2
        ("vzlist", "-a"),
        ("vzlist", "-H", "-o", "ctid,hostname", "9801"),
        ("vzctl", "runscript", "9801", "missing.sh"),  # a relative path: the caller's directory
        ("vzctl", "runscript", "9801", "here.sh"),     # found there, then refused: not running
        ("vzctl", "set", "9801", "--description", "set at the shell"),  # saved and audited
    ]
    for argv in cases:
        served, before = cli_server.served(), AuditEvent.objects.count()
        fast = run(client_argv(*argv), cwd=tmp_path)
        try:
            wait_until(lambda: cli_server.served() == served + 1, WAIT, message=f"{argv} to be served")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; {fast}; the server's log: {cli_server.log()[-3000:]}") from None
        audited_fast, before = AuditEvent.objects.count() - before, AuditEvent.objects.count()
        direct = run(direct_argv(*argv), cwd=tmp_path)
        assert (fast.returncode, fast.stdout, fast.stderr) == (direct.returncode, direct.stdout, direct.stderr), argv
        assert audited_fast == AuditEvent.objects.count() - before, argv
    assert "missing.sh: No such file or directory" in run(client_argv(*cases[6]), cwd=tmp_path).stderr
    assert "No such file" not in run(client_argv(*cases[7]), cwd=tmp_path).stderr
    event = AuditEvent.objects.filter(object_id="9801").latest("pk")
    assert (event.username, event.address) == ("admin", "cli")
    assert Container.objects.get(ctid=9801).description == "set at the shell"


def test_other_users_cannot_reach_the_server(transactional_db, admin_user):
    # A socket where another user could reach it, were it not for its modes (the run directory is 0700).
    place = Path(tempfile.mkdtemp(prefix="vzpt-cli-"))
    place.chmod(0o755)
    sock = place / "cli" / "cli.sock"
    env = {**subprocess_env(), "PANEL_CLI_SOCKET": str(sock)}
    server = CliServer(env=env).start()
    try:
        refused_by_modes_then_by_the_server(server, sock, env)
    finally:
        server.stop()
        shutil.rmtree(place, ignore_errors=True)


def refused_by_modes_then_by_the_server(server: CliServer, sock: Path, env: dict) -> None:
    info = sock.stat(), sock.parent.stat()
    assert stat.S_IMODE(info[0].st_mode) == 0o600 and stat.S_IMODE(info[1].st_mode) == 0o700
    probe = ("import socket, sys\ns = socket.socket(socket.AF_UNIX)\n"
             "try:\n    s.connect(sys.argv[1])\nexcept OSError as e:\n    print('refused', e.errno); sys.exit()\n"
             "try:\n    s.sendall(bytes.fromhex(sys.argv[2]))\nexcept BrokenPipeError:\n    pass  # refused already\n"
             "print(s.recv(100).decode().strip())\n")
    request = raw_request("vzctl", ["status", "1"], env).hex()
    as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-I", "-c", probe,
                 str(sock), request]
    res = subprocess.run(as_nobody, capture_output=True, text=True, timeout=60)
    assert res.stdout.split() == ["refused", "13"], res.stderr  # EACCES: the socket's mode
    # Were the modes loosened, the server still checks who called (SO_PEERCRED) and runs nothing.
    sock.parent.chmod(0o755)
    sock.chmod(0o666)
    try:
        res = subprocess.run(as_nobody, capture_output=True, text=True, timeout=60)
    finally:
        sock.parent.chmod(0o700)
        sock.chmod(0o600)
    assert res.stdout.strip() == "F another user", res.stderr
    assert f"refused a caller of uid {65534}" in server.log() and "running as pid" not in server.log()


def test_a_server_of_another_user_is_never_given_the_command(transactional_db, admin_user):
    """Someone else's socket where the client looks: it checks the server's user and sends nothing."""
    place = Path(tempfile.mkdtemp(prefix="vzpt-cli-"))
    place.chmod(0o777)
    fake = place / "fake.sock"
    listener = ("import socket, sys\ns = socket.socket(socket.AF_UNIX)\ns.bind(sys.argv[1])\n"
                "import os; os.chmod(sys.argv[1], 0o777)\ns.listen()\nprint('ready', flush=True)\n"
                "c, _ = s.accept()\nc.settimeout(20)\ndata = b''\n"
                "while chunk := c.recv(65536):\n    data += chunk\nprint('received', len(data), flush=True)\n")
    fake_server = subprocess.Popen(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                                    sys.executable, "-I", "-c", listener, str(fake)], stdout=subprocess.PIPE,
                                   text=True)
    try:
        assert fake_server.stdout.readline().strip() == "ready"
        env = {**subprocess_env(), "PANEL_CLI_SOCKET": str(fake)}
        res = run(client_argv("vzctl", "status", "9799"), env=env)
        assert (res.returncode, res.stdout) == (0, "CTID 9799 deleted unmounted down\n"), res.stderr  # ran itself
        assert fake_server.stdout.readline().split() == ["received", "0"]
    finally:
        fake_server.kill()
        fake_server.wait()
        shutil.rmtree(place, ignore_errors=True)


def test_without_a_server_or_with_other_settings_the_command_runs_itself(transactional_db, admin_user):
    assert not SOCKET.exists()
    res = run(client_argv("vzctl", "status", "9799"))
    assert (res.returncode, res.stdout) == (0, "CTID 9799 deleted unmounted down\n"), res.stderr
    server = CliServer().start()
    try:
        other = {**subprocess_env(), "PANEL_STOP_TIMEOUT": "99"}  # not the server's settings
        res = run(client_argv("vzctl", "status", "9799"), env=other)
        assert (res.returncode, res.stdout) == (0, "CTID 9799 deleted unmounted down\n"), res.stderr
        assert "settings variables differ" in server.log() and server.served() == 0
        res = run(client_argv("vzctl", "status", "9799"))
        assert (res.returncode, res.stdout) == (0, "CTID 9799 deleted unmounted down\n")
        wait_until(lambda: server.served() == 1, WAIT, message="the command to be served")
    finally:
        server.stop()
    assert not SOCKET.exists()  # a stopped server leaves no socket to try


def test_a_flood_is_bounded_and_garbage_is_refused(transactional_db, admin_user):
    server = CliServer("--max-sessions", "1").start()
    try:
        hold = socket.socket(socket.AF_UNIX)
        hold.connect(str(SOCKET))  # a session waiting for its request
        time.sleep(0.2)
        extra = socket.socket(socket.AF_UNIX)
        extra.connect(str(SOCKET))
        assert extra.recv(100) == b"F busy\n"
        res = run(client_argv("vzctl", "status", "9799"))  # told busy too: runs itself, still right
        assert (res.returncode, res.stdout) == (0, "CTID 9799 deleted unmounted down\n"), res.stderr
        hold.close()
        for garbage in (b"\x00\x00\x00\x07garbage", (1 << 30).to_bytes(4, "big") + b"x" * 100):
            def answered():
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(str(SOCKET))
                    s.sendall(garbage)
                    return s.recv(100)
            assert wait_until(lambda: (answer := answered()) != b"F busy\n" and answer, WAIT,
                              message="a free session") == b"F bad request\n"
        wait_until(lambda: run(client_argv("vzctl", "status", "9799")).stdout and server.served() == 1, WAIT,
                   message="the server to serve again")
        assert server.proc.poll() is None
    finally:
        server.stop()


# -- with a real agent and container (LXC) ------------------------------------------------------

CTID = 9810


@pytest.fixture
def running_ct(agent, host, admin_user, template_name):
    from containers import services
    task = services.create_container(user=admin_user, ctid=CTID, ostemplate=template_name,
                                     hostname="cli-server.test", host=host)
    assert wait_task(task, 120).status == "ok"
    assert wait_task(services.start_container(Container.objects.get(ctid=CTID), admin_user)).status == "ok"
    return Container.objects.get(ctid=CTID)


def in_container(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["lxc-attach", "-n", str(CTID), "-P", str(LXCPATH), "--", *argv], capture_output=True,
                          text=True, timeout=60)


def sleeping_in_container() -> bool:
    return "sleep 100" in in_container("ps").stdout


@pytest.mark.integration
def test_exec_runscript_enter_and_signals_through_the_server(running_ct, cli_server, tmp_path):
    res = run(client_argv("vzctl", "exec", str(CTID), "echo out; echo err >&2; exit 3"))
    assert (res.returncode, res.stdout, res.stderr) == (3, "out\n", "err\n")
    res = run(client_argv("vzctl", "exec", str(CTID), "-"), input="echo piped; exit 4\n")
    assert (res.returncode, res.stdout) == (4, "piped\n"), res.stderr
    (tmp_path / "script.sh").write_text("#!/bin/sh\necho \"args: $*\"\nexit 5\n")
    res = run(client_argv("vzctl", "runscript", str(CTID), "script.sh", "a", "b"), cwd=tmp_path)
    assert (res.returncode, res.stdout) == (5, "args: a b\n"), res.stderr
    res = run(client_argv("vzctl", "enter", str(CTID)), input="cat /etc/hostname\nexit\n")
    assert (res.returncode, res.stdout) == (0, "cli-server.test\n"), res.stderr
    served = cli_server.served()
    assert served == 4

    # Ctrl-C: vzctl ends as the direct one does (Python's KeyboardInterrupt, killed by SIGINT), and,
    # as with the direct one, the command in the container goes on to its end (or --exec-timeout).
    outcomes = []
    for argv in (client_argv("vzctl", "exec", str(CTID), "sleep 100"),
                 direct_argv("vzctl", "exec", str(CTID), "sleep 100")):
        proc = subprocess.Popen(argv, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_until(sleeping_in_container, WAIT, interval=0.2, message="sleep 100 in the container")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=WAIT)
        outcomes.append((proc.returncode, "KeyboardInterrupt" in err, sleeping_in_container()))
        in_container("killall", "sleep")  # end it here, as its task holds the container's lock
        wait_until(lambda: not Container.objects.get(ctid=CTID).lock_task_id, WAIT, message="the exec task to end")
    assert outcomes == [(-signal.SIGINT, True, True)] * 2, outcomes

    # The client killed outright: its command's process gets a hangup and goes.
    proc = subprocess.Popen(client_argv("vzctl", "exec", str(CTID), "sleep 100"), env=subprocess_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(sleeping_in_container, WAIT, interval=0.2, message="sleep 100 in the container")
    pid = int(cli_server.log().rsplit("vzctl: running as pid ", 1)[1].split()[0])
    proc.kill()
    proc.wait()
    wait_until(lambda: f"pid {pid} ended after its caller went" in cli_server.log(), WAIT,
               message="the command to end with its caller")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    in_container("killall", "sleep")
    wait_until(lambda: not Container.objects.get(ctid=CTID).lock_task_id, WAIT, message="the exec task to end")


@pytest.mark.integration
def test_vzctl_enter_on_a_terminal_through_the_server(running_ct, cli_server):
    from consoles.models import ConsoleSession

    from .test_console_cli import PtyCommand, resizes_sent
    shell = PtyCommand(client_argv("vzctl", "enter", str(CTID)))
    try:
        shell.read_until(f"entered into CT {CTID}".encode(), "vzctl's greeting")
        shell.read_until(b"# ", "the container's prompt")
        shell.type(b"echo $((6*7))\r")
        shell.read_until(b"\n42\r", "the answer")
        shell.resize(101, 31)  # SIGWINCH to the client, passed on to the command
        wait_until(lambda: resizes_sent(ConsoleSession.objects.get()) == [(101, 31)], WAIT, message="the resize")
        shell.type(b"exit\r")
        assert shell.finish() == 0
        assert termios.tcgetattr(shell.slave) == shell.cooked  # the command put the terminal back
        assert ConsoleSession.objects.get().close_reason == "the shell exited"
        assert "vzctl: running as pid" in cli_server.log()
    finally:
        shell.close()


def test_settings_or_pythonpath_options_are_never_run_with_the_servers_settings(cli_server, admin_user, host,
                                                                                 tmp_path):
    """manage.py's --settings and --pythonpath choose the settings (another database) and where modules
    are imported from; a fork whose settings are loaded already would take neither and act on the
    server's database instead. Such a command is refused, so the caller runs it itself, as asked."""
    Container.objects.create(ctid=9802, hostname="row.example", ostemplate="busybox", host=host, status="stopped")
    (tmp_path / "elsewhere_settings.py").write_text("raise SystemExit('the caller settings were read')\n")
    for options in (["--settings=nosuch_settings_module"], ["--settings", "nosuch_settings_module"],
                    [f"--pythonpath={tmp_path}", "--settings=elsewhere_settings"]):
        argv = ("vzctl", *options, "set", "9802", "--description", "changed")
        fast = run(client_argv(*argv), cwd=tmp_path)
        direct = run(direct_argv(*argv), cwd=tmp_path)
        assert (fast.returncode, fast.stdout, fast.stderr) == (direct.returncode, direct.stdout, direct.stderr), argv
        assert fast.returncode != 0, fast
        assert Container.objects.get(ctid=9802).description == "", argv  # the server's database: untouched
    assert cli_server.served() == 0, cli_server.log()
    request = cliserver.decode_request(raw_request("vzctl", ["status", "--pythonpath", "/tmp", "1"],
                                                   os.environ)[4:], [5, 6, 7, 8])
    assert "--pythonpath" in cliserver.refusal(request, cli_client.settings_env(os.environ),
                                               cli_client.mount_namespace())
