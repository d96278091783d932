"""Storage pools (where containers' root filesystems live on a host) and container snapshots."""
from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from panel.validators import validate_name

DEVICE_RE = re.compile(r"/dev/[A-Za-z0-9][A-Za-z0-9._/-]{0,120}")
POOLS_DIR = ".pools"  # in the host's lxcpath: btrfs pools' mountpoints and loop files, root's alone


def validate_device(value: str) -> None:
    if value and (not DEVICE_RE.fullmatch(value) or "/../" in value + "/" or "//" in value):
        raise ValidationError("A block device is a path under /dev, such as /dev/sdb or /dev/disk/by-id/…")


class PoolType(models.TextChoices):
    DIR = "dir", "directory (no disk quota)"
    IMAGE = "image", "XFS image per container"
    BTRFS = "btrfs", "btrfs (subvolumes, snapshots)"


class PoolStatus(models.TextChoices):
    CREATING = "creating", "being made"
    READY = "ready", "ready"
    FAILED = "failed", "failed"


class StoragePool(models.Model):
    """A named place on one host where containers are made. dir and image pools are in the host's
    lxcpath; a btrfs pool is a filesystem the agent makes on a block device the administrator names
    (`device`) or in a sparse loop file of `loop_size_mb` for trying it out, mounted in the lxcpath."""

    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="storage_pools")
    name = models.CharField(max_length=64, validators=[validate_name])
    type = models.CharField(max_length=8, choices=PoolType.choices)
    device = models.CharField(max_length=128, blank=True, default="", validators=[validate_device],
                              help_text="btrfs: the block device the filesystem is made on (it must be empty)")
    loop_size_mb = models.PositiveIntegerField(null=True, blank=True,
                                               help_text="btrfs without a device: the size of its loop file")
    is_default = models.BooleanField(default=False, help_text="where the host's containers go unless told")
    status = models.CharField(max_length=10, choices=PoolStatus.choices, default=PoolStatus.READY)
    error = models.CharField(max_length=500, blank=True, default="")
    # Whose members may create containers on it; none selected: every tenant. Administrators and
    # operators may use every pool.
    tenants = models.ManyToManyField("tenancy.Tenant", blank=True, related_name="storage_pools")
    # Written by the agent.
    size_bytes = models.BigIntegerField(null=True, blank=True)
    used_bytes = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["host__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["host", "name"], name="unique_pool_name_per_host"),
            models.UniqueConstraint(fields=["host"], condition=Q(is_default=True), name="one_default_pool_per_host"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.type})"

    def clean(self):
        if self.type == PoolType.BTRFS:
            if bool(self.device) == bool(self.loop_size_mb):
                raise ValidationError("A btrfs pool is made either on a block device or in a loop file of a size: "
                                      "give one of them.")
        elif self.device or self.loop_size_mb:
            raise ValidationError(f"A {self.type} pool lives in the host's lxcpath: it takes no device or size.")

    @property
    def free_bytes(self) -> int | None:
        if self.size_bytes is None or self.used_bytes is None:
            return None
        return max(0, self.size_bytes - self.used_bytes)

    def mountpoint(self, lxcpath: Path) -> Path:
        return Path(lxcpath) / POOLS_DIR / self.name

    def loop_file(self, lxcpath: Path) -> Path | None:
        return None if self.device else Path(lxcpath) / POOLS_DIR / f"{self.name}.img"


class Snapshot(models.Model):
    """A read-only snapshot of a container's subvolume (vzctl snapshot), on the container's pool."""

    container = models.ForeignKey("containers.Container", on_delete=models.CASCADE, related_name="snapshots")
    name = models.CharField(max_length=64)
    description = models.CharField(max_length=500, blank=True, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    # Until the agent has taken it; a failed snapshot's row is deleted.
    ready = models.BooleanField(default=False)
    frozen_ms = models.FloatField(null=True, blank=True, help_text="how long the running container was frozen")

    class Meta:
        ordering = ["container__ctid", "created_at", "name"]
        constraints = [models.UniqueConstraint(fields=["container", "name"], name="unique_snapshot_name")]

    def __str__(self) -> str:
        return f"{self.container.ctid}/{self.name}"
