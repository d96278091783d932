"""/templates/ (catalogue, build, download, upload, copy, delete), "Make a template" on a container's
Overview, and the templates API, on real rows.

No agent runs: the services queue tasks (rows) that nobody runs."""
import os

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from containers.models import Container, OSTemplate
from hosts.models import Host
from tasks.models import Task

from .conftest import form_errors

MANAGERS = ("admin", "operator")
OTHERS = ("student", "tadmin", "auditor", "peer", "outsider")
MEMBERS = ("student", "peer", "outsider")  # no global role, no tenant to administer: templates are not theirs


# -- helpers and fixtures -------------------------------------------------------------
def _user(people, admin_user, who):
    return admin_user if who == "admin" else people[who]


def _messages(response) -> list[str]:
    """What the page said: its messages, and the errors of a form shown again (panel.forms)."""
    return [str(m) for m in response.context["messages"]] + form_errors(response)


def snapshot():
    """Everything a refused request must leave as it was."""
    return (list(Task.objects.order_by("pk").values_list("pk", "type", "params")),
            list(OSTemplate.objects.order_by("pk").values_list("pk", "host_id", "name")),
            list(Container.objects.order_by("pk").values_list("ctid", "status", "lock_task_id")))


def _task(type_):
    return Task.objects.filter(type=type_).order_by("-pk").first()


@pytest.fixture
def dump_dir(settings, tmp_path):
    """A backup storage of the test's own; uploads stream into its `uploads` (settings.UPLOAD_DIR)."""
    path = tmp_path / "dump"
    path.mkdir()
    settings.UPLOAD_DIR = str(path / "uploads")
    return path


@pytest.fixture
def node2(db, tmp_path):
    return Host.objects.create(name="node2", lxcpath=str(tmp_path / "lxc2"), template_dir=str(tmp_path / "cache2"),
                               dump_dir=str(tmp_path / "dump2"))


@pytest.fixture
def tpl(host, template_name):
    return OSTemplate.objects.get(host=host, name=template_name)


def _uploads_empty(dump_dir) -> bool:
    updir = dump_dir / "uploads"
    return not updir.exists() or not any(updir.iterdir())


def _upload(client, host, filename, data=b"tarball bytes", name=""):
    return client.post("/templates/upload/", {"host": host.name, "name": name,
                                              "file": SimpleUploadedFile(filename, data)}, follow=True)


# -- the page -------------------------------------------------------------------------------
@pytest.mark.parametrize("who", MANAGERS + OTHERS)
def test_catalogue_for_who_creates_or_oversees_forms_for_managers(client, people, admin_user, tpl, who):
    OSTemplate.objects.filter(pk=tpl.pk).update(distribution="debian", version="12", architecture="amd64",
                                                source="debootstrap bookworm")
    client.force_login(_user(people, admin_user, who))
    page = client.get("/templates/")
    if who in MEMBERS:  # members create nothing: not their page
        assert page.status_code == 403 and b'href="/templates/"' not in client.get("/").content
        return
    assert page.status_code == 200
    html = page.content.decode()
    assert tpl.name in html and "debootstrap bookworm" in html and "<th>Distribution</th>" in html
    assert "<th>Added</th>" in html
    for action in ("/templates/build/", "/templates/download/", "/templates/download-index/",
                   "/templates/upload/", f"/templates/{tpl.pk}/copy/", f"/templates/{tpl.pk}/delete/"):
        assert (f'action="{action}"' in html) == (who in MANAGERS), action


# -- build ----------------------------------------------------------------------------------
def test_admin_builds_a_template(client, admin_user, host):
    client.force_login(admin_user)
    response = client.post("/templates/build/", {"host": host.name, "distribution": "debian", "release": "bookworm",
                                                  "architecture": "amd64", "mirror": "", "name": ""}, follow=True)
    task = _task("template.build")
    assert task is not None and task.host == host and task.user == admin_user
    assert task.params == {"distribution": "debian", "release": "bookworm", "architecture": "amd64",
                           "mirror": None, "name": "debian-bookworm-amd64"}
    assert response.redirect_chain[-1][0] == f"/tasks/{task.pk}/"
    assert any(m.startswith(f"Task #{task.pk} queued: build debian-bookworm-amd64") for m in _messages(response))


def test_operator_builds_ubuntu_with_a_name_and_mirror(client, people, host):
    client.force_login(people["operator"])
    client.post("/templates/build/", {"host": host.name, "distribution": "ubuntu", "release": "noble",
                                      "architecture": "arm64", "mirror": "http://ports.ubuntu.com/ubuntu-ports",
                                      "name": "noble-arm"})
    assert _task("template.build").params == {"distribution": "ubuntu", "release": "noble", "architecture": "arm64",
                                               "mirror": "http://ports.ubuntu.com/ubuntu-ports", "name": "noble-arm"}


@pytest.mark.parametrize("form, message", [
    ({"release": "Bookworm!"}, "is not a release name"),
    ({"distribution": "fedora"}, "Builds are for debian and ubuntu"),
    ({"architecture": "x86 64"}, "is not an architecture"),
    ({"mirror": "ftp://ftp.debian.org/debian"}, "The mirror must be an http"),
    ({"name": "../evil"}, "is not a template name"),
    ({"host": "nowhere"}, "No host 'nowhere'"),
])
def test_build_refusals_say_why_and_queue_nothing(client, admin_user, host, form, message):
    client.force_login(admin_user)
    before = snapshot()
    response = client.post("/templates/build/", {"host": host.name, "distribution": "debian", "release": "bookworm",
                                                  "architecture": "amd64", **form})
    assert response.status_code == 400 and response.templates[0].name == "hosts/templates.html"
    assert any(message in m for m in _messages(response)), _messages(response)
    assert snapshot() == before


def test_build_refuses_a_name_the_host_has(client, admin_user, host, tpl):
    client.force_login(admin_user)
    before = snapshot()
    response = client.post("/templates/build/", {"host": host.name, "distribution": "debian", "release": "bookworm",
                                                  "architecture": "amd64", "name": tpl.name}, follow=True)
    assert any(f"already has a template {tpl.name}" in m for m in _messages(response))
    assert snapshot() == before


# -- download -------------------------------------------------------------------------------
def test_download_from_a_url(client, admin_user, host):
    client.force_login(admin_user)
    sha = "ab" * 32
    response = client.post("/templates/download/", {"host": host.name, "url": "https://example.org/alpine-3.20.tar.xz",
                                                     "sha256": sha.upper(), "name": ""}, follow=True)
    task = _task("template.download")
    assert task.params == {"url": "https://example.org/alpine-3.20.tar.xz", "sha256": sha, "name": "alpine-3.20",
                           "suffix": ".tar.xz"}
    assert response.redirect_chain[-1][0] == f"/tasks/{task.pk}/"


@pytest.mark.parametrize("form, message", [
    ({"url": "ftp://example.org/alpine.tar.gz"}, "Give an http:// or https:// address"),
    ({"url": "https://example.org/alpine.zip"}, "must end in a tarball"),
    ({"url": "https://example.org/alpine.tar.gz", "name": "../evil"}, "is not a template name"),
    ({"url": "https://example.org/alpine.tar.gz", "sha256": "1234"}, "64 hexadecimal digits"),
])
def test_download_refusals(client, admin_user, host, form, message):
    client.force_login(admin_user)
    before = snapshot()
    response = client.post("/templates/download/", {"host": host.name, **form}, follow=True)
    assert any(message in m for m in _messages(response)), _messages(response)
    assert snapshot() == before


def test_download_from_an_image_server(client, admin_user, host):
    client.force_login(admin_user)
    client.post("/templates/download-index/", {
        "host": host.name, "index_url": "https://images.example.org/", "distribution": "alpine", "release": "3.20",
        "architecture": "amd64", "variant": "default", "name": ""})
    params = _task("template.download").params
    assert params["index_url"] == "https://images.example.org/" and params["name"] == "alpine-3.20-amd64"
    assert (params["distribution"], params["release"], params["variant"]) == ("alpine", "3.20", "default")


def test_image_server_refusals(client, admin_user, host):
    client.force_login(admin_user)
    before = snapshot()
    response = client.post("/templates/download-index/", {
        "host": host.name, "index_url": "ftp://images.example.org/", "distribution": "alpine", "release": "3.20"},
        follow=True)
    assert any("The image server must be an http" in m for m in _messages(response))
    response = client.post("/templates/download-index/", {
        "host": host.name, "index_url": "https://images.example.org/", "distribution": "alpine",
        "release": "3.20; rm", "name": ""}, follow=True)
    assert any("is not a release" in m for m in _messages(response))
    assert snapshot() == before


# -- upload ---------------------------------------------------------------------------------
def test_upload_writes_the_file_and_queues_an_import(client, admin_user, host, dump_dir):
    client.force_login(admin_user)
    data = os.urandom(80_000)
    response = _upload(client, host, "my-rootfs.tar.zst", data, name="web-base")
    task = _task("template.import")
    dest = dump_dir / "uploads" / "template-web-base.tar.zst"
    assert task is not None and task.params == {"path": str(dest), "name": "web-base"}
    assert response.redirect_chain[-1][0] == f"/tasks/{task.pk}/"
    assert dest.read_bytes() == data
    assert sorted(p.name for p in (dump_dir / "uploads").iterdir()) == [dest.name]  # no temporary file left


def test_upload_names_the_template_after_the_file(client, admin_user, host, dump_dir):
    client.force_login(admin_user)
    _upload(client, host, "alpine-3.20.tar.gz")
    assert _task("template.import").params["name"] == "alpine-3.20"


@pytest.mark.parametrize("filename, name, message", [
    ("rootfs.tar.gz", "../evil", "is not a template name"),
    ("rootfs.tar.gz", "-dash", "is not a template name"),
    ("../../etc/evil.tar.gz", "x y", "is not a template name"),
    ("rootfs.zip", "good", "is not a tarball"),
    ("evil.sh", "", "is not a tarball"),
])
def test_upload_refuses_bad_names_and_writes_nothing(client, admin_user, host, dump_dir, filename, name, message):
    client.force_login(admin_user)
    before = snapshot()
    response = _upload(client, host, filename, name=name)
    assert any(message in m for m in _messages(response)), _messages(response)
    assert snapshot() == before
    assert _uploads_empty(dump_dir)


def test_upload_refuses_a_name_the_host_has(client, admin_user, host, tpl, dump_dir):
    client.force_login(admin_user)
    before = snapshot()
    response = _upload(client, host, "rootfs.tar.gz", name=tpl.name)
    assert any(f"already has a template {tpl.name}" in m for m in _messages(response))
    assert snapshot() == before and _uploads_empty(dump_dir)


def test_upload_refuses_a_name_already_waiting(client, admin_user, host, dump_dir):
    client.force_login(admin_user)
    _upload(client, host, "rootfs.tar", b"first", name="waiting")
    before = snapshot()
    response = _upload(client, host, "rootfs.tar", b"second", name="waiting")
    assert any("already waiting" in m for m in _messages(response)) and snapshot() == before
    assert (dump_dir / "uploads" / "template-waiting.tar").read_bytes() == b"first"


# -- copy and delete ------------------------------------------------------------------------
def test_copy_to_another_host(client, admin_user, tpl, node2):
    client.force_login(admin_user)
    response = client.post(f"/templates/{tpl.pk}/copy/", {"host": node2.name}, follow=True)
    task = _task("template.copy")
    assert task.host == node2 and task.params["name"] == tpl.name and task.params["sha256"] == tpl.sha256
    assert task.params["source_host"] == tpl.host.name
    assert response.redirect_chain[-1][0] == f"/tasks/{task.pk}/"


def test_copy_to_the_same_host_is_refused(client, admin_user, tpl, node2):
    client.force_login(admin_user)
    page = client.get("/templates/").content.decode()
    assert f'<option value="{node2.name}">' in page  # the copy select offers the other host
    before = snapshot()
    response = client.post(f"/templates/{tpl.pk}/copy/", {"host": tpl.host.name}, follow=True)
    assert any(f"{tpl.name} is already on {tpl.host.name}" in m for m in _messages(response))
    assert snapshot() == before


def test_delete_needs_the_name_typed(client, admin_user, tpl):
    client.force_login(admin_user)
    before = snapshot()
    response = client.post(f"/templates/{tpl.pk}/delete/", {"confirm": "nope"}, follow=True)
    assert any("Type the template's name" in m for m in _messages(response)) and snapshot() == before
    response = client.post(f"/templates/{tpl.pk}/delete/", {"confirm": tpl.name}, follow=True)
    task = _task("template.delete")
    assert task.params == {"filename": tpl.filename, "name": tpl.name}
    assert response.redirect_chain[-1][0] == "/templates/"
    assert any(m.startswith(f"Task #{task.pk} queued: delete {tpl.name}") for m in _messages(response))


def test_unknown_template_is_404(client, admin_user, host):
    client.force_login(admin_user)
    assert client.post("/templates/999999/delete/", {"confirm": "x"}).status_code == 404
    assert client.post("/templates/999999/copy/", {"host": host.name}).status_code == 404


# -- who may ----------------------------------------------------------------------------------
@pytest.mark.parametrize("who", OTHERS)
def test_everyone_else_is_refused_every_post(client, people, tpl, node2, dump_dir, who):
    client.force_login(people[who])
    before = snapshot()
    host = tpl.host
    posts = [
        ("/templates/build/", {"host": host.name, "distribution": "debian", "release": "bookworm"}),
        ("/templates/download/", {"host": host.name, "url": "https://example.org/a.tar.gz"}),
        ("/templates/download-index/", {"host": host.name, "index_url": "https://images.example.org/",
                                        "distribution": "alpine", "release": "3.20"}),
        ("/templates/upload/", {"host": host.name, "name": "up", "file": SimpleUploadedFile("a.tar.gz", b"x")}),
        (f"/templates/{tpl.pk}/copy/", {"host": node2.name}),
        (f"/templates/{tpl.pk}/delete/", {"confirm": tpl.name}),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code == 403, url
    assert snapshot() == before and _uploads_empty(dump_dir)
    assert not Task.objects.exists()


# -- make a template from a container ------------------------------------------------------
def test_make_a_template_from_a_stopped_container(client, admin_user, student_ct):
    client.force_login(admin_user)
    page = client.get(f"/containers/{student_ct.ctid}/").content.decode()
    assert f'action="/templates/from-container/{student_ct.ctid}/"' in page
    response = client.post(f"/templates/from-container/{student_ct.ctid}/", {"name": "acme-base"}, follow=True)
    task = _task("template.from_ct")
    assert task is not None and task.container == student_ct and task.params == {"name": "acme-base"}
    assert response.redirect_chain[-1][0] == f"/tasks/{task.pk}/"
    assert Container.objects.get(pk=student_ct.pk).lock_task_id == task.pk


def test_make_a_template_from_a_running_container_is_refused(client, admin_user, student_ct):
    Container.objects.filter(pk=student_ct.pk).update(status="running")
    client.force_login(admin_user)
    page = client.get(f"/containers/{student_ct.ctid}/").content.decode()
    assert "/templates/from-container/" not in page  # only offered when stopped
    before = snapshot()
    response = client.post(f"/templates/from-container/{student_ct.ctid}/", {"name": "acme-base"})
    assert any("is running; stop it first" in m for m in _messages(response)), _messages(response)
    assert response.status_code == 409 and response.context["ct"] == student_ct
    assert 'value="acme-base"' in response.content.decode()  # the card is shown with the refusal
    assert snapshot() == before


def test_make_a_template_with_a_bad_name_is_refused(client, people, student_ct):
    client.force_login(people["operator"])
    before = snapshot()
    response = client.post(f"/templates/from-container/{student_ct.ctid}/", {"name": "../evil"}, follow=True)
    assert any("is not a template name" in m for m in _messages(response)) and snapshot() == before


@pytest.mark.parametrize("who, status", [("student", 403), ("tadmin", 403), ("auditor", 403), ("peer", 404),
                                         ("outsider", 404)])
def test_make_a_template_is_for_admins_and_operators(client, people, student_ct, who, status):
    client.force_login(people[who])
    if status == 403:
        assert "/templates/from-container/" not in client.get(f"/containers/{student_ct.ctid}/").content.decode()
    before = snapshot()
    assert client.post(f"/templates/from-container/{student_ct.ctid}/", {"name": "x1"}).status_code == status
    assert snapshot() == before


# -- API ----------------------------------------------------------------------------------------
def _api(people, admin_user, who):
    api = APIClient()
    api.force_authenticate(_user(people, admin_user, who))
    return api


@pytest.mark.parametrize("who", MANAGERS + OTHERS)
def test_api_lists_templates_with_their_metadata(people, admin_user, tpl, who):
    response = _api(people, admin_user, who).get("/api/templates/")
    if who in MEMBERS:
        assert response.status_code == 403
        return
    assert response.status_code == 200
    rows = response.json()["results"] if isinstance(response.json(), dict) else response.json()
    row = next(r for r in rows if r["id"] == tpl.pk)
    assert row["name"] == tpl.name and row["host"] == tpl.host.name
    assert {"distribution", "version", "architecture", "source"} <= set(row)


def test_api_build_is_accepted(people, admin_user, host):
    response = _api(people, admin_user, "admin").post(
        "/api/templates/build/", {"host": host.name, "release": "trixie"}, format="json")
    assert response.status_code == 202, response.content
    task = _task("template.build")
    assert response.json()["task_url"].endswith(f"/api/tasks/{task.pk}/")
    assert task.params["release"] == "trixie" and task.params["name"] == "debian-trixie-amd64"


def test_api_build_refusal(people, admin_user, host):
    before = snapshot()
    response = _api(people, admin_user, "operator").post(
        "/api/templates/build/", {"host": host.name, "release": "Bookworm!"}, format="json")
    assert response.status_code == 400 and "is not a release name" in response.json()["detail"]
    response = _api(people, admin_user, "operator").post("/api/templates/build/", {"host": "nowhere"}, format="json")
    assert response.status_code == 400 and "host" in response.json()
    assert snapshot() == before


def test_api_download_by_url_and_from_an_index(people, admin_user, host):
    api = _api(people, admin_user, "admin")
    response = api.post("/api/templates/download/", {"host": host.name, "url": "https://example.org/a-1.tar.gz"},
                        format="json")
    assert response.status_code == 202 and _task("template.download").params["name"] == "a-1"
    response = api.post("/api/templates/download/", {"host": host.name, "index_url": "https://images.example.org/",
                                                     "distribution": "alpine", "release": "3.20"}, format="json")
    assert response.status_code == 202 and _task("template.download").params["name"] == "alpine-3.20-amd64"
    before = snapshot()
    response = api.post("/api/templates/download/", {"host": host.name, "url": "ftp://example.org/a.tar.gz"},
                        format="json")
    assert response.status_code == 400 and "http://" in response.json()["detail"]
    assert api.post("/api/templates/download/", {"host": host.name}, format="json").status_code == 400
    assert snapshot() == before


def test_api_copy_and_delete(people, admin_user, tpl, node2):
    api = _api(people, admin_user, "admin")
    before = snapshot()
    response = api.post(f"/api/templates/{tpl.pk}/copy/", {"host": tpl.host.name}, format="json")
    assert response.status_code == 400 and "is already on" in response.json()["detail"]
    assert snapshot() == before
    response = api.post(f"/api/templates/{tpl.pk}/copy/", {"host": node2.name}, format="json")
    assert response.status_code == 202 and _task("template.copy").host == node2
    response = api.delete(f"/api/templates/{tpl.pk}/")
    assert response.status_code == 202 and _task("template.delete").params["name"] == tpl.name


@pytest.mark.parametrize("who", OTHERS)
def test_api_changes_are_forbidden_to_everyone_else(people, admin_user, tpl, node2, who):
    api = _api(people, admin_user, who)
    before = snapshot()
    for method, url, data in [
        ("post", "/api/templates/build/", {"host": tpl.host.name}),
        ("post", "/api/templates/download/", {"host": tpl.host.name, "url": "https://example.org/a.tar.gz"}),
        ("post", f"/api/templates/{tpl.pk}/copy/", {"host": node2.name}),
        ("delete", f"/api/templates/{tpl.pk}/", None),
    ]:
        response = getattr(api, method)(url, data, format="json")
        assert response.status_code == 403, (url, response.content)
        assert ("not part of your role" if who in MEMBERS else "administrators and operators") \
            in response.json()["detail"]
    assert snapshot() == before
