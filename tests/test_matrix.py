"""Who may see and touch a container, over every UI page, API endpoint and CLI path that names one.

The container belongs to `student` in tenant acme. Expected:
  student (owner) and tadmin (acme's tenant admin) and operator: see and manage;
  auditor: sees, every change answers 403;
  peer (acme member, not given this container) and outsider (another tenant): 404 everywhere.
Nothing changes for the refused ones: no task, no row change.
"""
import subprocess
import sys

import pytest
from rest_framework.test import APIClient

from accounts.models import AuditEvent
from containers.models import Container
from tasks.models import Task

from .conftest import BASE_DIR

SEE = {"student": True, "tadmin": True, "operator": True, "auditor": True, "peer": False, "outsider": False}
MANAGE = {"student": True, "tadmin": True, "operator": True, "auditor": False, "peer": False, "outsider": False}

UI_POSTS = [
    ("start/", {}), ("stop/", {}), ("restart/", {}),
    ("settings/", {"hostname": "x.example", "name": "", "description": ""}),
    ("exec/", {"command": "true", "timeout": "5"}),
    ("destroy/", {"confirm": "501"}), ("reset/", {"confirm": "501"}),
    ("password/", {"user": "root", "password": "secret-pass-1", "confirm": "secret-pass-1"}),
    ("sshkey/", {"user": "root", "key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyFakeKeyFakeKey t"}),
    ("backups/new/", {"mode": "stop", "compress": "zst"}),
]
API_POSTS = [
    ("post", "start/", {}), ("post", "stop/", {}), ("post", "restart/", {}),
    ("post", "exec/", {"command": ["true"]}),
    ("post", "userpasswd/", {"user": "root", "password": "secret-pass-1"}),
    ("post", "sshkey/", {"key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyFakeKeyFakeKey t"}),
    ("post", "reset/", {"confirm": "501"}), ("post", "backup/", {}),
    ("patch", "", {"description": "changed"}), ("delete", "", {"confirm": "501"}),
]


def snapshot(ct):
    ct = Container.objects.get(pk=ct.pk)
    return (ct.hostname, ct.name, ct.description, ct.status, ct.lock_task_id, Task.objects.count())


@pytest.mark.parametrize("who", list(SEE))
def test_ui_matrix(client, people, student_ct, who):
    client.force_login(people[who])
    base = f"/containers/{student_ct.ctid}/"
    assert client.get(base).status_code == (200 if SEE[who] else 404)
    assert client.get(f"/containers/{student_ct.name}/").status_code == (200 if SEE[who] else 404)
    # The page's poll (its live parts) and the CTID's history answer as the page does.
    assert client.get(base, {"live": "ct-status:0"}, HTTP_HX_REQUEST="true").status_code == (200 if SEE[who] else 404)
    assert client.get(base + "history/").status_code == (200 if SEE[who] else 404)
    listed = b"student.acme" in client.get("/containers/").content
    assert listed == SEE[who]
    for suffix, data in UI_POSTS:
        before = snapshot(student_ct)
        status = client.post(base + suffix, data).status_code
        if MANAGE[who]:  # allowed: done (302), or refused by the lock the start just took (409), never 403/404
            assert status in (302, 409), suffix
        else:
            assert status == (403 if SEE[who] else 404), suffix
            assert snapshot(student_ct) == before, suffix


@pytest.mark.parametrize("who", list(SEE))
def test_api_matrix(people, student_ct, who):
    api = APIClient()
    api.force_authenticate(people[who])
    base = f"/api/containers/{student_ct.ctid}/"
    assert api.get(base).status_code == (200 if SEE[who] else 404)
    assert (api.get("/api/containers/").json()["count"] == 1) == SEE[who]
    for method, suffix, data in API_POSTS:
        before = snapshot(student_ct)
        status = getattr(api, method)(base + suffix, data, format="json").status_code
        if not MANAGE[who]:
            assert status == (403 if SEE[who] else 404), (method, suffix)
            assert snapshot(student_ct) == before, (method, suffix)
        else:
            assert status in (200, 202, 409), (method, suffix, status)  # 409: state or lock, not permission


@pytest.mark.parametrize("who", list(SEE))
def test_task_matrix(client, people, student_ct, who):
    from containers.services import start_container
    task = start_container(student_ct, people["student"])
    client.force_login(people[who])
    assert client.get(f"/tasks/{task.pk}/").status_code == (200 if SEE[who] else 404)
    api = APIClient()
    api.force_authenticate(people[who])
    assert api.get(f"/api/tasks/{task.pk}/").status_code == (200 if SEE[who] else 404)
    if not MANAGE[who]:
        assert api.post(f"/api/tasks/{task.pk}/cancel/").status_code == (403 if SEE[who] else 404)
        assert client.post(f"/tasks/{task.pk}/cancel/").status_code == (403 if SEE[who] else 404)
        assert Task.objects.get(pk=task.pk).status == "queued"


def test_refusals_are_in_the_audit_log(people, student_ct):
    api = APIClient()
    api.force_authenticate(people["auditor"])
    api.post(f"/api/containers/{student_ct.ctid}/start/")
    # 403 happens before the service: the lookup refuses. A refused service call is audited:
    student_ct.status = "running"
    student_ct.save()
    api.force_authenticate(people["student"])
    api.post(f"/api/containers/{student_ct.ctid}/start/")
    event = AuditEvent.objects.get(action="container.start")
    assert (event.username, event.result, event.object_id) == ("student", "refused", "501")
    assert "already running" in event.detail and event.tenant.slug == "acme"


@pytest.mark.parametrize("who", ["peer", "outsider", "auditor"])
def test_cli_matrix(transactional_db, people, student_ct, who):
    from .conftest import subprocess_env
    env = subprocess_env()
    for args in (["vzctl", "start", "501"], ["vzctl", "stop", "acme-student"], ["vzctl", "destroy", "501"],
                 ["vzctl", "set", "501", "--hostname", "x.example"], ["vzctl", "exec", "501", "--", "true"],
                 ["vzctl", "set", "501", "--userpasswd", "root:secret-pass-1"]):
        argv = [sys.executable, str(BASE_DIR / "manage.py"), args[0], "--user", people[who].username, *args[1:]]
        res = subprocess.run(argv, cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60)
        assert res.returncode != 0, args
        expected = "does not exist" if not SEE[who] else "not change it"
        assert expected in res.stderr, (args, res.stderr)
    assert Task.objects.count() == 0
    res = subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), "vzlist", "-a", "--user", people[who].username],
                         cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60)
    assert ("501" in res.stdout) == SEE[who]
