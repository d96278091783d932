"""One row per long operation: what it is, who asked, where it runs, how it went."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Value
from django.db.models.functions import Concat
from django.utils import timezone

from .choices import ACTIVE_STATES, TaskStatus, TaskType


class Task(models.Model):
    """A queued operation, run by the agent of `host` as the RQ job `rq_job_id`."""

    type = models.CharField(max_length=32, choices=TaskType.choices)
    container = models.ForeignKey("containers.Container", null=True, blank=True,
                                  on_delete=models.SET_NULL, related_name="tasks")
    # Kept when the container is destroyed, so the history still says which one.
    ctid = models.PositiveIntegerField(null=True, blank=True, db_index=True, db_column="ct_id")  # not "ctid": PostgreSQL
    # Which of the CTID's containers: a CTID is used again once its container is destroyed, and the
    # foreign key above is cleared then, so the created time of the container, kept, tells one life
    # of the CTID from the next (the container page shows its own, the CTID's history the others).
    container_created_at = models.DateTimeField(null=True, blank=True)
    # NULL once the host has been removed from the panel; the history stays.
    host = models.ForeignKey("hosts.Host", null=True, on_delete=models.SET_NULL, related_name="tasks")
    # The tenant of the container at the time, so tenant admins keep seeing the history.
    tenant = models.ForeignKey("tenancy.Tenant", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="tasks")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                             on_delete=models.SET_NULL, related_name="tasks")
    status = models.CharField(max_length=16, choices=TaskStatus.choices,
                              default=TaskStatus.QUEUED, db_index=True)
    progress = models.PositiveSmallIntegerField(default=0)
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(null=True, blank=True)
    log = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")
    rq_job_id = models.CharField(max_length=64, blank=True, default="")
    agent_pid = models.IntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def save(self, *args, **kwargs):
        if self.container_id and self.container_created_at is None:
            self.container_created_at = self.container.created_at
        super().save(*args, **kwargs)

    def __str__(self) -> str:
        target = f" CT {self.ctid}" if self.ctid else ""
        return f"#{self.pk} {self.get_type_display()}{target}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATES

    @property
    def duration(self):
        if self.started_at is None:
            return None
        return (self.finished_at or timezone.now()) - self.started_at

    @staticmethod
    def format_log(line: str) -> str:
        stamp = timezone.localtime().strftime("%H:%M:%S")
        return "".join(f"{stamp} {part}\n" for part in str(line).splitlines() or [""])

    def append_log(self, line: str) -> None:
        """Append one line in the database at once, so the task page shows it live."""
        self.write_log(self.format_log(line))

    def write_log(self, text: str) -> None:
        if text:
            Task.objects.filter(pk=self.pk).update(log=Concat(F("log"), Value(text)))
            self.log += text

    def note_recovery(self, **hints) -> None:
        """Tell the next agent what to undo if this one dies before the task ends (the task's
        result until it ends; hosts/recovery.py reads it), e.g. restart_container=True."""
        self.result = {**(self.result or {}), "recovery": {**(self.result or {}).get("recovery", {}), **hints}}
        Task.objects.filter(pk=self.pk).update(result=self.result)

    def recovery_hints(self) -> dict:
        return (self.result or {}).get("recovery", {}) if isinstance(self.result, dict) else {}

    def set_progress(self, percent: int) -> None:
        percent = max(0, min(100, int(percent)))
        Task.objects.filter(pk=self.pk).update(progress=percent)
        self.progress = percent
