"""Views and API without an agent: bad input, visibility, locks, the offline agent."""
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from containers import services
from containers.models import Container
from tasks.models import Task


@pytest.fixture
def ct(host, owner, template_name):
    return Container.objects.create(ctid=201, hostname="own.example", ostemplate=template_name, host=host,
                                    owner=owner, status="stopped")


@pytest.fixture
def api(admin_user):
    client = APIClient()
    from accounts.tokens import create_token
    client.credentials(HTTP_AUTHORIZATION=f"Token {create_token(admin_user, 'tests')[1]}")
    return client


def test_pages_need_login(client):
    for url in ["/", "/containers/", "/tasks/", "/hosts/", "/templates/", "/containers/new/"]:
        assert client.get(url).status_code == 302


def test_api_needs_authentication(client):
    assert client.get("/api/containers/").status_code in (401, 403)


def test_admin_pages_render(client, admin_user, ct):
    client.force_login(admin_user)
    for url in ["/", "/containers/", "/containers/201/", "/tasks/", "/hosts/", f"/hosts/{ct.host.name}/",
                "/templates/", "/containers/new/", "/api/schema/"]:
        assert client.get(url).status_code == 200, url


@pytest.mark.parametrize("field,value,message", [
    ("ctid", "50", "reserved"),
    ("ctid", "abc", "whole number"),
    ("hostname", "bad_host!", "not a valid hostname"),
    ("name", "123", "mistaken for a CTID"),
    ("ostemplate", "no-such-template", "Select a valid choice"),
])
def test_create_form_rejects_bad_input_and_queues_nothing(client, admin_user, host, template_name,
                                                          field, value, message):
    client.force_login(admin_user)
    data = {"ctid": "300", "host": host.pk, "ostemplate": template_name, "hostname": "ok.example", "name": ""}
    data[field] = value
    resp = client.post("/containers/new/", data)
    assert resp.status_code == 400
    assert message in resp.content.decode()
    assert Task.objects.count() == 0 and Container.objects.count() == 0


def test_create_form_refuses_a_ctid_in_use(client, admin_user, ct, template_name, host):
    client.force_login(admin_user)
    resp = client.post("/containers/new/", {"ctid": "201", "host": host.pk, "ostemplate": template_name,
                                            "hostname": "x.example"})
    assert "CTID 201 is already in use" in resp.content.decode()
    assert Task.objects.count() == 0


@pytest.mark.parametrize("payload,field", [
    ({"ctid": 7, "ostemplate": "T", "hostname": "a.example"}, "ctid"),
    ({"ctid": 301, "ostemplate": "T", "hostname": "-bad"}, "hostname"),
    ({"ctid": 301, "ostemplate": "T", "hostname": "a.example", "name": "99"}, "name"),
    ({"ctid": "x", "ostemplate": "T", "hostname": "a.example"}, "ctid"),
    ({"ostemplate": "T", "hostname": "a.example"}, "ctid"),
])
def test_api_create_rejects_bad_fields(api, host, template_name, payload, field):
    payload = {k: (template_name if v == "T" else v) for k, v in payload.items()}
    resp = api.post("/api/containers/", payload, format="json")
    assert resp.status_code == 400
    assert field in resp.json()
    assert Task.objects.count() == 0


def test_api_create_unknown_template_is_refused_with_reason(api, host):
    resp = api.post("/api/containers/", {"ctid": 301, "ostemplate": "nope", "hostname": "a.example"}, format="json")
    assert resp.status_code == 400
    assert "not in the template cache" in resp.json()["detail"]
    assert Task.objects.count() == 0


def test_api_exec_rejects_a_string_command(api, ct):
    ct.status = "running"
    ct.save()
    resp = api.post("/api/containers/201/exec/", {"command": "ls -l"}, format="json")
    assert resp.status_code == 400 and "command" in resp.json()
    assert Task.objects.count() == 0


def test_api_destroy_needs_the_ctid_confirmed(api, ct):
    resp = api.delete("/api/containers/201/", {"confirm": "202"}, format="json")
    assert resp.status_code == 400 and "confirm" in resp.json()["detail"]
    assert Task.objects.count() == 0


def test_api_refuses_start_of_a_running_container(api, ct):
    ct.status = "running"
    ct.save()
    resp = api.post("/api/containers/201/start/")
    assert resp.status_code == 409 and "already running" in resp.json()["detail"]
    assert Task.objects.count() == 0 and Container.objects.get(pk=ct.pk).lock_task is None


def test_second_operation_on_a_locked_container_is_refused_naming_the_task(api, ct, owner):
    first = services.start_container(ct, owner)
    resp = api.post("/api/containers/201/start/")
    assert resp.status_code == 409
    assert f"locked by task #{first.pk}" in resp.json()["detail"]
    assert Task.objects.count() == 1


def test_outsider_gets_404_for_foreign_container(client, outsider, ct):
    client.force_login(outsider)
    assert client.get("/containers/201/").status_code == 404
    assert client.post("/containers/201/start/").status_code == 404
    assert client.post("/containers/201/destroy/", {"confirm": "201"}).status_code == 404
    assert b"own.example" not in client.get("/containers/").content
    assert Task.objects.count() == 0


def test_outsider_gets_404_for_foreign_container_and_task_in_api(outsider, owner, ct):
    task = services.start_container(ct, owner)
    api = APIClient()
    api.force_authenticate(outsider)
    assert api.get("/api/containers/201/").status_code == 404
    assert api.post("/api/containers/201/stop/").status_code == 404
    assert api.get(f"/api/tasks/{task.pk}/").status_code == 404
    assert api.post(f"/api/tasks/{task.pk}/cancel/").status_code == 404
    assert api.get("/api/containers/").json()["count"] == 0
    assert api.get("/api/tasks/").json()["count"] == 0


def test_owner_sees_and_uses_own_container(client, owner, ct):
    client.force_login(owner)
    assert client.get("/containers/own.example/").status_code == 404  # hostname is not an alias
    assert client.get("/containers/201/").status_code == 200
    client.post("/containers/201/start/")
    assert Task.objects.get().user == owner


def test_offline_agent_is_shown_on_dashboard_and_queued_task(client, admin_user, ct, owner):
    ct.host.agent_seen_at = timezone.now() - timedelta(minutes=10)
    ct.host.save()
    task = services.start_container(ct, owner)
    client.force_login(admin_user)
    assert "agent offline since" in client.get("/").content.decode()
    page = client.get(f"/tasks/{task.pk}/").content.decode()
    assert "Waiting for host" in page and "agent offline since" in page


def test_vzlist_columns(ct, admin_user, capsys):
    from django.core.management import call_command
    call_command("vzlist", "-a")
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["CTID", "NPROC", "STATUS", "IP_ADDR", "HOSTNAME"]
    assert out[1].split() == ["201", "-", "stopped", "-", "own.example"]
    call_command("vzlist")
    assert capsys.readouterr().out.splitlines()[1:] == []  # running only by default


def test_settings_form_rejects_bad_hostname_and_changes_nothing(client, admin_user, ct):
    client.force_login(admin_user)
    resp = client.post("/containers/201/settings/", {"hostname": "bad_host", "name": "", "description": ""},
                       follow=True)
    assert "not a valid hostname" in resp.content.decode()
    ct.refresh_from_db()
    assert ct.hostname == "own.example" and Task.objects.count() == 0


def test_settings_name_and_description_are_saved_without_a_task(client, admin_user, ct):
    client.force_login(admin_user)
    client.post("/containers/201/settings/", {"hostname": "own.example", "name": "web", "description": "hi"})
    ct.refresh_from_db()
    assert (ct.name, ct.description) == ("web", "hi") and Task.objects.count() == 0
    assert client.get("/containers/web/").status_code == 200  # the alias works wherever the CTID does


def test_exec_form_rejects_unbalanced_quotes(client, admin_user, ct):
    ct.status = "running"
    ct.save()
    client.force_login(admin_user)
    resp = client.post("/containers/201/exec/", {"command": "echo 'oops", "timeout": "60"}, follow=True)
    assert "Cannot split the command" in resp.content.decode()
    assert Task.objects.count() == 0


def test_destroy_form_requires_the_ctid(client, admin_user, ct):
    client.force_login(admin_user)
    resp = client.post("/containers/201/destroy/", {"confirm": "20"}, follow=True)
    assert "confirm by typing its CTID" in resp.content.decode()
    assert Task.objects.count() == 0 and Container.objects.filter(pk=ct.pk).exists()


def test_production_without_secret_key_fails_loudly(tmp_path):
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANEL_SECRET_KEY")}
    env.update(PANEL_ENV="production", PANEL_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="panel.settings")
    res = subprocess.run([sys.executable, "manage.py", "check"], env=env, capture_output=True, text=True)
    assert res.returncode != 0 and "PANEL_SECRET_KEY" in res.stderr


def test_a_database_url_that_is_not_postgresql_fails_loudly(tmp_path):
    import os
    import subprocess
    import sys
    env = dict(os.environ, PANEL_DATABASE_URL="mysql://u@h/db", PANEL_VAR_DIR=str(tmp_path),
               DJANGO_SETTINGS_MODULE="panel.settings")
    res = subprocess.run([sys.executable, "manage.py", "check"], env=env, capture_output=True, text=True)
    assert res.returncode != 0 and "PANEL_DATABASE_URL must be a postgresql://" in res.stderr
