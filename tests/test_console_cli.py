"""vzctl enter, vzctl console and vzctl exec at the shell, as a person types them: the CLI on a real
PTY, through the same console sessions and Redis relay as the browser, to the real agent and a
real container. Never a timing: only the order of what is read, each wait bounded generously."""
import fcntl
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios

import pytest

from accounts.models import AuditEvent
from consoles.models import ConsoleSession
from consoles.shell import EscapeFilter
from tasks.models import Task

from .conftest import BASE_DIR, LXCPATH, redis_admin, subprocess_env, wait_until
from .hosts_fixtures import second_host  # noqa: F401
from .tenancy_fixtures import students_running_container

pytestmark = pytest.mark.integration
CTID = 9900
WAIT = 60


@pytest.fixture
def running(agent, host, template_name, acme, plan, people):
    return students_running_container(CTID, "cli.test", host, template_name, acme, plan, people)


def vzctl(*args) -> list[str]:
    return [sys.executable, str(BASE_DIR / "manage.py"), "vzctl", *args]


class PtyCommand:
    """A command on a new PTY that is its controlling terminal (as in a terminal emulator); the
    test is the emulator: it reads the screen's bytes, types, resizes, and answers the cursor
    position query busybox's shell sends."""

    def __init__(self, argv: list[str]):
        self.master, self.slave = os.openpty()
        self.cooked = termios.tcgetattr(self.slave)
        self.proc = subprocess.Popen(["setsid", "--ctty", *argv], stdin=self.slave, stdout=self.slave,
                                     stderr=self.slave, env=subprocess_env(), cwd=BASE_DIR)
        self.output = b""

    def read_until(self, wanted: bytes, what: str) -> None:
        while wanted not in self.output:
            ready, _, _ = select.select([self.master], [], [], WAIT)
            if not ready:
                raise AssertionError(f"nothing more while waiting for {what}: {self.output[-600:]!r}")
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the command has gone
                raise AssertionError(f"the command ended before {what}: {self.output[-600:]!r}") from None
            self.output += chunk
            if b"\x1b[6n" in chunk:
                self.type(b"\x1b[1;1R")

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def resize(self, cols: int, rows: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def finish(self) -> int:
        """Read to the end and return the exit status."""
        try:
            self.read_until(b"\0never\0", "the end")
        except AssertionError:
            pass
        return self.proc.wait(WAIT)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(WAIT)
        for fd in (self.master, self.slave):
            os.close(fd)


def resizes_sent(session) -> list[tuple[int, int]]:
    """The resizes on the session's input stream in Redis (what the agent is told)."""
    from consoles import relay
    entries = redis_admin().xrange(relay.session_key(session.host_id, session.pk, "in"))
    messages = [relay.parse(fields) for _, fields in entries]
    return [(m.cols, m.rows) for m in messages if m and m.kind == relay.RESIZE]


@pytest.fixture
def on_pty():
    started = []

    def start(*args) -> PtyCommand:
        started.append(PtyCommand(vzctl(*args)))
        return started[-1]
    yield start
    for command in started:
        command.close()


def enter_and_ask(on_pty, ctid: int) -> "PtyCommand":
    """vzctl enter CTID as the student, at a terminal; the shell answers 6*7."""
    shell = on_pty("--user", "student", "enter", str(ctid))
    shell.read_until(f"entered into CT {ctid}".encode(), "vzctl's greeting")
    shell.read_until(b"# ", "the container's prompt")
    shell.type(b"echo $((6*7))\r")
    shell.read_until(b"\n42\r", "the answer")
    return shell


def test_vzctl_enter_gives_a_shell_through_the_agent_and_restores_the_terminal(running, people, on_pty):
    shell = enter_and_ask(on_pty, CTID)
    shell.resize(101, 31)  # the kernel tells vzctl (SIGWINCH), vzctl tells the agent
    wait_until(lambda: resizes_sent(ConsoleSession.objects.get()) == [(101, 31)], WAIT, message="the resize")
    shell.type(b"stty size\r")
    shell.read_until(b"31 101", "the new size inside")
    shell.type(b"exit\r")
    assert shell.finish() == 0
    assert b"exited from CT 9900" in shell.output
    assert termios.tcgetattr(shell.slave) == shell.cooked  # not left raw
    row = ConsoleSession.objects.get()
    assert (row.username, row.mode, row.client_address) == ("student", "shell", "cli")
    assert row.opened_at and row.close_reason == "the shell exited"
    assert AuditEvent.objects.filter(action="console.open", username="student", result="ok").exists()
    assert AuditEvent.objects.filter(action="console.close", username="student", object_id=str(CTID)).exists()

    # The terminal goes away (SIGHUP): the session closes at once, not at the idle timeout.
    hung_up = enter_and_ask(on_pty, CTID)
    hung_up.proc.send_signal(signal.SIGHUP)
    assert hung_up.proc.wait(WAIT) == 1
    assert ConsoleSession.objects.latest("pk").close_reason == "vzctl got SIGHUP"


def test_vzctl_console_shows_the_containers_console_and_ctrl_a_q_leaves(running, people, on_pty):
    console = on_pty("--user", "student", "console", str(CTID))
    console.read_until(b"Ctrl-a q to leave", "vzctl's greeting")
    wait_until(lambda: ConsoleSession.objects.filter(opened_at__isnull=False).exists(), WAIT,
               message="the agent to open the console")
    subprocess.run(["lxc-attach", "-n", str(CTID), "-P", str(LXCPATH), "--", "sh", "-c",
                    "echo on-the-console > /dev/console"], check=True, timeout=30)
    console.read_until(b"on-the-console", "the line written to /dev/console")
    console.type(b"\x01q")
    assert console.finish() == 0
    assert b"Left the console of CT 9900" in console.output
    assert termios.tcgetattr(console.slave) == console.cooked
    row = ConsoleSession.objects.get()
    assert row.mode == "console" and row.close_reason == "left with Ctrl-a q"


def test_a_user_who_may_not_manage_the_container_is_refused_at_the_shell(running, people):
    env = subprocess_env()
    for username, says in (("auditor", "You may look at container 9900 but not change it"),
                           ("peer", "Container 9900 does not exist"), ("stranger", "Container 9900 does not exist")):
        for verb in ("enter", "console"):
            res = subprocess.run(vzctl("--user", username, verb, str(CTID)), capture_output=True, text=True,
                                 env=env, cwd=BASE_DIR, timeout=WAIT, stdin=subprocess.DEVNULL)
            assert res.returncode != 0 and res.stdout == ""
            assert len(res.stderr.strip().splitlines()) == 1 and says in res.stderr, res.stderr
    assert not ConsoleSession.objects.exists()


def test_vzctl_exec_prints_output_while_the_command_runs(running, people):
    proc = subprocess.Popen(vzctl("--user", "student", "exec", str(CTID), "sh", "-c",
                                  "echo first; sleep 3; echo second >&2; echo third; exit 4"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=subprocess_env(), cwd=BASE_DIR)
    try:
        assert proc.stdout.readline() == b"first\n"
        task = Task.objects.get(type="ct.exec")
        assert task.status == "running"  # the command has not ended: its first line is here already
        # The task's log (what the task page streams) has it too, before the command goes on.
        wait_until(lambda: "| first" in Task.objects.get(pk=task.pk).log, WAIT, message="the line in the log")
        assert "| third" not in Task.objects.get(pk=task.pk).log
        out, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (out, err, proc.returncode) == (b"third\n", b"second\n", 4)
    task.refresh_from_db()
    assert task.result["exit_code"] == 4 and task.result["stdout"] == "first\nthird\n"


def test_a_piped_vzctl_enter_runs_the_commands_in_roots_shell(running, people):
    res = subprocess.run(vzctl("--user", "student", "enter", str(CTID)), input="cat /etc/hostname\nexit 0\n",
                         capture_output=True, text=True, env=subprocess_env(), cwd=BASE_DIR, timeout=WAIT)
    assert (res.returncode, res.stdout) == (0, "cli.test\n"), res.stderr


def test_ctrl_a_q_is_the_only_escape_other_keys_after_ctrl_a_pass_unchanged():
    escape = EscapeFilter()
    assert escape.feed(b"ls\r\x01") == (b"ls\r", False)
    assert escape.feed(b"\x01") == (b"\x01\x01", False)   # Ctrl-a Ctrl-a: for lxc-console to make one
    assert escape.feed(b"a\x01x") == (b"a\x01x", False)
    assert escape.feed(b"abc\x01q--") == (b"abc", True)


def test_vzctl_enter_reaches_a_container_on_another_host_through_its_agent(
        second_host, busybox_template, template_name, acme, plan, people, on_pty):
    h2, h2_agent = second_host
    shutil.copy(busybox_template, h2.template_dir)  # listed by its agent at start
    h2_agent.start()
    students_running_container(CTID + 1, "elsewhere.test", h2, template_name, acme, plan, people)
    shell = enter_and_ask(on_pty, CTID + 1)
    shell.type(b"hostname\r")
    shell.read_until(b"\nelsewhere.test\r", "the other host's container's name")
    shell.type(b"exit\r")
    assert shell.finish() == 0
    row = ConsoleSession.objects.get()
    assert row.host_id == h2.pk and row.opened_at and row.close_reason == "the shell exited"
