"""Logins in the audit log: every attempt, its result, lock-outs and logouts.

Connected in AccountsConfig.ready(). Each login attempt gives one event:
"ok", "failed" (wrong credentials), or "refused" (not checked because the
username+address pair is locked out). The failure that locks the pair out is
followed by one "locked" event saying for how long.
"""
from __future__ import annotations

from axes.signals import user_locked_out
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from .audit import record
from .middleware import client_address


def _address(request):
    return client_address(request) if request is not None else None


def _username(credentials) -> str:
    credentials = credentials or {}
    field = get_user_model().USERNAME_FIELD
    return str(credentials.get(field) or credentials.get("username") or "")[:150]


def _user_named(username: str):
    if not username:
        return None
    return get_user_model()._default_manager.filter(**{get_user_model().USERNAME_FIELD: username}).first()


def _refused_by_lockout(request, credentials=None) -> bool:
    """True when axes refused this attempt because the pair was locked out before it.

    With AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT off, the axes backend flags such a
    request and the axes handler counts nothing. With it on (the default), the refused
    attempt is counted too and restarts the cool-off: the count is then above the limit.
    """
    if request is None or not getattr(request, "axes_locked_out", False):
        return False
    failures = getattr(request, "axes_failures_since_start", None)
    if failures is None:
        return True
    from axes.helpers import get_failure_limit
    return failures > get_failure_limit(request, credentials)


def lockout_minutes(request=None) -> int:
    from axes.helpers import get_cool_off
    cool_off = get_cool_off(request)
    return round(cool_off.total_seconds() / 60) if cool_off else 0


@receiver(user_logged_in, dispatch_uid="accounts.audit.login")
def audit_login(sender, request, user, **kwargs):
    record(user, "login", address=_address(request))


def _record_failure(request, credentials):
    """The "failed" event of this attempt, once (the lock-out receiver may need it first)."""
    if request is not None:
        if getattr(request, "_audit_login_failure_recorded", False):
            return
        request._audit_login_failure_recorded = True
    username = _username(credentials)
    record(_user_named(username), "login", result="failed", detail="wrong username or password",
           address=_address(request), username=username)


@receiver(user_login_failed, dispatch_uid="accounts.audit.login_failed")
def audit_login_failed(sender, credentials=None, request=None, **kwargs):
    if _refused_by_lockout(request, credentials):
        return  # recorded by audit_locked_out as "refused"
    _record_failure(request, credentials)


@receiver(user_locked_out, dispatch_uid="accounts.audit.locked_out")
def audit_locked_out(sender, request=None, username=None, ip_address=None, **kwargs):
    username = str(username or "")[:150]
    minutes = lockout_minutes(request)
    how_long = f"for {minutes} minute{'s' if minutes != 1 else ''}" if minutes else "until an admin unlocks it"
    address = ip_address or _address(request)
    credentials = getattr(request, "axes_credentials", None) or {"username": username}
    if _refused_by_lockout(request, credentials):
        if request is not None:
            request._audit_login_failure_recorded = True
        record(_user_named(username), "login", result="refused",
               detail=f"login refused: {username or '?'} from {address} is locked out {how_long}",
               address=address, username=username)
    else:
        # axes sends this from its own failure receiver, which may run before ours:
        # the failure that reached the limit goes first in the log.
        _record_failure(request, credentials)
        failures = getattr(request, "axes_failures_since_start", None)
        after = f" after {failures} failed logins" if failures else ""
        record(_user_named(username), "login", result="locked",
               detail=f"{username or '?'} from {address} locked out {how_long}{after}",
               address=address, username=username)


@receiver(user_logged_out, dispatch_uid="accounts.audit.logout")
def audit_logout(sender, request=None, user=None, **kwargs):
    if user is not None and getattr(user, "pk", None):
        record(user, "logout", address=_address(request))


@receiver(pre_save, sender=get_user_model(), dispatch_uid="accounts.tokens.password_watch")
def _note_password_change(sender, instance, raw=False, **kwargs):
    """Whatever changes a password (My account, a reset link, an administrator, `changepassword`)
    passes through here: remember it, so the tokens go once the new password is saved."""
    if raw or instance.pk is None or getattr(instance, "_rehashing", False):
        return
    stored = sender._default_manager.filter(pk=instance.pk).values_list("password", flat=True).first()
    instance._password_changed = stored is not None and stored != instance.password


@receiver(post_save, sender=get_user_model(), dispatch_uid="accounts.tokens.password_revoke")
def _revoke_tokens_after_password_change(sender, instance, created=False, raw=False, **kwargs):
    if not raw and not created and getattr(instance, "_password_changed", False):
        instance._password_changed = False
        from .tokens import revoke_all
        revoke_all(instance, "password changed")
