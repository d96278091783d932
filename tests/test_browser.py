"""In Debian's Chromium: log in, create a container through the form, start it, see it running."""
import os
import shutil

import pytest

from containers.models import Container

from .conftest import lxc_info_state

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def page(tmp_path):
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1366, "height": 800})
        page = context.new_page()
        page.set_default_timeout(30_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()


def log_in(page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    # The dashboard's heading, not its menu link: a phone folds the menu away (tests/test_layout_browser.py).
    page.wait_for_url(lambda url: "/accounts/login" not in url)
    page.wait_for_selector("main h1")


def test_login_create_start_and_see_running(page, live_server, agent, host, admin_user, template_name):
    log_in(page, live_server.url, "admin", "admin-pass-123")

    page.click("nav >> text=Containers")
    page.click("text=Create container")
    page.fill("#id_ctid", "9201")
    page.fill("#id_hostname", "browser.test")
    page.select_option("#id_ostemplate", template_name)
    page.uncheck("#id_start")
    page.click("button:has-text('Create')")
    # The task page follows the log live until the task is done.
    page.wait_for_selector("#task-status [data-status=ok]", timeout=60_000)
    assert "Container 9201 created" in page.inner_text("#task-log")

    page.goto(f"{live_server.url}/containers/9201/")
    page.click("#ct-status button:has-text('Start')")
    page.wait_for_selector("#ct-status [data-status=running]", timeout=60_000)
    assert lxc_info_state(9201) == "RUNNING"
    assert Container.objects.get(ctid=9201).status == "running"

    page.click("nav >> text=Containers")
    row = page.wait_for_selector("#container-table tr[data-key='9201']")
    assert "running" in row.inner_text() and "browser.test" in row.inner_text()


def test_student_sees_only_their_container_starts_it_and_sets_root_password(
        page, live_server, agent, people, acme, plan, host, template_name):
    from containers import services

    from .conftest import LXCPATH, wait_task
    for ctid, owner in ((9301, people["student"]), (9302, people["peer"])):
        task = services.create_container(user=people["tadmin"], ctid=ctid, ostemplate=template_name,
                                         hostname=f"c{ctid}.test", host=host, tenant=acme, plan=plan, owner=owner)
        assert wait_task(task).status == "ok"

    log_in(page, live_server.url, "student", "student-pass-123")
    page.click("nav >> text=Containers")
    page.wait_for_selector("#container-table tr[data-key='9301']")
    assert page.query_selector("#container-table tr[data-key='9302']") is None  # the peer's container is not shown
    assert page.goto(f"{live_server.url}/containers/9302/").status == 404

    page.goto(f"{live_server.url}/containers/9301/")
    page.click("#ct-status button:has-text('Start')")
    page.wait_for_selector("#ct-status [data-status=running]", timeout=60_000)

    page.fill("#password-form input[name=password]", "Student-Root-99")
    page.fill("#password-form input[name=confirm]", "Student-Root-99")
    page.click("#password-form button")
    page.wait_for_selector("text=set the password of container 9301")
    shadow = LXCPATH / "9301" / "rootfs" / "etc" / "shadow"
    import time
    deadline = time.monotonic() + 30
    while not shadow.read_text().startswith("root:$") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert shadow.read_text().startswith("root:$6$")


def test_resources_tab_draws_charts_from_samples(page, live_server, agent, host, admin_user, template_name):
    from containers import services
    from metrics.models import Sample

    from .conftest import wait_task, wait_until
    task = services.create_container(user=admin_user, ctid=9401, ostemplate=template_name,
                                     hostname="charts.test", host=host)
    assert wait_task(task).status == "ok"
    ct = Container.objects.get(ctid=9401)
    assert wait_task(services.start_container(ct, admin_user)).status == "ok"
    # The agent samples every second in the tests.
    wait_until(lambda: Sample.objects.filter(container=ct, tier=0).count() >= 3, 30,
               message="three samples of CT 9401")

    log_in(page, live_server.url, "admin", "admin-pass-123")
    page.goto(f"{live_server.url}/containers/9401/")
    page.click("#ct-tabs >> text=Resources")
    page.wait_for_selector("#beancounters-card tr[data-resource='physpages']")
    page.wait_for_function("() => window.Chart && Chart.getChart(document.getElementById('chart-mem'))")
    points = page.evaluate("""() => Chart.getChart(document.getElementById('chart-mem'))
                                     .data.datasets[0].data.filter(p => p.y !== null).length""")
    assert points >= 2
    assert page.evaluate("() => Chart.getChart(document.getElementById('chart-cpu')).data.datasets[0].data.length") >= 2
    # The limits are drawn as level lines across the range: RAM on the memory chart, the disk on its own.
    labels = page.evaluate("() => Chart.getChart(document.getElementById('chart-mem')).data.datasets.map(d => d.label)")
    assert "RAM limit 512 MiB" in labels
    assert page.evaluate("""() => Chart.getChart(document.getElementById('chart-diskused')).data.datasets
                                  .some(d => d.label.startsWith('disk limit') && d.data[0].y === 2048 * 1024 * 1024)""")
    # Another range is fetched without reloading the page.
    page.click("#range-selector >> text=day")
    page.wait_for_function("() => new URLSearchParams(location.search).get('range') === 'day'")
    page.wait_for_function("() => !document.getElementById('chart-status').textContent.startsWith('Loading')")


def test_form_errors_appear_in_place_for_an_htmx_form_and_a_plain_one(page, live_server, transactional_db,
                                                                      host, admin_user, template_name):
    """Bad input, in Chromium: the container page's settings form (htmx-boosted) swaps in its page with
    the error beside the field and the input kept, without leaving the page's address; the tenant form
    (a plain POST) comes back with 400, the error and the input. Rows only: no container runs."""
    Container.objects.create(ctid=78210, hostname="form.example", ostemplate=template_name, host=host,
                             status="stopped")
    log_in(page, live_server.url, "admin", "admin-pass-123")

    page.goto(f"{live_server.url}/containers/78210/")
    page.evaluate("window.stillThisDocument = true")  # gone if the browser loaded a new document
    page.fill("#settings-form input[name=hostname]", "bad_host!")
    with page.expect_response(lambda r: r.url.endswith("/containers/78210/settings/")) as answer:
        page.click("#settings-form button:has-text('Save')")
    assert answer.value.status == 400 and answer.value.request.headers.get("hx-request") == "true"
    feedback = page.wait_for_selector("#settings-form input[name=hostname].is-invalid ~ .invalid-feedback")
    assert "not a valid hostname" in feedback.inner_text() and feedback.is_visible()
    assert page.input_value("#settings-form input[name=hostname]") == "bad_host!"
    assert page.evaluate("window.stillThisDocument === true")  # swapped in by htmx, not a navigation
    assert page.url == f"{live_server.url}/containers/78210/"  # HX-Push-Url: false
    assert Container.objects.get(ctid=78210).hostname == "form.example"

    page.goto(f"{live_server.url}/tenants/new/")
    page.fill("#id_slug", "Bad Slug")
    page.fill("#id_name", "Browser tenant")
    with page.expect_navigation() as navigation:
        page.click("main button:has-text('Create')")
    assert navigation.value.status == 400
    feedback = page.wait_for_selector("#id_slug.is-invalid ~ .invalid-feedback")
    assert feedback.is_visible() and "lower-case" in feedback.inner_text().lower()
    assert page.input_value("#id_slug") == "Bad Slug" and page.input_value("#id_name") == "Browser tenant"
    assert not page.evaluate("window.stillThisDocument === true")  # a plain form loads a new document
