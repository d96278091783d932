"""Logging out closes the consoles opened in that login (their agents see it and end them)."""
from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver

from .services import close_login_sessions


@receiver(user_logged_out, dispatch_uid="consoles.close_at_logout")
def close_consoles_at_logout(sender, request, user, **kwargs):
    key = getattr(getattr(request, "session", None), "session_key", None)
    if key:
        close_login_sessions(key, "the user logged out")
