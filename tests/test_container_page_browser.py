"""The container page in Debian's Chromium, with a real container and the real agent: after an action, or a
change made elsewhere, every card shows the container's new state without a reload (containers/live.py,
static/js/ctlive.js)."""
import pytest

from containers import services
from containers.models import Container
from tasks.models import Task

from .conftest import wait_task
from .test_browser import log_in, page  # noqa: F401
from .test_console_browser import console_server  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CTID = 9611


def test_stop_updates_every_card_without_a_reload(page, live_server, console_server, agent, host,  # noqa: F811
                                                   admin_user, template_name):
    task = services.create_container(user=admin_user, ctid=CTID, ostemplate=template_name, hostname="live.test",
                                     host=host)
    assert wait_task(task).status == "ok"
    ct = Container.objects.get(ctid=CTID)
    assert wait_task(services.start_container(ct, admin_user)).status == "ok"

    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    base = live_server.url.replace("localhost", "127.0.0.1")  # the WebSocket's origin is an allowed host
    log_in(page, base, "admin", "admin-pass-123")
    page.goto(f"{base}/containers/{CTID}/")
    page.wait_for_selector("#ct-destroy #destroy-stop-first")
    assert page.is_enabled("#ct-exec-run button")

    # Stop, in the browser: the POST answers with the page (one navigation); from there on, no reload.
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.click("#ct-status button:has-text('Stop')")
    page.evaluate("window.stillThisDocument = true")
    page.wait_for_selector("#ct-destroy #destroy-form", timeout=60_000)
    stop = Task.objects.filter(container=ct, type="ct.stop").latest("id")
    page.wait_for_selector(f"#ct-tasks tr[data-task='{stop.pk}'] [data-status=ok]")
    page.wait_for_selector("#ct-status [data-status=stopped]")
    page.wait_for_selector("#ct-live [data-status=stopped]")
    assert page.is_disabled("#ct-exec-run button")
    page.wait_for_selector("#ct-make-template #make-template-form")
    assert page.evaluate("window.stillThisDocument === true")

    # Changed elsewhere (another tab, the CLI, the API) while the page is open: it follows, and leaves
    # alone the form the user is typing in.
    page.fill("#settings-form input[name=hostname]", "typed.example")
    services.update_container(Container.objects.get(ctid=CTID), admin_user, description="changed elsewhere")
    page.wait_for_selector("#ct-details :text('changed elsewhere')", timeout=30_000)
    assert page.input_value("#settings-form input[name=hostname]") == "typed.example"
    page.fill("#settings-form input[name=hostname]", "live.test")  # as it was, and the focus elsewhere:
    page.evaluate("document.activeElement.blur()")                   # the card may be redrawn now
    page.wait_for_function("() => document.querySelector('#settings-form [name=description]').value"
                           " === 'changed elsewhere'", timeout=30_000)

    assert wait_task(services.start_container(Container.objects.get(ctid=CTID), admin_user)).status == "ok"
    page.wait_for_selector("#ct-destroy #destroy-stop-first", timeout=30_000)
    page.wait_for_selector("#ct-status [data-status=running]")
    assert page.is_enabled("#ct-exec-run button")
    assert page.query_selector("#ct-make-template #make-template-form") is None
    assert page.evaluate("window.stillThisDocument === true")

    # The Console tab: the terminal goes when the container stops and comes back when it starts.
    page.click("#ct-tabs >> text=Console")
    page.wait_for_selector("#console-status:has-text('Connected')")
    page.evaluate("window.stillThisDocument = true")
    assert wait_task(services.stop_container(Container.objects.get(ctid=CTID), admin_user)).status == "ok"
    page.wait_for_selector("#console-not-running", timeout=30_000)
    assert wait_task(services.start_container(Container.objects.get(ctid=CTID), admin_user)).status == "ok"
    page.wait_for_selector("#console-status:has-text('Connected')", timeout=30_000)
    page.wait_for_function("() => window.vzConsole.text().includes('# ')")
    page.click("#console")
    page.keyboard.type("echo live-$((3*4))")
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.vzConsole.text().includes('live-12')")
    assert page.evaluate("window.stillThisDocument === true")

    # A page out of sight does not poll; shown again, it asks again.
    polls = []
    page.on("request", lambda request: polls.append(request.url) if "live=" in request.url else None)
    page.evaluate("Object.defineProperty(document, 'hidden', {configurable: true, get: () => true})")
    page.wait_for_timeout(6_000)
    hidden_polls = len(polls)
    assert hidden_polls <= 1  # (one may have been on its way)
    with page.expect_request(lambda request: "live=" in request.url):
        page.evaluate("""() => { Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});
                                 document.dispatchEvent(new Event('visibilitychange')); }""")

    # Destroyed elsewhere: the page says so and stops asking.
    assert wait_task(services.stop_container(Container.objects.get(ctid=CTID), admin_user)).status == "ok"
    assert wait_task(services.destroy_container(Container.objects.get(ctid=CTID), admin_user,
                                                str(CTID))).status == "ok"
    page.wait_for_selector("#ct-gone", timeout=30_000)
    assert "no longer exists" in page.inner_text("main .alert-warning")
    assert errors == []
