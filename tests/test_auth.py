"""Logins and their audit, lock-outs, TOTP two-factor, password change and reset by real email."""
from __future__ import annotations

import re
import socket
import time
from email import message_from_bytes, policy

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import AuditEvent

LOGIN = "/accounts/login/"
VERIFY = "/accounts/verify/"


def login(client, username, password, **extra):
    return client.post(LOGIN, {"username": username, "password": password}, **extra)


def events(**filters):
    return list(AuditEvent.objects.filter(**filters).order_by("id"))


def results(username, action="login"):
    return [e.result for e in events(action=action, username=username)]


def code_at(device, drift: int) -> str:
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, drift):0{device.digits}d}"


def next_code(device) -> str:
    """A code the device accepts now: the current one, or a later step if the current one was used."""
    device.refresh_from_db()
    now_t = int((time.time() - device.t0) // device.step)
    return code_at(device, max(0, device.last_t + 1 - now_t))


def wrong_code(device) -> str:
    valid = {code_at(device, d) for d in range(-3, 5)}
    return next(c for c in ("000000", "111111", "123456", "999999") if c not in valid)


def wait_for_throttle(device):
    device.refresh_from_db()
    while not device.verify_is_allowed()[0]:
        time.sleep(0.1)
        device.refresh_from_db()


# -- login audit and rate limiting ----------------------------------------------
def test_successful_login_and_logout_are_audited(client, owner):
    resp = login(client, "owner", "owner-pass-123")
    assert resp.status_code == 302 and resp["Location"] == "/"
    (event,) = events(action="login")
    assert (event.user, event.username, event.result, event.address) == (owner, "owner", "ok", "127.0.0.1")

    client.post("/accounts/logout/")
    (event,) = events(action="logout")
    assert (event.user, event.result, event.address) == (owner, "ok", "127.0.0.1")
    assert client.get("/").status_code == 302


def test_failed_login_is_audited_also_for_unknown_users(client, owner):
    resp = login(client, "owner", "wrong")
    assert resp.status_code == 400 and "Wrong username or password" in resp.content.decode()
    resp = login(client, "nobody-here", "whatever")
    assert resp.status_code == 400
    known, unknown = events(action="login")
    assert (known.user, known.username, known.result, known.address) == (owner, "owner", "failed", "127.0.0.1")
    assert (unknown.user, unknown.username, unknown.result) == (None, "nobody-here", "failed")


def test_lockout_after_five_failures_per_username_and_address(client, owner, outsider):
    for i in range(4):
        assert login(client, "owner", f"wrong-{i}").status_code == 400
    resp = login(client, "owner", "wrong-4")  # the fifth failure locks the pair out
    assert resp.status_code == 429
    assert results("owner") == ["failed"] * 5 + ["locked"]
    (locked,) = events(result="locked")
    assert "locked out for 15 minutes" in locked.detail and locked.address == "127.0.0.1"

    # The right password does not help now.
    resp = login(client, "owner", "owner-pass-123")
    assert resp.status_code == 429
    page = resp.content.decode()
    assert "Too many failed logins" in page and "Try again in 15 minutes" in page
    assert "_auth_user_id" not in client.session
    assert client.get("/").status_code == 302
    assert results("owner") == ["failed"] * 5 + ["locked", "refused"]
    assert len(events(result="failed")) == 5 and len(events(result="locked")) == 1

    # Another user from the same client is not locked out...
    resp = login(client, "outsider", "outsider-pass-123")
    assert resp.status_code == 302 and client.get("/").status_code == 200
    client.post("/accounts/logout/")
    # ...nor the same user from another address.
    resp = login(client, "owner", "owner-pass-123", REMOTE_ADDR="10.9.8.7")
    assert resp.status_code == 302
    ok = events(action="login", result="ok", username="owner")
    assert [e.address for e in ok] == ["10.9.8.7"]


# -- password reset by email, through a real SMTP server --------------------------


def _wait_messages(handler, n, timeout=10):
    deadline = time.monotonic() + timeout
    while len(handler.messages) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return handler.messages


def test_password_reset_by_email(client, owner, smtp_server):
    page = client.get(LOGIN).content.decode()
    assert 'href="/accounts/password-reset/"' in page and "Forgot your password?" in page

    resp = client.post("/accounts/password-reset/", {"email": "owner@example.test"})
    assert resp.status_code == 302 and resp["Location"] == "/accounts/password-reset/sent/"
    (envelope,) = _wait_messages(smtp_server, 1)
    assert envelope.rcpt_tos == ["owner@example.test"]
    msg = message_from_bytes(envelope.original_content, policy=policy.default)
    assert "reset your password" in msg["Subject"]
    assert msg.get_content_type() == "text/plain"
    body = msg.get_content()
    links = re.findall(r"http://testserver/accounts/password-reset/[^/\s]+/[^/\s]+/", body)
    assert len(links) == 1, body
    (event,) = events(action="password.reset.request")
    assert (event.user, event.result) == (owner, "ok")

    path = links[0].removeprefix("http://testserver")
    resp = client.get(path)  # Django swaps the token for a session one
    assert resp.status_code == 302
    form_url = resp["Location"]
    assert "set-password" in form_url
    resp = client.get(form_url)
    assert resp.status_code == 200 and "Choose a new password" in resp.content.decode()
    resp = client.post(form_url, {"new_password1": "Fresh-Start-4711", "new_password2": "Fresh-Start-4711"})
    assert resp.status_code == 302 and resp["Location"] == "/accounts/password-reset/done/"
    assert [e.result for e in events(action="password.reset.done", user=owner)] == ["ok"]

    # The old password is gone, the new one works, the link does not work twice.
    assert login(client, "owner", "owner-pass-123").status_code == 400
    assert login(client, "owner", "Fresh-Start-4711").status_code == 302
    client.post("/accounts/logout/")
    resp = client.get(path)
    assert resp.status_code == 200 and "not valid" in resp.content.decode()


def test_password_reset_for_unknown_email_looks_the_same_and_sends_nothing(client, owner, smtp_server):
    known = client.post("/accounts/password-reset/", {"email": "owner@example.test"})
    unknown = client.post("/accounts/password-reset/", {"email": "stranger@example.test"})
    assert (known.status_code, known["Location"]) == (unknown.status_code, unknown["Location"])
    def page(url):
        return re.sub(r'(csrfmiddlewaretoken" value=|X-CSRFToken": )"\w+"', "", client.get(url).content.decode())
    assert page(unknown["Location"]) == page(known["Location"])
    _wait_messages(smtp_server, 1)
    time.sleep(0.3)  # anything for the stranger would have arrived by now
    assert [m.rcpt_tos for m in smtp_server.messages] == [["owner@example.test"]]
    assert [e.result for e in events(action="password.reset.request")] == ["ok", "failed"]


def test_password_setup_link_for_welcome_emails(client, owner, settings):
    from accounts.views import password_setup_link
    settings.PANEL_URL = "https://panel.example.test"
    owner.set_unusable_password()
    owner.save()
    link = password_setup_link(owner)
    assert re.fullmatch(r"https://panel\.example\.test/accounts/password-set/[^/]+/[^/]+/", link)
    resp = client.get(link.removeprefix("https://panel.example.test"))
    form_url = resp["Location"]
    assert "Choose your password" in client.get(form_url).content.decode()
    resp = client.post(form_url, {"new_password1": "First-Light-8080", "new_password2": "First-Light-8080"})
    assert resp.status_code == 302
    assert login(client, "owner", "First-Light-8080").status_code == 302
    assert events(action="password.set", user=owner)


# -- password change --------------------------------------------------------------
def test_password_change(client, owner):
    login(client, "owner", "owner-pass-123")
    resp = client.post("/accounts/password/", {"old_password": "wrong", "new_password1": "Brand-New-9981",
                                                "new_password2": "Brand-New-9981"})
    assert resp.status_code == 400 and not events(action="password.change")
    assert "Brand-New-9981" not in resp.content.decode()
    resp = client.post("/accounts/password/", {"old_password": "owner-pass-123", "new_password1": "Brand-New-9981",
                                                "new_password2": "Brand-New-9981"})
    assert resp.status_code == 302 and resp["Location"] == "/accounts/"
    assert client.get("/").status_code == 200  # still logged in
    (event,) = events(action="password.change")
    assert (event.user, event.result, event.address) == (owner, "ok", "127.0.0.1")
    client.post("/accounts/logout/")
    assert login(client, "owner", "owner-pass-123").status_code == 400
    assert login(client, "owner", "Brand-New-9981").status_code == 302


# -- my account and TOTP ------------------------------------------------------------
def test_account_page(client, owner):
    from tenancy.models import Membership, Tenant
    tenant = Tenant.objects.create(slug="acme", name="Acme Corp")
    Membership.objects.create(tenant=tenant, user=owner, role="admin")
    login(client, "owner", "owner-pass-123")
    page = client.get("/accounts/").content.decode()
    for text in ["owner", "owner@example.test", "Acme Corp", "tenant admin", "Off", "/accounts/2fa/setup/",
                 "/accounts/password/"]:
        assert text in page, text


def enable_2fa(client, user) -> TOTPDevice:
    resp = client.get("/accounts/2fa/setup/")
    assert resp.status_code == 200
    page = resp.content.decode()
    device = TOTPDevice.objects.get(user=user, confirmed=False, name="default")
    assert "<svg" in page
    from base64 import b32encode
    assert b32encode(device.bin_key).decode() in page
    assert client.get("/accounts/2fa/setup/").status_code == 200  # a reload keeps the same secret
    assert TOTPDevice.objects.filter(user=user).count() == 1

    resp = client.post("/accounts/2fa/setup/", {"token": wrong_code(device)})
    assert resp.status_code == 400 and "not valid" in resp.content.decode()
    device.refresh_from_db()
    assert not device.confirmed
    wait_for_throttle(device)
    resp = client.post("/accounts/2fa/setup/", {"token": next_code(device)})
    assert resp.status_code == 302 and resp["Location"] == "/accounts/"
    device.refresh_from_db()
    assert device.confirmed
    assert [e.result for e in events(action="2fa.enable", user=user)] == ["failed", "ok"]
    assert client.get("/").status_code == 200  # this session is verified already
    return device


def test_totp_login(client, owner):
    login(client, "owner", "owner-pass-123")
    device = enable_2fa(client, owner)
    assert "On" in client.get("/accounts/").content.decode()
    client.post("/accounts/logout/")

    resp = login(client, "owner", "owner-pass-123")
    assert resp.status_code == 302
    for url in ["/", "/containers/", "/tasks/", "/accounts/", "/accounts/password/", "/accounts/2fa/disable/"]:
        resp = client.get(url)
        assert resp.status_code == 302 and resp["Location"] == f"{VERIFY}?next={url}", url
    assert client.get(f"{VERIFY}?next=/tasks/").status_code == 200

    resp = client.post(VERIFY, {"token": wrong_code(device), "next": "/tasks/"})
    assert resp.status_code == 400 and "not valid" in resp.content.decode()
    assert client.get("/").status_code == 302
    (failed,) = events(action="2fa.verify")
    assert (failed.user, failed.result, failed.address) == (owner, "failed", "127.0.0.1")

    wait_for_throttle(device)  # django-otp throttles after a wrong code (1 s, then 2, 4, ...)
    resp = client.post(VERIFY, {"token": next_code(device), "next": "/tasks/"})
    assert resp.status_code == 302 and resp["Location"] == "/tasks/"
    assert client.get("/").status_code == 200
    assert [e.result for e in events(action="2fa.verify")] == ["failed", "ok"]


def test_totp_code_cannot_be_replayed_and_next_must_be_local(client, owner):
    login(client, "owner", "owner-pass-123")
    device = enable_2fa(client, owner)
    client.post("/accounts/logout/")
    login(client, "owner", "owner-pass-123")
    # The code that turned two-factor on was used already.
    device.refresh_from_db()
    replay = code_at(device, device.last_t - int((time.time() - device.t0) // device.step))
    resp = client.post(VERIFY, {"token": replay})
    assert resp.status_code == 400 and client.get("/").status_code == 302
    wait_for_throttle(device)
    resp = client.post(VERIFY, {"token": next_code(device), "next": "//evil.example/x"})
    assert resp.status_code == 302 and resp["Location"] == "/"


def test_totp_disable_requires_a_valid_code(client, owner):
    login(client, "owner", "owner-pass-123")
    device = enable_2fa(client, owner)
    assert client.get("/accounts/2fa/disable/").status_code == 200

    resp = client.post("/accounts/2fa/disable/", {"token": wrong_code(device)})
    assert resp.status_code == 400 and "not valid" in resp.content.decode()
    resp = client.post("/accounts/2fa/disable/", {"token": "", "password": "not-my-password"})
    assert "Wrong password" in resp.content.decode()
    resp = client.post("/accounts/2fa/disable/", {})
    assert "Enter a code" in resp.content.decode()
    assert TOTPDevice.objects.filter(user=owner, confirmed=True).exists()
    assert [e.result for e in events(action="2fa.disable")] == ["failed"] * 3

    wait_for_throttle(device)
    resp = client.post("/accounts/2fa/disable/", {"token": next_code(device)})
    assert resp.status_code == 302 and resp["Location"] == "/accounts/"
    assert not TOTPDevice.objects.filter(user=owner).exists()
    assert [e.result for e in events(action="2fa.disable")] == ["failed"] * 3 + ["ok"]

    # Without a device, logging in needs the password only again.
    client.post("/accounts/logout/")
    login(client, "owner", "owner-pass-123")
    assert client.get("/").status_code == 200


def test_totp_disable_with_password(client, owner):
    login(client, "owner", "owner-pass-123")
    enable_2fa(client, owner)
    resp = client.post("/accounts/2fa/disable/", {"password": "owner-pass-123"})
    assert resp.status_code == 302
    assert not TOTPDevice.objects.filter(user=owner).exists()
    assert events(action="2fa.disable", result="ok")[0].detail == "confirmed with password"

