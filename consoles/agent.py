"""The host agent's side of browser consoles (imported by the agent only: it runs host commands).

A thread pops session ids from this host's open list (consoles/relay.py). An id is all it takes
from Redis: the session is loaded from the agent's own database, and opened only if it is for a
container on this host, its ticket was redeemed, it is unexpired and not yet opened (claimed by a
conditional UPDATE, so one session opens once). Anything else is refused, logged, listed on the
host page, and touches nothing. Each open session gets a thread that runs the terminal on a PTY
(containers/engine/terminal.py) and relays it; another thread per session feeds it the keystrokes.

A session ends (with the reason written into the terminal and the row, and the audit log) when:
the program exits, the container stops, the row says so (the web closed it: logout, the browser
went), the user is disabled or may no longer manage the container, no keystroke came for the
session's idle time, or this agent stops.
"""
from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from containers.engine.lxc import Lxc
from containers.engine.terminal import Terminal, console_argv, shell_argv
from containers.models import Container
from tasks.queue import redis_connection

from . import relay
from .models import ConsoleMode, ConsoleSession
from .services import close_session, end_reason, fresh

logger = logging.getLogger("vzpanel.agent.console")
CHECK_SECONDS = 1.0   # how often a session looks at its row and its container
READ_WAIT = 0.2


def claim(session_id: int, host) -> tuple[ConsoleSession | None, str]:
    """The session to open now, or (None, why not). Reads only the database."""
    session = fresh(session_id)
    if session is None:
        return None, "no such console session"
    if session.host_id != host.pk or session.container is None or session.container.host_id != host.pk:
        return None, "not a console session of a container on this host"
    if session.redeemed_at is None:
        return None, "its ticket was never redeemed"
    if session.closed_at is not None:
        return None, "the session is closed"
    if session.opened_at is not None:
        return None, "the session was opened already"
    now = timezone.now()
    if session.expires_at <= now:
        return None, "the session's ticket expired"
    if not ConsoleSession.objects.filter(pk=session.pk, host=host, opened_at=None, closed_at=None,
                                         redeemed_at__isnull=False, expires_at__gt=now).update(opened_at=now):
        return None, "the session was opened already"
    session.opened_at = now
    return session, ""


class ConsoleServer:
    """This host's consoles: the listener thread and one thread per open session."""

    def __init__(self, host, lxc: Lxc):
        self.host = host
        self.lxc = lxc
        self._stop = threading.Event()
        self._stop_reason = ""
        self._sessions: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()
        self._listener: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------
    def recover(self) -> None:
        """Sessions this host's agent had open when it last stopped: closed, with a word to a
        browser that may still be listening."""
        for session in ConsoleSession.objects.select_related("user", "container").filter(
                host=self.host, opened_at__isnull=False, closed_at=None):
            self._announce_close(session, "the host agent stopped")

    def start(self) -> None:
        self._listener = threading.Thread(target=self._listen, name="consoles", daemon=True)
        self._listener.start()

    def stop(self, reason: str = "the host agent stopped", wait: float = 10) -> None:
        """End every session, saying why in its terminal."""
        self._stop_reason = reason
        self._stop.set()
        deadline = time.monotonic() + wait
        with self._lock:
            threads = list(self._sessions.values())
        for thread in [*threads, *([self._listener] if self._listener else [])]:
            thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def open_count(self) -> int:
        with self._lock:
            return len(self._sessions)

    # -- listening ------------------------------------------------------------
    def _listen(self) -> None:
        key = relay.open_list(self.host.pk)
        while not self._stop.is_set():
            try:
                popped = redis_connection().blpop([key], timeout=1)
            except Exception:
                logger.exception("cannot read console requests")
                self._stop.wait(2)
                continue
            if popped:
                try:
                    self.request(popped[1])
                except Exception:
                    logger.exception("console request %r failed", popped[1][:40])
                finally:
                    close_old_connections()
        connection.close()

    def request(self, raw: bytes) -> threading.Thread | None:
        """Open the session whose id `raw` is, if this agent may; returns its thread."""
        session_id = relay.parse_session_id(raw)
        if session_id is None:
            self._refuse(repr(raw[:40]), "not a session id")
            return None
        session, why = claim(session_id, self.host)
        if session is None:
            self._refuse(str(session_id), why)
            return None
        with self._lock:
            crowded = len(self._sessions) >= settings.CONSOLE_MAX_SESSIONS
            if not crowded:
                thread = threading.Thread(target=self._serve, args=(session,), name=f"console-{session.pk}",
                                          daemon=True)
                self._sessions[session.pk] = thread
        if crowded:
            self._announce_close(session, f"this host has {settings.CONSOLE_MAX_SESSIONS} consoles open already")
            return None
        thread.start()
        return thread

    def _refuse(self, what: str, reason: str) -> None:
        self.host.record_queue_refusal(f"console session {what}", reason)

    # -- one session ------------------------------------------------------------
    def _announce_close(self, session: ConsoleSession, reason: str) -> None:
        """Write why into the terminal and tell the browser's end; the reason of whoever closed the
        row first (the web at logout, say) is the one told."""
        current = fresh(session.pk)
        if current is not None and current.closed_at:
            reason = current.close_reason or reason
        out = relay.session_key(self.host.pk, session.pk, "out")
        try:
            with redis_connection().pipeline(transaction=False) as pipe:
                pipe.xadd(out, relay.data(relay.terminal_notice(f"Console closed: {reason}.")).fields(),
                          maxlen=relay.STREAM_MAXLEN, approximate=True)
                pipe.xadd(out, relay.close(reason).fields(), maxlen=relay.STREAM_MAXLEN, approximate=True)
                pipe.expire(out, 60)
                pipe.delete(relay.session_key(self.host.pk, session.pk, "alive"))
                pipe.execute()
        except Exception:
            logger.exception("cannot tell console session %s that it closed", session.pk)
        if close_session(session, reason):
            logger.info("console session %s (CT %s, %s, %s) closed: %s", session.pk, session.ctid, session.mode,
                        session.username, reason)

    def _serve(self, session: ConsoleSession) -> None:
        relay_ = _Relay(self.host.pk, session.pk)
        reason = "the console ended"
        terminal = None
        try:
            reason = end_reason(session) or ""
            if not reason:
                argv = (console_argv if session.mode == ConsoleMode.CONSOLE else shell_argv)(self.host.lxcpath,
                                                                                              session.ctid)
                terminal = Terminal(argv)
                logger.info("console session %s: %s on CT %s for %s", session.pk, session.mode, session.ctid,
                            session.username)
                relay_.renew()  # alive before the browser's end hears of it, which then watches for it
                relay_.send(relay.Message(relay.OPENED))
                reason = self._relay(session, terminal, relay_)
        except Exception as exc:
            logger.exception("console session %s failed", session.pk)
            reason = f"the host agent could not run it ({type(exc).__name__})"
        finally:
            relay_.done.set()
            if terminal is not None:
                terminal.close()
            self._announce_close(session, reason)
            with self._lock:
                self._sessions.pop(session.pk, None)
            connection.close()

    def _relay(self, session: ConsoleSession, terminal: Terminal, relay_: _Relay) -> str:
        """Move bytes both ways until the session must end; returns why it ended."""
        keys = threading.Thread(target=relay_.feed, args=(terminal,), name=f"console-{session.pk}-in", daemon=True)
        keys.start()
        next_check = 0.0
        while True:
            if self._stop.is_set():
                return self._stop_reason
            if relay_.closed_by_browser:
                return relay_.closed_by_browser
            chunk = terminal.read(READ_WAIT)
            if chunk is None:
                return self._why_gone(session)
            if chunk:
                relay_.send(relay.data(chunk))
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + CHECK_SECONDS
                relay_.renew()
                current = fresh(session.pk)
                reason = end_reason(current) if current else "the session was removed"
                if not reason and self.lxc.state(session.ctid) != "RUNNING":
                    reason = "the container stopped"
                if not reason and time.monotonic() - relay_.last_input > session.idle_seconds:
                    reason = f"no input for {_duration(session.idle_seconds)}"
                if reason:
                    return reason

    def _why_gone(self, session: ConsoleSession) -> str:
        """The program ended: because the container is stopping (a task stops it, or LXC no longer
        has it running a moment later: a halt from inside), or on its own."""
        from tasks.choices import TaskType
        stopping = (TaskType.CT_STOP, TaskType.CT_RESTART, TaskType.CT_DESTROY, TaskType.CT_MIGRATE)
        lock = Container.objects.filter(pk=session.container_id).values_list("lock_task__type", flat=True).first()
        if lock in stopping:
            return "the container stopped"
        for _ in range(4):
            try:
                if self.lxc.state(session.ctid) != "RUNNING":
                    return "the container stopped"
            except Exception:
                break
            time.sleep(0.25)
        return "the shell exited" if session.mode == ConsoleMode.SHELL else "the console detached"


class _Relay:
    """One session's two streams: output goes out, keystrokes and resizes come in."""

    def __init__(self, host_id: int, session_id: int):
        self.out = relay.session_key(host_id, session_id, "out")
        self.input = relay.session_key(host_id, session_id, "in")
        self.alive = relay.session_key(host_id, session_id, "alive")
        self.done = threading.Event()
        self.last_input = time.monotonic()
        self.closed_by_browser = ""

    def send(self, message: relay.Message) -> None:
        redis_connection().xadd(self.out, message.fields(), maxlen=relay.STREAM_MAXLEN, approximate=True)

    def renew(self) -> None:
        with redis_connection().pipeline(transaction=False) as pipe:
            pipe.set(self.alive, b"1", ex=relay.ALIVE_TTL)
            pipe.expire(self.out, relay.KEY_TTL)
            pipe.execute()

    def feed(self, terminal: Terminal) -> None:
        """Keystrokes and resizes from the input stream into the terminal, until the session ends.
        Entries that are not well-formed messages are dropped."""
        last = "0-0"
        while not self.done.is_set():
            try:
                found = redis_connection().xread({self.input: last}, count=100, block=1000)
            except Exception:
                logger.exception("cannot read a console's input")
                self.done.wait(1)
                continue
            last, messages = relay.read_back(found, last)
            for message in messages:
                if self.done.is_set():
                    return  # the terminal is being closed
                if message.kind == relay.DATA:
                    self.last_input = time.monotonic()
                    terminal.write(message.data)
                elif message.kind == relay.RESIZE:
                    terminal.resize(message.cols, message.rows)
                elif message.kind == relay.CLOSE:
                    self.closed_by_browser = "the browser closed it"
                    return


def _duration(seconds: int) -> str:
    return f"{seconds // 60} minute{'s' if seconds // 60 != 1 else ''}" if seconds % 60 == 0 else f"{seconds} s"
