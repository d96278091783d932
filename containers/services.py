"""One function per container operation, called by the views, the CLI and the API alike.

Each checks permission, validates, checks quota, takes the container's lock and
queues a task in one transaction, and leaves an audit record; the work itself
runs on the host's agent (containers/jobs.py).
"""
from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.views.decorators.debug import sensitive_variables

from accounts import audit
from accounts.audit import audited
from hosts.capacity import InsufficientCapacity  # noqa: F401  (callers catch it from here)
from hosts.models import Host
from tasks.choices import TaskType
from tasks.models import Task
from tasks.services import TaskError, submit_task
from tenancy.quotas import check_quota

from .choices import Action, ContainerStatus, refusal
from .models import Container, OSTemplate
from containers.engine.units import MIN_DISK_MB, disk_too_small
from panel.validators import (messages, validate_command, validate_ctid, validate_hostname, validate_name_alias,
                              validate_system_user, whole_number)

LIMIT_FIELDS = ("ram_mb", "ram_barrier_mb", "swap_mb", "cpus", "cpuunits", "cpulimit", "numproc",
                "disk_mb", "disk_soft_mb", "diskinodes", "diskinodes_soft", "ioprio")
# Fields that may be None (unlimited / same as the hard limit).
NULLABLE_LIMITS = ("ram_barrier_mb", "numproc", "disk_soft_mb", "diskinodes_soft")
LIMIT_RANGES = {
    "ram_mb": (16, 1 << 22), "ram_barrier_mb": (16, 1 << 22), "swap_mb": (0, 1 << 22), "cpus": (1, 1024),
    "cpuunits": (8, 500000), "cpulimit": (0, 102400), "numproc": (8, 4_000_000), "disk_mb": (MIN_DISK_MB, 1 << 26),
    "disk_soft_mb": (64, 1 << 26), "diskinodes": (1000, 1 << 31), "diskinodes_soft": (1000, 1 << 31),
    "ioprio": (0, 7),
}
# The limits a plan sets (and a non-admin may not exceed); quotas count these too.
PLAN_LIMITS = ("ram_mb", "swap_mb", "cpus", "disk_mb")


class ContainerLocked(TaskError):
    """Another task holds the container."""

    http_status = 409


class InvalidState(TaskError):
    http_status = 409


class InvalidRequest(TaskError):
    http_status = 400


class NotAllowed(TaskError):
    http_status = 403


class ContainerGone(TaskError):
    """The container was destroyed between the request's lookup and its action (a racing destroy)."""

    http_status = 404


def _reload(ct: Container, *, for_update: bool = False) -> Container:
    """The container's row as it is now, or ContainerGone: never a DoesNotExist (a 500) when a
    destroy finished while this request was on its way."""
    qs = Container.objects.select_related("host", "lock_task")
    try:
        return (qs.select_for_update(of=("self",)) if for_update else qs).get(pk=ct.pk)
    except Container.DoesNotExist:
        raise ContainerGone(f"Container {ct.ctid} no longer exists: it was destroyed.") from None


def _lock(ct: Container, task: Task) -> None:
    """Take the container's lock for `task` by conditional UPDATE, or refuse naming the holder."""
    if Container.objects.filter(pk=ct.pk, lock_task__isnull=True).update(lock_task=task) != 1:
        holder = _reload(ct).lock_task
        what = (f"task #{holder.pk} ({holder.get_type_display()}, {holder.status})"
                if holder else "another task")
        raise ContainerLocked(f"Container {ct.ctid} is locked by {what}; try again when it has finished.")
    ct.lock_task = task


def _check_state(ct: Container, action: str) -> None:
    reason = refusal(ct.status, action)
    if reason:
        raise InvalidState(f"Container {ct.ctid} {reason}.")


def _check_manage(ct: Container, user) -> None:
    """The service's own permission check, so no caller can forget it. `user` None is the system."""
    if user is None:
        return
    from accounts.permissions import manageable_containers
    if not manageable_containers(user).filter(pk=ct.pk).exists():
        if not Container.objects.filter(pk=ct.pk).exists():
            raise ContainerGone(f"Container {ct.ctid} no longer exists: it was destroyed.")
        raise NotAllowed(f"You may not change container {ct.ctid}.")


def _submit_locked(ct: Container, action: str, task_type: str, user, params=None) -> Task:
    _check_manage(ct, user)
    with transaction.atomic():
        # Lock first, then check the state: any refusal rolls back the task and the lock.
        ct = _reload(ct)
        task = submit_task(type=task_type, host=ct.host, user=user, container=ct, params=params)
        _lock(ct, task)
        _check_state(ct, action)
    return task


def next_free_ctid() -> int:
    last = Container.objects.order_by("-ctid").values_list("ctid", flat=True).first()
    return max(101, (last or 100) + 1)


def validate_limits(limits: dict) -> dict:
    clean = {}
    for key, value in limits.items():
        if key not in LIMIT_FIELDS:
            raise InvalidRequest(f"Unknown limit {key}.")
        if value is None and key in NULLABLE_LIMITS:
            clean[key] = None
            continue
        try:
            clean[key] = whole_number(value, key, *LIMIT_RANGES[key])
        except ValidationError as exc:
            if key == "disk_mb" and exc.code == "range" and whole_number(value, key) < MIN_DISK_MB:
                raise InvalidRequest(disk_too_small()) from None  # with why, and what the smallest costs
            raise InvalidRequest(messages(exc)) from None
    _check_pairs(clean)
    return clean


def _check_pairs(limits: dict, current=None) -> None:
    """barrier <= limit for the soft:hard pairs, as vzctl insists."""
    def value(key):
        if key in limits:
            return limits[key]
        return getattr(current, key, None) if current is not None else None
    for soft, hard, what in (("ram_barrier_mb", "ram_mb", "RAM barrier"), ("disk_soft_mb", "disk_mb", "diskspace soft limit"),
                             ("diskinodes_soft", "diskinodes", "diskinodes soft limit")):
        if value(soft) is not None and value(hard) is not None and value(soft) > value(hard):
            raise InvalidRequest(f"The {what} ({value(soft)}) is above the hard limit ({value(hard)}).")


CAPACITY_LIMITS = ("ram_mb", "cpus", "disk_mb")


def check_override(user, override: bool) -> None:
    """Only administrators promise past a host's policy (operators and tenant admins never)."""
    from accounts.permissions import is_admin
    if override and user is not None and not is_admin(user):
        raise NotAllowed("Only an administrator can override the host's capacity.")


def check_capacity(host: Host, user, exclude=None, override: bool = False, action: str = "create",
                   adding: str = "this one", **wanted) -> None:
    """Refuse to promise more than the host's policy allows (vzmemcheck/vzcpucheck/vzcalc), unless
    an administrator overrides; an override that mattered goes into the audit log with its numbers."""
    from hosts.capacity import shortfall
    check_override(user, override)
    short = shortfall(host, exclude=exclude, **wanted)
    if short is None:
        return
    if not override:
        raise InsufficientCapacity(short, action, adding)
    audit.record(user, "capacity.override", host, detail=f"{action}: {short.message(action, adding)}")


# What a tenant admin or member may set for the limits a plan does not name: no more than a
# container gets by default (OpenVZ's weights), so nobody outweighs their neighbours on the host.
MEMBER_CEILINGS = {"cpuunits": 1000, "ioprio": 4, "numproc": 65536}


def member_ceiling(key: str, limits: dict, current=None) -> int | None:
    """The highest value a non-administrator may give `key`; None when only the plan bounds it.
    cpulimit goes up to the container's CPUs (100 % each); inodes up to one per 4 KiB of disk."""
    def value(name):
        return limits.get(name, getattr(current, name, None) if current is not None else None)
    if key == "cpulimit":
        return 100 * (value("cpus") or 1)
    if key in ("diskinodes", "diskinodes_soft"):
        return (value("disk_mb") or 0) * 256
    return MEMBER_CEILINGS.get(key)


def _check_plan_ceiling(user, plan, limits: dict, current=None) -> None:
    """Only admins and operators set limits freely; everyone else stays within the plan, and
    within member_ceiling() for what the plan does not name."""
    from accounts.permissions import manages_all_containers
    if user is None or manages_all_containers(user):
        return
    if plan is None:
        raise NotAllowed("Only an administrator can set limits of a container without a plan.")
    for key, value in limits.items():
        ceiling = getattr(plan, key, None)
        if ceiling is not None and value is not None and value > ceiling:
            raise NotAllowed(f"{key} {value} is above plan {plan.name}'s {ceiling}; ask an administrator.")
        bound = member_ceiling(key, limits, current)
        if bound is None:
            continue
        if value is None and key == "numproc":
            raise NotAllowed(f"Only an administrator can lift the process limit; the most you may set is {bound}.")
        if value is not None and value > bound:
            raise NotAllowed(f"{key} {value} is above the {bound} you may set; ask an administrator.")


# -- what a create may bring besides the template: addresses, a root password, SSH keys (issue 18) ---
MAX_CREATE_ADDRESSES = 16
MAX_SSH_KEYS = 32
PASSWORD_MIN, PASSWORD_MAX = 8, 256
# libxcrypt (the crypt(3) of Debian and most distributions) checks passphrases of at most 511 bytes:
# a longer one could be hashed here but never typed in at the container's login.
PASSWORD_MAX_BYTES = 511


def clean_root_password(password) -> str:
    """A root password for a new container: 8 to 256 characters (at most 511 bytes in UTF-8), no line
    break or NUL (a login prompt could not take them). ':' is fine: it is hashed here, never written
    as it is."""
    if not isinstance(password, str) or not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise InvalidRequest(f"The root password must be {PASSWORD_MIN} to {PASSWORD_MAX} characters.")
    if any(c in password for c in "\r\n\x00"):
        raise InvalidRequest("The root password may not contain line breaks or NUL characters.")
    if len(password.encode("utf-8", "surrogatepass")) > PASSWORD_MAX_BYTES:
        raise InvalidRequest(f"The root password must be at most {PASSWORD_MAX_BYTES} bytes in UTF-8 (what the "
                             "container's crypt can check).")
    return password


def clean_ssh_public_keys(keys) -> list[str]:
    """SSH public keys as authorized_keys takes them, one line each: a known type, its base64 blob
    (which must decode and name the same type) and an optional comment; no options such as
    command=, no line breaks inside a key (that would be a second line: a key of the tenant's
    choosing with options of theirs)."""
    import base64
    import binascii
    import unicodedata
    if isinstance(keys, str) or not isinstance(keys, (list, tuple)):
        raise InvalidRequest("Give the SSH public keys as a list, one key each.")
    if len(keys) > MAX_SSH_KEYS:
        raise InvalidRequest(f"Give at most {MAX_SSH_KEYS} SSH public keys.")
    clean = []
    for number, key in enumerate(keys, 1):
        if not isinstance(key, str) or any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in key):
            raise InvalidRequest(f"SSH key {number} is not one line: give one key per line.")
        key = key.strip()
        if not _SSH_KEY_RE.fullmatch(key):
            raise InvalidRequest(f"SSH key {number} is not an SSH public key (expected e.g. "
                                 "'ssh-ed25519 AAAA... comment', without options).")
        kind, blob = key.split(" ", 2)[:2]
        try:
            raw = base64.b64decode(blob, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        named = raw[4:4 + int.from_bytes(raw[:4], "big")] if len(raw) > 4 else b""
        if named != kind.encode():
            raise InvalidRequest(f"SSH key {number} is damaged: its base64 part is not a {kind} key.")
        clean.append(key)
    return list(dict.fromkeys(clean))


def clean_create_addresses(addresses) -> list[str]:
    """vzctl create --ipadd: "auto" or an address, each; checked against pools and holders later,
    with the container's tenant and host known (network.services.assign_addresses)."""
    if isinstance(addresses, str) or not isinstance(addresses, (list, tuple)):
        raise InvalidRequest("Give the addresses as a list (each an address or auto).")
    if len(addresses) > MAX_CREATE_ADDRESSES:
        raise InvalidRequest(f"Give at most {MAX_CREATE_ADDRESSES} addresses.")
    clean = []
    for text in addresses:
        text = text.strip() if isinstance(text, str) else ""
        if not text or len(text) > 64:
            raise InvalidRequest("Each address is an IPv4 or IPv6 address, or auto.")
        clean.append(text)
    return clean


def _stash_root_password(task: Task, password: str) -> None:
    """The root password, hashed here ($6$, SHA-512 crypt), to the agent through a one-shot Redis key:
    the clear text never leaves this request, and not even the hash goes into the task row."""
    from redis.exceptions import RedisError

    from panel.shacrypt import sha512_crypt
    from tasks.secrets import HASH_TTL_SECONDS, stash_secret
    try:
        stash_secret(task.pk, sha512_crypt(password), ttl=HASH_TTL_SECONDS)
    except RedisError as exc:
        raise InvalidState(f"The task queue (Redis) cannot be reached ({exc}); nothing was created.") from None


@sensitive_variables("root_password")
@audited("container.create", target="tenant")
def create_container(*, user, ctid: int, ostemplate: str, hostname: str, host: Host | None,
                     name: str | None = None, onboot: bool = False, description: str = "",
                     start: bool = False, tenant=None, plan=None, owner=None, limits: dict | None = None,
                     student_class=None, expires_at=None, override_capacity: bool = False,
                     task_type: str = TaskType.CT_CREATE, task_params: dict | None = None,
                     storage: str | None = None,
                     addresses: list[str] | None = None, ip_pool: str | None = None,
                     root_password: str | None = None, ssh_public_keys: list[str] | None = None) -> Task:
    """Register a container in state 'creating' and queue its creation on `host` (None: the panel
    picks one by capacity) or, with task_type CT_RESTORE, its restore from a backup. `storage`: the
    name of the host's storage pool to make it on (None: the host's default).

    `addresses` ("auto" or an address each; `ip_pool` for auto), `root_password` and
    `ssh_public_keys` (for root) are checked here, all before anything is made: an address outside
    the tenant's pools or held by another container, a damaged key or a bad password refuses the
    whole create."""
    from accounts.permissions import creatable_tenants, may_create_without_tenant
    try:
        validate_ctid(ctid)
        validate_hostname(hostname)
        if name:
            validate_name_alias(name)
    except ValidationError as exc:
        raise InvalidRequest(messages(exc)) from None
    if task_type != TaskType.CT_CREATE and (addresses or root_password or ssh_public_keys):
        raise InvalidRequest("Addresses, a root password and SSH keys are given when creating from a template.")
    addresses = clean_create_addresses(addresses) if addresses else []
    if root_password is not None and root_password != "":
        clean_root_password(root_password)
    ssh_public_keys = clean_ssh_public_keys(ssh_public_keys) if ssh_public_keys else []
    if ip_pool is not None and not isinstance(ip_pool, str):
        raise InvalidRequest("Name the IP pool for auto addresses.")
    ctid = int(ctid)
    if user is not None:
        if tenant is None and not may_create_without_tenant(user):
            raise NotAllowed("Choose the tenant the container belongs to.")
        if tenant is not None and not creatable_tenants(user).filter(pk=tenant.pk).exists():
            raise NotAllowed(f"You may not create containers in tenant {tenant.slug}.")
    if plan is not None and tenant is not None and plan.tenants.exists() and not plan.tenants.filter(pk=tenant.pk).exists():
        raise InvalidRequest(f"Plan {plan.name} is not offered to tenant {tenant.slug}.")
    wanted = dict(plan.limits() if plan else settings.DEFAULT_LIMITS)
    wanted.update(validate_limits(limits or {}))
    _check_plan_ceiling(user, plan, wanted if limits else {})
    if user is not None and plan is None and tenant is not None:
        from accounts.permissions import manages_all_containers
        if not manages_all_containers(user):
            raise InvalidRequest("Choose a plan for the container.")
    if host is None and Host.objects.count() == 1:
        host = Host.objects.get()  # one host: no choice to make (its agent may start later)
    action = "restore" if task_type == TaskType.CT_RESTORE else "create"
    check_override(user, override_capacity)
    if host is None:  # placement: the online, undrained host with the most room that has the template
        from hosts.placement import pick_host
        host = pick_host(template=ostemplate if task_type == TaskType.CT_CREATE else None,
                         override_capacity=override_capacity, **{k: wanted[k] for k in CAPACITY_LIMITS})
    if host.is_drained:
        raise InvalidState(f"Host {host.name} is drained" + (f" ({host.drain_reason})" if host.drain_reason else "")
                           + ": no new containers are placed there. Pick another host or leave it to the panel.")
    if task_type == TaskType.CT_CREATE and not OSTemplate.objects.filter(host=host, name=ostemplate).exists():
        raise InvalidRequest(f"OS template {ostemplate!r} is not in the template cache of host {host.name}.")
    if any(str(u.get("name")) == str(ctid) for u in host.unmanaged):
        raise InvalidRequest(f"CTID {ctid} is already used by a container on {host.name} that the panel "
                             "does not manage; pick another CTID.")
    if owner is None and user is not None and user.is_authenticated:
        owner = user
    # Storage pool (issue 21): the named one or the host's default, one the user may use for the tenant.
    from storage.services import pool_for_create
    pool = pool_for_create(host, user, tenant, storage)
    try:
        with transaction.atomic():
            check_quota(tenant, containers=1, **{k: v for k, v in wanted.items() if k in PLAN_LIMITS})
            check_capacity(host, user, override=override_capacity, action=action,
                           **{k: wanted[k] for k in CAPACITY_LIMITS})
            ct = Container.objects.create(
                ctid=ctid, name=name or None, hostname=hostname, ostemplate=ostemplate, host=host,
                onboot=onboot, description=description, owner=owner, tenant=tenant, plan=plan,
                student_class=student_class, expires_at=expires_at, status=ContainerStatus.CREATING, **wanted,
            )
            Container.objects.filter(pk=ct.pk).update(storage=pool)  # its own line: see pool_for_create above
            ct.storage = pool
            assigned = []
            if addresses:
                from network.services import assign_addresses
                assigned = assign_addresses(ct, user, addresses, ip_pool or None)
            extra = {k: v for k, v in (("addresses", assigned), ("root_password", bool(root_password)),
                                       ("ssh_public_keys", ssh_public_keys)) if v}
            task = submit_task(type=task_type, host=host, user=user, container=ct,
                               params={"ostemplate": ostemplate, "hostname": hostname, "start": bool(start),
                                       **(task_params or {}), **extra})
            _lock(ct, task)
            if root_password:
                _stash_root_password(task, root_password)
    except IntegrityError:
        if Container.objects.filter(ctid=ctid).exists():
            raise InvalidRequest(f"CTID {ctid} is already in use.") from None
        raise InvalidRequest(f"The name {name!r} is already in use.") from None
    return task


@audited("container.migrate")
def migrate_container(ct: Container, user, dest: Host | None, *, online: bool = False, remove_source: bool = True,
                      keep_dst: bool = False, bwlimit_kib: int = 0, override_capacity: bool = False,
                      queue: bool = True) -> Task:
    """vzmigrate [--online] [-r yes|no] [--keep-dst] DEST CTID. `dest` None: placement picks one.
    The container stays locked by the migration task until it has finished, either way."""
    from accounts.permissions import manages_hosts
    from hosts.placement import pick_host
    _check_manage(ct, user)
    if user is not None and not manages_hosts(user):
        raise NotAllowed("Only administrators and operators move containers between hosts.")
    ct = _reload(ct)
    # Storage pools (issue 21): a migration copies files into an image at the destination; a btrfs
    # container's subvolume, bind mount and snapshots are not carried (btrfs send is still to come).
    if ct.storage is not None and ct.storage.type == "btrfs":
        raise InvalidRequest(f"Container {ct.ctid} is on the btrfs storage pool {ct.storage.name}: moving it to "
                             "another host is not possible yet (back it up and restore it there instead).")
    if dest is None:
        dest = pick_host(ram_mb=ct.ram_mb, cpus=ct.cpus, disk_mb=ct.disk_mb, exclude=(ct.host_id,))
    dest = Host.objects.get(pk=dest.pk)  # its agent's latest heartbeat, pinned key and drain state
    if dest.pk == ct.host_id:
        raise InvalidRequest(f"Container {ct.ctid} is already on {dest.name}.")
    if ct.status not in (ContainerStatus.RUNNING, ContainerStatus.STOPPED):
        raise InvalidState(f"Container {ct.ctid} is {ct.status}; it can be migrated when running or stopped.")
    if dest.is_drained:
        raise InvalidState(f"Host {dest.name} is drained" + (f" ({dest.drain_reason})" if dest.drain_reason else "")
                           + ": containers are not moved there.")
    for host, role in ((ct.host, "source"), (dest, "destination")):
        if not host.agent_online:
            raise InvalidState(f"The {role} host {host.name} cannot take part: {host.agent_status_text}.")
    if dest.ssh_address and not dest.ssh_host_key:
        raise InvalidState(f"Host {dest.name} has no pinned SSH host key yet; its agent reports it when it starts.")
    if not dest.ssh_address and not (dest.machine_id and dest.machine_id == ct.host.machine_id):
        raise InvalidRequest(f"Host {dest.name} has no SSH address and is not the same machine as {ct.host.name}; "
                             "set its SSH address first.")
    if any(str(u.get("name")) == str(ct.ctid) for u in dest.unmanaged):
        raise InvalidState(f"Host {dest.name} already has an LXC container named {ct.ctid} that the panel "
                           "does not manage.")
    busy = Task.objects.filter(host=dest, type__in=[TaskType.CT_MIGRATE, TaskType.HOST_EVACUATE],
                               status__in=["queued", "running"]).first()
    if busy:
        # Its agent would be waiting for ours while ours waits for it.
        raise InvalidState(f"Host {dest.name} is itself sending containers away (task #{busy.pk}); "
                           "migrate to it when that has finished.")
    try:
        bwlimit_kib = int(bwlimit_kib or 0)
    except (TypeError, ValueError):
        raise InvalidRequest("The bandwidth limit is a whole number of KiB/s.") from None
    if not 0 <= bwlimit_kib <= 100_000_000:
        raise InvalidRequest("The bandwidth limit is between 0 (none) and 100000000 KiB/s.")
    check_capacity(dest, user, override=override_capacity, action="migration",
                   **{k: getattr(ct, k) for k in CAPACITY_LIMITS})
    with transaction.atomic():
        ct = _reload(ct)
        task = submit_task(type=TaskType.CT_MIGRATE, host=ct.host, user=user, container=ct, queue=queue,
                           params={"dest_host_id": dest.pk, "dest": dest.name, "online": bool(online),
                                   "remove_source": bool(remove_source), "keep_dst": bool(keep_dst),
                                   "bwlimit_kib": bwlimit_kib, "job_timeout": 6 * 3600})
        _lock(ct, task)
        if ct.status not in (ContainerStatus.RUNNING, ContainerStatus.STOPPED):
            raise InvalidState(f"Container {ct.ctid} is {ct.status}; it can be migrated when running or stopped.")
    return task


@audited("container.start")
def start_container(ct: Container, user) -> Task:
    return _submit_locked(ct, Action.START, TaskType.CT_START, user)


@audited("container.stop")
def stop_container(ct: Container, user) -> Task:
    return _submit_locked(ct, Action.STOP, TaskType.CT_STOP, user)


@audited("container.restart")
def restart_container(ct: Container, user) -> Task:
    return _submit_locked(ct, Action.RESTART, TaskType.CT_RESTART, user)


@audited("container.destroy")
def destroy_container(ct: Container, user, confirm: str | int | None) -> Task:
    """Destroy a stopped container. `confirm` must repeat its CTID, as the UI asks."""
    if str(confirm).strip() != str(ct.ctid):
        raise InvalidRequest(f"To destroy container {ct.ctid}, confirm by typing its CTID ({ct.ctid}).")
    return _submit_locked(ct, Action.DESTROY, TaskType.CT_DESTROY, user)


@audited("container.reset")
def reset_container(ct: Container, user, confirm: str | int | None) -> Task:
    """Put a fresh copy of the container's OS template in place of its root filesystem."""
    if str(confirm).strip() != str(ct.ctid):
        raise InvalidRequest(f"To reset container {ct.ctid} to its template, confirm by typing its CTID ({ct.ctid}).")
    return _submit_locked(ct, Action.DESTROY, TaskType.CT_RESET, user)


MAX_EXEC_INPUT = 256 * 1024  # what a command may be given on its standard input (vzctl runscript's script)


@audited("container.exec")
def exec_in_container(ct: Container, user, argv: list[str], timeout: int = 60, stdin: str | None = None) -> Task:
    """vzctl exec: run argv inside the running container; `stdin`, if given, is its standard input."""
    try:
        validate_command(argv)
        timeout = whole_number(timeout, "The timeout (seconds)", 1, 3600)
    except ValidationError as exc:
        raise InvalidRequest(messages(exc)) from None
    params = {"argv": list(argv), "timeout": timeout}
    if stdin is not None:
        if len(stdin.encode("utf-8", "surrogateescape")) > MAX_EXEC_INPUT or "\x00" in stdin:
            raise InvalidRequest(f"The input is at most {MAX_EXEC_INPUT // 1024} KiB of text, without NUL characters.")
        params["stdin"] = stdin
    return _submit_locked(ct, Action.EXEC, TaskType.CT_EXEC, user, params=params)


# vzctl runscript: the script is copied in (a file of its own, so its #! line counts), run, removed.
RUNSCRIPT = ('f=$(mktemp) || exit 1; cat > "$f" && chmod 700 "$f" && "$f" "$@"; s=$?; rm -f "$f"; exit $s')


def run_script(ct: Container, user, script: str, args: list[str] = (), timeout: int = 600) -> Task:
    """vzctl runscript CTID FILE: the local script's text, copied into the container and run there,
    through exec_in_container (its checks, lock and audit record)."""
    return exec_in_container(ct, user, ["/bin/sh", "-c", RUNSCRIPT, "runscript", *args], timeout, stdin=script)


@audited("container.suspend")
def suspend_container(ct: Container, user) -> Task:
    """vzctl suspend: freeze every process of the container (in memory; see jobs.suspend)."""
    return _submit_locked(ct, Action.SUSPEND, TaskType.CT_SUSPEND, user)


@audited("container.resume")
def resume_container(ct: Container, user) -> Task:
    """vzctl resume: thaw a suspended container."""
    return _submit_locked(ct, Action.RESUME, TaskType.CT_RESUME, user)


@audited("container.mount")
def mount_container(ct: Container, user) -> Task:
    """vzctl mount: mount the root filesystem (its disk image) at LXCPATH/CTID/rootfs, and let the
    agent keep it mounted again (it leaves one unmounted with vzctl umount alone)."""
    return _submit_locked(ct, Action.MOUNT, TaskType.CT_MOUNT, user)


@audited("container.umount")
def umount_container(ct: Container, user) -> Task:
    """vzctl umount: unmount the stopped container's root filesystem and keep it unmounted (the
    agent's reconcile and restarts leave it so) until vzctl mount or vzctl start."""
    return _submit_locked(ct, Action.UMOUNT, TaskType.CT_UMOUNT, user)


_SSH_KEY_RE = re.compile(r"(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com"
                         r"|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/=]{16,8192}( [^\r\n\x00]{0,200})?")


def _check_system_user(username) -> None:
    try:
        validate_system_user(username)
    except ValidationError as exc:
        raise InvalidRequest(messages(exc)) from None


@audited("container.userpasswd")
def set_user_password(ct: Container, user, username: str, password: str) -> Task:
    """vzctl set --userpasswd USER:PASS. The password goes to the agent through Redis only
    (a short-lived key the agent deletes as it reads it): never in the database or a log."""
    _check_system_user(username)
    if not password or len(password) < 8:
        raise InvalidRequest("The password must be at least 8 characters.")
    if len(password) > 512 or any(c in password for c in "\r\n\x00:"):
        raise InvalidRequest("The password may not contain ':', line breaks or NUL, and is at most 512 characters.")
    from tasks.secrets import stash_secret
    with transaction.atomic():
        task = _submit_locked(ct, Action.SET, TaskType.CT_USERPASSWD, user, params={"user": username})
        stash_secret(task.pk, password)
    return task


@audited("container.sshkey")
def set_ssh_key(ct: Container, user, public_key: str, username: str = "root") -> Task:
    key = (public_key or "").strip()
    if not _SSH_KEY_RE.fullmatch(key):
        raise InvalidRequest("That is not an SSH public key (expected e.g. 'ssh-ed25519 AAAA... comment').")
    _check_system_user(username)
    return _submit_locked(ct, Action.SET, TaskType.CT_SSHKEY, user, params={"user": username, "key": key})


SETTABLE = ("hostname", "name", "onboot", "description", *LIMIT_FIELDS)


@audited("container.set")
def update_container(ct: Container, user, override_capacity: bool = False, **changes) -> Task | None:
    """vzctl set: saves the settings; queues a task when the host must apply them.

    Name and description live only in the panel and are saved at once; a new
    hostname, onboot flag or limit is written into the container by the agent.
    Limits are checked against the plan (for non-admins) and the tenant's quota.
    """
    _check_manage(ct, user)
    unknown = set(changes) - set(SETTABLE)
    if unknown:
        raise InvalidRequest(f"Cannot set {', '.join(sorted(unknown))}.")
    try:
        if "hostname" in changes:
            validate_hostname(changes["hostname"])
        if changes.get("name"):
            validate_name_alias(changes["name"])
    except ValidationError as exc:
        raise InvalidRequest(messages(exc)) from None
    limits = validate_limits({k: v for k, v in changes.items() if k in LIMIT_FIELDS})
    _check_pairs(limits, ct)
    changes.update(limits)
    if "name" in changes:
        changes["name"] = changes["name"] or None
    changed = {k: v for k, v in changes.items() if getattr(ct, k) != v}
    if not changed:
        return None
    changed_limits = {k: v for k, v in changed.items() if k in LIMIT_FIELDS}
    _check_plan_ceiling(user, ct.plan, changed_limits, current=ct)
    needs_agent = bool({"hostname", "onboot", *LIMIT_FIELDS} & set(changed))
    try:
        with transaction.atomic():
            fresh = _reload(ct, for_update=True)
            task = None
            if needs_agent:
                params = {k: changed[k] for k in changed if k not in ("name", "description")}
                if changed_limits:
                    # What the row held before: the agent orders live changes by it, and puts
                    # it back if the host refuses the new values.
                    params["old"] = {k: getattr(fresh, k) for k in LIMIT_FIELDS}
                task = submit_task(type=TaskType.CT_SET, host=fresh.host, user=user, container=fresh,
                                   params=params)
                _lock(fresh, task)
                _check_state(fresh, Action.SET)
            if changed_limits:
                check_quota(fresh.tenant, **{k: v - getattr(fresh, k) for k, v in changed_limits.items()
                                             if k in PLAN_LIMITS})
                check_capacity(fresh.host, user, exclude=fresh, override=override_capacity, action="limit change",
                               **{k: changed_limits.get(k, getattr(fresh, k)) for k in CAPACITY_LIMITS})
            for key, value in changed.items():
                setattr(fresh, key, value)
            fresh.save(update_fields=[*changed, "updated_at"])
    except IntegrityError:
        raise InvalidRequest(f"The name {changes.get('name')!r} is already in use.") from None
    for key, value in changed.items():
        setattr(ct, key, value)
    return task
