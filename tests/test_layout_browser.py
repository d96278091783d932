"""In Debian's Chromium, every main page for the people who use it: on a phone held upright (390 px)
it never scrolls sideways and its menu folds behind a button; dark mode follows the system and the
toggle; a skip link leads past the menu; no element id is used twice; and axe-core (the accessibility
checker browsers' own tools run) finds nothing serious or critical, in the light theme and the dark."""
import json
from pathlib import Path

import pytest
from django.urls import reverse

from containers.models import Container

from .tenancy_fixtures import acme, other_tenant, people, plan, student_ct  # noqa: F401 (fixtures)
from .test_browser import CHROMIUM, CHROMIUM_ARGS, log_in

pytestmark = [pytest.mark.browser]

AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def browser():
    import os
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def new_page(browser, viewport, color_scheme="light"):
    context = browser.new_context(viewport=viewport, color_scheme=color_scheme)
    page = context.new_page()
    page.set_default_timeout(30_000)
    return page


@pytest.fixture
def world(transactional_db, host, template_name, admin_user, people, acme, plan, student_ct):  # noqa: F811
    """Rows enough for every page to draw its tables: no agent, nothing runs."""
    Container.objects.create(ctid=9401, name="a-rather-long-container-name-that-wraps", ostemplate=template_name,
                             hostname="a.very.long.hostname.that.should.wrap.on.a.phone.example.test", host=host,
                             tenant=acme, plan=plan, owner=people["student"], status="running", **plan.limits())
    Container.objects.create(ctid=9402, hostname="admin-only.example.test", ostemplate=template_name, host=host,
                             status="stopped")
    return host


def admin_pages(host) -> list[str]:
    return [reverse("dashboard"), reverse("container-list"), reverse("container-create"),
            reverse("container-detail", args=["501"]), reverse("task-list"), reverse("backup-list"),
            reverse("backup-job-list"), reverse("template-list"), reverse("host-list"),
            reverse("host-detail", args=[host.name]), reverse("pool-list"), reverse("tenant-list"),
            reverse("tenant-detail", args=["acme"]), reverse("plan-list"), reverse("user-list"),
            reverse("audit-list"), reverse("account")]


STUDENT_PAGES = ["/", "/containers/", "/containers/501/", "/tasks/", "/backups/", "/accounts/"]

PAGE_CHECKS = r"""() => {
  const ids = {};
  document.querySelectorAll('[id]').forEach(el => { ids[el.id] = (ids[el.id] || 0) + 1; });
  return {
    sideways: document.documentElement.scrollWidth - window.innerWidth,
    // What sticks out on the right (the innermost such elements), to say where to look.
    outside: Array.from(document.querySelectorAll('body *')).filter(el => el.getBoundingClientRect().right > window.innerWidth + 0.5
        && !Array.from(el.children).some(c => c.getBoundingClientRect().right > window.innerWidth + 0.5))
      .slice(0, 3).map(el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\s+/).join('.') : '')),
    duplicateIds: Object.keys(ids).filter(id => ids[id] > 1),
    theme: document.documentElement.getAttribute('data-bs-theme'),
    background: getComputedStyle(document.body).backgroundColor,
  };
}"""


def axe_findings(page) -> list[str]:
    """axe-core's serious and critical findings on the page, one line each."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("""async () => {
      const r = await axe.run(document, {resultTypes: ['violations']});
      return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
        .map(v => ({id: v.id, help: v.help, nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ') +
          (n.any[0] && n.any[0].data && n.any[0].data.contrastRatio ? ` (${n.any[0].data.fgColor} on ${n.any[0].data.bgColor}: ${n.any[0].data.contrastRatio})` : ''))}));
    }""")
    return [f"{v['id']}: {v['help']} at {json.dumps(v['nodes'])}" for v in result]


def check_pages(page, base_url, paths) -> dict[str, list[str]]:
    problems = {}
    for path in paths:
        response = page.goto(base_url + path)
        found = []
        if response.status != 200:
            found.append(f"HTTP {response.status}")
        facts = page.evaluate(PAGE_CHECKS)
        if facts["sideways"] > 0:
            found.append(f"scrolls sideways by {facts['sideways']} px: {facts['outside']}")
        if facts["duplicateIds"]:
            found.append(f"ids used twice: {facts['duplicateIds']}")
        found += axe_findings(page)
        if found:
            problems[path] = found
    return problems


def test_every_page_fits_a_phone_with_no_duplicate_ids_and_no_serious_accessibility_finding(browser, live_server,
                                                                                            world, people):
    assert AXE.exists(), "axe-core is missing: `make test` installs the front-end packages (npm ci)"
    page = new_page(browser, PHONE)
    log_in(page, live_server.url, "admin", "admin-pass-123")
    problems = check_pages(page, live_server.url, admin_pages(world))
    page.context.close()

    page = new_page(browser, PHONE)
    log_in(page, live_server.url, "student", "student-pass-123")
    problems.update({f"student {path}": found
                     for path, found in check_pages(page, live_server.url, STUDENT_PAGES).items()})
    page.context.close()
    assert problems == {}, json.dumps(problems, indent=1)


def test_dark_mode_follows_the_system_and_the_toggle_and_passes_the_checker(browser, live_server, world):
    page = new_page(browser, {"width": 1366, "height": 800}, color_scheme="dark")
    log_in(page, live_server.url, "admin", "admin-pass-123")
    facts = page.evaluate(PAGE_CHECKS)
    assert facts["theme"] == "dark" and facts["background"] == "rgb(33, 37, 41)"  # Bootstrap's dark body
    problems = check_pages(page, live_server.url, admin_pages(world))
    assert problems == {}, json.dumps(problems, indent=1)

    page.click("[data-theme-toggle]")   # auto -> dark (chosen, kept)
    page.click("[data-theme-toggle]")   # dark -> light
    assert page.inner_text("[data-theme-name]") == "light"
    page.goto(live_server.url + reverse("container-list"))  # the choice holds on the next page
    assert page.evaluate(PAGE_CHECKS)["theme"] == "light"
    page.click("[data-theme-toggle]")   # light -> auto: the system's dark again
    assert page.evaluate(PAGE_CHECKS)["theme"] == "dark"
    page.context.close()


def test_menu_folds_on_a_phone_and_the_skip_link_comes_first(browser, live_server, world):
    page = new_page(browser, PHONE)
    log_in(page, live_server.url, "admin", "admin-pass-123")
    containers_link = page.locator("#main-menu >> text=Containers")
    assert not containers_link.is_visible()
    page.click("[data-menu-toggle]")
    assert page.get_attribute("[data-menu-toggle]", "aria-expanded") == "true"
    containers_link.click()
    page.wait_for_url("**/containers/")

    page.keyboard.press("Tab")  # the first stop of the keyboard is the skip link, which takes focus to the page
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.context.close()

    wide = new_page(browser, {"width": 1366, "height": 800})
    log_in(wide, live_server.url, "admin", "admin-pass-123")
    assert wide.locator("#main-menu >> text=Containers").is_visible()  # no button to press on a wide screen
    assert not wide.locator("[data-menu-toggle]").is_visible()
    wide.context.close()
