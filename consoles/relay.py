"""How a console's bytes travel through Redis between the web process and the host agent.

Every key of a session is named by its host's id and the session's id, under
`vzpanel:console:h<host id>:`, the pattern that host's Redis user alone is granted
(tasks/redis_acl.py), so no other host's agent can read a terminal or type into it:
- `...:open`: a list; the web pushes a session id on it, the agent pops it. An id, nothing else:
  the agent loads everything else from its own database row.
- `...:s<id>:in`: a stream, web -> agent: keystrokes, resizes, "close".
- `...:s<id>:out`: a stream, agent -> web: "opened", output, "closed" with the reason.
- `...:s<id>:alive`: a key the agent renews while it serves the session; gone, the agent is.
- `...:t<task id>:out`: a stream, agent -> vzctl exec: a command's standard output (DATA) and
  error (ERROR_DATA) as it writes them, then CLOSE (reason "exit N"). Read only by the CLI of the
  user who ran the command; the task's log and result keep what the page shows.
- `...:t<task id>:end`: a stream, whoever finishes a task -> whoever waits for its end (the API's
  exec with `wait`): one entry once the task's final row is committed (tasks.services).
Plain Python (no Django): both sides and the tests use it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = "vzpanel:console:"
MAX_DATA = 64 * 1024          # bytes of one message either way
MAX_SIZE = 1000               # columns or rows of a terminal
STREAM_MAXLEN = 2000          # entries kept in a stream (a reader that falls behind loses the oldest)
KEY_TTL = 3600                # seconds a stream outlives its last message
ALIVE_TTL = 10                # seconds the agent's alive key lasts unless renewed
_SESSION_ID = re.compile(rb"[1-9][0-9]{0,17}")

DATA, RESIZE, CLOSE, OPENED, ERROR_DATA = b"d", b"r", b"x", b"o", b"e"


def host_prefix(host_id: int) -> str:
    return f"{PREFIX}h{int(host_id)}:"


def open_list(host_id: int) -> str:
    return f"{host_prefix(host_id)}open"


def session_key(host_id: int, session_id: int, kind: str) -> str:
    """kind: in, out or alive."""
    return f"{host_prefix(host_id)}s{int(session_id)}:{kind}"


def task_output_key(host_id: int, task_id: int) -> str:
    """The stream of a vzctl exec task's output (the host's agent writes it, the CLI reads it)."""
    return f"{host_prefix(host_id)}t{int(task_id)}:out"


def task_end_key(host_id: int, task_id: int) -> str:
    """The stream that says a task of that host has ended (tasks.services.finish_task writes it)."""
    return f"{host_prefix(host_id)}t{int(task_id)}:end"


def parse_session_id(raw: bytes) -> int | None:
    """A session id popped from the open list, or None for anything else (ASCII digits only)."""
    return int(raw) if isinstance(raw, bytes) and _SESSION_ID.fullmatch(raw) else None


@dataclass(frozen=True)
class Message:
    """One entry of a session's stream: kind DATA (data), RESIZE (cols, rows), CLOSE (reason), OPENED."""

    kind: bytes
    data: bytes = b""
    cols: int = 0
    rows: int = 0
    reason: str = ""

    def fields(self) -> dict[bytes, bytes]:
        if self.kind in (DATA, ERROR_DATA):
            return {b"t": self.kind, b"d": self.data}
        if self.kind == RESIZE:
            return {b"t": RESIZE, b"c": str(self.cols).encode(), b"r": str(self.rows).encode()}
        if self.kind == CLOSE:
            return {b"t": CLOSE, b"reason": self.reason.encode()[:400]}
        return {b"t": self.kind}


def data(chunk: bytes) -> Message:
    return Message(DATA, data=chunk)


def error_data(chunk: bytes) -> Message:
    """Bytes a command wrote on its standard error (vzctl exec's stream only)."""
    return Message(ERROR_DATA, data=chunk)


def resize(cols: int, rows: int) -> Message:
    return Message(RESIZE, cols=cols, rows=rows)


def close(reason: str = "") -> Message:
    return Message(CLOSE, reason=reason)


def _size(raw: bytes | None) -> int | None:
    if raw is None or not re.fullmatch(rb"[0-9]{1,4}", raw):
        return None
    value = int(raw)
    return value if 1 <= value <= MAX_SIZE else None


def parse(fields: dict) -> Message | None:
    """A stream entry read back, or None when it is not one of ours (garbage is dropped, never
    guessed at)."""
    if not isinstance(fields, dict) or not all(isinstance(k, bytes) and isinstance(v, bytes)
                                              for k, v in fields.items()):
        return None
    kind = fields.get(b"t")
    if kind in (DATA, ERROR_DATA) and set(fields) == {b"t", b"d"} and len(fields[b"d"]) <= MAX_DATA:
        return Message(kind, data=fields[b"d"])
    if kind == RESIZE and set(fields) == {b"t", b"c", b"r"}:
        cols, rows = _size(fields[b"c"]), _size(fields[b"r"])
        return resize(cols, rows) if cols and rows else None
    if kind == CLOSE and set(fields) <= {b"t", b"reason"}:
        return close(fields.get(b"reason", b"")[:400].decode(errors="replace"))
    if kind == OPENED and set(fields) == {b"t"}:
        return Message(OPENED)
    return None


def read_back(found, last: bytes | str) -> tuple[bytes | str, list[Message]]:
    """An XREAD answer of one stream as (the id to read on from, its well-formed messages)."""
    messages = []
    for _key, entries in found or []:
        for entry_id, fields in entries:
            last = entry_id
            message = parse(fields)
            if message is not None:
                messages.append(message)
    return last, messages


def terminal_notice(text: str) -> bytes:
    """A line the panel writes into the terminal (on its own line, dim), e.g. why it closed."""
    return f"\r\n\x1b[2m[vzpanel] {text}\x1b[0m\r\n".encode()
