"""Tenants (an organisation, a class's school, a customer), their members, quotas and plans."""
from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models

from panel.validators import validate_display_name, validate_name, validate_slug

slug_validator = validate_slug  # the name older code imports


class Plan(models.Model):
    """Named limits, like OpenVZ's config samples (vps.basic): what a container gets."""

    name = models.CharField(max_length=64, unique=True, validators=[validate_name])
    description = models.CharField(max_length=200, blank=True)
    ram_mb = models.PositiveIntegerField("RAM (MiB)", validators=[MinValueValidator(16)])
    swap_mb = models.PositiveIntegerField("swap (MiB)", default=0)
    cpus = models.PositiveSmallIntegerField("CPUs", default=1, validators=[MinValueValidator(1)])
    disk_mb = models.PositiveIntegerField("disk (MiB)", validators=[MinValueValidator(300)],
                                          help_text="At least 300 MiB (the smallest XFS disk).")
    # Empty: every tenant may pick it.
    tenants = models.ManyToManyField("Tenant", blank=True, related_name="plans")

    class Meta:
        ordering = ["ram_mb", "name"]

    def __str__(self) -> str:
        return self.name

    def limits(self) -> dict:
        return {"ram_mb": self.ram_mb, "swap_mb": self.swap_mb, "cpus": self.cpus, "disk_mb": self.disk_mb}


# Quota fields on Tenant, in the order they are shown; None means unlimited.
QUOTA_FIELDS = {
    "max_containers": ("containers", ""),
    "max_ram_mb": ("RAM", "MiB"),
    "max_swap_mb": ("swap", "MiB"),
    "max_cpus": ("CPUs", ""),
    "max_disk_mb": ("disk", "MiB"),
    "max_ips": ("IP addresses", ""),
    "max_backups": ("backups", ""),
    "max_backup_mb": ("backup space", "MiB"),
    "max_snapshots": ("snapshots", ""),
}


DEFAULT_MAX_SNAPSHOTS = 5  # per tenant; see Tenant.max_snapshots


class Tenant(models.Model):
    """An organisation, a class, a customer: members, containers and quotas."""

    slug = models.CharField(max_length=40, unique=True, validators=[validate_slug])
    name = models.CharField(max_length=100, validators=[validate_display_name])
    description = models.TextField(blank=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="tenants")
    max_containers = models.PositiveIntegerField(null=True, blank=True)
    max_ram_mb = models.PositiveIntegerField(null=True, blank=True)
    max_swap_mb = models.PositiveIntegerField(null=True, blank=True)
    max_cpus = models.PositiveIntegerField(null=True, blank=True)
    max_disk_mb = models.PositiveIntegerField(null=True, blank=True)
    max_ips = models.PositiveIntegerField(null=True, blank=True)
    max_backups = models.PositiveIntegerField(null=True, blank=True)
    max_backup_mb = models.PositiveIntegerField(null=True, blank=True)
    # Finite by default, unlike the others: on btrfs each snapshot keeps up to the container's disk
    # limit of space outside that limit (its own qgroup), so an unlimited count would let one tenant
    # fill a shared pool by snapshotting, deleting and writing again. Empty: no limit (an administrator's
    # choice for a tenant they trust).
    max_snapshots = models.PositiveIntegerField(null=True, blank=True, default=DEFAULT_MAX_SNAPSHOTS)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TenantRole(models.TextChoices):
    ADMIN = "admin", "tenant admin"  # the tenant's members, containers, backups and jobs
    MEMBER = "member", "member"      # the containers given to them


class Membership(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=TenantRole.choices, default=TenantRole.MEMBER)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="one_membership_per_tenant")]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} ({self.role})"


class StudentClass(models.Model):
    """A class of students in a tenant: one container per student from one template and plan."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="classes")
    slug = models.CharField(max_length=40, unique=True, validators=[validate_slug],
                            help_text="Used in container names: SLUG-USERNAME.")
    name = models.CharField(max_length=100, validators=[validate_display_name])
    host = models.ForeignKey("hosts.Host", on_delete=models.PROTECT, related_name="+")
    ostemplate = models.CharField("OS template", max_length=128)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    expires_at = models.DateTimeField(null=True, blank=True,
                                      help_text="When it passes, the containers are stopped.")
    grace_days = models.PositiveSmallIntegerField(default=14,
                                                  help_text="Days after expiry before the containers are destroyed.")
    backup_before_destroy = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "class"
        verbose_name_plural = "classes"

    def __str__(self) -> str:
        return self.name
