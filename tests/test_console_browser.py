"""The Console tab in Debian's Chromium: pages from the live server, the WebSocket from uvicorn
serving panel.asgi (as runpanel runs them side by side), a real container and the real agent."""
import threading

import pytest

from containers import services
from containers.models import Container

from .conftest import free_port, wait_task, wait_until
from .test_browser import log_in, page  # noqa: F401  (Chromium through Playwright)

pytestmark = [pytest.mark.browser, pytest.mark.integration]
CTID = 9853


@pytest.fixture
def console_server(settings):
    """uvicorn with the panel's ASGI application on a port of its own, as `make run` starts it."""
    import uvicorn

    from panel.asgi import application
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=port, lifespan="off",
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 20, message="uvicorn to start")
        settings.CONSOLE_BROWSER_PORT = str(port)
        yield port
    finally:
        server.should_exit = True
        thread.join(20)


def test_a_student_types_into_the_console_tab_and_reads_the_answer(
        page, live_server, console_server, agent, host, template_name, acme, plan, people):  # noqa: F811
    task = services.create_container(user=people["tadmin"], ctid=CTID, ostemplate=template_name,
                                     hostname="tab.test", host=host, tenant=acme, plan=plan, owner=people["student"])
    assert wait_task(task).status == "ok"
    assert wait_task(services.start_container(Container.objects.get(ctid=CTID), people["student"])).status == "ok"

    base = live_server.url.replace("localhost", "127.0.0.1")
    log_in(page, base, "student", "student-pass-123")
    page.goto(f"{base}/containers/{CTID}/")
    page.click("#ct-tabs >> text=Console")
    page.wait_for_selector("#console-status:has-text('Connected')")
    page.wait_for_function("() => window.vzConsole.text().includes('# ')")
    page.click("#console")
    page.keyboard.type("echo $((6*7))")
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.vzConsole.text().split('\\n').some(line => line.trim() === '42')")

    # A full-screen program, quit with its own key.
    page.keyboard.type("top")
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.vzConsole.text().includes('PID')")
    page.keyboard.press("q")
    page.keyboard.type("echo top-$((1+1))-done")
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.vzConsole.text().includes('top-2-done')")

    # A smaller window: the terminal fits itself and the shell learns the new size.
    cols = page.evaluate("() => window.vzConsole.term.cols")
    page.set_viewport_size({"width": 900, "height": 700})
    page.wait_for_function(f"() => window.vzConsole.term.cols < {cols}")
    new_cols = page.evaluate("() => window.vzConsole.term.cols")
    page.keyboard.type("stty size")
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => window.vzConsole.text().split('\\n').some(line => line.trim().endsWith(' {new_cols}'))")

    # A network blip: the page gets a new ticket and a new shell by itself.
    page.evaluate("() => { window.droppedSocket = window.vzConsole.socket(); window.droppedSocket.close(); }")
    page.wait_for_function("""() => window.vzConsole.socket() !== window.droppedSocket
                              && document.getElementById('console-status').textContent.startsWith('Connected')""")
    page.click("#console")
    page.keyboard.type("echo again-$((2*3))")
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.vzConsole.text().includes('again-6')")

    # The container's own console.
    page.click("label[for=mode-console]")
    page.wait_for_selector("#console-status:has-text('Connected (console)')")
    from consoles.models import ConsoleSession
    assert list(ConsoleSession.objects.order_by("pk").values_list("mode", "close_reason")) == [
        ("shell", "the browser disconnected"), ("shell", "the browser disconnected"), ("console", "")]

    page.click("nav button:has-text('Log out')")
    page.wait_for_selector("#id_username")
    wait_until(lambda: ConsoleSession.objects.filter(close_reason="the user logged out").exists(), 30,
               message="the console to close at logout")
