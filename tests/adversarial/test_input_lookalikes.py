"""Inputs that look valid to a loose check: redirects that leave the site, Unicode digits as CTIDs,
hostnames with lookalike letters, trailing newlines or more than the kernel allows."""
from __future__ import annotations

import subprocess
import sys

import pytest
from django.core.exceptions import ValidationError

from containers.validators import is_ascii_number, validate_ctid, validate_hostname, validate_name_alias
from panel.redirects import local_path
from tests.conftest import BASE_DIR, subprocess_env

LEAVING = ["/\t/evil.example/", "/\n/evil.example/", "/\\evil.example/", "//evil.example/", "/\r/evil.example",
           "https://evil.example/", " /x", "/x\x00", "/\x7f/evil", "/ /evil.example", "/\u2028/x",
           "javascript:alert(1)", "", None]


@pytest.mark.parametrize("value", LEAVING)
def test_next_never_leaves_the_site(value):
    assert local_path(value) is None


@pytest.mark.parametrize("value", ["/", "/containers/101/?tab=backups", "/backups/3/restore/"])
def test_next_keeps_local_paths(value):
    assert local_path(value) == value


def test_login_and_restore_pages_drop_a_tab_smuggled_host(client, owner):
    client.post("/accounts/login/", {"username": "owner", "password": "owner-pass-123"})
    resp = client.get("/accounts/verify/?next=/%09/evil.example/")
    assert resp.status_code == 302 and resp["Location"] == "/"


@pytest.mark.parametrize("value", ["\u00b2", "\u0663\u0660\u0661", "101\n", " 101", "1e3", "0x65", "+101", "-101",
                                   "１０１", True, 1.5, None, "99999999999"])
def test_ctid_is_ascii_digits_only(value):
    with pytest.raises(ValidationError):
        validate_ctid(value)


def test_is_ascii_number():
    assert is_ascii_number("101") and not is_ascii_number("\u00b2") and not is_ascii_number("٣")


@pytest.mark.parametrize("value", ["\u212aelvin.example", "\u017fite.example", "\u0131nside.example", "host\n",
                                   "a" * 65, ".".join(["a" * 20] * 4), "-lead.example", "trail-.example",
                                   "sp ace", "under_score"])
def test_hostname_refuses_lookalikes_newlines_and_overlong(value):
    with pytest.raises(ValidationError):
        validate_hostname(value)


def test_hostname_allows_the_kernels_64():
    validate_hostname(("a" * 31) + "." + ("b" * 32))


@pytest.mark.parametrize("value", ["name\n", "n\u212ame", "x" * 65, "123"])
def test_name_alias_refuses_newline_lookalikes_and_numbers(value):
    with pytest.raises(ValidationError):
        validate_name_alias(value)


def test_unicode_digit_ctid_is_a_404_not_a_500(client, admin_user, host):
    client.force_login(admin_user)
    for url in ["/containers/%C2%B2/", "/api/containers/%C2%B2/", "/containers/%D9%A3/", "/api/containers/%D9%A3/"]:
        assert client.get(url).status_code == 404, url


def test_vzctl_with_a_unicode_digit_ctid_answers_without_a_traceback(admin_user, host):
    res = subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), "vzctl", "status", "\u00b2"],
                         env=subprocess_env(), cwd=BASE_DIR, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in res.stderr
    assert res.returncode != 0


@pytest.mark.parametrize("url", ["/api/tasks/?ctid=%C2%B2", "/api/tasks/?ctid=%D9%A3", "/backups/?ctid=%C2%B2",
                                 "/backups/?storage=%C2%B2", "/backups/?storage=99999999999999999999",
                                 "/api/tasks/?ctid=99999999999999999999", "/api/backups/?ctid=99999999999999999999",
                                 "/api/backups/?ctid=%C2%B2"])
def test_unicode_or_huge_numbers_in_filters_answer_without_a_500(client, admin_user, host, url):
    """The API refuses a filter it cannot apply (400, as its schema says); a page lists nothing."""
    client.force_login(admin_user)
    assert client.get(url).status_code == (400 if url.startswith("/api/") else 200)


@pytest.mark.parametrize("ctid", ["\u0663\u0660\u0661", "\uff11\uff10\uff11", "101\n", " 101", "1_01", "101.0"])
def test_api_and_form_refuse_a_ctid_that_is_not_ascii_digits(client, admin_user, host, template_name, ctid):
    from containers.models import Container
    client.force_login(admin_user)
    api = client.post("/api/containers/", {"ctid": ctid, "ostemplate": template_name, "hostname": "a.example"},
                      content_type="application/json")
    form = client.post("/containers/new/", {"ctid": ctid, "ostemplate": template_name, "hostname": "a.example",
                                            "host": host.pk})
    assert api.status_code == 400 and "ctid" in api.json()
    assert form.status_code in (200, 400) and not Container.objects.exists()


def test_vzrestore_with_a_unicode_digit_answers_without_a_traceback(admin_user, host):
    for argv in (["\u00b2", "78399"], ["1", "\u0663\u0660\u0661"]):
        res = subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), "vzrestore", *argv],
                             env=subprocess_env(), cwd=BASE_DIR, capture_output=True, text=True, timeout=120)
        assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr


@pytest.mark.parametrize("gateway,kept", [("2001:db8::1%eth0", None), ("2001:db8::1%x\nnameserver 6.6.6.6", None),
                                          ("2001:0db8::0001", "2001:db8::1")])
def test_a_pool_gateway_is_refused_with_a_scope_id_not_stripped_of_it(client, admin_user, gateway, kept):
    from network.models import IPPool
    client.force_login(admin_user)
    client.post("/pools/new/", {"name": "v6", "network": "2001:db8::/64", "gateway": gateway})
    assert list(IPPool.objects.values_list("gateway", flat=True)) == ([kept] if kept else [])
