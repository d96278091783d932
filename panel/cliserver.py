"""The command server behind the shell commands (vzctl, vzlist, vzdump, ...): `manage.py cliserver`.

A shell command used to be `python manage.py vzctl ...`: about 1 s of interpreter start-up and
imports (Django, redis, pyroute2, ...) before its first query, at every command. This process
pays that once. It has Django set up and every shell command's module imported, holds no database
or Redis connection, and listens on a Unix socket (settings.CLI_SOCKET: a directory of mode 0700
and a socket of mode 0600, both its user's). The wrappers on root's PATH (panel/cli_client.py,
stdlib only, ~10 ms) send it each command; it forks, and the fork runs exactly what `manage.py
COMMAND ARGS` runs (ManagementUtility), so permission checks, audit records, messages and exit
statuses are the command's own.

Per connection (the listening process only accepts, checks and hands over, so one slow client
holds up nothing):
1. The caller must be this server's own user (SO_PEERCRED), and at most MAX_SESSIONS commands run
   at once; otherwise it is told "F" (run it yourself) before anything runs.
2. A session process, forked ahead of time with its command's process (Server: a fork costs tens
   of milliseconds here), is given the connection and reads the request (bounded in size and time): a shell command's
   name, its arguments, the caller's display variables (cli_client.CLI_PASSED_ENV), its settings
   variables, umask and mount namespace, and its stdin, stdout, stderr and working directory as
   file descriptors. Settings variables or a mount namespace that differ from the server's, a
   --settings or --pythonpath option, or a command that is not a shell command: "F" again, so the caller runs it with its own settings
   and paths, never silently with ours.
3. The session hands the request to the command's process (fork_worker), which becomes: a session of its own (setsid: no controlling
   terminal, so it reads and sets the caller's terminal without job control getting in the way),
   the caller's descriptors on 0, 1 and 2, fchdir to the caller's directory, its umask and
   display variables, fresh sys.std* objects, no inherited database or Redis connection; then
   `manage.py COMMAND ARGS...`, and it exits as Python would (status, or the signal that ended
   it: a Ctrl-C ends it with SIGINT as before).
4. Meanwhile the session passes the signals the caller sends (SIGINT, SIGTERM, SIGHUP, SIGWINCH)
   to the command's process group. When the caller goes (its end of the socket closes: killed,
   terminal gone), the command gets SIGHUP, as it would have from its terminal, and SIGKILL if it
   is still there HANGUP_GRACE seconds later. Then the session sends the exit status and ends.

Stopping the server (SIGTERM/SIGINT) stops the accepting only: commands under way finish
(sessions ignore the signals aimed at the server's process group), as the commands that ran on
their own did when the panel was restarted.
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import gc
import io
import logging
import os
import select
import signal
import socket
import stat
import struct
import sys
import time
import traceback
from pathlib import Path

from panel import cli_client

logger = logging.getLogger("vzpanel.cliserver")

SHELL_COMMANDS = ("vzctl", "vzlist", "vzdump", "vzrestore", "vzmigrate", "vzcalc", "vzmemcheck")
MAX_SESSIONS = 32          # commands at once; more callers run their command themselves
MAX_REQUEST = 4 << 20      # bytes: arguments of any length Linux allows (2 MiB) and their environment
REQUEST_SECONDS = 10       # to send the request, once connected
HANGUP_GRACE = 30          # seconds a command has after SIGHUP (its caller went) before SIGKILL
# ManagementUtility's own options, read before Django is set up (exactly these names: no abbreviation).
SETTINGS_OPTIONS = frozenset({"--settings", "--pythonpath"})
RELAYED_SIGNALS = frozenset(int(s) for s in cli_client.FORWARDED_SIGNALS)
PR_SET_PDEATHSIG = 1


class RequestError(Exception):
    """A request this server does not take; the caller is told to run the command itself."""


class Request:
    """A decoded request and the caller's descriptors (stdin, stdout, stderr, working directory)."""

    def __init__(self, command: str, args: list[str], umask: int, namespace: str, passed_env: dict,
                 settings_env: dict, fds: list[int]):
        self.command, self.args, self.umask, self.namespace = command, args, umask, namespace
        self.passed_env, self.settings_env, self.fds = passed_env, settings_env, fds
        self.body = b""  # the request as it came (what a session passes to its worker)


def decode_request(body: bytes, fds: list[int]) -> Request:
    """Parse cli_client.encode_request's fields, strictly: anything else is a RequestError."""
    fields = body.split(b"\0")
    pos = 0

    def take() -> bytes:
        nonlocal pos
        if pos >= len(fields):
            raise RequestError("short request")
        pos += 1
        return fields[pos - 1]

    def number(limit: int) -> int:
        raw = take()
        if not raw.isdigit() or len(raw) > 10 or int(raw) > limit:
            raise RequestError("bad count")
        return int(raw)

    def pairs() -> dict:
        found = {}
        for _ in range(number(10000)):
            key, sep, value = os.fsdecode(take()).partition("=")
            if not sep or not key:
                raise RequestError("bad variable")
            found[key] = value
        return found

    if take() != cli_client.PROTOCOL:
        raise RequestError("another protocol")
    command = os.fsdecode(take())
    umask = number(0o777)
    namespace = take().decode("ascii", "replace")
    args = [os.fsdecode(take()) for _ in range(number(1 << 20))]
    passed = pairs()
    if set(passed) != set(cli_client.passed_env(passed)):
        raise RequestError("a variable that is not passed on")
    settings_env = pairs()
    if pos != len(fields):
        raise RequestError("trailing fields")
    if len(fds) != 4:
        raise RequestError("expected stdin, stdout, stderr and the working directory")
    return Request(command, args, umask, namespace, passed, settings_env, fds)


def own_settings_env() -> dict:
    """The settings variables this process was started with (/proc/self/environ: before anything,
    tests.settings for one, added its defaults), as a caller's are compared with."""
    with open("/proc/self/environ", "rb") as fh:
        raw = fh.read()
    environ = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            environ[os.fsdecode(key)] = os.fsdecode(value)
    return cli_client.settings_env(environ)


def refusal(request: Request, settings_env: dict, namespace: str) -> str | None:
    """Why this server does not run the request (the caller then runs it itself), or None."""
    if request.command not in SHELL_COMMANDS:
        return f"{request.command} is not a shell command of the panel"
    if request.settings_env != settings_env:
        return "the caller's settings variables differ from the server's"
    chosen = next((a for a in request.args if a.split("=", 1)[0] in SETTINGS_OPTIONS), None)
    if chosen is not None:
        # manage.py reads these before the settings; a fork has ours loaded already and would act on
        # our database (and import from the server's path) whatever the caller named.
        return f"{chosen.split('=', 1)[0]} chooses the settings, which the server has loaded already"
    if request.namespace != namespace:
        return "the caller sees another filesystem (mount namespace or root)"
    return None


def prepare_socket(path: Path) -> socket.socket:
    """Listen at `path`: its directory made (or fixed) 0700 and this user's, the socket 0600.

    The directory is opened once, without following a link, and everything after is done through
    that descriptor: its parent (VAR_DIR, root:vzpanel 0770 in production) lets the web user's group
    rename what is in it, so a name checked and then used again could by then be a link, and root
    would change the mode of (or bind its socket in) a directory of the web user's choosing."""
    directory = path.parent
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise RuntimeError(f"{directory} is not a directory of this user ({os.geteuid()}): {exc}") from None
    try:
        if os.fstat(dir_fd).st_uid != os.geteuid():
            raise RuntimeError(f"{directory} is not a directory of this user ({os.geteuid()})")
        os.fchmod(dir_fd, 0o700)
        try:
            os.unlink(path.name, dir_fd=dir_fd)  # a server that died left it
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the socket is made 0600: no chmod by name after
        try:
            # Through the held descriptor: the socket lands in this directory whatever its name is now.
            listener.bind(f"/proc/self/fd/{dir_fd}/{path.name}")
        except BaseException:
            listener.close()
            raise
        finally:
            os.umask(old)
    finally:
        os.close(dir_fd)
    listener.listen(64)
    return listener


def peer_uid(conn: socket.socket) -> int:
    _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    return uid


def warm_up() -> None:
    """Import what the shell commands import, so the forks start with it done; then make sure no
    connection of any kind is open (each fork opens its own)."""
    from django.core.management import get_commands, load_command_class
    from django.db import connections
    commands = get_commands()
    for name in SHELL_COMMANDS:
        load_command_class(commands[name], name).create_parser("manage.py", name)
    import consoles.client  # noqa: F401  vzctl enter/console
    import consoles.shell  # noqa: F401
    import network.services  # noqa: F401  vzctl set --ipadd ...
    import backups.report  # noqa: F401  vzdump --mailto
    import tasks.queue  # noqa: F401
    import redis  # noqa: F401
    for alias in connections:
        connections[alias]  # the database backend's modules, without connecting
    # Each command runs the system checks first, as under manage.py; the first run imports every URL
    # configuration, view and template tag library (about 2 s), so run them once here. No database
    # check runs without a database named.
    from django.core import checks
    global STARTUP_CHECKS
    STARTUP_CHECKS = checks.run_checks()
    # Django computes much on first use (the ORM's per-model caches, its query compilers'
    # paths, translations): one read-only run of the commonest commands, their output dropped,
    # leaves that done for every fork. Without a database now, the forks do it themselves.
    from django.core.management import call_command
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            for argv in (("vzctl", "status", "1"), ("vzlist", "-a", "-H")):
                call_command(*argv, stdout=io.StringIO(), stderr=io.StringIO())
    except Exception as exc:  # noqa: BLE001 - nothing here may stop the server
        logger.info("warm-up without the commands' first queries: %s", exc)
    forget_connections()
    # Forks share the server's memory until they write to it; a collection in a fork would write to
    # every object the server made (each a page copied), so these are left out of collections.
    gc.collect()
    gc.freeze()


# What the system checks said at the server's start (warm_up); each command is given this answer
# (its warnings are printed, its errors stop it, as before) instead of running them again: they
# check the code and settings, which a fork shares with the server.
STARTUP_CHECKS: list | None = None


def reuse_startup_checks() -> None:
    """In a command's process: the system checks' default run answers with the server's result."""
    from django.core import checks
    if STARTUP_CHECKS is None:
        return
    run_checks = checks.run_checks

    def known(app_configs=None, tags=None, include_deployment_checks=False, databases=None):
        if app_configs is None and not tags and not include_deployment_checks and not databases:
            return list(STARTUP_CHECKS)
        return run_checks(app_configs=app_configs, tags=tags, include_deployment_checks=include_deployment_checks,
                          databases=databases)
    checks.run_checks = known


def forget_connections() -> None:
    """Drop (without using) any database or Redis connection this process has: a fork must open its own."""
    from django.db import connections
    for alias in connections:
        connections[alias].close()
    try:
        from tasks import queue
        queue._clients.clear()
    except ImportError:
        pass


class Server:
    """The listening process: accept, check the caller's user, hand the connection to a session
    process, reap sessions.

    A fork of this process costs tens of milliseconds on a loaded host (its ~100 MB of page
    tables), so the next session is forked ahead of time: a spare that waits for its connection
    on a socket pair, given to it with SCM_RIGHTS. A command then waits for one fork, its own."""

    def __init__(self, path: Path, max_sessions: int = MAX_SESSIONS):
        self.path = path
        self.max_sessions = max_sessions
        self.sessions: set[int] = set()
        self.spare: tuple[int, socket.socket] | None = None
        self.stopping = False
        self.settings_env = own_settings_env()
        self.namespace = cli_client.mount_namespace()
        self.uid = os.geteuid()

    def serve(self) -> None:
        listener = prepare_socket(self.path)
        inode = self.path.stat().st_ino
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        self._fork_spare(listener)
        logger.info("serving the shell commands at %s", self.path)
        try:
            listener.settimeout(1.0)
            while not self.stopping:
                self._reap()
                try:
                    conn, _ = listener.accept()
                except (TimeoutError, InterruptedError):
                    continue
                except OSError as exc:
                    if self.stopping:
                        break
                    logger.warning("accept: %s", exc)
                    time.sleep(0.1)
                    continue
                try:
                    self._take(conn)
                finally:
                    conn.close()
                if self.spare is None:
                    self._fork_spare(listener)
        finally:
            listener.close()
            if self.spare:
                self.spare[1].close()  # the spare reads the end of its socket pair and exits
            try:
                if self.path.stat().st_ino == inode:  # ours, not a newer server's
                    self.path.unlink()
            except FileNotFoundError:
                pass
            logger.info("stopped; %d command(s) under way finish on their own", len(self.sessions))

    def _stop(self, signum, frame) -> None:
        self.stopping = True

    def _reap(self) -> None:
        for pid in list(self.sessions) + ([self.spare[0]] if self.spare else []):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done and self.spare and pid == self.spare[0]:
                logger.warning("the spare session process died; forking another")
                self.spare[1].close()
                self.spare = None
            elif done:
                self.sessions.discard(pid)

    def _fork_spare(self, listener: socket.socket) -> None:
        ours, its = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            status = 70
            try:
                listener.close()
                ours.close()
                status = wait_for_connection(its, self.settings_env, self.namespace)
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(status)
        its.close()
        self.spare = (pid, ours)

    def _take(self, conn: socket.socket) -> None:
        uid = peer_uid(conn)
        if uid != self.uid:
            # Normally the socket's mode already keeps other users out; this holds if it did not.
            logger.warning("refused a caller of uid %d (this server runs commands for uid %d only)", uid, self.uid)
            _send(conn, b"F another user\n")
            return
        self._reap()
        if len(self.sessions) >= self.max_sessions:
            logger.warning("%d commands under way: the caller runs its command itself", len(self.sessions))
            _send(conn, b"F busy\n")
            return
        if self.spare is None:
            return  # it died just now (logged): the caller sees the connection close and runs its command
        pid, pair = self.spare
        self.spare = None
        try:
            socket.send_fds(pair, [b"c"], [conn.fileno()])
        except OSError as exc:
            logger.warning("could not hand a connection to the spare session: %s", exc)
        else:
            self.sessions.add(pid)
        pair.close()


def wait_for_connection(pair: socket.socket, settings_env: dict, namespace: str) -> int:
    """A spare session: wait for the server to hand over a connection (or to close the pair), serve it."""
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)  # the server's own stop is not this command's
    worker = fork_worker(close=[pair])
    try:
        try:
            _, fds, _, _ = socket.recv_fds(pair, 1, 1)
        except OSError:
            fds = []
        pair.close()
        if not fds:
            return 0
        return Session(socket.socket(fileno=fds[0]), settings_env, namespace, worker).run()
    finally:
        worker[1].close()  # unused (no command came): it reads the end and exits
        try:
            os.waitpid(worker[0], 0)
        except ChildProcessError:
            pass


def fork_worker(close: list) -> tuple[int, socket.socket]:
    """The process a command will run in, forked before its request comes (this fork is the slow
    part): it waits on a socket pair for the request and the caller's descriptors."""
    ours, its = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        try:
            ours.close()
            for sock in close:
                sock.close()
            request = _receive_request(its)
            if request is not None:
                run_command(request, its)  # never returns
        except BaseException:
            traceback.print_exc()
            os._exit(70)
        os._exit(0)
    its.close()
    return pid, ours


def _receive_request(pair: socket.socket) -> Request | None:
    """What the session sends a waiting worker (its own, already checked, request); None at the end."""
    data, fds, _, _ = socket.recv_fds(pair, 1 << 16, 4)
    while data and len(data) < 4 + int.from_bytes(data[:4], "big"):
        chunk = pair.recv(1 << 16)
        if not chunk:
            return None
        data += chunk
    if not data:
        return None
    return decode_request(data[4:], fds)


def _send(conn: socket.socket, data: bytes) -> None:
    try:
        conn.sendall(data)
    except OSError:
        pass


class Session:
    """One command: read the request, run it in a fork, pass on signals, report how it ended."""

    def __init__(self, conn: socket.socket, settings_env: dict, namespace: str, worker: tuple[int, socket.socket]):
        self.conn, self.settings_env, self.namespace = conn, settings_env, namespace
        self.worker = worker  # forked ahead (fork_worker): its pid and socket pair

    def run(self) -> int:
        # The server's own stop and Ctrl-C (sent to its process group) are not this command's.
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        try:
            request = self._read_request()
        except (RequestError, OSError, TimeoutError) as exc:
            logger.warning("refused a request: %s", exc)
            _send(self.conn, b"F bad request\n")
            return 0
        why = refusal(request, self.settings_env, self.namespace)
        if why:
            logger.info("%s: the caller runs it itself (%s)", request.command, why)
            _send(self.conn, b"F " + why.encode() + b"\n")
            return 0
        pid, pair = self.worker
        message = len(request.body).to_bytes(4, "big") + request.body
        sent = socket.send_fds(pair, [message], request.fds)
        pair.sendall(message[sent:])
        for fd in request.fds:
            os.close(fd)
        # The command's name only: its arguments may hold a password (vzctl set --userpasswd).
        logger.info("%s: running as pid %d", request.command, pid)
        _send(self.conn, b"R\n")
        status = self._supervise(pid)
        if status is None:
            logger.info("%s: pid %d ended after its caller went", request.command, pid)
        else:
            code = os.waitstatus_to_exitcode(status)
            logger.info("%s: pid %d exited with status %d", request.command, pid, code)
            _send(self.conn, b"K %d\n" % -code if code < 0 else b"X %d\n" % code)
        return 0

    def _read_request(self) -> Request:
        self.conn.settimeout(REQUEST_SECONDS)
        deadline = time.monotonic() + REQUEST_SECONDS
        data, fds = b"", []
        try:
            while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
                if time.monotonic() > deadline:
                    raise RequestError("too slow")
                if len(data) >= 4 and int.from_bytes(data[:4], "big") > MAX_REQUEST:
                    raise RequestError("too large")
                chunk, more_fds, flags, _ = socket.recv_fds(self.conn, 1 << 16, 4)
                fds += more_fds
                if flags & socket.MSG_CTRUNC or len(fds) > 4:
                    raise RequestError("too many descriptors")
                if not chunk:
                    raise RequestError("closed before the end of the request")
                data += chunk
            size = int.from_bytes(data[:4], "big")
            if len(data) != 4 + size:
                raise RequestError("more than one request")  # signals come only after "R"
            request = decode_request(data[4:], fds)
            request.body = data[4:]
            return request
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise

    def _supervise(self, pid: int) -> int | None:
        """Pass signals on until the command ends; its wait status (None if the caller went)."""
        pidfd = os.pidfd_open(pid)
        self.conn.setblocking(False)
        caller_gone_at = None
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.register(self.conn, select.POLLIN)
        while True:
            timeout = None if caller_gone_at is None else 1000
            for fd, _ in poller.poll(timeout):
                if fd == pidfd:
                    _, status = os.waitpid(pid, 0)
                    os.close(pidfd)
                    return None if caller_gone_at is not None else status
                try:
                    data = self.conn.recv(64)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:  # the caller went: a hangup, as its terminal would have sent
                    poller.unregister(self.conn)
                    caller_gone_at = time.monotonic()
                    _signal_group(pid, signal.SIGHUP)
                    continue
                for signum in data:
                    if signum in RELAYED_SIGNALS:
                        _signal_group(pid, signum)
            if caller_gone_at is not None and time.monotonic() - caller_gone_at > HANGUP_GRACE:
                _signal_group(pid, signal.SIGKILL)


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass


def run_command(request: Request, conn: socket.socket) -> None:
    """In the command's own process: become the caller's command, run `manage.py COMMAND ARGS`, exit
    as Python would have."""
    code = 1
    try:
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGWINCH):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.setsid()
        # The session supervises; if it dies, so does the command (as with its terminal gone).
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGHUP)
        if os.getppid() == 1:
            os._exit(1)
        conn.close()
        stdin, stdout, stderr, cwd = request.fds
        for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
            os.dup2(fd, target)
        os.fchdir(cwd)
        for fd in set(request.fds) - {0, 1, 2}:
            os.close(fd)
        os.umask(request.umask)
        for key in [k for k in os.environ if k in cli_client.passed_env(os.environ)]:
            del os.environ[key]
        os.environ.update(request.passed_env)
        _fresh_stdio()
        forget_connections()
        reuse_startup_checks()
        sys.argv = [str(Path(__file__).resolve().parent.parent / "manage.py"), request.command, *request.args]
        from django.core.management import ManagementUtility
        try:
            ManagementUtility(sys.argv).execute()
            code = 0
        except SystemExit as exc:
            code = _exit_code(exc.code)
        atexit._run_exitfuncs()
        if not _flush() and code == 0:
            code = 120  # as Python exits when it cannot flush its output at the end
    except KeyboardInterrupt:
        # As Python ends on an uncaught Ctrl-C: the traceback, then killed by SIGINT (the shell's 130).
        traceback.print_exc()
        _flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    except BaseException:
        sys.excepthook(*sys.exc_info())
        _flush()
        code = 1
    finally:
        os._exit(code)


def _exit_code(value) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


def _fresh_stdio() -> None:
    """sys.stdin/stdout/stderr for the caller's descriptors, buffered as Python buffers them at its
    start (stdout by line on a terminal, else in blocks; stderr by line), in the server's encoding."""
    encoding = getattr(sys.__stdout__, "encoding", None) or "utf-8"

    def stream(fd: int, mode: str, errors: str, line_buffering: bool = False) -> io.TextIOWrapper:
        return io.TextIOWrapper(open(fd, mode, closefd=False), encoding=encoding, errors=errors,
                                line_buffering=line_buffering)
    sys.stdin = sys.__stdin__ = stream(0, "rb", getattr(sys.__stdin__, "errors", None) or "strict")
    sys.stdout = sys.__stdout__ = stream(1, "wb", getattr(sys.__stdout__, "errors", None) or "strict", os.isatty(1))
    sys.stderr = sys.__stderr__ = stream(2, "wb", "backslashreplace", True)


def _flush() -> bool:
    ok = True
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            ok = False
    return ok
