"""The container page without an agent: live parts that follow the container's state (containers/live.py),
tasks of this container's life only, and the CTID's history, scoped like every other page."""
import re

import pytest

from containers.models import Container
from tasks.models import Task

POLL = {"HTTP_HX_REQUEST": "true"}
KEYS = re.compile(r'<div id="(ct-[a-z-]+)" data-live-key="([0-9a-f]+)"')


def live_keys(html: str) -> dict[str, str]:
    return dict(KEYS.findall(html))


def seen(keys: dict[str, str]) -> str:
    return ",".join(f"{part}:{key}" for part, key in keys.items())


def oob_parts(html: str) -> set[str]:
    return set(re.findall(r'<div id="(ct-[a-z-]+)" data-live-key="[0-9a-f]+" hx-swap-oob="outerHTML"', html))


def task_for(ct, user, type="ct.start", status="ok"):
    return Task.objects.create(type=type, container=ct, ctid=ct.ctid, host=ct.host, tenant=ct.tenant, user=user,
                               status=status)


@pytest.fixture
def running_ct(student_ct, people):
    task = task_for(student_ct, people["student"], "ct.stop", status="running")
    Container.objects.filter(pk=student_ct.pk).update(status="running", lock_task=task)
    student_ct.refresh_from_db()
    return student_ct


def test_the_overview_places_every_live_part_with_a_digest_that_is_stable(client, people, running_ct):
    client.force_login(people["student"])
    first = client.get("/containers/501/").content.decode()
    keys = live_keys(first)
    assert set(keys) == {"ct-status", "ct-details", "ct-tasks", "ct-exec-run", "ct-settings", "ct-destroy",
                         "ct-migrate", "ct-make-template"}
    # The CSRF token is masked anew for every response; the digests do not change with it.
    assert live_keys(client.get("/containers/501/").content.decode()) == keys
    assert 'id="ct-live"' in first and "/ws/tasks/" in first  # the poller follows the task holding the container


def test_a_poll_sends_only_the_parts_whose_state_changed(client, people, running_ct):
    client.force_login(people["student"])
    page = client.get("/containers/501/").content.decode()
    keys = live_keys(page)
    assert "Stop the container before resetting" in page

    unchanged = client.get("/containers/501/", {"tab": "overview", "live": seen(keys)}, **POLL)
    assert unchanged.status_code == 200
    body = unchanged.content.decode()
    assert 'id="ct-live"' in body and oob_parts(body) == set() and "<html" not in body

    # The stop ends: the task is ok, the lock gone, the container stopped.
    Task.objects.filter(pk=running_ct.lock_task_id).update(status="ok", progress=100)
    Container.objects.filter(pk=running_ct.pk).update(status="stopped", lock_task=None)
    body = client.get("/containers/501/", {"tab": "overview", "live": seen(keys)}, **POLL).content.decode()
    changed = oob_parts(body)
    assert {"ct-status", "ct-tasks", "ct-destroy", "ct-exec-run"} <= changed
    assert "ct-settings" not in changed and "ct-details" not in changed  # what they show did not change
    destroy = body[body.index('<div id="ct-destroy"'):]
    assert 'id="destroy-form"' in destroy and "Stop the container before" not in destroy
    assert 'name="csrfmiddlewaretoken" value="vzpanel' not in body  # the real token, not the stand-in
    assert "data-stream-url" not in body.split("</span>")[0]  # nothing holds it: no task to follow
    # The page that took the new parts sends their new digests: nothing more to send.
    new_keys = {**keys, **live_keys(body)}
    body = client.get("/containers/501/", {"tab": "overview", "live": seen(new_keys)}, **POLL).content.decode()
    assert oob_parts(body) == set()


def test_the_console_tab_follows_the_state(client, people, running_ct):
    client.force_login(people["student"])
    Container.objects.filter(pk=running_ct.pk).update(lock_task=None)
    page = client.get("/containers/501/?tab=console").content.decode()
    keys = live_keys(page)
    assert set(keys) == {"ct-console"} and 'id="console"' in page
    assert '?tab=console"' in page  # the poller asks for this tab's parts
    Container.objects.filter(pk=running_ct.pk).update(status="stopped")
    body = client.get("/containers/501/", {"tab": "console", "live": seen(keys)}, **POLL).content.decode()
    assert oob_parts(body) == {"ct-console"} and "console-not-running" in body and 'id="console"' not in body


def test_a_poll_draws_no_part_the_user_may_not_see_or_the_tab_does_not_have(client, people, running_ct):
    """A hostile poll: the auditor (read-only) asks for the manager's cards, anyone for made-up ids."""
    client.force_login(people["auditor"])
    asked = "ct-destroy:0,ct-settings:0,ct-exec-run:0,ct-console:0,ct-status:0,not-a-part:0,ct-status"
    body = client.get("/containers/501/", {"tab": "overview", "live": asked}, **POLL).content.decode()
    assert oob_parts(body) == {"ct-status"}
    assert "destroy-form" not in body and "settings-form" not in body


@pytest.mark.parametrize("who", ["peer", "outsider"])
def test_outsider_gets_404_for_the_pages_fragments_and_history(client, people, running_ct, who):
    task_for(running_ct, people["student"])
    client.force_login(people[who])
    assert client.get("/containers/501/", {"live": "ct-status:0,ct-destroy:0"}, **POLL).status_code == 404
    assert client.get("/containers/acme-student/", {"live": "ct-status:0"}, **POLL).status_code == 404
    assert client.get("/containers/501/", {"tab": "console", "live": "ct-console:0"}, **POLL).status_code == 404
    assert client.get("/containers/501/history/").status_code == 404
    assert client.get("/containers/acme-student/history/").status_code == 404


def test_a_form_in_error_stays_until_the_state_changes(client, people, student_ct):
    client.force_login(people["student"])
    fresh = live_keys(client.get("/containers/501/").content.decode())
    refused = client.post("/containers/501/destroy/", {"confirm": "999"})
    assert refused.status_code == 400
    html = refused.content.decode()
    assert "alert-danger" in html[html.index('<div id="ct-destroy"'):]
    # Its digest is that of the card a poll draws: the next poll leaves the error in place.
    assert live_keys(html)["ct-destroy"] == fresh["ct-destroy"]
    assert Container.objects.filter(ctid=501).exists()


def test_the_exec_box_in_error_over_htmx_is_the_box_again(client, people, running_ct):
    """The Run-a-command box posts over htmx (not boosted) and swaps #exec-box from the answer: a bad
    command gets the whole page with the box in error, not the poller's fragment."""
    Container.objects.filter(pk=running_ct.pk).update(lock_task=None)
    client.force_login(people["student"])
    response = client.post("/containers/501/exec/", {"command": "uptime", "timeout": "0"}, **POLL)
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="exec-box"' in html and 'id="ct-exec-run"' in html


def test_a_task_remembers_which_container_it_was_for(people, student_ct):
    from tasks.services import submit_task
    task = submit_task(type="ct.start", host=student_ct.host, container=student_ct, queue=False)
    assert Task.objects.get(pk=task.pk).container_created_at == student_ct.created_at
    student_ct.delete()
    task.refresh_from_db()
    assert task.container_id is None and task.container_created_at == student_ct.created_at


def test_the_migration_records_the_life_of_existing_tasks(people, student_ct):
    import importlib

    from django.apps import apps
    migration = importlib.import_module("tasks.migrations.0006_task_container_created_at")
    task = task_for(student_ct, people["student"])
    Task.objects.filter(pk=task.pk).update(container_created_at=None)
    orphan = Task.objects.create(type="ct.start", ctid=777, host=student_ct.host)
    migration.record_lives(apps, None)
    assert Task.objects.get(pk=task.pk).container_created_at == student_ct.created_at
    assert Task.objects.get(pk=orphan.pk).container_created_at is None


@pytest.fixture
def reused_ctid(people, student_ct, other_tenant, host, template_name):
    """CTID 501 was acme's student's container (two tasks), destroyed; now it is another tenant's."""
    old = [task_for(student_ct, people["student"], "ct.create"), task_for(student_ct, people["student"], "ct.start"),
           task_for(student_ct, people["tadmin"], "ct.destroy")]
    student_ct.delete()
    new = Container.objects.create(ctid=501, hostname="reused.other", ostemplate=template_name, host=host,
                                   tenant=other_tenant, owner=people["outsider"], status="stopped")
    return {"old": old, "new": task_for(new, people["outsider"], "ct.create"), "ct": new}


def task_ids(html: str) -> set[int]:
    return {int(pk) for pk in re.findall(r'<tr data-task="(\d+)"', html)}


def test_the_page_shows_the_tasks_of_this_container_only(client, admin_user, reused_ctid):
    client.force_login(admin_user)
    html = client.get("/containers/501/").content.decode()
    assert task_ids(html) == {reused_ctid["new"].pk}
    assert 'id="ct-history-link"' in html
    history = client.get("/containers/501/history/").content.decode()
    assert task_ids(history) == {t.pk for t in reused_ctid["old"]}
    assert history.count('class="card mb-3 ct-life"') == 1  # one earlier container
    assert "container 501 now" in history


def test_the_history_shows_a_tenant_only_its_own_past_containers(client, people, reused_ctid):
    old = {t.pk for t in reused_ctid["old"]}
    # acme's admin and the student owned the old container: they see its tasks, never the new one.
    for who, expected in (("tadmin", old), ("student", {reused_ctid["old"][0].pk, reused_ctid["old"][1].pk})):
        client.force_login(people[who])
        html = client.get("/containers/501/history/").content.decode()
        assert task_ids(html) == expected, who
        assert "container 501 now" not in html and "reused.other" not in html
        assert client.get("/containers/501/").status_code == 404
    # The new owner (another tenant) sees their container and no history of acme's.
    client.force_login(people["outsider"])
    html = client.get("/containers/501/").content.decode()
    assert task_ids(html) == {reused_ctid["new"].pk} and 'id="ct-history-link"' not in html
    html = client.get("/containers/501/history/").content.decode()
    assert task_ids(html) == set() and 'id="no-history"' in html
    # acme's other member never owned CTID 501: nothing to see, as for a CTID never used.
    client.force_login(people["peer"])
    assert client.get("/containers/501/history/").status_code == 404
    assert client.get("/containers/502/history/").status_code == 404


@pytest.mark.parametrize("ident", ["abc", "50", "99999999999999999999999", "-1", "٥٠١"])
def test_the_history_of_a_bad_ctid_is_404(client, admin_user, reused_ctid, ident):
    client.force_login(admin_user)
    assert client.get(f"/containers/{ident}/history/").status_code == 404


def test_a_destroyed_containers_task_links_to_the_history(client, admin_user, reused_ctid):
    client.force_login(admin_user)
    html = client.get(f"/tasks/{reused_ctid['old'][0].pk}/").content.decode()
    assert 'href="/containers/501/history/"' in html
    html = client.get("/tasks/").content.decode()
    assert 'href="/containers/501/history/"' in html and 'href="/containers/501/"' in html


def test_a_poll_takes_a_fixed_number_of_queries(client, people, running_ct):
    """However many tasks the container has: no query per task row or per part."""
    from django.db import connection

    def poll_queries():
        client.force_login(people["tadmin"])
        keys = live_keys(client.get("/containers/501/").content.decode())
        count = [0]

        def counting(execute, sql, params, many, context):
            count[0] += 1
            return execute(sql, params, many, context)
        with connection.execute_wrapper(counting):
            assert client.get("/containers/501/", {"live": seen(keys)}, **POLL).status_code == 200
        return count[0]
    few = poll_queries()
    for _ in range(30):
        task_for(running_ct, people["student"])
    assert poll_queries() == few <= 16
