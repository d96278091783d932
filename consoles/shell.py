"""`vzctl enter CTID` and `vzctl console CTID` at the shell: the same console sessions as the
browser's Console tab, for a container on any host.

The command makes a session with the same ticket (services.new_ticket: the user must be allowed to
manage the container) and redeems it the same way (services.redeem), its own invocation standing
for the browser's login; then a ConsoleClient (client.py) relays the local terminal, in raw mode,
through Redis to the agent of the container's host, as the WebSocket consumer does. SIGWINCH
sends the new size; the terminal's modes are put back however it ends. In console mode Ctrl-a q
leaves, as in lxc-console (Ctrl-a and any other key go on as typed).
"""
from __future__ import annotations

import asyncio
import os
import secrets
import signal
import termios
import logging
import tty

from . import relay, services
from .client import ConsoleClient
from .models import ConsoleMode, ConsoleSession

ESCAPE, LEAVE = b"\x01", (b"q", b"Q")
# How a session that ended normally ended: vzctl exits 0 for these, 1 for anything else.
NORMAL_ENDS = ("the shell exited", "the console detached", "left with Ctrl-a q")
READ_SIZE = 4096
STOP_SIGNALS = (signal.SIGHUP, signal.SIGTERM)
logger = logging.getLogger("vzpanel.console")


def open_session(user, ct, mode: str, address: str = "cli") -> ConsoleSession:
    """A redeemed console session for `user` on `ct`: a ticket made and spent at once, in a "login"
    of this command's own (a random key nobody else has). Raises PermissionDenied or
    ConsoleRefused with a message for the user."""
    login = secrets.token_urlsafe(32)
    _, ticket = services.new_ticket(user, ct, mode, address, login)
    return services.redeem(ticket, user, ct.ctid, mode, login, address)


class EscapeFilter:
    """lxc-console's escape in what is typed: Ctrl-a q means leave; Ctrl-a followed by anything
    else goes on unchanged (the agent's lxc-console makes one Ctrl-a of Ctrl-a Ctrl-a)."""

    def __init__(self) -> None:
        self.pending = False

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(what to send, whether to leave now)."""
        out = bytearray()
        for value in data:
            byte = bytes([value])
            if self.pending:
                self.pending = False
                if byte in LEAVE:
                    return bytes(out), True
                out += ESCAPE + byte
            elif byte == ESCAPE:
                self.pending = True
            else:
                out += byte
        return bytes(out), False


def terminal_size(fd: int) -> tuple[int, int] | None:
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return None
    return size.columns, size.lines


def attach(session: ConsoleSession, stdin_fd: int = 0, stdout_fd: int = 1) -> str:
    """Relay the local terminal to the session until it ends; returns why it ended. The terminal
    (if stdin is one) is raw meanwhile and restored afterwards."""
    saved = termios.tcgetattr(stdin_fd) if os.isatty(stdin_fd) else None
    try:
        if saved is not None:
            tty.setraw(stdin_fd, termios.TCSANOW)
        return asyncio.run(_relay(session, stdin_fd, stdout_fd, interactive=saved is not None))
    finally:
        if saved is not None:
            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)


async def _relay(session: ConsoleSession, stdin_fd: int, stdout_fd: int, interactive: bool) -> str:
    loop = asyncio.get_running_loop()
    ended = loop.create_future()

    async def output(data: bytes) -> None:
        _write_all(stdout_fd, data)

    async def opened() -> None:
        await send_size()

    async def on_end(reason: str, notice: bool) -> None:
        if notice:
            _write_all(stdout_fd, relay.terminal_notice(f"Console closed: {reason}."))
        if not ended.done():
            ended.set_result(reason)

    client = ConsoleClient(session, output, opened, on_end)
    escape = EscapeFilter() if session.mode == ConsoleMode.CONSOLE else None
    # What goes to the agent, in the order it happened (keystrokes, resizes, leaving): one sender.
    outgoing: asyncio.Queue = asyncio.Queue()

    async def send_in_order() -> None:
        while True:
            step = await outgoing.get()
            try:
                await step
            except Exception as exc:  # Redis gone: the watch ends the session, saying so
                logger.warning("console session %s: cannot send: %s", session.pk, exc)
            finally:
                outgoing.task_done()

    def spawn(coroutine) -> None:
        outgoing.put_nowait(coroutine)

    async def send_size() -> None:
        size = terminal_size(stdout_fd) if interactive else None
        if size:
            await client.resize(*size)

    async def leave() -> None:
        _write_all(stdout_fd, relay.terminal_notice("Console closed: left with Ctrl-a q."))
        await client.leave("left with Ctrl-a q")
        if not ended.done():
            ended.set_result("left with Ctrl-a q")

    def typed() -> None:
        try:
            data = os.read(stdin_fd, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        if not data:  # end of input (a pipe): the session goes on until the program ends
            loop.remove_reader(stdin_fd)
            return
        leaving = False
        if escape is not None:
            data, leaving = escape.feed(data)
        if data:
            spawn(client.type(data))
        if leaving:
            loop.remove_reader(stdin_fd)
            spawn(leave())

    sender = loop.create_task(send_in_order())
    await client.start()
    if not client.finished:
        try:
            loop.add_reader(stdin_fd, typed)
        except PermissionError:  # a regular file (vzctl enter CTID < script): all of it, typed at once
            spawn(client.type(_read_all(stdin_fd)))
        if interactive:
            loop.add_signal_handler(signal.SIGWINCH, lambda: spawn(send_size()))
    for stop in STOP_SIGNALS:  # the terminal went, or vzctl was told to stop: close the session now
        loop.add_signal_handler(stop, lambda name=stop.name: ended.done() or ended.set_result(f"vzctl got {name}"))
    try:
        return await ended
    finally:
        loop.remove_reader(stdin_fd)
        for stop in STOP_SIGNALS:
            loop.remove_signal_handler(stop)
        if interactive:
            loop.remove_signal_handler(signal.SIGWINCH)
        try:
            await asyncio.wait_for(outgoing.join(), 5)
        except TimeoutError:
            pass
        sender.cancel()
        await client.leave(ended.result() if ended.done() else "vzctl stopped")


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            continue
