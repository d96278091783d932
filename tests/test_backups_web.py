"""The Backups tab, /backups/, downloads, restore, prune, upload and the backups API, on real rows.

No agent runs: Backup rows (and archive files in temporary directories) are made here, and the
services queue tasks (rows) that nobody runs."""
import hashlib
import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from backups.models import Backup, BackupStorage
from containers.models import Container
from tasks.models import Task

from .conftest import form_errors

TAB = "/containers/501/?tab=backups"
NAME = "vzdump-lxc-501-2025_01_02-03_04_05.tar.zst"

SEE = {"student": True, "tadmin": True, "admin": True, "operator": True, "auditor": True,
       "peer": False, "outsider": False}
MANAGE = {**SEE, "auditor": False}


# -- helpers and fixtures -------------------------------------------------------------
def _user(people, admin_user, who):
    return admin_user if who == "admin" else people[who]


def _messages(response) -> list[str]:
    """What the page said: its messages, and the errors of a form shown again (panel.forms)."""
    return [str(m) for m in response.context["messages"]] + form_errors(response)


def _archive_name(ctid=501, when=None):
    when = when or timezone.now()
    return f"vzdump-lxc-{ctid}-{when:%Y_%m_%d-%H_%M_%S}.tar.zst"


def _make_backup(ct, directory, *, filename=NAME, content=b"", created_at=None, protected=False, notes="",
                 storage=None, write=True):
    if write:
        (directory / filename).write_bytes(content)
        (directory / filename.replace(".tar.zst", ".log")).write_text(f"INFO: backup of {ct.ctid}\nINFO: done\n")
    return Backup.objects.create(
        ctid=ct.ctid, container=ct, tenant=ct.tenant, owner=ct.owner, host=ct.host, storage=storage,
        storage_path=str(directory), filename=filename, size=len(content), sha256=hashlib.sha256(content).hexdigest(),
        mode="snapshot", compress="zst", notes=notes, protected=protected,
        created_at=created_at or timezone.now())


@pytest.fixture
def content():
    return os.urandom(300_000) + b"the end"


@pytest.fixture
def backup(student_ct, tmp_path, content):
    return _make_backup(student_ct, tmp_path, content=content, notes="before the upgrade")


def snapshot():
    """Everything a refused request must leave as it was."""
    return (list(Backup.objects.order_by("pk").values_list("pk", "notes", "protected", "verified_at")),
            list(Task.objects.order_by("pk").values_list("pk", "type")),
            list(Container.objects.order_by("pk").values_list("ctid", "status", "lock_task_id")))


def _task(type_):
    return Task.objects.filter(type=type_).order_by("-pk").first()


# -- the tab and the list -----------------------------------------------------------------
@pytest.mark.parametrize("who", list(SEE))
def test_tab_and_list_matrix(client, people, admin_user, backup, who):
    client.force_login(_user(people, admin_user, who))
    tab = client.get(TAB)
    assert tab.status_code == (200 if SEE[who] else 404)
    listing = client.get("/backups/")
    assert listing.status_code == 200
    assert (NAME in listing.content.decode()) == SEE[who]
    if not SEE[who]:
        assert client.get("/backups/?ctid=501").content.count(NAME.encode()) == 0
        return
    html = tab.content.decode()
    assert NAME in html and "before the upgrade" in html and backup.sha256[:12] in html
    assert "293.0 KiB" in html  # size
    assert ('href="/backups/%d/download"' % backup.pk in html) == MANAGE[who]
    assert (f'action="/backups/{backup.pk}/delete/"' in html) == MANAGE[who]
    assert ('action="/containers/501/backups/new/"' in html) == MANAGE[who]
    assert 'action="/containers/501/backups/prune/"' in html


def test_tab_shows_badges_and_verified_time(client, people, student_ct, tmp_path):
    b = _make_backup(student_ct, tmp_path, protected=True)
    Backup.objects.filter(pk=b.pk).update(verified_at=timezone.now().replace(year=2030, month=5, day=6, hour=7,
                                                                             minute=8))
    client.force_login(people["student"])
    html = client.get(TAB).content.decode()
    assert ">protected</span>" in html and "2030-05-06 07:08" in html and "Unprotect" in html


def test_overview_has_no_backups_card_but_a_tab(client, people, backup):
    client.force_login(people["student"])
    html = client.get("/containers/501/").content.decode()
    assert 'href="/containers/501/?tab=backups"' in html
    assert NAME not in html and "Back up now" not in html


def test_list_filters(client, admin_user, student_ct, host, tmp_path, acme):
    storage = BackupStorage.objects.create(host=host, name="nfs", path=str(tmp_path))
    _make_backup(student_ct, tmp_path, filename=NAME, storage=storage, write=False)
    other = Container.objects.create(ctid=777, hostname="o.example", ostemplate="x", host=host, status="stopped")
    other_name = _archive_name(777)
    _make_backup(other, tmp_path, filename=other_name, write=False)
    client.force_login(admin_user)

    def shown(query):
        html = client.get("/backups/" + query).content.decode()
        return {n for n in (NAME, other_name) if n in html}
    assert shown("") == {NAME, other_name}
    assert shown("?ctid=777") == {other_name}
    assert shown(f"?host={host.name}") == {NAME, other_name}
    assert shown("?host=elsewhere") == set()
    assert shown(f"?storage={storage.pk}") == {NAME}
    assert shown("?storage=dump") == {other_name}
    assert shown("?tenant=acme") == {NAME}
    response = client.get("/backups/?ctid=abc")
    assert "not a number" in " ".join(_messages(response))


# -- download and log ------------------------------------------------------------------
@pytest.mark.parametrize("who", list(SEE))
def test_download_and_log_matrix(client, people, admin_user, backup, content, who):
    client.force_login(_user(people, admin_user, who))
    response = client.get(f"/backups/{backup.pk}/download")
    assert response.status_code == (200 if MANAGE[who] else 403 if SEE[who] else 404)
    if MANAGE[who]:
        assert b"".join(response.streaming_content) == content
    log = client.get(f"/backups/{backup.pk}/log")
    assert log.status_code == (200 if SEE[who] else 404)
    if SEE[who]:
        assert log["Content-Type"].startswith("text/plain") and b"INFO: done" in b"".join(log.streaming_content)


def test_download_streams_the_exact_bytes(client, people, backup, content):
    client.force_login(people["student"])
    response = client.get(f"/backups/{backup.pk}/download")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Disposition"] == f'attachment; filename="{NAME}"'
    assert int(response["Content-Length"]) == len(content)
    assert b"".join(response.streaming_content) == content
    assert client.get(f"/backups/{backup.pk}/download/").status_code == 200  # with the slash too


def test_missing_files_are_404_not_500(client, people, backup, tmp_path):
    client.force_login(people["student"])
    (tmp_path / NAME).unlink()
    (tmp_path / NAME.replace(".tar.zst", ".log")).unlink()
    assert client.get(f"/backups/{backup.pk}/download").status_code == 404
    assert client.get(f"/backups/{backup.pk}/log").status_code == 404
    assert client.get("/backups/999999/download").status_code == 404


def test_download_refuses_a_symlink(client, people, backup, tmp_path):
    (tmp_path / NAME).unlink()
    secret = tmp_path / "secret"
    secret.write_text("not an archive")
    (tmp_path / NAME).symlink_to(secret)
    client.force_login(people["student"])
    assert client.get(f"/backups/{backup.pk}/download").status_code == 404


# -- the actions, over the web -------------------------------------------------------------
def _action(backup, action):
    base = f"/backups/{backup.pk}/"
    return {
        "verify": (base + "verify/", {}),
        "protect": (base + "protect/", {"protected": "true"}),
        "notes": (base + "notes/", {"notes": "changed"}),
        "delete": (base + "delete/", {"confirm": backup.filename}),
        "restore": (base + "restore/", {"target": "overwrite", "confirm": "501", "host": backup.host.name}),
    }[action]


def _done(backup, action):
    b = Backup.objects.get(pk=backup.pk)
    return {
        "verify": lambda: _task("backup.verify").params == {"backup": backup.pk},
        "protect": lambda: b.protected,
        "notes": lambda: b.notes == "changed",
        "delete": lambda: _task("backup.delete").params == {"backup": backup.pk},
        "restore": lambda: (_task("ct.restore").params.get("overwrite") is True
                            and Container.objects.get(ctid=501).lock_task_id == _task("ct.restore").pk),
    }[action]()


ACTIONS = ["verify", "protect", "notes", "delete", "restore"]


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("who", list(SEE))
def test_action_matrix(client, people, admin_user, backup, who, action):
    client.force_login(_user(people, admin_user, who))
    url, data = _action(backup, action)
    before = snapshot()
    response = client.post(url, {**data, "next": TAB})
    if MANAGE[who]:
        assert response.status_code == 302, response.content[:500]
        assert _done(backup, action)
    else:
        assert response.status_code == (403 if SEE[who] else 404)
        assert snapshot() == before


def test_actions_say_what_happened(client, people, backup):
    client.force_login(people["student"])
    response = client.post(f"/backups/{backup.pk}/verify/", {"next": TAB}, follow=True)
    assert response.redirect_chain[-1][0] == TAB
    assert any("verify" in m and NAME in m for m in _messages(response))
    response = client.post(f"/backups/{backup.pk}/notes/", {"notes": "x" * 201})
    assert response.status_code == 400 and response.templates[0].name == "backups/list.html"  # no `next`
    assert any("at most 200 characters" in m for m in _messages(response))
    assert 'value="' + "x" * 201 + '"' in response.content.decode()  # kept in its row
    assert Backup.objects.get(pk=backup.pk).notes == "before the upgrade"


def test_next_must_be_local(client, people, backup):
    client.force_login(people["student"])
    response = client.post(f"/backups/{backup.pk}/verify/", {"next": "//evil.example/"})
    assert response["Location"] == "/backups/"


def test_delete_needs_the_file_name(client, people, backup):
    client.force_login(people["student"])
    before = snapshot()
    response = client.post(f"/backups/{backup.pk}/delete/", {"confirm": "yes", "next": TAB})
    assert response.status_code == 400 and response.context["tab"] == "backups"  # the page `next` names
    assert any("file name" in m for m in _messages(response))
    assert snapshot() == before


def test_protected_backup_is_not_deleted(client, people, student_ct, tmp_path):
    b = _make_backup(student_ct, tmp_path, protected=True)
    client.force_login(people["student"])
    before = snapshot()
    response = client.post(f"/backups/{b.pk}/delete/", {"confirm": NAME, "next": TAB})
    assert response.status_code == 400
    assert any("protected" in m and "unprotect it first" in m for m in _messages(response))
    assert snapshot() == before
    client.post(f"/backups/{b.pk}/protect/", {"protected": "false"})
    assert not Backup.objects.get(pk=b.pk).protected
    client.post(f"/backups/{b.pk}/delete/", {"confirm": NAME})
    assert _task("backup.delete").params == {"backup": b.pk}


# -- making a backup from the tab ----------------------------------------------------------
def test_backup_form_queues_vzdump(client, people, student_ct, host, tmp_path):
    storage = BackupStorage.objects.create(host=host, name="nfs", path=str(tmp_path))
    client.force_login(people["student"])
    html = client.get(TAB).content.decode()
    assert "dump directory" in html and ">nfs (" in html
    response = client.post("/containers/501/backups/new/", {
        "mode": "suspend", "compress": "gz", "storage": storage.pk, "notes": "nightly", "stdexcludes": "on",
        "exclude_paths": "/var/cache/*\n\n  /tmp/*  \n", "bwlimit_kbps": "2048", "protected": "on"})
    task = _task("ct.backup")
    assert response.status_code == 302 and response["Location"] == f"/tasks/{task.pk}/"
    p = task.params
    assert (p["mode"], p["compress"], p["storage"], p["dump_dir"], p["notes"]) == (
        "suspend", "gz", storage.pk, str(tmp_path), "nightly")
    assert p["stdexcludes"] and p["protected"] and p["bwlimit_kbps"] == 2048
    assert p["exclude_paths"] == ["/var/cache/*", "/tmp/*"]


def test_backup_form_refusals_change_nothing(client, people, student_ct, host, tmp_path):
    client.force_login(people["student"])
    before = snapshot()
    response = client.post("/containers/501/backups/new/", {"mode": "hibernate", "compress": "zst"})
    assert response.status_code == 400 and response.context["tab"] == "backups"
    assert any(m.startswith("Mode: Select a valid choice") for m in _messages(response))
    response = client.post("/containers/501/backups/new/", {"mode": "stop", "compress": "zst",
                                                              "bwlimit_kbps": "0"})
    assert response.status_code == 400 and any("Bandwidth" in m for m in _messages(response))
    assert snapshot() == before
    client.force_login(people["auditor"])
    assert client.post("/containers/501/backups/new/", {"mode": "stop", "compress": "zst"}).status_code == 403
    client.force_login(people["peer"])
    assert client.post("/containers/501/backups/new/", {"mode": "stop", "compress": "zst"}).status_code == 404
    assert snapshot() == before


# -- restore -------------------------------------------------------------------------------
def test_restore_to_a_new_ctid(client, people, backup):
    client.force_login(people["tadmin"])
    page = client.get(f"/backups/{backup.pk}/restore/")
    assert page.status_code == 200
    assert page.context["form"]["ctid"].value() == 502  # the next free CTID
    response = client.post(f"/backups/{backup.pk}/restore/", {"target": "new", "ctid": "502",
                                                              "host": backup.host.name, "start": "on"})
    task = _task("ct.restore")
    assert response.status_code == 302 and response["Location"] == f"/tasks/{task.pk}/"
    ct = Container.objects.get(ctid=502)
    assert ct.status == "creating" and ct.tenant.slug == "acme" and ct.lock_task_id == task.pk
    assert task.params["backup"] == backup.pk and task.params["start"] is True
    assert ct.ram_mb == backup.container.ram_mb


def test_overwrite_needs_the_typed_ctid(client, people, backup):
    client.force_login(people["student"])
    before = snapshot()
    for confirm in ("", "502", "50l"):
        response = client.post(f"/backups/{backup.pk}/restore/", {"target": "overwrite", "confirm": confirm,
                                                                  "host": backup.host.name})
        assert response.status_code == 400
        assert "confirm by typing its CTID (501)" in response.content.decode()
    assert snapshot() == before


def test_restore_refusals_change_nothing(client, people, backup, student_ct):
    client.force_login(people["tadmin"])
    before = snapshot()
    # a new container on a CTID that exists
    response = client.post(f"/backups/{backup.pk}/restore/", {"target": "new", "ctid": "501",
                                                              "host": backup.host.name})
    assert "Container 501 exists" in response.content.decode()
    # overwrite a running container
    Container.objects.filter(pk=student_ct.pk).update(status="running")
    before = snapshot()
    response = client.post(f"/backups/{backup.pk}/restore/", {"target": "overwrite", "confirm": "501",
                                                              "host": backup.host.name})
    assert "stop it before restoring" in response.content.decode()
    assert snapshot() == before
    # a member may not create containers in the tenant
    client.force_login(people["student"])
    response = client.post(f"/backups/{backup.pk}/restore/", {"target": "new", "ctid": "503",
                                                              "host": backup.host.name})
    assert "You may not create containers in tenant acme" in response.content.decode()
    assert snapshot() == before


# -- prune ---------------------------------------------------------------------------------
@pytest.fixture
def series(student_ct, tmp_path):
    """Five backups a day apart; the oldest is protected."""
    now = timezone.now()
    rows = []
    for age in range(5):
        when = now - timedelta(days=age, minutes=1)
        rows.append(_make_backup(student_ct, tmp_path, filename=_archive_name(501, when), created_at=when,
                                 protected=(age == 4), write=False))
    return rows  # newest first


def _verdicts(html, rows):
    out = {}
    for b in rows:
        start = html.index(f'data-backup="{b.pk}" data-verdict="')
        out[b.pk] = html[start:start + 60].split('data-verdict="')[1].split('"')[0]
    return out


def test_prune_dry_run_then_prune_now(client, people, series):
    client.force_login(people["student"])
    before = snapshot()
    page = client.get("/containers/501/backups/prune/?keep_last=2")
    assert page.status_code == 200
    html = page.content.decode()
    verdicts = _verdicts(html, series)
    assert verdicts == {series[0].pk: "keep", series[1].pk: "keep", series[2].pk: "remove",
                        series[3].pk: "remove", series[4].pk: "keep"}  # the protected one stays
    assert "Prune now" in html and page.context["expect"] == f"{series[2].pk},{series[3].pk}"
    assert snapshot() == before  # the dry run changes nothing
    response = client.post("/containers/501/backups/prune/", {"keep_last": "2", "expect": page.context["expect"]},
                           follow=True)
    assert response.redirect_chain[-1][0] == TAB
    deleted = sorted(t.params["backup"] for t in Task.objects.filter(type="backup.delete"))
    assert deleted == sorted([series[2].pk, series[3].pk])
    assert any("Pruned: 2 delete tasks queued" in m for m in _messages(response))


def test_prune_refuses_a_stale_plan_and_bad_input(client, people, series, student_ct, tmp_path):
    client.force_login(people["student"])
    page = client.get("/containers/501/backups/prune/?keep_last=2")
    expect = page.context["expect"]
    _make_backup(student_ct, tmp_path, filename=_archive_name(501, timezone.now() + timedelta(minutes=5)),
                 created_at=timezone.now() + timedelta(minutes=5), write=False)
    before = snapshot()
    response = client.post("/containers/501/backups/prune/", {"keep_last": "2", "expect": expect})
    assert response.status_code == 409 and any("changed since the dry run" in m for m in _messages(response))
    assert response.context["expect"] != expect  # the plan as it is now, to review
    response = client.post("/containers/501/backups/prune/", {"expect": expect})
    assert response.status_code == 400 and any("at least one keep" in m for m in _messages(response))
    assert snapshot() == before
    page = client.get("/containers/501/backups/prune/?keep_last=0")
    assert page.context["plan"] is None


def test_prune_matrix(client, people, admin_user, series):
    for who in SEE:
        client.force_login(_user(people, admin_user, who))
        before = snapshot()
        page = client.get("/containers/501/backups/prune/?keep_last=2")
        assert page.status_code == (200 if SEE[who] else 404)
        if SEE[who]:
            assert ("Prune now" in page.content.decode()) == MANAGE[who]
        if not MANAGE[who]:
            status = client.post("/containers/501/backups/prune/", {"keep_last": "2", "expect": "x"}).status_code
            assert status == (403 if SEE[who] else 404) and snapshot() == before


# -- upload --------------------------------------------------------------------------------
@pytest.fixture
def dump_dir(settings, tmp_path):
    """A backup storage of the test's own; uploads stream into its `uploads` (settings.UPLOAD_DIR)."""
    path = tmp_path / "dump"
    path.mkdir()
    settings.UPLOAD_DIR = str(path / "uploads")
    return path


def _upload(client, name, data=b"archive bytes", **extra):
    return client.post("/backups/upload/", {"archive": SimpleUploadedFile(name, data), **extra}, follow=True)


def test_upload_streams_to_uploads_and_queues_an_import(client, admin_user, host, dump_dir):
    client.force_login(admin_user)
    assert 'action="/backups/upload/"' in client.get("/backups/").content.decode()
    name = "vzdump-openvz-101-2019_03_04-05_06_07.tar.gz"
    data = os.urandom(70_000)
    response = _upload(client, name, data, host=host.name)
    task = _task("backup.import")
    assert task is not None and response.redirect_chain[-1][0] == f"/tasks/{task.pk}/"
    dest = dump_dir / "uploads" / name
    assert task.params == {"path": str(dest), "tenant": None}
    assert dest.read_bytes() == data
    assert sorted(p.name for p in (dump_dir / "uploads").iterdir()) == [name]  # no temporary file left


def test_upload_into_a_tenant(client, people, host, dump_dir, acme):
    client.force_login(people["tadmin"])
    name = "vzdump-lxc-333-2024_01_02-03_04_05.tar"
    _upload(client, name, host=host.name, tenant="acme")
    assert _task("backup.import").params == {"path": str(dump_dir / "uploads" / name), "tenant": acme.pk}
    # a tenant admin must name the tenant
    before = snapshot()
    response = _upload(client, "vzdump-lxc-334-2024_01_02-03_04_05.tar", host=host.name)
    assert response.status_code == 400 and snapshot() == before
    assert "Tenant: Choose the tenant the archive belongs to." in _messages(response)


@pytest.mark.parametrize("name", ["evil.sh", "vzdump-lxc-501-2025_01_02-03_04_05.tar.xz", "../../etc/passwd",
                                  "vzdump-lxc-501.tar"])
def test_upload_refuses_bad_names(client, admin_user, host, dump_dir, name):
    client.force_login(admin_user)
    before = snapshot()
    response = _upload(client, name, host=host.name)
    assert any("is not a vzdump archive name" in m for m in _messages(response))
    assert snapshot() == before
    assert not (dump_dir / "uploads").exists() or not any((dump_dir / "uploads").iterdir())


def test_upload_refuses_a_name_already_waiting(client, admin_user, host, dump_dir):
    client.force_login(admin_user)
    name = "vzdump-lxc-335-2024_01_02-03_04_05.tar"
    _upload(client, name, b"first", host=host.name)
    before = snapshot()
    response = _upload(client, name, b"second", host=host.name)
    assert any("already waiting" in m for m in _messages(response)) and snapshot() == before
    assert (dump_dir / "uploads" / name).read_bytes() == b"first"


@pytest.mark.parametrize("who", ["student", "auditor", "peer"])
def test_upload_needs_the_right(client, people, host, dump_dir, who):
    client.force_login(people[who])
    assert 'action="/backups/upload/"' not in client.get("/backups/").content.decode()
    response = client.post("/backups/upload/", {"archive": SimpleUploadedFile(NAME, b"x"), "host": host.name})
    assert response.status_code == 403 and not (dump_dir / "uploads").exists()
    assert not Task.objects.exists()


# -- the API -------------------------------------------------------------------------------
def _api(people, admin_user, who):
    api = APIClient()
    api.force_authenticate(_user(people, admin_user, who))
    return api


@pytest.mark.parametrize("who", list(SEE))
def test_api_read_matrix(people, admin_user, backup, content, who):
    api = _api(people, admin_user, who)
    listed = [b["filename"] for b in api.get("/api/backups/").json()["results"]]
    assert listed == ([NAME] if SEE[who] else [])
    detail = api.get(f"/api/backups/{backup.pk}/")
    assert detail.status_code == (200 if SEE[who] else 404)
    if SEE[who]:
        body = detail.json()
        assert (body["ctid"], body["container"], body["tenant"], body["sha256"]) == (501, 501, "acme", backup.sha256)
    download = api.get(f"/api/backups/{backup.pk}/download/")
    assert download.status_code == (200 if MANAGE[who] else 403 if SEE[who] else 404)
    if MANAGE[who]:
        assert b"".join(download.streaming_content) == content
        assert download["Content-Disposition"] == f'attachment; filename="{NAME}"'


def test_api_filters(people, admin_user, backup, host):
    api = _api(people, admin_user, "admin")
    assert len(api.get("/api/backups/?ctid=501").json()["results"]) == 1
    assert len(api.get("/api/backups/?ctid=502").json()["results"]) == 0
    assert api.get("/api/backups/?ctid=x").status_code == 400  # a filter it cannot apply is refused
    assert len(api.get(f"/api/backups/?host={host.name}").json()["results"]) == 1
    assert len(api.get("/api/backups/?host=nowhere").json()["results"]) == 0


API_CALLS = {
    "patch": ("patch", "", {"notes": "changed", "protected": True}),
    "verify": ("post", "verify/", {}),
    "restore": ("post", "restore/", {"ctid": 501, "force": True, "confirm": "501"}),
    "delete": ("delete", "", {"confirm": NAME}),
}


@pytest.mark.parametrize("call", list(API_CALLS))
@pytest.mark.parametrize("who", list(SEE))
def test_api_mutation_matrix(people, admin_user, backup, who, call):
    api = _api(people, admin_user, who)
    method, suffix, data = API_CALLS[call]
    before = snapshot()
    response = getattr(api, method)(f"/api/backups/{backup.pk}/{suffix}", data, format="json")
    if not MANAGE[who]:
        assert response.status_code == (403 if SEE[who] else 404)
        assert snapshot() == before
        return
    if call == "patch":
        assert response.status_code == 200 and response.json()["notes"] == "changed"
        assert Backup.objects.get(pk=backup.pk).protected
    else:
        assert response.status_code == 202, response.content
        task = Task.objects.get(pk=response.json()["task"]["id"])
        assert response.json()["task_url"].endswith(f"/api/tasks/{task.pk}/")
        assert task.type == {"verify": "backup.verify", "restore": "ct.restore", "delete": "backup.delete"}[call]


def test_api_refusals(people, admin_user, backup, student_ct):
    api = _api(people, admin_user, "student")
    before = snapshot()
    r = api.post(f"/api/backups/{backup.pk}/restore/", {"ctid": 501, "force": True}, format="json")
    assert r.status_code == 400 and "confirm by typing its CTID" in r.json()["detail"]
    r = api.post(f"/api/backups/{backup.pk}/restore/", {"ctid": 501}, format="json")
    assert r.status_code == 400 and "exists" in r.json()["detail"]
    r = api.delete(f"/api/backups/{backup.pk}/", {"confirm": "nope"}, format="json")
    assert r.status_code == 400
    Backup.objects.filter(pk=backup.pk).update(protected=True)
    before = snapshot()
    r = api.delete(f"/api/backups/{backup.pk}/", {"confirm": NAME}, format="json")
    assert r.status_code == 400 and "protected" in r.json()["detail"]
    r = api.patch(f"/api/backups/{backup.pk}/", {"notes": "x" * 201}, format="json")
    assert r.status_code == 400
    assert snapshot() == before
    Path(backup.path).unlink()
    assert api.get(f"/api/backups/{backup.pk}/download/").status_code == 404


def test_api_restore_to_a_new_ctid(people, admin_user, backup, host):
    api = _api(people, admin_user, "tadmin")
    r = api.post(f"/api/backups/{backup.pk}/restore/", {"ctid": 600, "host": host.name, "start": True},
                 format="json")
    assert r.status_code == 202, r.content
    assert Container.objects.get(ctid=600).status == "creating"
    assert r["Location"].endswith(f"/api/tasks/{r.json()['task']['id']}/")


def test_storages_are_defined_by_admins_and_operators_only(client, people, host, admin_user):
    from backups.models import BackupStorage
    client.force_login(people["tadmin"])
    resp = client.post(f"/hosts/{host.name}/storages/", {"name": "nfs", "path": "/mnt/nfs"}, follow=True)
    assert resp.status_code == 404  # hosts are infrastructure: a tenant admin does not even see them
    assert not BackupStorage.objects.exists()
    client.force_login(people["operator"])
    resp = client.post(f"/hosts/{host.name}/storages/", {"name": "nfs", "path": "relative/path"}, follow=True)
    assert "absolute path" in resp.content.decode() and not BackupStorage.objects.exists()
    client.post(f"/hosts/{host.name}/storages/", {"name": "nfs", "path": "/mnt/nfs/"})
    storage = BackupStorage.objects.get()
    assert (storage.name, storage.path, storage.host) == ("nfs", "/mnt/nfs", host)
    assert "/mnt/nfs" in client.get(f"/hosts/{host.name}/").content.decode()
    client.post(f"/hosts/{host.name}/storages/{storage.pk}/delete/")
    assert not BackupStorage.objects.exists()


# -- import through the API -----------------------------------------------------------------
@pytest.mark.parametrize("name,listed", [
    ("vzdump-openvz-101-2019_03_04-05_06_07.tgz", "vzdump-openvz-101-2019_03_04-05_06_07.tar.gz"),
    ("vzdump-openvz-102-2019_03_04-05_06_07.tar", "vzdump-openvz-102-2019_03_04-05_06_07.tar"),
    ("vzdump-lxc-103-2019_03_04-05_06_07.tar.zst", "vzdump-lxc-103-2019_03_04-05_06_07.tar.zst"),
])
def test_api_import_takes_an_upload_as_the_page_does(admin_user, host, dump_dir, name, listed):
    api = APIClient()
    api.force_authenticate(admin_user)
    data = os.urandom(50_000)
    response = api.post("/api/backups/import/", {"archive": SimpleUploadedFile(name, data), "host": host.name},
                        format="multipart")
    assert response.status_code == 202, response.content
    task = _task("backup.import")
    assert response.json()["task"]["id"] == task.pk
    assert task.params == {"path": str(dump_dir / "uploads" / listed), "tenant": None}
    assert (dump_dir / "uploads" / listed).read_bytes() == data
    assert sorted(p.name for p in (dump_dir / "uploads").iterdir()) == [listed]


def test_api_import_refuses_bad_names_and_who_may_not(people, admin_user, host, dump_dir):
    before = snapshot()
    api = _api(people, admin_user, "admin")
    response = api.post("/api/backups/import/", {"archive": SimpleUploadedFile("evil.sh", b"x"), "host": host.name},
                        format="multipart")
    assert response.status_code == 400 and "is not a vzdump archive name" in response.json()["detail"]
    api = _api(people, admin_user, "student")
    response = api.post("/api/backups/import/", {"archive": SimpleUploadedFile(NAME, b"x"), "host": host.name},
                        format="multipart")
    assert response.status_code == 403
    assert snapshot() == before
    assert not (dump_dir / "uploads").exists() or not any((dump_dir / "uploads").iterdir())


# -- backup jobs in reach, one default mode (issue 18) ---------------------------------
@pytest.mark.parametrize("who", ["student", "tadmin", "admin"])
def test_backup_jobs_are_linked_from_the_menu_and_the_backups_page(client, people, admin_user, student_ct, who):
    client.force_login(_user(people, admin_user, who))
    html = client.get("/backups/").content.decode()
    nav = html[html.index("<nav"):html.index("</nav>")]
    assert 'href="/backups/jobs/">Backup jobs</a>' in nav and 'href="/backups/">Backups</a>' in nav
    assert 'href="/backups/jobs/" id="backup-jobs-link"' in html
    jobs = client.get("/backups/jobs/").content.decode()
    nav = jobs[jobs.index("<nav"):jobs.index("</nav>")]
    assert 'active" href="/backups/jobs/"' in nav and 'active" href="/backups/"' not in nav


def test_a_backup_and_a_backup_job_start_from_the_same_mode(client, people, admin_user, student_ct):
    """suspend, on the Backup-now form, the job form and a job made over the API without a mode; the
    help says why (snapshot runs as suspend on the panel's disk images)."""
    import re

    from backups.models import BackupJob
    client.force_login(admin_user)
    for url, form in ((TAB, "the Backups tab"), ("/backups/jobs/new/", "the job form")):
        html = client.get(url).content.decode()
        assert re.search(r'<option value="suspend" selected>', html), form
        assert not re.search(r'<option value="snapshot" selected>', html), form
        assert "suspend (the default)" in html and "it runs as suspend" in html, form
    api = APIClient()
    api.force_authenticate(admin_user)
    response = api.post("/api/backup-jobs/", {"name": "nightly", "schedule": "0 1 * * *", "selection": "all"},
                        format="json")
    assert response.status_code == 201, response.content
    assert BackupJob.objects.get(name="nightly").mode == "suspend"
