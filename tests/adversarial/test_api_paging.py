"""Paging parameters a fuzzer throws: huge, negative, non-numeric, Unicode digits. A clear 400, never a 500."""
import pytest
from rest_framework.test import APIClient

LISTS = ["/api/containers/", "/api/tasks/", "/api/audit/", "/api/hosts/", "/api/users/", "/api/templates/",
         "/api/pools/", "/api/tenants/", "/api/backup-jobs/", "/api/backups/", "/api/plans/"]


@pytest.mark.parametrize("query", ["limit=9223372036854775808", "limit=99999999999999999999", "limit=-1", "limit=0",
                                   "limit=abc", "limit=%C2%B2", "offset=9223372036854775808", "offset=-5",
                                   "offset=null", "limit=1e3", "limit=%201"])
def test_bad_paging_is_a_400(admin_user, host, query):
    api = APIClient()
    api.force_authenticate(admin_user)
    for url in LISTS:
        resp = api.get(f"{url}?{query}")
        assert resp.status_code == 400, (url, query, resp.status_code)
        assert "Give a whole number" in str(resp.json())


def test_good_paging_works(admin_user, host):
    api = APIClient()
    api.force_authenticate(admin_user)
    data = api.get("/api/tasks/?limit=1000&offset=0").json()
    assert data["count"] == 0 and data["results"] == []
