"""Browser consoles end to end: a real container, the real agent, Redis, and the real consumer
(driven in-process over ASGI). Never a timing: only what happens, each wait bounded generously."""
import asyncio
import json
import subprocess

import pytest
from django.test import Client

from accounts.models import AuditEvent
from consoles.models import ConsoleSession
from consoles.services import new_ticket
from containers import services
from containers.models import Container

from .conftest import LXCPATH, wait_task, wait_until
from .tenancy_fixtures import students_running_container
from .websocket import Websocket

pytestmark = pytest.mark.integration
CTID = 9852
WAIT = 60


@pytest.fixture
def running(agent, host, template_name, acme, plan, people):
    return students_running_container(CTID, "console.test", host, template_name, acme, plan, people)


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


class Console:
    """One console as the browser sees it: output bytes and the server's control messages."""

    def __init__(self, client: Client, ct, mode: str = "shell"):
        from panel.asgi import application
        _, ticket = new_ticket(ct.owner, ct, mode, "", client.session.session_key)
        self.ws = Websocket(application, f"/ws/containers/{ct.ctid}/console/{mode}/?ticket={ticket}",
                            [(b"cookie", f"sessionid={client.session.session_key}".encode()),
                             (b"origin", b"http://localhost")])
        self.output = b""
        self.closed_reason = None

    async def open(self):
        connected, _ = await self.ws.connect()
        assert connected
        await self.until(lambda: self.opened, "the agent to open the terminal")

    opened = False

    async def read(self, timeout=WAIT) -> bool:
        """One message from the server; False once the WebSocket is closed."""
        message = await self.ws.receive_output(timeout)
        if message["type"] == "websocket.close":
            return False
        if message.get("bytes") is not None:
            self.output += message["bytes"]
            if b"\x1b[6n" in message["bytes"]:  # where is the cursor? (busybox's shell asks; xterm.js answers)
                await self.ws.send_bytes(b"\x1b[1;1R")
        else:
            control = json.loads(message["text"])
            self.opened = self.opened or control["type"] == "opened"
            if control["type"] == "closed":
                self.closed_reason = control["reason"]
        return True

    async def until(self, predicate, what: str):
        while not predicate():
            try:
                more = await self.read()
            except TimeoutError:
                raise AssertionError(f"nothing more while waiting for {what}: {self.output[-500:]!r}") from None
            if not more:
                raise AssertionError(f"closed while waiting for {what}: {self.output[-500:]!r}")

    async def closed(self):
        while await self.read():
            pass
        return self.closed_reason

    async def run(self, command: str, expected: bytes):
        """At the shell's prompt, type `command` and wait for `expected` in what follows."""
        await self.until(lambda: b"# " in self.output, "the prompt")
        start = len(self.output)
        await self.type(f"{command}\r")
        await self.until(lambda: expected in self.output[start:], repr(expected))

    async def type(self, text: str):
        await self.ws.send_bytes(text.encode())


def session_row() -> ConsoleSession:
    return ConsoleSession.objects.latest("pk")


def test_a_shell_types_resizes_and_closes_when_its_user_logs_out(running, people, host):
    from consoles import relay
    from tasks.queue import redis_connection
    # Forged requests on the real agent's list: refused and listed on the host page, nothing opened.
    redis_connection().rpush(relay.open_list(host.pk), "424242", "rm -rf /")

    def refused_both():
        host.refresh_from_db()
        reasons = " ".join(entry["reason"] for entry in host.queue_refusals)
        return "no such console session" in reasons and "not a session id" in reasons
    wait_until(refused_both, WAIT, message="the agent to refuse the forged requests")
    client = logged_in(people["student"])
    console = Console(client, running)

    async def use():
        await console.open()
        await console.run("echo $((6*7))", b"\n42\r")
        await console.ws.send_json({"type": "resize", "cols": 101, "rows": 31})
        await console.type("stty size\r")
        await console.until(lambda: b"31 101" in console.output, "the new size")
        await asyncio.get_running_loop().run_in_executor(None, lambda: client.post("/accounts/logout/"))
        return await console.closed()
    assert asyncio.run(use()) == "the user logged out"
    row = session_row()
    assert row.opened_at and row.closed_at and row.close_reason == "the user logged out"
    assert b"Console closed: the user logged out." in console.output
    event = AuditEvent.objects.get(action="console.close")
    assert event.username == "student" and event.object_id == str(CTID) and "shell" in event.detail
    assert not attached_processes()


def test_idle_consoles_close_and_the_console_mode_shows_the_containers_console(running, people, settings):
    settings.CONSOLE_IDLE_SECONDS = 2  # the row carries it to the agent
    client = logged_in(people["student"])
    idle = Console(client, running)

    async def wait_idle():
        await idle.open()
        return await idle.closed()
    assert asyncio.run(wait_idle()) == "no input for 2 s"
    assert b"Console closed: no input for 2 s." in idle.output

    settings.CONSOLE_IDLE_SECONDS = 600
    console = Console(client, running, mode="console")

    async def watch_console():
        await console.open()
        subprocess.run(["lxc-attach", "-n", str(CTID), "-P", str(LXCPATH), "--", "sh", "-c",
                        "echo on-the-console > /dev/console"], check=True, timeout=30)
        await console.until(lambda: b"on-the-console" in console.output, "the line written to /dev/console")
        await console.ws.disconnect()
    asyncio.run(watch_console())
    row = session_row()
    assert row.mode == "console" and row.close_reason == "the browser disconnected"
    wait_until(lambda: not attached_processes(), WAIT, message="the console's process to end")

    # The student loses the container (or their tenant): an open console closes.
    console = Console(client, running)

    async def lose_it():
        await console.open()
        await console.run("echo still-mine", b"\nstill-mine\r")
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: Container.objects.filter(ctid=CTID).update(owner=None))
        return await console.closed()
    assert asyncio.run(lose_it()) == "the user may no longer manage this container"
    assert b"Console closed: the user may no longer manage this container." in console.output
    wait_until(lambda: not attached_processes(), WAIT, message="the shell to end")


def test_a_console_closes_with_a_message_when_the_agent_stops_or_dies_or_the_container_stops(
        running, people, agent):
    client = logged_in(people["student"])
    console = Console(client, running)

    async def agent_stops():
        await console.open()
        await asyncio.get_running_loop().run_in_executor(None, agent.stop)
        return await console.closed()
    assert asyncio.run(agent_stops()) == "the host agent stopped"
    assert b"Console closed: the host agent stopped." in console.output
    wait_until(lambda: not attached_processes(), WAIT, message="lxc-attach to end with its agent")

    agent.start()
    console = Console(client, running)

    async def agent_dies():
        await console.open()
        await asyncio.get_running_loop().run_in_executor(None, agent.kill)
        return await console.closed()
    assert asyncio.run(agent_dies()) == "the host agent went away"
    assert b"Console closed: the host agent went away." in console.output
    wait_until(lambda: not attached_processes(), WAIT, message="lxc-attach to die with its agent")

    agent.start()
    console = Console(client, running)

    async def container_stops():
        await console.open()
        await console.run("echo ready", b"\nready\r")
        ct = await asyncio.get_running_loop().run_in_executor(None, lambda: Container.objects.get(ctid=CTID))
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: wait_task(services.stop_container(ct, people["student"])))
        return await console.closed()
    assert asyncio.run(container_stops()) == "the container stopped"
    assert b"Console closed: the container stopped." in console.output
    assert session_row().close_reason == "the container stopped"


def attached_processes() -> list[str]:
    """Command lines of lxc-attach or lxc-console processes on this test's container."""
    found = []
    for entry in __import__("pathlib").Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith((b"lxc-attach", b"lxc-console")) and str(CTID).encode() in argv:
                found.append(b" ".join(argv).decode(errors="replace"))
    return found
