"""Users with a global role, and the audit log of everything they do."""
from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone


class GlobalRole(models.TextChoices):
    NONE = "", "none"
    ADMIN = "admin", "admin"            # everything
    OPERATOR = "operator", "operator"   # all containers and hosts, no user management
    AUDITOR = "auditor", "auditor"      # reads everything, changes nothing


class User(AbstractUser):
    """A panel user. Superusers are admins whatever their role says."""

    role = models.CharField(max_length=16, choices=GlobalRole.choices, default=GlobalRole.NONE, blank=True)

    @property
    def global_role(self) -> str:
        return GlobalRole.ADMIN if self.is_superuser else self.role

    def check_password(self, raw_password) -> bool:
        # Django re-hashes a correct password with newer parameters here and saves it: the same
        # password, so the "password changed" signal must not revoke API tokens for it.
        self._rehashing = True
        try:
            return super().check_password(raw_password)
        finally:
            self._rehashing = False


class AuditEvent(models.Model):
    """One action: who, what, on which object, when, from where, and how it went."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    username = models.CharField(max_length=150, blank=True)  # kept when the user is deleted
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=32, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    tenant = models.ForeignKey("tenancy.Tenant", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="audit_events")
    address = models.CharField(max_length=64, blank=True)
    result = models.CharField(max_length=16, db_index=True)  # ok, refused, failed
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.username or '-'} {self.action} {self.result}"


class ApiToken(models.Model):
    """A named API token of one user. Only a SHA-256 of the secret is stored: the token is shown
    once, when it is made. All of a user's tokens go when their password changes or is reset."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=64)
    prefix = models.CharField(max_length=16, help_text="the token's first characters, to tell tokens apart")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["user__username", "name", "pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()
