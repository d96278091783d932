"""The second factor and API tokens, attacked: a password alone reaches nothing but the code page,
on the web and the API alike; tokens are shown once, stored hashed, and die with the password."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken, User
from accounts.tokens import TOKEN_PREFIX, create_token, hash_key
from containers.models import Container
from tasks.models import Task
from tests.test_auth import enable_2fa, login, next_code, wait_for_throttle


@pytest.fixture
def ct(host, owner, template_name):
    return Container.objects.create(ctid=9301, hostname="mine.example", ostemplate=template_name, host=host,
                                    owner=owner, status="stopped")


def password_only_session(client, user, password):
    """A client logged in with the password of a user who has two-factor on, before the code."""
    login(client, user.username, password)
    device = enable_2fa(client, user)
    client.post("/accounts/logout/")
    assert login(client, user.username, password).status_code == 302
    return device


def test_api_refuses_a_session_that_has_not_passed_the_code(client, owner, ct):
    password_only_session(client, owner, "owner-pass-123")
    assert client.get("/containers/")["Location"].startswith("/accounts/verify/")
    for url in ["/api/containers/", "/api/containers/9301/", "/api/tasks/", "/api/schema/", "/api/hosts/"]:
        resp = client.get(url)
        assert resp.status_code == 403, url
        assert "two-factor" in resp.json()["detail"]
    for verb in ("start", "mount", "umount"):  # vzctl mount/umount's routes are the same kind of door
        resp = client.post(f"/api/containers/9301/{verb}/", content_type="application/json")
        assert resp.status_code == 403, verb
    assert not Task.objects.exists()
    # Nor can the half-logged-in session make itself a token that would skip the code.
    resp = client.post("/accounts/tokens/", {"name": "sneaky", "expires_in_days": ""})
    assert resp.status_code == 302 and resp["Location"].startswith("/accounts/verify/")
    assert not ApiToken.objects.exists()


def test_api_serves_the_session_once_the_code_is_entered(client, owner, ct):
    device = password_only_session(client, owner, "owner-pass-123")
    wait_for_throttle(device)
    client.post("/accounts/verify/", {"token": next_code(device)})
    assert client.get("/api/containers/9301/").status_code == 200


def test_token_is_shown_once_stored_hashed_and_works(client, owner, ct):
    login(client, "owner", "owner-pass-123")
    resp = client.post("/accounts/tokens/", {"name": "nightly script", "expires_in_days": "30"})
    assert resp.status_code == 200 and resp["Cache-Control"].startswith("max-age=0")
    page = resp.content.decode()
    key = page.split("data-token>")[1].split("<")[0]
    assert key.startswith(TOKEN_PREFIX)
    row = ApiToken.objects.get(user=owner)
    assert row.key_hash == hash_key(key) and key not in str(ApiToken.objects.values_list())
    assert key not in client.get("/accounts/").content.decode()  # never shown again
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get("/api/containers/9301/").status_code == 200
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api.get("/api/containers/9301/").status_code == 200
    row.refresh_from_db()
    assert row.last_used_at is not None


@pytest.mark.parametrize("header", ["Token vzpt_nonsense", "Token", "Token a b", "Token \u00e9\u00e9",
                                    f"Token {TOKEN_PREFIX}{'x' * 500}"])
def test_bad_tokens_are_refused(db, header):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=header)
    assert api.get("/api/containers/").status_code in (401, 403)


def test_expired_and_revoked_tokens_are_refused(owner, outsider, ct):
    api = APIClient()
    row, key = create_token(owner, "old", 1)
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get("/api/containers/").status_code == 200
    ApiToken.objects.filter(pk=row.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert api.get("/api/containers/").status_code == 401
    row2, key2 = create_token(owner, "second")
    api.credentials(HTTP_AUTHORIZATION=f"Token {key2}")
    User.objects.filter(pk=owner.pk).update(is_active=False)
    assert api.get("/api/containers/").status_code == 401


def test_tokens_die_with_the_password_however_it_changes(client, owner):
    create_token(owner, "a")
    login(client, "owner", "owner-pass-123")
    resp = client.post("/accounts/password/", {"old_password": "owner-pass-123", "new_password1": "Zebra-Lantern-77",
                                               "new_password2": "Zebra-Lantern-77"})
    assert resp.status_code == 302
    assert not ApiToken.objects.filter(user=owner).exists()
    # A reset (or an administrator, or `changepassword`): any save of a new password.
    create_token(owner, "b")
    owner.refresh_from_db()
    owner.set_password("Another-Secret-88")
    owner.save()
    assert not ApiToken.objects.filter(user=owner).exists()
    # Saving other fields, or logging in (which may re-hash the same password), keeps them.
    create_token(owner, "c")
    owner.refresh_from_db()
    owner.first_name = "Olga"
    owner.save()
    assert owner.check_password("Another-Secret-88")
    assert ApiToken.objects.filter(user=owner).count() == 1


def test_only_the_owner_or_an_admin_revokes_a_token(client, owner, outsider, admin_user):
    row, _ = create_token(owner, "mine")
    login(client, "outsider", "outsider-pass-123")
    assert client.post(f"/accounts/tokens/{row.pk}/revoke/").status_code == 404
    assert ApiToken.objects.filter(pk=row.pk).exists()
    client.force_login(admin_user)
    page = client.get("/users/").content.decode()
    assert 'data-token-name="mine"' in page and row.prefix in page
    assert client.post(f"/accounts/tokens/{row.pk}/revoke/", {"next": "/users/"})["Location"] == "/users/"
    assert not ApiToken.objects.filter(pk=row.pk).exists()


@pytest.mark.parametrize("name,days", [("", ""), ("x" * 65, ""), ("tab\there", ""), ("ok", "7"), ("ok", "-1")])
def test_token_form_refuses_bad_input_and_makes_nothing(client, owner, name, days):
    login(client, "owner", "owner-pass-123")
    resp = client.post("/accounts/tokens/", {"name": name, "expires_in_days": days})
    assert resp.status_code == 400
    assert not ApiToken.objects.exists()
