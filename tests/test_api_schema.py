"""The OpenAPI schema says what the API answers, and the bugs the contract run (test_api_contract.py)
found stay fixed."""
import pytest
from django.core.management import call_command
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from tasks.models import Task


@pytest.fixture(scope="module")
def api_schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def _response(api_schema, path, method, code):
    return api_schema["paths"][path][method]["responses"][code]["content"]["application/json"]["schema"]


def test_schema_validates_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))


def test_every_202_is_the_task_envelope(api_schema):
    accepted = [(path, method) for path, ops in api_schema["paths"].items() for method, op in ops.items()
                if "202" in op.get("responses", {})]
    assert len(accepted) > 20
    for path, method in accepted:
        if path == "/api/backup-jobs/{id}/run-now/":  # answers the run it started
            continue
        assert _response(api_schema, path, method, "202") == {"$ref": "#/components/schemas/TaskAccepted"}, path
    envelope = api_schema["components"]["schemas"]["TaskAccepted"]
    assert set(envelope["required"]) == {"task", "task_url"}


@pytest.mark.parametrize("component,fields", [
    ("Container", ["locked_by_task", "tenant", "plan", "owner"]),
    ("Backup", ["storage", "job", "tenant", "container", "owner", "task"]),
    ("AuditEvent", ["tenant"]), ("Task", ["user", "host", "agent_status"]), ("BackupJob", ["tenant", "owner"])])
def test_fields_that_can_be_null_are_nullable(api_schema, component, fields):
    properties = api_schema["components"]["schemas"][component]["properties"]
    for name in fields:
        assert properties[name].get("nullable") is True, (component, name)


def test_object_answers_of_list_routes_are_objects_and_runs_are_not_paged(api_schema):
    for path, component in [("/api/containers/{ctid}/network/", "ContainerNetwork"),
                            ("/api/hosts/{name}/bridges/", "HostBridges"),
                            ("/api/tenants/{slug}/bridges/", "TenantBridges")]:
        assert _response(api_schema, path, "get", "200") == {"$ref": f"#/components/schemas/{component}"}
    runs = _response(api_schema, "/api/backup-jobs/{id}/runs/", "get", "200")
    assert runs == {"type": "array", "items": {"$ref": "#/components/schemas/BackupRun"}}
    assert "email" not in api_schema["components"]["schemas"]["User"]["properties"]["email"].get("format", "")


def test_create_documents_addresses_password_keys_and_every_default(api_schema):
    """Issue 18: what a create may bring besides the template, and what it uses when a field is left
    out, are in the schema; the password is write-only and no answer carries it."""
    create = api_schema["components"]["schemas"]["ContainerCreate"]["properties"]
    assert create["root_password"]["writeOnly"] is True and create["root_password"]["maxLength"] == 4096
    assert create["ipadd"]["type"] == "array" and create["ipadd"]["maxItems"] == 16
    assert create["ssh_public_keys"]["type"] == "array" and create["ssh_public_keys"]["maxItems"] == 32
    for name, words in (("ipadd", "auto"), ("ip_pool", "auto"), ("root_password", "SHA-512"),
                        ("ssh_public_keys", "command="), ("ram_mb", "512"), ("swap_mb", "0"), ("cpus", "1"),
                        ("disk_mb", "2048"), ("host", "most room")):
        assert "default" in create[name]["description"].lower() and words in create[name]["description"], name
    for component in ("Container", "Task"):
        assert "root_password" not in api_schema["components"]["schemas"][component]["properties"]


def test_error_answers_are_documented(api_schema):
    start = api_schema["paths"]["/api/containers/{ctid}/start/"]["post"]["responses"]
    assert {"401", "403", "404", "409"} <= set(start)
    assert _response(api_schema, "/api/containers/", "get", "400") == {"$ref": "#/components/schemas/ValidationError"}
    limit = next(p for p in api_schema["paths"]["/api/tasks/"]["get"]["parameters"] if p["name"] == "limit")
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 1000)


def test_a_task_whose_host_was_removed_is_listed(admin_user, host):
    """Was a 500: agent_status read the host of a task that had none left."""
    Task.objects.create(type="ct.start", ctid=501, host=None, user=admin_user, status="ok")
    api = APIClient()
    api.force_authenticate(admin_user)
    resp = api.get("/api/tasks/")
    assert resp.status_code == 200
    assert resp.json()["results"][0]["agent_status"] is None


@pytest.mark.parametrize("url", ["/api/tasks/?ctid=%C2%B2", "/api/tasks/?ctid=99999999999999999999",
                                 "/api/tasks/?status=bogus", "/api/containers/?status=bogus",
                                 "/api/backups/?ctid=abc", "/api/backups/?ctid=-1"])
def test_bad_list_filters_are_a_400(admin_user, host, url):
    """?ctid=² on tasks was a 500 (isdigit, then int); the others were ignored and answered everything
    or nothing."""
    api = APIClient()
    api.force_authenticate(admin_user)
    resp = api.get(url)
    assert resp.status_code == 400, resp.content
    assert list(resp.json()) in (["ctid"], ["status"])


def test_empty_list_filters_mean_no_filter(admin_user, host):
    api = APIClient()
    api.force_authenticate(admin_user)
    for url in ["/api/tasks/?status=", "/api/containers/?status=", "/api/backups/?host=", "/api/audit/?to="]:
        assert api.get(url).status_code == 200, url


@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_unknown_api_paths_answer_json_404(admin_user, method):
    """A path no API route matches (an id with a dot, a misspelt collection) answered the web's HTML
    404 page, or for a POST the HTML CSRF 403."""
    api = APIClient(enforce_csrf_checks=True)
    api.force_authenticate(admin_user)
    for url in ["/api/tasks/1.5/", "/api/hosts/a.b/token/", "/api/nothing/"]:
        resp = getattr(api, method)(url)
        assert resp.status_code == 404, (method, url, resp.status_code)
        assert resp.json() == {"detail": "Not found."}


def test_a_refused_archive_download_says_it_is_json(admin_user, host):
    """?format=archive made the 404's JSON body go out as application/octet-stream."""
    api = APIClient()
    api.force_authenticate(admin_user)
    resp = api.get("/api/backups/999999/download/?format=archive")
    assert resp.status_code == 404
    assert resp["Content-Type"] == "application/json"
    assert resp.json() == {"detail": "No backup 999999"}
