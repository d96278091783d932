"""The user's end of a console session: what the browser's WebSocket consumer (consumers.py) and
`vzctl enter` / `vzctl console` at the shell (consoles/shell.py) both are.

Given a redeemed session, it asks the container's host agent to open the terminal (the session id
pushed on the host's open list, nothing else), relays output to its owner and keystrokes and
resizes to the agent (consoles/relay.py), and ends the session when the agent closes it, when the
row says so (services.end_reason: logout, the user disabled or no longer allowed, the container
stopped), or when the agent goes away or never opens it (then it says why itself).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from channels.db import database_sync_to_async

from tasks.queue import async_connection

from . import relay, services
from .models import ConsoleSession

logger = logging.getLogger("vzpanel.console")
CHECK_SECONDS = 1.0        # how often the row, the user's rights and the agent are looked at
OPEN_WAIT_SECONDS = 15     # the agent must have opened the terminal by then
CLOSE_WAIT_CHECKS = 3      # checks to wait for the agent's own closing words before leaving


class ConsoleClient:
    """One session's relay on the user's side. The owner gives three coroutines: `output(bytes)` for
    what the terminal wrote, `opened()` once the agent runs it, and `ended(reason, notice)` once,
    when the session is over (`notice`: the agent could not write why into the terminal, so the
    owner shows it)."""

    def __init__(self, session: ConsoleSession, output: Callable[[bytes], Awaitable[None]],
                 opened: Callable[[], Awaitable[None]], ended: Callable[[str, bool], Awaitable[None]]):
        self.session = session
        self._output, self._opened, self._ended = output, opened, ended
        self.keys = {kind: relay.session_key(session.host_id, session.pk, kind) for kind in ("in", "out", "alive")}
        self.redis = async_connection()
        self.opened = False
        self.finished = False
        self.tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        """Ask the host's agent for the terminal and relay until the session ends."""
        try:
            await self.redis.rpush(relay.open_list(self.session.host_id), str(self.session.pk))
        except Exception as exc:  # Redis down: say so rather than leave the terminal blank
            logger.warning("cannot ask for console session %s: %s", self.session.pk, exc)
            reason = "the panel cannot reach Redis to ask the host's agent"
            await database_sync_to_async(services.close_session)(self.session, reason)
            return await self._finish(reason, notice=True)
        self.tasks = [asyncio.create_task(self._pump()), asyncio.create_task(self._watch())]

    async def type(self, data: bytes) -> None:
        """Keystrokes (or pasted text) for the terminal."""
        if not self.finished:
            for start in range(0, len(data), relay.MAX_DATA):
                await self._tell_agent(relay.data(data[start:start + relay.MAX_DATA]))

    async def resize(self, cols: int, rows: int) -> None:
        if not self.finished and 1 <= cols <= relay.MAX_SIZE and 1 <= rows <= relay.MAX_SIZE:
            await self._tell_agent(relay.resize(cols, rows))

    async def leave(self, reason: str) -> None:
        """The user's end went away (the browser disconnected, the shell's user detached): close the
        row with `reason`, tell the agent, stop relaying."""
        for task in self.tasks:
            task.cancel()
        if not self.finished:
            self.finished = True
            await database_sync_to_async(services.close_session)(self.session, reason)
            try:
                await self._tell_agent(relay.close())
            except Exception:
                logger.warning("cannot tell the agent that console session %s closed", self.session.pk)
        await self.redis.aclose()

    # -- relaying --------------------------------------------------------------
    async def _tell_agent(self, message: relay.Message) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(self.keys["in"], message.fields(), maxlen=relay.STREAM_MAXLEN, approximate=True)
            pipe.expire(self.keys["in"], relay.KEY_TTL)
            await pipe.execute()

    async def _pump(self) -> None:
        """The agent's stream to the owner, until the agent says the session closed."""
        last = "0-0"
        while True:
            found = await self.redis.xread({self.keys["out"]: last}, count=200, block=1000)
            last, messages = relay.read_back(found, last)
            for message in messages:
                if message.kind == relay.DATA:
                    await self._output(message.data)
                elif message.kind == relay.OPENED:
                    self.opened = True
                    await self._opened()
                elif message.kind == relay.CLOSE:
                    await self._finish(message.reason)
                    return

    async def _watch(self) -> None:
        """End the session when its row says so, the user may no longer have it, or the agent went
        away (then the notice comes from here: the agent cannot write it)."""
        checks = closing_since = 0
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            checks += 1
            reason = await database_sync_to_async(self._end_reason)()
            if reason:
                closing_since = closing_since or checks
                if checks - closing_since < CLOSE_WAIT_CHECKS:
                    await self._tell_agent(relay.close())
                    continue  # the agent writes why into the terminal, and closes the stream
                return await self._finish(reason, notice=True)
            if self.opened and not await self.redis.exists(self.keys["alive"]):
                reason = "the host agent went away"
            elif not self.opened and checks * CHECK_SECONDS > OPEN_WAIT_SECONDS:
                reason = "the host agent did not open the terminal (is it running?)"
            if reason:
                await database_sync_to_async(services.close_session)(self.session, reason)
                return await self._finish(reason, notice=True)

    def _end_reason(self) -> str | None:
        current = services.fresh(self.session.pk)
        reason = services.end_reason(current) if current else "the session was removed"
        if reason and current is not None and current.closed_at is None:
            services.close_session(current, reason)
        return reason

    async def _finish(self, reason: str, notice: bool = False) -> None:
        if self.finished:
            return
        self.finished = True
        await self._ended(reason, notice)
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()
