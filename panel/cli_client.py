"""The shell commands' thin client (vzctl, vzlist, vzdump, ...): hands the command to the panel's
command server (`manage.py cliserver`, panel/cliserver.py), which runs it in a fork of a process
that has Django set up and the commands imported, so the shell does not wait 1 s for Python's
imports at every command.

Run as `python -I -S panel/cli_client.py COMMAND ARGS...` by the wrappers `make shell-commands`
writes. Standard library only, and only its C parts (no `socket`, `signal` or `json`: their
imports cost more than the whole round trip): it starts in about 10 ms.

It connects to the server's Unix socket, checks that the server runs as the same user (a server
of another user is never given the command), and sends the command, its arguments, the allowed
display variables (CLI_PASSED_ENV), the panel's settings variables (PANEL_*, ...; the server
takes the command only if they equal its own), the umask, the mount namespace, and its standard
input, output, error and working directory as file descriptors (SCM_RIGHTS): the command reads
and writes this terminal or these pipes itself and resolves relative paths here. SIGINT,
SIGTERM, SIGHUP and SIGWINCH are passed on to the command; its exit status (or the signal that
ended it) becomes this process's.

When there is no server, it refuses, or it is not of this user, nothing has run yet and the
client runs the command itself as before (`python manage.py COMMAND ...`): the slow path, never
a different one.
"""
import _signal
import _socket
import os
import sys

PROTOCOL = b"vzpanel-cli 1"
# The environment the command gets from the caller: how to display, nothing that changes what it
# does. Everything else is the server's (its settings must equal the caller's: SETTINGS_PREFIXES).
CLI_PASSED_ENV = ("TERM", "COLUMNS", "LINES", "LANG", "LANGUAGE", "NO_COLOR", "DJANGO_COLORS")
CLI_PASSED_PREFIX = "LC_"
# Variables that decide the panel's settings: the server runs a command only for a caller whose
# values are exactly its own (else the caller runs it itself, with its own settings).
SETTINGS_PREFIXES = ("PANEL_", "VZPANEL_")
SETTINGS_NAMES = ("REDIS_URL", "DJANGO_SETTINGS_MODULE")
DEFAULT_SETTINGS_MODULE = "panel.settings"  # what manage.py uses when none is set
FORWARDED_SIGNALS = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGWINCH)
SOCKET_NAME = "cli/cli.sock"  # under PANEL_VAR_DIR, unless PANEL_CLI_SOCKET names it
SO_PEERCRED = 17


def settings_env(environ) -> dict:
    """The variables that decide the panel's settings, as manage.py would see them."""
    found = {k: v for k, v in environ.items() if k.startswith(SETTINGS_PREFIXES) or k in SETTINGS_NAMES}
    found.setdefault("DJANGO_SETTINGS_MODULE", DEFAULT_SETTINGS_MODULE)
    return found


def passed_env(environ) -> dict:
    return {k: v for k, v in environ.items() if k in CLI_PASSED_ENV or k.startswith(CLI_PASSED_PREFIX)}


def app_dir() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def socket_path(environ, app: str) -> str:
    """Where the server listens: PANEL_CLI_SOCKET, else VAR_DIR/cli/cli.sock (settings.CLI_SOCKET)."""
    return environ.get("PANEL_CLI_SOCKET") or os.path.join(
        environ.get("PANEL_VAR_DIR") or os.path.join(app, "var"), SOCKET_NAME)


def mount_namespace() -> str:
    """This process's mount namespace and root: paths mean the same to the server only if it shares them."""
    root = os.stat("/")
    return f"{os.readlink('/proc/self/ns/mnt')} {root.st_dev}:{root.st_ino}"


def encode_request(command: str, args: list, environ, umask: int) -> bytes:
    """NUL-separated fields (no argument or variable can hold a NUL), counted lists."""
    def pairs(d):
        return [str(len(d)).encode(), *(os.fsencode(f"{k}={v}") for k, v in sorted(d.items()))]
    fields = [PROTOCOL, os.fsencode(command), str(umask).encode(), mount_namespace().encode(),
              str(len(args)).encode(), *(os.fsencode(a) for a in args),
              *pairs(passed_env(environ)), *pairs(settings_env(environ))]
    body = b"\0".join(fields)
    return len(body).to_bytes(4, "big") + body


def fds_message(fds) -> list:
    return [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds))]


def run_direct(command: str, args: list):
    """The command in this process, as the wrappers ran it before the server: manage.py COMMAND."""
    manage = os.path.join(app_dir(), "manage.py")
    os.execv(sys.executable, [sys.executable, manage, command, *args])


def connect(path: str):
    """A connection to a server of this same user, or None."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
        cred = sock.getsockopt(_socket.SOL_SOCKET, SO_PEERCRED, 12)
        if int.from_bytes(cred[4:8], sys.byteorder) != os.geteuid():
            raise OSError("the command server is another user's")
    except OSError:
        sock.close()
        return None
    return sock


class Forwarder:
    """Signal handlers that pass the signal on to the command (one byte each on the socket)."""

    def __init__(self, sock):
        self.sock = sock
        self.pending: list[int] = []

    def __call__(self, signum, frame):
        self.pending.append(signum)
        try:
            self.sock.send(bytes([signum]))
        except OSError:
            pass

    def install(self):
        for signum in FORWARDED_SIGNALS:
            _signal.signal(signum, self)


def die_like(signum: int):
    """End as the command ended: killed by the same signal (the shell shows 130 for SIGINT...)."""
    sys.stdout.flush()
    for forwarded in FORWARDED_SIGNALS:
        _signal.signal(forwarded, _signal.SIG_DFL)
    _signal.signal(signum, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, [signum])
    os.kill(os.getpid(), signum)
    os._exit(128 + signum)  # a signal whose default is to be ignored


def main(argv: list) -> int:
    if len(argv) < 2:
        sys.stderr.write("usage: cli_client.py COMMAND [ARGS...]\n")
        return 2
    command, args = argv[1], argv[2:]
    environ = os.environ
    sock = connect(socket_path(environ, app_dir()))
    if sock is None:
        run_direct(command, args)
    umask = os.umask(0)
    os.umask(umask)
    try:
        request = encode_request(command, args, environ, umask)
        cwd = os.open(".", os.O_PATH | os.O_DIRECTORY)
    except (OSError, UnicodeError):  # no mount namespace to read, a working directory that is gone
        sock.close()
        run_direct(command, args)
    forward = Forwarder(sock)
    forward.install()
    try:
        sock.sendmsg([request], fds_message([0, 1, 2, cwd]))
    except OSError:
        sock.close()
        run_direct(command, args)
    os.close(cwd)
    reply = b""
    while True:
        try:
            chunk = sock.recv(64)
        except OSError:
            chunk = b""
        if not chunk:
            break
        reply += chunk
        if b"\n" in reply:
            line, _, reply = reply.partition(b"\n")
            kind, _, value = line.partition(b" ")
            if kind == b"R":  # running: from here on the command is the server's to finish
                continue
            if kind == b"F":  # not taken: nothing ran, so run it here (a signal meanwhile ends it)
                if forward.pending:
                    die_like(forward.pending[0])
                sock.close()
                run_direct(command, args)
            if kind == b"X":
                return int(value)
            if kind == b"K":
                die_like(int(value))
    sys.stderr.write(f"{command}: the panel's command server went away; the command's outcome is unknown "
                     "(see its task in the panel)\n")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
