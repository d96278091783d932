"""Hosts: machines that run a host agent and the containers on them."""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

host_name_validator = RegexValidator(
    r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
    "A host name is 1-63 lower-case letters, digits and hyphens, not starting or ending with a hyphen.",
)


def validate_ssh_address(value: str) -> None:
    from containers.engine.sshaddress import AddressError, split_address  # pure parsing, no host commands
    try:
        split_address(value)
    except AddressError as exc:
        raise ValidationError(str(exc)) from None


class Host(models.Model):
    """A hardware node (OpenVZ's HN). Its agent serves the RQ queue named after it."""

    name = models.CharField(max_length=63, unique=True, validators=[host_name_validator])
    lxcpath = models.CharField(max_length=255, default="/var/lib/lxc",
                               help_text="Where LXC keeps this host's containers.")
    template_dir = models.CharField(max_length=255, default="/var/lib/vz/template/cache",
                                    help_text="The host's OS template cache directory.")
    dump_dir = models.CharField(max_length=255, default="/var/lib/vz/dump",
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
        return f"vzpanel-host-{self.name}"

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
