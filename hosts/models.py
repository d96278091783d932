"""Hosts: machines that run a host agent and the containers on them."""
from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone

from panel.validators import validate_host_name, validate_host_path

REFUSALS_KEPT = 20

host_name_validator = validate_host_name  # the name older code imports
HOST_PATHS = ("lxcpath", "template_dir", "dump_dir")


def default_ram_promise() -> float:
    return settings.RAM_OVERCOMMIT


def default_cpu_promise() -> float | None:
    return settings.CPU_OVERCOMMIT


def default_disk_promise() -> float:
    return settings.DISK_OVERCOMMIT


def validate_promise(value) -> None:
    # Above 100 times what the host has is a typo, not a policy; 0 would refuse every container.
    if value is not None and not 0 < value <= 100:
        raise ValidationError(f"A promise ratio is a number above 0 and at most 100 (not {value:g}).")


def validate_ssh_address(value: str) -> None:
    from containers.engine.sshaddress import AddressError, split_address  # pure parsing, no host commands
    try:
        split_address(value)
    except AddressError as exc:
        raise ValidationError(str(exc)) from None


class Host(models.Model):
    """A hardware node (OpenVZ's HN). Its agent serves the RQ queue named after it."""

    name = models.CharField(max_length=63, unique=True, validators=[validate_host_name])
    lxcpath = models.CharField(max_length=255, default="/var/lib/lxc", validators=[validate_host_path],
                               help_text="Where LXC keeps this host's containers.")
    template_dir = models.CharField(max_length=255, default="/var/lib/vz/template/cache",
                                    validators=[validate_host_path],
                                    help_text="The host's OS template cache directory.")
    dump_dir = models.CharField(max_length=255, default="/var/lib/vz/dump", validators=[validate_host_path],
                                help_text="The host's default backup storage (vzdump --dumpdir).")
    default_bridge = models.CharField(max_length=15, default="vzbr0",
                                      help_text="The bridge new veth interfaces join unless told otherwise.")
    # Written by the agent: the host's bridges, the routes and interfaces its containers use.
    network = models.JSONField(default=dict, blank=True)
    agent_started_at = models.DateTimeField(null=True, blank=True)
    agent_seen_at = models.DateTimeField(null=True, blank=True)
    agent_pid = models.IntegerField(null=True, blank=True)
    # Written by the agent at each heartbeat: psutil figures for the dashboard.
    stats = models.JSONField(default=dict, blank=True)
    # Containers LXC has on this host that the panel does not manage (never touched).
    unmanaged = models.JSONField(default=list, blank=True)
    # The agent proves it serves this host with a token; only its SHA-256 is kept here.
    # Revoking clears it, and the agent stops at its next heartbeat.
    token_hash = models.CharField(max_length=64, blank=True, default="")
    token_issued_at = models.DateTimeField(null=True, blank=True)
    # Drained: no new containers are placed here (create, restore, migrate to); the ones there stay.
    drained_at = models.DateTimeField(null=True, blank=True)
    drain_reason = models.CharField(max_length=200, blank=True, default="")
    # Migration transport. An empty ssh_address means "this machine": data moves on the local
    # filesystem, which only works between hosts that share it (same machine_id).
    ssh_address = models.CharField(max_length=255, blank=True, default="", validators=[validate_ssh_address],
                                   help_text="host or host:port where other hosts' agents reach this host's sshd")
    ssh_host_key = models.TextField(blank=True, default="",
                                    help_text="the sshd host key other hosts pin when they copy here")
    ssh_client_key = models.TextField(blank=True, default="",
                                      help_text="the public key this host's agent copies to other hosts with")
    machine_id = models.CharField(max_length=64, blank=True, default="")
    # What the agent found the host can do, e.g. {"criu": {"ok": false, "reason": "..."}}.
    capabilities = models.JSONField(default=dict, blank=True)
    # The promise policy: how much the containers here may be promised in all, as a multiple of what
    # the host has (vzmemcheck/vzcpucheck/vzcalc's "promised against available"). New hosts take
    # PANEL_RAM_OVERCOMMIT etc. (settings.py says why those defaults); None for CPUs: never refused.
    ram_promise = models.FloatField(default=default_ram_promise, validators=[validate_promise],
                                    help_text="RAM the containers may be promised, as a multiple of the host's RAM.")
    cpu_promise = models.FloatField(null=True, blank=True, default=default_cpu_promise, validators=[validate_promise],
                                    help_text="CPUs the containers may be promised, as a multiple of the host's cores; "
                                              "empty: not a limit (CPU time is shared, as on OpenVZ).")
    disk_promise = models.FloatField(default=default_disk_promise, validators=[validate_promise],
                                     help_text="Disk the containers may be promised, as a multiple of the host's disk.")
    # The last jobs the agent refused to run (newest first): {"at", "job_id", "reason"}.
    queue_refusals = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def queue_name(self) -> str:
        return f"vzpanel.host.{self.name}"

    @property
    def is_drained(self) -> bool:
        return self.drained_at is not None

    @property
    def redis_user(self) -> str:
        """The Redis ACL user whose password is this host's token."""
        from tasks.redis_acl import HOST_USER_PREFIX
        return f"{HOST_USER_PREFIX}{self.name}"

    def record_queue_refusal(self, job_id: str, reason: str) -> None:
        """Note a job the agent refused, in its log and on the host page (the last REFUSALS_KEPT).
        The same refusal twice in a row (RQ looks at a refused job again when it cleans up) is kept once."""
        job_id = job_id[:120]
        logging.getLogger("vzpanel.agent").warning("refused job %r: %s", job_id, reason)
        entry = {"at": timezone.localtime().strftime("%Y-%m-%d %H:%M:%S"), "job_id": job_id, "reason": reason[:300]}
        with transaction.atomic():
            kept = Host.objects.select_for_update().filter(pk=self.pk).values_list("queue_refusals", flat=True).first()
            kept = list(kept or [])
            if kept and (kept[0]["job_id"], kept[0]["reason"]) == (entry["job_id"], entry["reason"]):
                return
            self.queue_refusals = [entry, *kept][:REFUSALS_KEPT]
            Host.objects.filter(pk=self.pk).update(queue_refusals=self.queue_refusals)

    @property
    def agent_online(self) -> bool:
        if self.agent_seen_at is None:
            return False
        limit = timedelta(seconds=settings.AGENT_OFFLINE_AFTER_SECONDS)
        return timezone.now() - self.agent_seen_at < limit

    @property
    def agent_status_text(self) -> str:
        if self.agent_online:
            return "agent online"
        if self.agent_seen_at is None:
            return "agent has never run"
        local = timezone.localtime(self.agent_seen_at)
        return f"agent offline since {local:%Y-%m-%d %H:%M:%S}"
