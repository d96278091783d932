"""A WebSocket client that drives an ASGI application in-process (like channels' own
WebsocketCommunicator, whose package imports daphne, which the panel does not use)."""
from __future__ import annotations

import json

from asgiref.testing import ApplicationCommunicator


class Websocket(ApplicationCommunicator):
    def __init__(self, application, path: str, headers: list[tuple[bytes, bytes]]):
        path, _, query = path.partition("?")
        super().__init__(application, {
            "type": "websocket", "path": path, "raw_path": path.encode(), "query_string": query.encode(),
            "headers": headers, "subprotocols": [], "client": ("192.0.2.50", 50000), "server": ("localhost", 80)})

    async def connect(self, timeout: float = 10) -> tuple[bool, int | None]:
        """(accepted, close code if refused)."""
        await self.send_input({"type": "websocket.connect"})
        answer = await self.receive_output(timeout)
        if answer["type"] == "websocket.close":
            return False, answer.get("code", 1000)
        return True, None

    async def send_bytes(self, data: bytes) -> None:
        await self.send_input({"type": "websocket.receive", "bytes": data})

    async def send_json(self, value) -> None:
        await self.send_input({"type": "websocket.receive", "text": json.dumps(value)})

    async def disconnect(self, code: int = 1000, timeout: float = 10) -> None:
        await self.send_input({"type": "websocket.disconnect", "code": code})
        await self.wait(timeout)
