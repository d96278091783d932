"""The container list in Debian's Chromium: search, sort, filter, pages, live updates and a bulk
action with its one confirmation (no agent: the tasks stay queued; no LXC)."""
import pytest

from containers.models import Container

from .test_browser import log_in, page  # noqa: F401  (the Chromium page fixture)
from .test_lists import make_containers

pytestmark = [pytest.mark.browser]


def shown(page) -> list[str]:
    return page.eval_on_selector_all("#container-table tbody tr[data-key]", "rows => rows.map(r => r.dataset.key)")


def test_search_sort_filter_pages_live_and_bulk_start(page, live_server, transactional_db, admin_user, acme,  # noqa: F811
                                                      other_tenant, host, template_name, redis_conn):
    make_containers(host, template_name, 5000, 60, tenant=acme)
    make_containers(host, template_name, 6000, 5, tenant=other_tenant)
    log_in(page, live_server.url, "admin", "admin-pass-123")
    page.click("nav >> text=Containers")
    page.wait_for_selector("#container-table tr[data-key='5000']")
    assert len(shown(page)) == 50 and "65 containers" in page.inner_text(".list-summary")

    # Paging: the next page has the rest.
    page.click("a[rel=next]")
    page.wait_for_selector("#container-table tr[data-key='6004']")
    assert shown(page) == [str(c) for c in range(5050, 5060)] + [str(c) for c in range(6000, 6005)]

    # Search.
    page.fill("#filter_q", "h5007.example")
    page.click("#list-filter button[type=submit]")
    page.wait_for_function("() => document.querySelectorAll('#container-table tbody tr[data-key]').length === 1")
    assert shown(page) == ["5007"]

    # Filter by tenant, then sort by CTID descending with the column's header (clicked twice).
    page.goto(f"{live_server.url}/containers/")
    page.select_option("#filter_tenant", "other")
    page.click("#list-filter button[type=submit]")
    page.wait_for_function("() => document.querySelectorAll('#container-table tbody tr[data-key]').length === 5")
    page.click("#container-table th >> text=CTID")
    page.wait_for_selector("th[aria-sort=ascending] >> text=CTID")
    page.click("#container-table th >> text=CTID")
    page.wait_for_selector("th[aria-sort=descending] >> text=CTID")
    assert shown(page) == ["6004", "6003", "6002", "6001", "6000"]
    assert "tenant=other" in page.url and "sort=-ctid" in page.url

    # Live: a change the agent writes shows in its row without a reload, and only that row is replaced.
    page.evaluate("() => { document.querySelector(\"tr[data-key='6001']\").dataset.marker = 'kept'; }")
    Container.objects.filter(ctid=6002).update(status="frozen")
    page.wait_for_selector("tr[data-key='6002'] [data-status=frozen]", timeout=15_000)
    assert page.evaluate("() => document.querySelector(\"tr[data-key='6001']\").dataset.marker") == "kept"

    # Bulk start: one ticked container is running (6000: the service refuses it), one stopped.
    assert Container.objects.get(ctid=6000).status == "running"
    page.check("tr[data-key='6000'] input[name=ctid]")
    page.check("tr[data-key='6001'] input[name=ctid]")
    assert page.inner_text("#bulk-count") == "2"
    page.click("#bulk-form button[value=start]")
    page.wait_for_selector("text=Start 2 containers?")
    page.click("#bulk-confirm button[type=submit]")
    page.wait_for_selector("#bulk-results")
    assert page.get_attribute("#bulk-results tr[data-ctid='6001']", "data-ok") == "1"
    assert page.get_attribute("#bulk-results tr[data-ctid='6000']", "data-ok") == "0"
    assert "running" in page.inner_text("#bulk-results tr[data-ctid='6000']")
    from tasks.models import Task
    assert list(Task.objects.values_list("container__ctid", "type")) == [(6001, "ct.start")]
