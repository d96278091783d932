"""Backups: vzdump-style archives of containers, the storages they live in, and backup jobs."""
from django.conf import settings
from django.db import models
from django.utils import timezone

from panel.validators import validate_host_path, validate_name


class BackupMode(models.TextChoices):
    STOP = "stop", "stop"
    SUSPEND = "suspend", "suspend"
    SNAPSHOT = "snapshot", "snapshot"


# The mode every web form (a backup now, a backup job) and a job made over the API start from: suspend.
# The container keeps running and pauses only while the last pass copies what changed, seconds at most.
# Snapshot needs storage that can snapshot (btrfs, ZFS, LVM thin); the panel's containers live on XFS
# disk images, which cannot, so a snapshot backup runs as suspend here anyway: offering it as the default
# promised what never happened. vzdump at the shell keeps vzdump's own default, stop.
DEFAULT_MODE = BackupMode.SUSPEND
MODE_HELP = ("suspend (the default): the container keeps running and pauses only while the last pass copies "
             "what changed, seconds at most; stop: consistent, the container is down for the whole copy; "
             "snapshot: needs storage that can snapshot (btrfs, ZFS, LVM thin), so on this panel's disk images "
             "it runs as suspend.")


class Compression(models.TextChoices):
    ZSTD = "zst", "zstd"
    GZIP = "gz", "gzip"
    NONE = "none", "none"


class Retention(models.Model):
    """keep-last/hourly/daily/weekly/monthly/yearly, as vzdump's prune options. None: not used."""

    keep_last = models.PositiveIntegerField(null=True, blank=True)
    keep_hourly = models.PositiveIntegerField(null=True, blank=True)
    keep_daily = models.PositiveIntegerField(null=True, blank=True)
    keep_weekly = models.PositiveIntegerField(null=True, blank=True)
    keep_monthly = models.PositiveIntegerField(null=True, blank=True)
    keep_yearly = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        abstract = True

    def retention(self) -> dict:
        return {k: getattr(self, k) for k in ("keep_last", "keep_hourly", "keep_daily", "keep_weekly",
                                              "keep_monthly", "keep_yearly") if getattr(self, k) is not None}


class BackupStorage(Retention):
    """A named place for archives on a host: any mounted directory. Every host also has its
    dump directory (Host.dump_dir), used when no storage is named."""

    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="storages")
    name = models.CharField(max_length=64, validators=[validate_name])
    path = models.CharField(max_length=255, validators=[validate_host_path])
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["host__name", "name"]
        constraints = [models.UniqueConstraint(fields=["host", "name"], name="one_storage_name_per_host")]

    def __str__(self) -> str:
        return f"{self.name} ({self.host.name}:{self.path})"


class Backup(models.Model):
    """An archive `filename` in `storage_path` on `host`, with its checksum."""

    # "ct_id" in the database: PostgreSQL reserves "ctid" for a system column.
    ctid = models.PositiveIntegerField(db_index=True, db_column="ct_id")  # kept when the container is destroyed
    container = models.ForeignKey("containers.Container", null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="backups")
    tenant = models.ForeignKey("tenancy.Tenant", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="backups")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    host = models.ForeignKey("hosts.Host", on_delete=models.PROTECT, related_name="backups")
    storage = models.ForeignKey(BackupStorage, null=True, blank=True, on_delete=models.SET_NULL, related_name="backups")
    storage_path = models.CharField(max_length=255)
    filename = models.CharField(max_length=200)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    mode = models.CharField(max_length=16, choices=BackupMode.choices, default=BackupMode.STOP)
    compress = models.CharField(max_length=8, choices=Compression.choices, default=Compression.ZSTD)
    # "lxc": made by vzpanel (./etc/vzdump/pct.conf); "openvz": imported from an OpenVZ host (vps.conf).
    kind = models.CharField(max_length=8, default="lxc")
    # The container's settings as the archive records them (pct.conf, or an OpenVZ vps.conf
    # converted): what a restore to a new CTID starts from, and what its quota check counts.
    config = models.JSONField(default=dict, blank=True)
    notes = models.CharField(max_length=200, blank=True)
    protected = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    verified_at = models.DateTimeField(null=True, blank=True)
    task = models.ForeignKey("tasks.Task", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    job = models.ForeignKey("BackupJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="backups")

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["host", "storage_path", "filename"], name="one_row_per_archive")]

    def __str__(self) -> str:
        return self.filename

    @property
    def path(self) -> str:
        return f"{self.storage_path.rstrip('/')}/{self.filename}"


class BackupJob(Retention):
    """Scheduled backups: which containers, when (cron), how, where, who hears about it."""

    class Selection(models.TextChoices):
        ALL = "all", "all containers"
        TENANT = "tenant", "a tenant's containers"
        LIST = "list", "the containers listed"

    class Notify(models.TextChoices):
        ALWAYS = "always", "always"
        FAILURE = "failure", "on failure only"

    name = models.CharField(max_length=100)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    tenant = models.ForeignKey("tenancy.Tenant", null=True, blank=True, on_delete=models.CASCADE,
                               related_name="backup_jobs", help_text="the tenant the job belongs to (empty: global)")
    schedule = models.CharField(max_length=100, help_text="cron syntax: minute hour day month weekday")
    selection = models.CharField(max_length=8, choices=Selection.choices, default=Selection.LIST)
    containers = models.ManyToManyField("containers.Container", blank=True, related_name="backup_jobs")
    excluded = models.ManyToManyField("containers.Container", blank=True, related_name="+")
    mode = models.CharField(max_length=16, choices=BackupMode.choices, default=DEFAULT_MODE)
    compress = models.CharField(max_length=8, choices=Compression.choices, default=Compression.ZSTD)
    storage = models.ForeignKey(BackupStorage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    mailto = models.CharField(max_length=500, blank=True, help_text="addresses, comma separated")
    notify = models.CharField(max_length=8, choices=Notify.choices, default=Notify.ALWAYS)
    enabled = models.BooleanField(default=True)
    run_missed = models.BooleanField(default=False, help_text="run once on return if a run was missed while down")
    last_run_at = models.DateTimeField(null=True, blank=True)
    next_run_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class BackupRun(models.Model):
    """One run of a job: its tasks, and whether the report went out."""

    job = models.ForeignKey(BackupJob, on_delete=models.CASCADE, related_name="runs")
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, default="running")  # running, ok, failed
    tasks = models.ManyToManyField("tasks.Task", blank=True, related_name="+")
    report_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
