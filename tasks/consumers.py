"""A task's log, live: a WebSocket (served by the consoles' uvicorn, /ws/) that sends the log's new
text as it is written (the agent's TaskLog writes within 0.25 s), its status and progress as they
change, and its end. The task page and the Run-a-command box's result follow it (static/js/tasklog.js).

The task is looked up as the page looks it up (accounts.permissions.get_task_for_user): a task the
user may not see is refused (closed with 4403) exactly as the page answers 404. Messages (JSON):
{"type": "log", "text": ...}, {"type": "state", "status": ..., "progress": N},
{"type": "end", "status": ...}, after which the server closes.
"""
from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.core.exceptions import PermissionDenied
from django.db.models.functions import Substr
from django.http import Http404

from .choices import ACTIVE_STATES
from .models import Task

POLL_SECONDS = 0.2   # the log reaches the row within 0.25 s; looking more often would only cost queries
REFUSED_CODE = 4403
MAX_TEXT = 256 * 1024  # characters of log in one message (a long backlog comes in several)


def _since(task_id: int, offset: int) -> tuple[str, str, int] | None:
    """The log after its first `offset` characters, the status and the progress; None if gone."""
    return Task.objects.filter(pk=task_id).annotate(rest=Substr("log", offset + 1, MAX_TEXT)).values_list(
        "rest", "status", "progress").first()


def _visible(user, task_id: int) -> bool:
    from accounts.permissions import get_task_for_user
    try:
        get_task_for_user(user, task_id)
    except (Http404, PermissionDenied):
        return False
    return True


class TaskLogConsumer(AsyncWebsocketConsumer):
    follower: asyncio.Task | None = None

    async def connect(self):
        task_id = int(self.scope["url_route"]["kwargs"]["pk"])
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        try:
            offset = max(0, int((query.get("from") or ["0"])[0]))
        except ValueError:
            offset = 0
        if not await database_sync_to_async(_visible)(self.scope.get("user"), task_id):
            await self.close(code=REFUSED_CODE)
            return
        await self.accept()
        self.follower = asyncio.create_task(self._follow(task_id, offset))

    async def disconnect(self, code):
        if self.follower is not None:
            self.follower.cancel()

    async def receive(self, text_data=None, bytes_data=None):
        pass  # nothing is asked of a log

    async def _follow(self, task_id: int, offset: int) -> None:
        state = None
        while True:
            row = await database_sync_to_async(_since)(task_id, offset)
            if row is None:
                await self.send_json({"type": "end", "status": "removed"})
                return await self.close(code=1000)
            text, status, progress = row
            if text:
                offset += len(text)
                await self.send_json({"type": "log", "text": text})
                if len(text) == MAX_TEXT:
                    continue  # more of a backlog: no pause
            if (status, progress) != state:
                state = (status, progress)
                await self.send_json({"type": "state", "status": status, "progress": progress})
            if status not in ACTIVE_STATES:
                await self.send_json({"type": "end", "status": status})
                return await self.close(code=1000)
            await asyncio.sleep(POLL_SECONDS)

    async def send_json(self, message: dict) -> None:
        await self.send(text_data=json.dumps(message))
