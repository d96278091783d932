"""Backups: vzdump-style archives of containers, one row per archive."""
from django.db import models
from django.utils import timezone


class BackupMode(models.TextChoices):
    STOP = "stop", "stop"
    SUSPEND = "suspend", "suspend"
    SNAPSHOT = "snapshot", "snapshot"


class Backup(models.Model):
    """An archive `filename` in `storage_path` on `host`, with its checksum."""

    ctid = models.PositiveIntegerField(db_index=True)  # kept when the container is destroyed
    container = models.ForeignKey("containers.Container", null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="backups")
    tenant = models.ForeignKey("tenancy.Tenant", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="backups")
    owner = models.ForeignKey("accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    host = models.ForeignKey("hosts.Host", on_delete=models.PROTECT, related_name="backups")
    storage_path = models.CharField(max_length=255)
    filename = models.CharField(max_length=200)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    mode = models.CharField(max_length=16, choices=BackupMode.choices, default=BackupMode.STOP)
    notes = models.CharField(max_length=200, blank=True)
    protected = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    task = models.ForeignKey("tasks.Task", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["host", "storage_path", "filename"], name="one_row_per_archive")]

    def __str__(self) -> str:
        return self.filename
