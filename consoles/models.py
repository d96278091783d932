"""A console session: one browser terminal on one container, from its ticket to its close."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class ConsoleMode(models.TextChoices):
    SHELL = "shell", "shell (lxc-attach)"
    CONSOLE = "console", "console (lxc-console)"


class ConsoleSession(models.Model):
    """Made by the web when a user who may manage the container opens its Console tab. The browser
    gets a one-time ticket (only its SHA-256 is kept here) to open the WebSocket with; the consumer
    redeems it once, then the container's host agent claims the row (opened_at) and runs the
    terminal. Whoever ends the session first sets closed_at and the reason (a conditional UPDATE,
    so it is recorded once)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    username = models.CharField(max_length=150)
    container = models.ForeignKey("containers.Container", null=True, on_delete=models.SET_NULL, related_name="+")
    ctid = models.PositiveIntegerField(db_column="ct_id")  # "ctid" is a system column in PostgreSQL
    # The host the container was on when the ticket was made: only that host's agent opens it.
    host = models.ForeignKey("hosts.Host", null=True, on_delete=models.SET_NULL, related_name="+")
    mode = models.CharField(max_length=8, choices=ConsoleMode.choices)
    ticket_hash = models.CharField(max_length=64, unique=True)
    # SHA-256 of the Django session the ticket was made in: logging out of it closes the console.
    login_session_hash = models.CharField(max_length=64, blank=True, db_index=True)
    client_address = models.CharField(max_length=64, blank=True)
    idle_seconds = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()  # the ticket's: redeemed and opened before it, or never
    redeemed_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True, db_index=True)
    close_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"console #{self.pk} of CT {self.ctid} ({self.mode}) for {self.username}"
