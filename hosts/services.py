"""One function per host operation (add, token, promise policy, drain, remove, evacuate), for the views, API and CLI.

Hosts are infrastructure: administrators add and remove them and handle their tokens;
administrators and operators drain and evacuate them.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.audit import audited
from tasks.choices import ACTIVE_STATES, TaskType
from tasks.models import Task
from containers.services import InvalidRequest, InvalidState, NotAllowed
from panel.validators import clean_host_path, messages
from tasks.services import submit_task

from .models import HOST_PATHS, Host

TOKEN_PREFIX = "vzph_"


def _require(user, admin_only: bool) -> None:
    from accounts.permissions import is_admin, manages_hosts
    if user is None:
        return
    if not (is_admin(user) if admin_only else manages_hosts(user)):
        raise NotAllowed("Only an administrator may do this." if admin_only
                             else "Only administrators and operators manage hosts.")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(host: Host, token: str) -> bool:
    return bool(host.token_hash) and bool(token) and hmac.compare_digest(host.token_hash, token_hash(token))


@audited("host.token", target="host")
def issue_token(user, host: Host) -> str:
    """A new token for the host's agent (any earlier one stops working). Shown once, stored hashed.
    The token is also the password of the host's Redis user: the agent that administers Redis sets
    it at its next heartbeat and cuts the connections made with the old one (tasks/redis_acl.py)."""
    _require(user, admin_only=True)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    digest = token_hash(token)
    Host.objects.filter(pk=host.pk).update(token_hash=digest, token_issued_at=timezone.now())
    host.token_hash = digest
    return token


@audited("host.revoke", target="host")
def revoke_token(user, host: Host) -> None:
    """The host's agent stops at its next heartbeat; its Redis user and that user's connections go at
    the next heartbeat of the agent that administers Redis; other hosts stop accepting its
    migration key at their next reconcile."""
    _require(user, admin_only=True)
    Host.objects.filter(pk=host.pk).update(token_hash="", token_issued_at=None, ssh_client_key="")
    host.token_hash = ""


@audited("host.add", target="host")
def add_host(user, *, name: str, lxcpath: str = "/var/lib/lxc", template_dir: str = "/var/lib/vz/template/cache",
             dump_dir: str = "/var/lib/vz/dump", ssh_address: str = "", host=None) -> tuple[Host, str]:
    """Register a host and issue its agent's token. Returns (host, token)."""
    _require(user, admin_only=True)
    if Host.objects.filter(name=name).exists():
        raise InvalidRequest(f"There is already a host {name}.")
    new = Host(name=name, lxcpath=lxcpath, template_dir=template_dir, dump_dir=dump_dir, ssh_address=ssh_address)
    _validate(new)
    new.save()
    return new, issue_token(user, new)


def _validate(host: Host) -> None:
    try:
        host.full_clean()  # name, paths (panel.validators) and the SSH address
    except ValidationError as exc:
        raise InvalidRequest(messages(exc)) from None
    for field in HOST_PATHS:  # valid now: one spelling of each directory
        setattr(host, field, clean_host_path(getattr(host, field)))


@audited("host.ssh", target="host")
def set_ssh(user, host: Host, ssh_address: str, repin: bool = False) -> Host:
    """Change where other hosts reach this host's sshd; repin forgets the pinned host key (the agent
    reports the current one at its next start)."""
    _require(user, admin_only=True)
    host.ssh_address = (ssh_address or "").strip()
    _validate(host)
    fields = {"ssh_address": host.ssh_address}
    if repin:
        fields["ssh_host_key"] = host.ssh_host_key = ""
    Host.objects.filter(pk=host.pk).update(**fields)
    return host


@audited("host.promise", target="host")
def set_promise(user, host: Host, *, ram_promise: float, cpu_promise: float | None, disk_promise: float) -> Host:
    """The host's promise policy: how much its containers may be promised in all, as multiples of
    its RAM, cores and disk (cpu_promise None: CPUs are never refused, only reported). Administrators
    only: it decides what every tenant may place here."""
    _require(user, admin_only=True)
    host.ram_promise, host.cpu_promise, host.disk_promise = ram_promise, cpu_promise, disk_promise
    try:
        host.full_clean(validate_unique=False)
    except ValidationError as exc:
        host.refresh_from_db()
        raise InvalidRequest(messages(exc)) from None
    Host.objects.filter(pk=host.pk).update(ram_promise=ram_promise, cpu_promise=cpu_promise,
                                           disk_promise=disk_promise)
    return host


@audited("host.drain", target="host")
def drain_host(user, host: Host, reason: str = "") -> Host:
    """No new containers are placed on the host; those there stay and keep running."""
    _require(user, admin_only=False)
    reason = (reason or "").strip()[:200]
    Host.objects.filter(pk=host.pk).update(drained_at=timezone.now(), drain_reason=reason)
    host.refresh_from_db()
    return host


@audited("host.undrain", target="host")
def undrain_host(user, host: Host) -> Host:
    _require(user, admin_only=False)
    Host.objects.filter(pk=host.pk).update(drained_at=None, drain_reason="")
    host.refresh_from_db()
    return host


@audited("host.remove", target="host")
def remove_host(user, host: Host, confirm: str = "") -> None:
    """Forget a host. Refused while anything still lives there; the task history is kept."""
    from backups.models import Backup
    from tenancy.models import StudentClass
    _require(user, admin_only=True)
    if confirm != host.name:
        raise InvalidRequest(f"To remove host {host.name}, confirm by typing its name.")
    cts = list(host.containers.values_list("ctid", flat=True)[:11])
    if cts:
        shown = ", ".join(map(str, cts[:10])) + (" …" if len(cts) > 10 else "")
        raise InvalidState(f"Host {host.name} still has {host.containers.count()} container(s): {shown}. "
                          "Migrate them away (Evacuate) or destroy them first.")
    if Task.objects.filter(host=host, status__in=ACTIVE_STATES).exists():
        raise InvalidState(f"Host {host.name} has queued or running tasks; wait for them or cancel them.")
    backups = Backup.objects.filter(host=host).count()
    if backups:
        raise InvalidState(f"Host {host.name} still holds {backups} backup(s); delete them or move them first.")
    if StudentClass.objects.filter(host=host).exists():
        raise InvalidState(f"Classes still create their containers on {host.name}; change their host first.")
    revoke_token(user, host)
    host.delete()


@audited("host.evacuate", target="host")
def evacuate_host(user, host: Host, online: bool = True) -> Task:
    """Drain the host and migrate every container off it, one at a time (running ones online),
    each to the host placement picks. One task on the host, with a migrate task per container."""
    _require(user, admin_only=False)
    if not host.containers.exists():
        raise InvalidState(f"Host {host.name} has no containers to move.")
    if Task.objects.filter(host=host, type=TaskType.HOST_EVACUATE, status__in=ACTIVE_STATES).exists():
        raise InvalidState(f"Host {host.name} is already being evacuated.")
    with transaction.atomic():
        if not host.is_drained:
            Host.objects.filter(pk=host.pk).update(drained_at=timezone.now(), drain_reason="evacuation")
        task = submit_task(type=TaskType.HOST_EVACUATE, host=host, user=user,
                           params={"online": bool(online), "job_timeout": 24 * 3600})
    return task
