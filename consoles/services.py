"""Console sessions: tickets, their one redemption, the rules that end a session, and closing.

Called by the web (the Console tab's ticket view, the WebSocket consumer, logout) and by the host
agent (consoles/agent.py), which decide with the same `end_reason`. No host commands here.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from accounts.audit import record
from containers.choices import ContainerStatus

from .models import ConsoleMode, ConsoleSession

REFUSED = "This console ticket is not valid (used, expired or not yours): open the Console tab again."


class ConsoleRefused(Exception):
    """A console that may not be opened; the message is for the user."""


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_ticket(user, ct, mode: str, address: str = "", login_session_key: str | None = "") -> tuple[ConsoleSession, str]:
    """A session row and its one-time ticket (returned once, stored hashed), valid for
    PANEL_CONSOLE_TICKET_SECONDS. The caller looked the container up for managing; asked again here."""
    from accounts.permissions import manageable_containers
    if not manageable_containers(user).filter(pk=ct.pk).exists():
        raise PermissionDenied(f"You may not open a console on container {ct.ctid}.")
    if mode not in ConsoleMode.values:
        raise ConsoleRefused(f"No console mode {str(mode)[:20]!r}: shell or console.")
    if ct.status != ContainerStatus.RUNNING:
        raise ConsoleRefused(f"Container {ct.ctid} is not running: start it to open a console.")
    ticket = secrets.token_urlsafe(32)
    now = timezone.now()
    session = ConsoleSession.objects.create(
        user=user, username=user.get_username(), container=ct, ctid=ct.ctid, host_id=ct.host_id, mode=mode,
        ticket_hash=digest(ticket), login_session_hash=digest(login_session_key) if login_session_key else "",
        client_address=address[:64], idle_seconds=settings.CONSOLE_IDLE_SECONDS, created_at=now,
        expires_at=now + timedelta(seconds=settings.CONSOLE_TICKET_SECONDS))
    return session, ticket


def redeem(ticket: str, user, ctid: int, mode: str, login_session_key: str | None, address: str = "") -> ConsoleSession:
    """The session of `ticket`, redeemed now and only now: it must be unexpired, unused, made for
    this user in this login, for this container and mode, and the user must still be allowed.
    A ticket is spent by any attempt to use it, a refused one too. Refusals say only REFUSED."""
    now = timezone.now()
    hashed = digest(ticket or "")
    if not ConsoleSession.objects.filter(ticket_hash=hashed, redeemed_at=None, closed_at=None).update(redeemed_at=now):
        record(user, "console.open", None, "refused", f"CT {ctid}: unknown or used ticket", address=address)
        raise ConsoleRefused(REFUSED)
    session = ConsoleSession.objects.select_related("user", "container").get(ticket_hash=hashed)
    problem = None
    if session.expires_at <= now:
        problem = "ticket expired"
    elif session.user_id != getattr(user, "pk", None) or not getattr(user, "is_authenticated", False):
        problem = "ticket made for another user"
    elif not login_session_key or session.login_session_hash != digest(login_session_key):
        problem = "ticket made in another login"
    elif session.ctid != ctid or session.container_id is None:
        problem = "ticket made for another container"
    elif session.mode != mode:
        problem = "ticket made for the other mode"
    else:
        problem = end_reason(session)
    if problem:
        close_session(session, f"refused: {problem}", audit=False)
        record(user, "console.open", session.container, "refused", f"CT {ctid} ({mode}): {problem}", address=address)
        raise ConsoleRefused(REFUSED)
    record(user, "console.open", session.container, "ok", f"{session.mode} session #{session.pk}",
           address=session.client_address)
    return session


def end_reason(session: ConsoleSession) -> str | None:
    """Why this session must end now (None: it may go on), from the database: closed, the user
    disabled or no longer allowed to manage the container (left its tenant, lost it), the
    container destroyed, moved to another host or stopped."""
    from accounts.permissions import manageable_containers
    if session.closed_at:
        return session.close_reason or "closed"
    user, ct = session.user, session.container
    if user is None or not user.is_active:
        return "the user was disabled"
    if ct is None:
        return "the container was destroyed"
    if not manageable_containers(user).filter(pk=ct.pk).exists():
        return "the user may no longer manage this container"
    if ct.host_id != session.host_id:
        return "the container moved to another host"
    if ct.status == ContainerStatus.STOPPED:
        return "the container stopped"
    return None


def fresh(session_id: int) -> ConsoleSession | None:
    return ConsoleSession.objects.select_related("user", "container").filter(pk=session_id).first()


def close_session(session: ConsoleSession, reason: str, audit: bool = True) -> bool:
    """Close it (once: the first caller wins and records it in the audit log). True if this call did."""
    now = timezone.now()
    if not ConsoleSession.objects.filter(pk=session.pk, closed_at=None).update(closed_at=now, close_reason=reason[:200]):
        return False
    session.closed_at, session.close_reason = now, reason[:200]
    if audit:
        opened = f"opened {timezone.localtime(session.opened_at):%Y-%m-%d %H:%M:%S}" if session.opened_at else "never opened"
        record(session.user, "console.close", session.container, "ok",
               f"{session.mode} session #{session.pk} from {session.client_address or '-'}, {opened}: {reason}",
               address=session.client_address, username=session.username)
    return True


def close_login_sessions(login_session_key: str, reason: str) -> int:
    """Close every open console made in this login (at logout)."""
    open_ones = ConsoleSession.objects.select_related("user", "container").filter(
        login_session_hash=digest(login_session_key), closed_at=None)
    return sum(close_session(session, reason) for session in open_ones)
