"""A member turns the knobs the plan does not name: CPU weight, CPU limit, I/O priority, processes,
inodes. Each has a bound for non-administrators; going past it is refused and changes nothing."""
from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from containers.models import Container
from tasks.models import Task

LIMITED = {"numproc": 2048}


@pytest.fixture
def ct(student_ct):
    Container.objects.filter(pk=student_ct.pk).update(**LIMITED)
    student_ct.refresh_from_db()
    return student_ct


@pytest.mark.parametrize("changes", [
    {"cpuunits": 500000}, {"cpuunits": 1001}, {"ioprio": 7}, {"cpulimit": 101},  # plan: 1 CPU
    {"numproc": None}, {"numproc": 65537}, {"diskinodes": 1024 * 256 + 1},       # plan: 1024 MiB
])
@pytest.mark.parametrize("who", ["student", "tadmin"])
def test_tenant_people_cannot_pass_the_bounds(people, ct, changes, who):
    api = APIClient()
    api.force_authenticate(people[who])
    before = {k: getattr(ct, k) for k in ("cpuunits", "ioprio", "cpulimit", "numproc", "diskinodes")}
    resp = api.patch(f"/api/containers/{ct.ctid}/", changes, format="json")
    assert resp.status_code == 403, resp.content
    assert "administrator" in resp.json()["detail"]
    ct.refresh_from_db()
    assert {k: getattr(ct, k) for k in before} == before
    assert not Task.objects.exists()


@pytest.mark.parametrize("changes", [{"cpuunits": 999}, {"cpuunits": 8}, {"ioprio": 3}, {"cpulimit": 50},
                                     {"numproc": 4096}, {"diskinodes": 200000}])
def test_within_the_bounds_is_fine(people, ct, changes):
    api = APIClient()
    api.force_authenticate(people["student"])
    assert api.patch(f"/api/containers/{ct.ctid}/", changes, format="json").status_code == 202


def test_an_operator_may_go_past_them(people, ct):
    api = APIClient()
    api.force_authenticate(people["operator"])
    assert api.patch(f"/api/containers/{ct.ctid}/", {"cpuunits": 500000}, format="json").status_code == 202


def test_the_form_says_the_bounds(client, people, ct):
    client.force_login(people["student"])
    page = client.get(f"/containers/{ct.ctid}/").content.decode()
    assert "tenants may set up to 1000" in page and "up to 100 per CPU" in page
