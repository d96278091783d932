"""A program on a pseudo-terminal of its own: what the host agent runs for a browser console.

The program is an argv list (`lxc-attach` for a shell, `lxc-console` for the container's own
console), started through util-linux's `setsid --ctty` (the PTY becomes its controlling terminal,
so resizes reach it as SIGWINCH and closing the PTY hangs it up) and `setpriv --pdeathsig KILL`
(it dies with the agent's thread that started it, even if the agent is killed).
"""
from __future__ import annotations

import errno
import fcntl
import os
import select
import signal
import struct
import subprocess
import termios
import tty
from pathlib import Path
from typing import Sequence

CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TERM = "xterm-256color"
READ_SIZE = 64 * 1024


def shell_argv(lxcpath: str | os.PathLike, ctid: int) -> list[str]:
    """root's shell inside the container (its login shell from the container's /etc/passwd), with a
    clean environment: nothing of the agent's leaks in."""
    env = {"TERM": TERM, "PATH": CONTAINER_PATH, "HOME": "/root", "USER": "root", "LOGNAME": "root",
           "LANG": "C.UTF-8"}
    return ["lxc-attach", "-n", str(int(ctid)), "-P", str(Path(lxcpath)), "--clear-env",
            *(arg for name, value in env.items() for arg in ("--set-var", f"{name}={value}"))]


def console_argv(lxcpath: str | os.PathLike, ctid: int) -> list[str]:
    """The container's own console (/dev/console, where its init runs a getty), as lxc-console."""
    return ["lxc-console", "-n", str(int(ctid)), "-P", str(Path(lxcpath)), "-t", "0"]


class Terminal:
    """`argv` running on a new PTY of `cols` x `rows`; read and write its master side."""

    def __init__(self, argv: Sequence[str], cols: int = 80, rows: int = 24):
        master, slave = os.openpty()
        try:
            # Raw: the PTY only carries bytes between us and lxc-attach, whose own terminal inside the
            # container does the line discipline (else every newline is translated twice).
            tty.setraw(slave)
            _set_size(slave, cols, rows)
            self.proc = subprocess.Popen(
                ["setsid", "--ctty", "setpriv", "--pdeathsig", "KILL", "--", *argv],
                stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "TERM": TERM, "LANG": "C.UTF-8"})
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        self.fd = master

    def resize(self, cols: int, rows: int) -> None:
        """TIOCSWINSZ on the PTY: the program gets SIGWINCH and reads its new size."""
        if self.fd >= 0:
            _set_size(self.fd, cols, rows)

    def read(self, timeout: float) -> bytes | None:
        """What the program wrote (b"" if nothing within `timeout`), or None once it has gone
        (the PTY's other side is closed)."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return b""
        try:
            return os.read(self.fd, READ_SIZE) or None
        except BlockingIOError:
            return b""
        except OSError as exc:
            if exc.errno == errno.EIO:  # Linux: the slave side has no process left
                return None
            raise

    def write(self, data: bytes, timeout: float = 5.0) -> None:
        """Type `data`; a program that reads nothing for `timeout` loses the rest, and so does one
        that has gone or whose PTY was just closed."""
        view = memoryview(data)
        try:
            while view and self.fd >= 0:
                _, ready, _ = select.select([], [self.fd], [], timeout)
                if not ready:
                    return
                try:
                    view = view[os.write(self.fd, view):]
                except BlockingIOError:
                    continue
        except (OSError, ValueError) as exc:
            if isinstance(exc, OSError) and exc.errno not in (errno.EIO, errno.EBADF):
                raise

    def close(self) -> int | None:
        """Hang up and end the program (SIGHUP, then SIGKILL); returns its exit status."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        for sig, wait in ((signal.SIGHUP, 2), (signal.SIGKILL, 10)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)  # setsid made it a session (and group) of its own
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        return self.proc.poll()


def _set_size(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
