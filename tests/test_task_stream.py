"""Live task output: the task log's WebSocket (tasks/consumers.py), authorised like the task page,
and the Run-a-command box in Chromium showing a command's first line before its last is written.
Never a timing: the order of what arrives, and the task's state when it does."""
import asyncio
import json

import pytest
from django.test import Client

from containers.models import Container
from tasks.models import Task

from .conftest import wait_task
from .test_browser import log_in, page  # noqa: F401  (Chromium through Playwright)
from .test_console_browser import console_server  # noqa: F401  (uvicorn serving /ws/)
from .test_consoles import refused_at_the_door, websocket
from .tenancy_fixtures import students_running_container

CTID = 9901
WAIT = 60


@pytest.fixture
def running_task(transactional_db, host, template_name, acme, plan, people):
    ct = Container.objects.create(ctid=CTID, hostname="stream.test", ostemplate=template_name, host=host,
                                  tenant=acme, owner=people["student"], status="running", **plan.limits())
    return Task.objects.create(type="ct.exec", container=ct, ctid=CTID, host=host, tenant=acme,
                               user=people["student"], status="running", log="12:00:00 Running: true\n")


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


async def messages_until(ws, wanted: str) -> list[dict]:
    received = []
    while not received or received[-1]["type"] != wanted:
        message = await ws.receive_output(WAIT)
        assert message["type"] == "websocket.send", message
        received.append(json.loads(message["text"]))
    return received


def test_the_log_streams_as_it_is_written_and_ends_with_the_task(running_task, people):
    from asgiref.sync import sync_to_async
    ws = websocket(logged_in(people["student"]), f"/ws/tasks/{running_task.pk}/log/?from=9")

    async def follow():
        assert (await ws.connect())[0]
        first = await messages_until(ws, "state")
        await sync_to_async(running_task.write_log)("12:00:01 | first\n")
        second = await messages_until(ws, "log")
        await sync_to_async(Task.objects.filter(pk=running_task.pk).update)(status="ok")
        last = await messages_until(ws, "end")
        closed = await ws.receive_output(WAIT)
        return first, second, last, closed
    first, second, last, closed = asyncio.run(follow())
    assert first == [{"type": "log", "text": "Running: true\n"},  # from the 9th character on: what the page lacks
                     {"type": "state", "status": "running", "progress": 0}]
    assert second == [{"type": "log", "text": "12:00:01 | first\n"}]
    assert last[-2:] == [{"type": "state", "status": "ok", "progress": 0}, {"type": "end", "status": "ok"}]
    assert closed["type"] == "websocket.close"


def test_a_task_the_user_may_not_see_is_refused_as_the_page_refuses_it(running_task, people, client):
    path = f"/ws/tasks/{running_task.pk}/log/"
    for user in (people["outsider"], people["peer"]):
        viewer = logged_in(user)
        assert viewer.get(f"/tasks/{running_task.pk}/").status_code == 404
        assert asyncio.run(refused_at_the_door(websocket(viewer, path)))
    assert asyncio.run(refused_at_the_door(websocket(client, path)))  # not logged in
    assert asyncio.run(refused_at_the_door(websocket(logged_in(people["student"]), path, origin=b"http://evil.example"),
                                           code=None))


@pytest.mark.browser
@pytest.mark.integration
def test_the_run_a_command_box_shows_each_line_as_it_is_written(
        page, live_server, console_server, agent, host, template_name, acme, plan, people):  # noqa: F811
    students_running_container(CTID, "stream.test", host, template_name, acme, plan, people)
    base = live_server.url.replace("localhost", "127.0.0.1")
    log_in(page, base, "student", "student-pass-123")
    page.goto(f"{base}/containers/{CTID}/")
    page.evaluate("window.stillThisDocument = true")  # gone if the browser loaded a new document
    page.fill("#exec-form input[name=command]", "sh -c 'echo first; sleep 3; echo second'")
    page.click("#exec-form button")
    box = "#exec-box"
    page.wait_for_selector(f"{box} #task-log:has-text('| first')", timeout=WAIT * 1000)
    # The first line is in the box while the command still runs: streamed, not shown at the end.
    assert "| second" not in page.inner_text(f"{box} #task-log")
    assert page.get_attribute(f"{box} #task-live", "data-live") == "stream"
    assert Task.objects.get(type="ct.exec").status == "running"
    page.wait_for_selector(f"{box} #task-log:has-text('| second')", timeout=WAIT * 1000)
    page.wait_for_selector(f"{box} :text('Exit status 0')", timeout=WAIT * 1000)
    log = page.inner_text(f"{box} #task-log")
    assert log.index("| first") < log.index("| second") < log.index("Exit status 0")
    assert wait_task(Task.objects.get(type="ct.exec")).status == "ok"
    assert page.evaluate("window.stillThisDocument === true") and page.url == f"{base}/containers/{CTID}/"

    # The task's own page follows a running command the same way.
    page.fill("#exec-form input[name=command]", "sh -c 'echo one; sleep 3; echo two'")
    page.click("#exec-form button")
    # The box shows the new task (not still the first one's link) before its page is opened.
    page.wait_for_selector(f"{box} #task-log:has-text('| one')", timeout=WAIT * 1000)
    page.click(f"{box} a:has-text('Task #')")
    page.wait_for_selector("#task-log:has-text('| one')", timeout=WAIT * 1000)
    page.wait_for_selector("#task-log:has-text('| two')", timeout=WAIT * 1000)
    page.wait_for_selector("#task-status:has-text('ok')", timeout=WAIT * 1000)
    log = page.inner_text("#task-log")
    assert log.index("| one") < log.index("| two") < log.index("Exit status 0")
