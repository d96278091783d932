"""Browser consoles (consoles/): tickets, the consumer's refusals, the agent's own checks of what
reaches it through Redis, and the Redis users' reach. The end-to-end tests with a real container
and the real agent are in tests/test_consoles_live.py."""
import asyncio
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.utils import timezone

from accounts.models import AuditEvent
from consoles import relay
from consoles.consumers import REFUSED_CODE
from consoles.models import ConsoleSession
from consoles.services import ConsoleRefused, new_ticket, redeem
from containers.models import Container

from .websocket import Websocket

CT_MINE, CT_THEIRS = 9850, 9851


@pytest.fixture
def cts(host, template_name, acme, other_tenant, plan, people):
    """Rows only (no container runs): the student's running container, and one of another tenant."""
    def make(ctid, tenant, owner):
        return Container.objects.create(ctid=ctid, hostname=f"c{ctid}.test", ostemplate=template_name, host=host,
                                        tenant=tenant, owner=owner, status="running", **plan.limits())
    return make(CT_MINE, acme, people["student"]), make(CT_THEIRS, other_tenant, people["outsider"])


def ticket(user, ct, mode="shell", login="login-1"):
    return new_ticket(user, ct, mode, "192.0.2.7", login)


def refused(ticket_text, user, ctid, mode="shell", login="login-1"):
    with pytest.raises(ConsoleRefused):
        redeem(ticket_text, user, ctid, mode, login)


def test_a_ticket_redeems_once_for_its_user_login_container_and_mode(cts, people):
    mine, _ = cts
    session, text = ticket(people["student"], mine)
    assert session.ticket_hash != text and text not in session.ticket_hash  # only its hash is kept
    assert redeem(text, people["student"], CT_MINE, "shell", "login-1").pk == session.pk
    refused(text, people["student"], CT_MINE)  # replay
    session.refresh_from_db()
    assert session.redeemed_at and session.opened_at is None and session.closed_at is None
    assert AuditEvent.objects.filter(action="console.open", result="ok", object_id=str(CT_MINE),
                                     address="192.0.2.7").count() == 1
    assert AuditEvent.objects.filter(action="console.open", result="refused").count() == 1


@pytest.mark.parametrize("who, ctid, mode, login, why", [
    ("peer", CT_MINE, "shell", "login-1", "another user"),
    ("student", CT_THEIRS, "shell", "login-1", "another container"),
    ("student", CT_MINE, "console", "login-1", "the other mode"),
    ("student", CT_MINE, "shell", "login-2", "another login"),
    ("student", CT_MINE, "shell", None, "another login"),
])
def test_a_ticket_used_otherwise_is_refused_and_spent(cts, people, who, ctid, mode, login, why):
    mine, _ = cts
    session, text = ticket(people["student"], mine)
    refused(text, people[who], ctid, mode, login)
    session.refresh_from_db()
    assert session.closed_at and why in session.close_reason and session.opened_at is None
    refused(text, people["student"], CT_MINE)  # spent: not even its own user may use it now


def test_an_expired_ticket_is_refused(cts, people):
    session, text = ticket(people["student"], cts[0])
    ConsoleSession.objects.filter(pk=session.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    refused(text, people["student"], CT_MINE)
    session.refresh_from_db()
    assert "expired" in session.close_reason and session.opened_at is None


def test_permission_is_checked_again_when_the_ticket_is_used(cts, people, acme):
    from tenancy.models import Membership
    session, text = ticket(people["student"], cts[0])
    Container.objects.filter(ctid=CT_MINE).update(owner=None)  # the student lost the container
    refused(text, people["student"], CT_MINE)
    session.refresh_from_db()
    assert "no longer manage" in session.close_reason
    Membership.objects.filter(user=people["tadmin"]).delete()
    with pytest.raises(PermissionDenied):
        ticket(people["tadmin"], cts[0])


def test_what_ends_an_open_session(cts, people, host):
    """The agent and the consumer both ask end_reason every second; each change ends the session."""
    from consoles.services import end_reason, fresh
    from tenancy.models import Membership
    session = redeemed(people["student"], cts[0])
    assert end_reason(fresh(session.pk)) is None
    people["student"].is_active = False
    people["student"].save()
    assert end_reason(fresh(session.pk)) == "the user was disabled"
    people["student"].is_active = True
    people["student"].save()
    admins = redeemed(people["tadmin"], cts[0])
    assert end_reason(fresh(admins.pk)) is None
    Membership.objects.filter(user=people["tadmin"]).delete()  # the tenant admin leaves the tenant
    assert end_reason(fresh(admins.pk)) == "the user may no longer manage this container"
    Container.objects.filter(pk=cts[0].pk).update(status="stopped")
    assert end_reason(fresh(session.pk)) == "the container stopped"
    Container.objects.filter(pk=cts[0].pk).delete()
    assert end_reason(fresh(session.pk)) == "the container was destroyed"


def test_no_ticket_for_another_tenants_container_nor_a_read_only_user(cts, people, client):
    _, theirs = cts
    for who in ("student", "tadmin", "auditor"):
        with pytest.raises(PermissionDenied):
            ticket(people[who], theirs)
    client.force_login(people["student"])
    assert client.post(f"/containers/{CT_THEIRS}/console/ticket/", {"mode": "shell"}).status_code == 404
    client.force_login(people["auditor"])
    assert client.post(f"/containers/{CT_MINE}/console/ticket/", {"mode": "shell"}).status_code == 403
    assert not ConsoleSession.objects.exists()


def test_the_console_tab_asks_for_a_ticket_it_can_use(cts, people, client):
    client.force_login(people["student"])
    page = client.get(f"/containers/{CT_MINE}/?tab=console")
    assert b'id="console"' in page.content and b"vendor/xterm.js" in page.content
    answer = client.post(f"/containers/{CT_MINE}/console/ticket/", {"mode": "shell"})
    url = answer.json()["url"]
    assert url.startswith(f"/ws/containers/{CT_MINE}/console/shell/?ticket=")
    session = ConsoleSession.objects.get()
    assert (session.user, session.container, session.mode) == (people["student"], cts[0], "shell")
    assert client.post(f"/containers/{CT_MINE}/console/ticket/", {"mode": "bash"}).status_code == 409
    Container.objects.filter(ctid=CT_MINE).update(status="stopped")
    assert "not running" in client.post(f"/containers/{CT_MINE}/console/ticket/", {"mode": "shell"}).json()["error"]


# -- the consumer: refused tickets open nothing ------------------------------------------------
def websocket(client: Client, path: str, origin: bytes = b"http://localhost"):
    """A WebSocket to the panel's ASGI application, with `client`'s login."""
    from panel.asgi import application
    cookie = f"sessionid={client.session.session_key}".encode()
    return Websocket(application, path, headers=[(b"cookie", cookie), (b"origin", origin)])


async def refused_at_the_door(communicator, code: int | None = REFUSED_CODE) -> bool:
    connected, closed_with = await communicator.connect(timeout=10)
    await communicator.disconnect()
    return not connected and (code is None or closed_with == code)


def test_the_consumer_refuses_bad_tickets_and_asks_no_agent(transactional_db, cts, people, redis_conn):
    mine, theirs = cts
    student, outsider = Client(), Client()
    student.force_login(people["student"])
    outsider.force_login(people["outsider"])
    _, own = new_ticket(people["student"], mine, "shell", "", student.session.session_key)
    _, foreign = new_ticket(people["outsider"], theirs, "shell", "", outsider.session.session_key)
    expired_session, expired = new_ticket(people["student"], mine, "shell", "", student.session.session_key)
    ConsoleSession.objects.filter(pk=expired_session.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    attempts = [
        (student, f"/ws/containers/{CT_THEIRS}/console/shell/?ticket={foreign}"),  # another tenant's container
        (student, f"/ws/containers/{CT_MINE}/console/shell/?ticket={foreign}"),    # and with its ticket
        (student, f"/ws/containers/{CT_MINE}/console/shell/?ticket={expired}"),
        (student, f"/ws/containers/{CT_MINE}/console/console/?ticket={own}"),      # the other mode spends it
        (student, f"/ws/containers/{CT_MINE}/console/shell/?ticket={own}"),        # a replay
        (student, f"/ws/containers/{CT_MINE}/console/shell/?ticket=garbage"),
        (student, f"/ws/containers/{CT_MINE}/console/shell/"),
    ]
    for client, path in attempts:
        assert asyncio.run(refused_at_the_door(websocket(client, path))), path
    assert redis_conn.llen(relay.open_list(mine.host_id)) == 0
    assert not ConsoleSession.objects.filter(opened_at__isnull=False).exists()
    assert not ConsoleSession.objects.filter(closed_at=None).exists()  # each ticket tried is spent


def test_a_websocket_from_another_sites_page_is_refused(transactional_db, cts, people, redis_conn):
    client = Client()
    client.force_login(people["student"])
    session, text = new_ticket(people["student"], cts[0], "shell", "", client.session.session_key)
    assert asyncio.run(refused_at_the_door(websocket(
        client, f"/ws/containers/{CT_MINE}/console/shell/?ticket={text}", origin=b"http://evil.example"), code=None))
    session.refresh_from_db()
    assert session.redeemed_at is None  # never reached the consumer


# -- the agent trusts an id, and its own rows --------------------------------------------------
@pytest.fixture
def console_server(host):
    from consoles.agent import ConsoleServer
    from containers.jobs import lxc_for
    return ConsoleServer(host, lxc_for(host))


def redeemed(user, ct, **changes):
    session, text = new_ticket(user, ct, "shell", "", "login-1")
    redeem(text, user, ct.ctid, "shell", "login-1")
    ConsoleSession.objects.filter(pk=session.pk).update(**changes)
    return session


def test_the_agent_opens_nothing_for_forged_requests(cts, people, host, console_server):
    from tests.hosts_fixtures import make_host
    from tests.conftest import RUN_DIR
    mine, _ = cts
    elsewhere = make_host("vzt-console-b", RUN_DIR / "console-b")
    moved = redeemed(people["student"], mine)
    Container.objects.filter(pk=mine.pk).update(host=elsewhere)  # the container is now on another host
    other_host = redeemed(people["student"], Container.objects.get(pk=mine.pk))  # a session of that host
    Container.objects.filter(pk=mine.pk).update(host=host)
    expired = redeemed(people["student"], mine, expires_at=timezone.now() - timedelta(seconds=1))
    used = redeemed(people["student"], mine, opened_at=timezone.now())
    closed = redeemed(people["student"], mine, closed_at=timezone.now(), close_reason="the user logged out")
    unredeemed, _ = new_ticket(people["student"], mine, "shell", "", "login-1")
    forged = [str(other_host.pk).encode(), str(expired.pk).encode(), str(used.pk).encode(),
              str(closed.pk).encode(), str(unredeemed.pk).encode(), b"999999", b"0", b"-1", b"1e3", b"12 ",
              b"\x00\xff", b"x" * 5000, b"",
              str(moved.pk).encode() + b"\n"]
    before = {s.pk: (s.opened_at, s.closed_at) for s in ConsoleSession.objects.all()}
    for raw in forged:
        assert console_server.request(raw) is None, raw
    assert console_server.open_count == 0
    assert {s.pk: (s.opened_at, s.closed_at) for s in ConsoleSession.objects.all()} == before  # nothing touched
    host.refresh_from_db()
    reasons = " | ".join(entry["reason"] for entry in host.queue_refusals)
    for why in ("not a console session of a container on this host", "expired", "opened already", "is closed",
                "never redeemed", "no such console session", "not a session id"):
        assert why in reasons


def test_a_session_claims_once(cts, people, host):
    from consoles.agent import claim
    session = redeemed(people["student"], cts[0])
    first, _ = claim(session.pk, host)
    second, why = claim(session.pk, host)
    assert first is not None and second is None and "opened already" in why


@pytest.mark.parametrize("fields", [
    {b"t": b"d"}, {b"t": b"d", b"d": b"x" * (relay.MAX_DATA + 1)}, {b"t": b"r", b"c": b"0", b"r": b"10"},
    {b"t": b"r", b"c": b"80", b"r": b"99999"}, {b"t": b"r", b"c": b"-80", b"r": b"24"},
    {b"t": b"d", b"d": b"ls", b"x": b"1"}, {b"t": b"z"}, {}, {b"t": b"o", b"extra": b""},
])
def test_garbage_on_a_stream_is_dropped(fields):
    assert relay.parse(fields) is None


def test_messages_read_back_as_they_were_sent():
    for message in (relay.data(b"ls -l\r"), relay.resize(132, 43), relay.close("the user logged out"),
                    relay.Message(relay.OPENED)):
        assert relay.parse(message.fields()) == message
