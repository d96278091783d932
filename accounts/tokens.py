"""API tokens: made by their owner on My account (shown once), stored hashed, revoked by the
owner or an administrator, and all revoked when the owner's password changes or is reset.

A token stands for a logged-in session that has passed the second factor: it can only be
made from such a session, so using it needs no code.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from .audit import record
from .models import ApiToken, User

TOKEN_PREFIX = "vzpt_"
MAX_TOKENS_PER_USER = 20
MAX_EXPIRY_DAYS = 3650


class TokenRefused(Exception):
    """A token request that cannot be granted; the message is for the user."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_token(user: User, name: str, expires_in_days: int | None = None) -> tuple[ApiToken, str]:
    """Make a token for `user`; returns the row and the secret, which is never shown again."""
    name = (name or "").strip()
    if not name or len(name) > 64 or any(not c.isprintable() for c in name):
        raise TokenRefused("Give the token a name of 1-64 printable characters.")
    if expires_in_days is not None and not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
        raise TokenRefused(f"A token expires after 1 to {MAX_EXPIRY_DAYS} days, or never.")
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()  # one creator at a time per user
        if ApiToken.objects.filter(user=user).count() >= MAX_TOKENS_PER_USER:
            raise TokenRefused(f"You have {MAX_TOKENS_PER_USER} tokens already; revoke one first.")
        if ApiToken.objects.filter(user=user, name=name).exists():
            raise TokenRefused(f"You have a token named {name!r} already.")
        key = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = ApiToken.objects.create(
            user=user, name=name, prefix=key[:len(TOKEN_PREFIX) + 6], key_hash=hash_key(key),
            expires_at=timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None)
    record(user, "token.create", detail=f"{row.name} ({row.prefix}…)"
           + (f", expires {row.expires_at:%Y-%m-%d}" if row.expires_at else ""))
    return row, key


def revoke_token(by: User, token: ApiToken) -> None:
    """Revoke one token: its owner or an administrator may."""
    from .permissions import manages_users
    if token.user_id != by.pk and not manages_users(by):
        raise TokenRefused("You can only revoke your own tokens.")
    token.delete()
    record(by, "token.revoke", detail=f"{token.user.username}: {token.name} ({token.prefix}…)")


def revoke_all(user: User, reason: str) -> int:
    """Revoke every token of `user` (password changed or reset, account disabled)."""
    count, _ = ApiToken.objects.filter(user=user).delete()
    if count:
        record(user, "token.revoke", detail=f"all {count} token(s): {reason}")
    return count


def user_for_key(key: str) -> tuple[User, ApiToken] | None:
    """The active user a presented key belongs to, or None (unknown, expired, or user disabled)."""
    if not key.startswith(TOKEN_PREFIX) or len(key) > 128:
        return None
    row = ApiToken.objects.select_related("user").filter(key_hash=hash_key(key)).first()
    if row is None or row.expired or not row.user.is_active:
        return None
    now = timezone.now()
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
        ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)  # at most one write a minute
    return row.user, row
