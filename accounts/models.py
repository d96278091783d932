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
