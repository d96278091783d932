"""Containers and the OS templates they are made from."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from .choices import ContainerStatus
from panel.validators import is_ascii_number, validate_ctid, validate_hostname, validate_name_alias


class Container(models.Model):
    """One container: the desired state (OpenVZ's CTID.conf) and the last state seen in LXC."""

    # "ct_id" in the database: PostgreSQL reserves "ctid" for a system column.
    ctid = models.PositiveIntegerField(unique=True, validators=[validate_ctid], db_column="ct_id")
    name = models.CharField(max_length=64, unique=True, null=True, blank=True,
                            validators=[validate_name_alias])
    hostname = models.CharField(max_length=253, validators=[validate_hostname])
    ostemplate = models.CharField(max_length=128)
    host = models.ForeignKey("hosts.Host", on_delete=models.PROTECT, related_name="containers")
    onboot = models.BooleanField(default=False)
    description = models.TextField(blank=True, default="", max_length=2000)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                              on_delete=models.SET_NULL, related_name="containers")
    status = models.CharField(max_length=16, choices=ContainerStatus.choices,
                              default=ContainerStatus.CREATING, db_index=True)
    nproc = models.PositiveIntegerField(null=True, blank=True)
    # vzctl umount: its admin unmounted the root filesystem (a disk image) on purpose. The agent,
    # which otherwise keeps every disk image mounted, leaves it so until vzctl mount or start.
    unmounted = models.BooleanField(default=False)
    # Where its root filesystem lives (storage.StoragePool of its host); chosen at create.
    storage = models.ForeignKey("storage.StoragePool", null=True, blank=True, on_delete=models.PROTECT,
                                related_name="containers")
    # The task that holds this container; at most one mutating task at a time.
    lock_task = models.ForeignKey("tasks.Task", null=True, blank=True,
                                  on_delete=models.SET_NULL, related_name="+")
    # Tenancy: whose quota the container counts against, and the class it belongs to.
    tenant = models.ForeignKey("tenancy.Tenant", null=True, blank=True, on_delete=models.PROTECT,
                               related_name="containers")
    student_class = models.ForeignKey("tenancy.StudentClass", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="containers")
    plan = models.ForeignKey("tenancy.Plan", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Limits, as vzctl set names them. Changed live on a running container, kept for the next start.
    ram_mb = models.PositiveIntegerField("RAM (MiB)", default=512)                  # --ram, physpages limit
    ram_barrier_mb = models.PositiveIntegerField("RAM barrier (MiB)", null=True, blank=True)  # physpages barrier
    swap_mb = models.PositiveIntegerField("swap (MiB)", default=0)                  # --swap
    cpus = models.PositiveSmallIntegerField("CPUs", default=1)                       # --cpus
    cpuunits = models.PositiveIntegerField("CPU units", default=1000)                # --cpuunits: relative weight
    cpulimit = models.PositiveIntegerField("CPU limit (%)", default=0)               # --cpulimit: % of one CPU, 0 = none
    numproc = models.PositiveIntegerField("processes", null=True, blank=True)        # --numproc: None = unlimited
    disk_mb = models.PositiveIntegerField("disk (MiB)", default=2048)                # --diskspace hard
    disk_soft_mb = models.PositiveIntegerField("disk soft (MiB)", null=True, blank=True)  # --diskspace soft
    diskinodes = models.PositiveIntegerField("inodes", default=220000)              # --diskinodes hard
    diskinodes_soft = models.PositiveIntegerField("inodes soft", null=True, blank=True)
    ioprio = models.PositiveSmallIntegerField("I/O priority", default=4)             # --ioprio 0..7
    # DNS, written into the container's /etc/resolv.conf (vzctl --nameserver, --searchdomain).
    nameservers = models.JSONField(default=list, blank=True)
    searchdomain = models.CharField(max_length=253, blank=True, default="")
    # Expiry: stopped when it passes, destroyed after the grace period.
    expires_at = models.DateTimeField(null=True, blank=True)
    grace_days = models.PositiveSmallIntegerField(default=14)
    backup_before_destroy = models.BooleanField(default=False)
    status_changed_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["ctid"]

    def __str__(self) -> str:
        return f"CT {self.ctid}" + (f" ({self.name})" if self.name else "")


class OSTemplate(models.Model):
    """A template tarball in a host's cache directory, as the agent last listed it."""

    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="templates")
    name = models.CharField(max_length=128)
    filename = models.CharField(max_length=160)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    # From the sidecar <file>.meta.json the agent writes when it builds or fetches a template.
    distribution = models.CharField(max_length=64, blank=True)
    version = models.CharField(max_length=64, blank=True)
    architecture = models.CharField(max_length=32, blank=True)
    source = models.CharField(max_length=300, blank=True)  # built, a URL, "upload", "container 101"
    modified_at = models.DateTimeField()
    seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "host__name"]
        constraints = [models.UniqueConstraint(fields=["host", "name"], name="unique_template_per_host")]

    def __str__(self) -> str:
        return self.name


def resolve_container(queryset, ident: str | int) -> Container:
    """Find a container by CTID or name alias within `queryset` (which scopes visibility)."""
    ident = str(ident).strip()
    if is_ascii_number(ident):
        return queryset.get(ctid=int(ident))
    return queryset.get(name=ident)
