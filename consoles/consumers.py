"""The browser's end of a console: a WebSocket (Django Channels, in the web process) relayed
through Redis to the agent of the container's host (consoles/relay.py).

The URL names the container and the mode and carries the one-time ticket; the consumer redeems
it (services.redeem: this user, this login, this container, this mode, unexpired, unused, still
allowed) and relays through a ConsoleClient (client.py, as vzctl enter does at the shell).
Binary frames are keystrokes (and output, the other way); text frames are JSON control messages: {"type": "resize", "cols": C, "rows": R} from the browser; {"type": "opened"} and
{"type": "closed", "reason": ...} to it. A closed message means "do not reconnect"; a connection
that drops without one was a network blip, and the page asks for a new ticket.
"""
from __future__ import annotations

import ipaddress
import json
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from . import relay, services
from .client import ConsoleClient

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
    client: ConsoleClient | None = None

    async def connect(self):
        kwargs = self.scope["url_route"]["kwargs"]
        ticket = (parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get("ticket") or [""])[0]
        login = getattr(self.scope.get("session"), "session_key", None)
        try:
            session = await database_sync_to_async(services.redeem)(
                ticket[:200], self.scope.get("user"), int(kwargs["ctid"]), kwargs["mode"], login,
                client_address(self.scope))
        except services.ConsoleRefused:
            await self.close(code=REFUSED_CODE)
            return
        await self.accept()
        self.client = ConsoleClient(session, self._output, self._opened, self._ended)
        await self.client.start()

    async def receive(self, text_data=None, bytes_data=None):
        if self.client is None:
            return
        if bytes_data is not None:
            return await self.client.type(bytes_data)
        try:
            control = json.loads(text_data or "")
            if control.get("type") == "resize":
                await self.client.resize(int(control["cols"]), int(control["rows"]))
        except (ValueError, TypeError, KeyError, AttributeError):
            pass  # not a control message of ours: dropped

    async def disconnect(self, code):
        if self.client is not None:
            await self.client.leave("the browser disconnected")

    async def _output(self, data: bytes) -> None:
        await self.send(bytes_data=data)

    async def _opened(self) -> None:
        await self.send(text_data=json.dumps({"type": "opened"}))

    async def _ended(self, reason: str, notice: bool) -> None:
        if notice:
            await self.send(bytes_data=relay.terminal_notice(f"Console closed: {reason}."))
        await self.send(text_data=json.dumps({"type": "closed", "reason": reason}))
        await self.close(code=1000)
