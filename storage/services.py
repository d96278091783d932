"""Storage pools and snapshots: one function per operation, for views, CLI and API alike.

Each checks permission (again: no caller can forget), validates, checks quota and queues a task
for the host's agent in one transaction; the agent does the privileged work (storage/jobs.py).
"""
from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.audit import audited
from containers.choices import ContainerStatus
from containers.models import Container
from containers.services import InvalidRequest, InvalidState, NotAllowed, _check_manage, _lock, _reload
from panel.validators import messages
from tasks.choices import TaskType
from tasks.models import Task
from tasks.services import submit_task
from tenancy.quotas import check_quota, register_usage

from .models import PoolStatus, PoolType, Snapshot, StoragePool

SNAPSHOT_NAME_HELP = "letters, digits, '.', '_', '-', at most 64, starting with a letter or digit"
register_usage("snapshots", lambda tenant: Snapshot.objects.filter(container__tenant=tenant).count())


def default_pool(host) -> StoragePool:
    """The host's default pool; a host added after storage pools came gets today's image pool."""
    pool = StoragePool.objects.filter(host=host, is_default=True).first()
    if pool is None:
        pool, _ = StoragePool.objects.get_or_create(host=host, name="default",
                                                    defaults={"type": PoolType.IMAGE, "is_default": True})
    return pool


def image_pool(host) -> StoragePool:
    """A pool of the host that keeps containers as they arrive by migration (an image in the lxcpath):
    the default if it is one, else another image pool, else a new one."""
    pool = default_pool(host)
    if pool.type == PoolType.IMAGE:
        return pool
    pool = StoragePool.objects.filter(host=host, type=PoolType.IMAGE).order_by("pk").first()
    if pool is None:
        pool, _ = StoragePool.objects.get_or_create(host=host, name="images", defaults={"type": PoolType.IMAGE})
    return pool


def usable_pools(host, user, tenant=None):
    """The ready pools of `host` that `user` may create containers on for `tenant`: every pool for
    administrators and operators (and the system); others only pools open to every tenant or
    named for theirs."""
    from accounts.permissions import manages_all_containers
    qs = StoragePool.objects.filter(host=host, status=PoolStatus.READY)
    if user is None or manages_all_containers(user):
        return qs
    if tenant is None:
        return qs.filter(tenants__isnull=True)
    return qs.filter(tenants__isnull=True) | qs.filter(tenants=tenant)


def pool_for_create(host, user, tenant, name: str | None) -> StoragePool:
    """The pool a new container goes on: the named one or the host's default, if `user` may use it
    for `tenant` (a pool they may not use is refused as if it did not exist)."""
    if not name:
        pool = default_pool(host)
        if not usable_pools(host, user, tenant).filter(pk=pool.pk).exists():
            allowed = usable_pools(host, user, tenant).order_by("name").first()
            if allowed is None:
                raise NotAllowed(f"No storage pool of host {host.name} is open to you; ask an administrator.")
            return allowed
        return pool
    pool = usable_pools(host, user, tenant).filter(name=name).distinct().first()
    if pool is None:
        raise InvalidRequest(f"Host {host.name} has no storage pool {name!r} you may create containers on.")
    return pool


def _check_admin(user) -> None:
    from accounts.permissions import is_admin
    if user is not None and not is_admin(user):
        raise NotAllowed("Only an administrator manages storage pools.")


@audited("storage.pool.add", target="host")
def add_pool(*, host, user, name: str, type: str, device: str = "", loop_size_mb: int | None = None,
             tenants=(), make_default: bool = False) -> StoragePool:
    """Add a storage pool to a host. dir and image pools live in the host's lxcpath and are ready at
    once; a btrfs pool is made by the host's agent (mkfs.btrfs on the device or a loop file, mount,
    quotas on) and is ready when that task has finished."""
    _check_admin(user)
    if type not in PoolType.values:
        raise InvalidRequest(f"A pool's type is one of {', '.join(PoolType.values)}.")
    pool = StoragePool(host=host, name=name, type=type, device=device or "", loop_size_mb=loop_size_mb or None,
                       status=PoolStatus.CREATING if type == PoolType.BTRFS else PoolStatus.READY)
    try:
        pool.full_clean()
    except ValidationError as exc:
        raise InvalidRequest(messages(exc)) from None
    if device and StoragePool.objects.filter(host=host, device=device).exists():
        raise InvalidRequest(f"{device} is already a storage pool of {host.name}.")
    with transaction.atomic():
        try:
            pool.save()
        except IntegrityError:
            raise InvalidRequest(f"Host {host.name} has a storage pool {name!r} already.") from None
        pool.tenants.set(tenants)
        if make_default and type != PoolType.BTRFS:
            _make_default(pool)
        if type == PoolType.BTRFS:
            pool.task = submit_task(type=TaskType.POOL_CREATE, host=host, user=user,
                                    params={"pool": pool.pk, "make_default": bool(make_default)})
    return pool


def _make_default(pool: StoragePool) -> None:
    StoragePool.objects.filter(host=pool.host, is_default=True).exclude(pk=pool.pk).update(is_default=False)
    StoragePool.objects.filter(pk=pool.pk).update(is_default=True)
    pool.is_default = True


@audited("storage.pool.default", target="pool")
def set_default_pool(*, pool: StoragePool, user) -> StoragePool:
    _check_admin(user)
    if pool.status != PoolStatus.READY:
        raise InvalidState(f"Storage pool {pool.name} is {pool.get_status_display()}: it cannot be the default.")
    with transaction.atomic():
        _make_default(pool)
    return pool


@audited("storage.pool.tenants", target="pool")
def set_pool_tenants(*, pool: StoragePool, user, tenants) -> StoragePool:
    """Limit who may create on a pool (none: every tenant); containers already there stay."""
    _check_admin(user)
    pool.tenants.set(tenants)
    return pool


# -- snapshots ---------------------------------------------------------------------------------------
def _check_snapshot_name(name: str) -> str:
    from containers.engine.storage.btrfspool import SNAPSHOT_NAME_RE
    if not isinstance(name, str) or not SNAPSHOT_NAME_RE.fullmatch(name):
        raise InvalidRequest(f"{name!r} is not a snapshot name ({SNAPSHOT_NAME_HELP}).")
    return name


def _snapshot_pool(ct: Container) -> StoragePool:
    pool = ct.storage
    if pool is None or pool.type != PoolType.BTRFS:
        raise InvalidRequest(f"Container {ct.ctid} is on {'a ' + pool.type if pool else 'an image'} storage pool, "
                             "which cannot take snapshots; only containers on btrfs pools have snapshots.")
    return pool


def visible_snapshots(ct: Container):
    """The snapshots of `ct` (the caller has looked the container up for the user: its snapshots go
    with it, never another's)."""
    return Snapshot.objects.filter(container=ct, ready=True)


def next_snapshot_name(ct: Container) -> str:
    from django.utils import timezone
    base = timezone.now().strftime("snap-%Y%m%d-%H%M%S")
    name, n = base, 1
    while Snapshot.objects.filter(container=ct, name=name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


@audited("container.snapshot")
def take_snapshot(ct: Container, user, name: str | None = None, description: str = "") -> Task:
    """vzctl snapshot CTID [--name N] [--description D]: a read-only snapshot of the container's
    subvolume; a running container is frozen only for the snapshot itself."""
    _check_manage(ct, user)
    ct = _reload(ct)
    _snapshot_pool(ct)
    name = _check_snapshot_name(name) if name else next_snapshot_name(ct)
    if len(description or "") > 500:
        raise InvalidRequest("A snapshot's description is at most 500 characters.")
    with transaction.atomic():
        ct = _reload(ct)
        if ct.status not in (ContainerStatus.RUNNING, ContainerStatus.STOPPED):
            raise InvalidState(f"Container {ct.ctid} is {ct.get_status_display()}; a snapshot is taken of a "
                               "running or stopped container.")
        check_quota(ct.tenant, snapshots=1)
        try:
            with transaction.atomic():
                snap = Snapshot.objects.create(container=ct, name=name, description=description or "",
                                               created_by=user if user is not None and user.is_authenticated else None)
        except IntegrityError:
            raise InvalidRequest(f"Container {ct.ctid} has a snapshot {name} already.") from None
        task = submit_task(type=TaskType.CT_SNAPSHOT, host=ct.host, user=user, container=ct,
                           params={"snapshot": snap.pk, "name": name})
        _lock(ct, task)
    return task


def _snapshot_of(ct: Container, name: str) -> Snapshot:
    snap = Snapshot.objects.filter(container=ct, name=_check_snapshot_name(name), ready=True).first()
    if snap is None:
        raise InvalidRequest(f"Container {ct.ctid} has no snapshot {name}.")
    return snap


def _on_snapshot(ct: Container, user, name: str, task_type: str, stopped_only: bool) -> Task:
    """Queue a task on one of the container's snapshots (looked up within the container, so no one
    reaches another container's), holding the container's lock."""
    _check_manage(ct, user)
    ct = _reload(ct)
    _snapshot_pool(ct)
    with transaction.atomic():
        ct = _reload(ct)
        snap = _snapshot_of(ct, name)
        if stopped_only and ct.status != ContainerStatus.STOPPED:
            raise InvalidState(f"Container {ct.ctid} is {ct.get_status_display()}; stop it first, then switch "
                               "to the snapshot.")
        task = submit_task(type=task_type, host=ct.host, user=user, container=ct,
                           params={"snapshot": snap.pk, "name": snap.name})
        _lock(ct, task)
    return task


@audited("container.snapshot.switch")
def switch_snapshot(ct: Container, user, name: str) -> Task:
    """vzctl snapshot-switch CTID --id NAME: the stopped container rolled back to the snapshot."""
    return _on_snapshot(ct, user, name, TaskType.CT_SNAPSHOT_SWITCH, stopped_only=True)


@audited("container.snapshot.delete")
def delete_snapshot(ct: Container, user, name: str) -> Task:
    """vzctl snapshot-delete CTID --id NAME."""
    return _on_snapshot(ct, user, name, TaskType.CT_SNAPSHOT_DELETE, stopped_only=False)
