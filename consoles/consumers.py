"""The browser's end of a console: a WebSocket (Django Channels, in the web process) relayed
through Redis to the agent of the container's host (consoles/relay.py).

The URL names the container and the mode and carries the one-time ticket; the consumer redeems
it (services.redeem: this user, this login, this container, this mode, unexpired, unused, still
allowed) and then asks the host's agent to open the terminal by pushing the session id, nothing
else. Binary frames are keystrokes (and output, the other way); text frames are JSON control
messages: {"type": "resize", "cols": C, "rows": R} from the browser; {"type": "opened"} and
{"type": "closed", "reason": ...} to it. A closed message means "do not reconnect"; a connection
that drops without one was a network blip, and the page asks for a new ticket.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from tasks.queue import async_connection

from . import relay, services

logger = logging.getLogger("vzpanel.console")
CHECK_SECONDS = 1.0        # how often the row, the user's rights and the agent are looked at
OPEN_WAIT_SECONDS = 15     # the agent must have opened the terminal by then
CLOSE_WAIT_CHECKS = 3      # checks to wait for the agent's own closing words before leaving
REFUSED_CODE = 4403


def client_address(scope) -> str:
    """The browser's address: the proxy's X-Real-IP in production (as for HTTP requests, see
    panel.middleware), else the socket's peer."""
    header = settings.PROXY_CLIENT_ADDRESS_HEADER
    if header.startswith("HTTP_"):
        name = header[5:].lower().replace("_", "-").encode()
        for key, value in scope.get("headers", []):
            if key == name:
                try:
                    return str(ipaddress.ip_address(value.decode("latin-1").strip()))
                except ValueError:
                    break
    client = scope.get("client") or ("", 0)
    return str(client[0] or "")


class ConsoleConsumer(AsyncWebsocketConsumer):
    session = None
    redis = None
    finished = False

    async def connect(self):
        kwargs = self.scope["url_route"]["kwargs"]
        ticket = (parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get("ticket") or [""])[0]
        login = getattr(self.scope.get("session"), "session_key", None)
        try:
            self.session = await database_sync_to_async(services.redeem)(
                ticket[:200], self.scope.get("user"), int(kwargs["ctid"]), kwargs["mode"], login,
                client_address(self.scope))
        except services.ConsoleRefused:
            await self.close(code=REFUSED_CODE)
            return
        await self.accept()
        host_id, session_id = self.session.host_id, self.session.pk
        self.keys = {kind: relay.session_key(host_id, session_id, kind) for kind in ("in", "out", "alive")}
        self.redis = async_connection()
        self.opened = False
        self.tasks = []
        try:
            await self.redis.rpush(relay.open_list(host_id), str(session_id))
        except Exception as exc:  # Redis down: say so rather than leave the terminal blank
            logger.warning("cannot ask for console session %s: %s", session_id, exc)
            reason = "the panel cannot reach Redis to ask the host's agent"
            await database_sync_to_async(services.close_session)(self.session, reason)
            return await self._finish(reason, notice=True)
        self.tasks = [asyncio.create_task(self._pump()), asyncio.create_task(self._watch())]

    async def receive(self, text_data=None, bytes_data=None):
        if self.session is None or self.finished:
            return
        if bytes_data is not None:
            for start in range(0, len(bytes_data), relay.MAX_DATA):
                await self._tell_agent(relay.data(bytes_data[start:start + relay.MAX_DATA]))
            return
        try:
            control = json.loads(text_data or "")
            if control.get("type") == "resize":
                cols, rows = int(control["cols"]), int(control["rows"])
                if 1 <= cols <= relay.MAX_SIZE and 1 <= rows <= relay.MAX_SIZE:
                    await self._tell_agent(relay.resize(cols, rows))
        except (ValueError, TypeError, KeyError, AttributeError):
            pass  # not a control message of ours: dropped

    async def disconnect(self, code):
        if self.session is None:
            return
        for task in getattr(self, "tasks", []):
            task.cancel()
        if not self.finished:
            self.finished = True
            await database_sync_to_async(services.close_session)(self.session, "the browser disconnected")
            try:
                await self._tell_agent(relay.close())
            except Exception:
                logger.warning("cannot tell the agent that console session %s closed", self.session.pk)
        if self.redis is not None:
            await self.redis.aclose()

    # -- relaying --------------------------------------------------------------
    async def _tell_agent(self, message: relay.Message) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(self.keys["in"], message.fields(), maxlen=relay.STREAM_MAXLEN, approximate=True)
            pipe.expire(self.keys["in"], relay.KEY_TTL)
            await pipe.execute()

    async def _pump(self) -> None:
        """The agent's stream to the browser, until the agent says the session closed."""
        last = "0-0"
        while True:
            found = await self.redis.xread({self.keys["out"]: last}, count=200, block=1000)
            last, messages = relay.read_back(found, last)
            for message in messages:
                if message.kind == relay.DATA:
                    await self.send(bytes_data=message.data)
                elif message.kind == relay.OPENED:
                    self.opened = True
                    await self.send(text_data=json.dumps({"type": "opened"}))
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
        if notice:
            await self.send(bytes_data=relay.terminal_notice(f"Console closed: {reason}."))
        await self.send(text_data=json.dumps({"type": "closed", "reason": reason}))
        await self.close(code=1000)
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()
