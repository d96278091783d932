"""What the host agent does for storage pools and snapshots. Runs only in the agent process.

The agent builds each pool from its own row: the mountpoint and loop file are derived from the
host's lxcpath (checked to be root's alone) and the pool's validated name, the device is the one an
administrator named; a task's parameters only say which row (a pool id, a snapshot id)."""
from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

from django.db import transaction

from containers.engine.storage import POOL_TYPES, StorageError, StoragePool as EnginePool
from containers.engine.storage.btrfspool import BtrfsPool
from containers.jobs import _container, as_task_failure, lxc_for, refresh_state
from containers.engine.safefs import root_only_dir
from containers.models import Container
from tasks.choices import TaskType
from tasks.registry import handler
from tasks.runner import TaskFailed

from .models import PoolStatus, PoolType, Snapshot, StoragePool

logger = logging.getLogger(__name__)


def engine_pool(row: StoragePool, lxcpath: Path) -> EnginePool:
    """The engine's pool for a row of this host (lxcpath: the host's, already checked)."""
    lxcpath = Path(lxcpath)
    if row.type == PoolType.BTRFS:
        return BtrfsPool(row.mountpoint(lxcpath), device=row.device or None, loop_file=row.loop_file(lxcpath))
    return POOL_TYPES[row.type](lxcpath)


def storage_resolver(host, lxcpath: Path):
    """storage_of(ctid) for Lxc: the pool of this host's container `ctid` from the database (None for
    a container the panel does not know, or one without a pool: the image pool it always had).
    `storage_of.remember({ctid: storage_id})`: for a pass over many containers whose rows the caller
    has just read (reconcile, a sampling round), their pools come from those rows instead of one
    query each; `remember(None)` ends it (see `pools_from_rows`)."""
    pools: dict[int, EnginePool] = {}
    known: dict[int, int | None] = {}

    def storage_of(ctid: int) -> EnginePool | None:
        if ctid in known:
            pool_id = known[ctid]
        else:
            pool_id = Container.objects.filter(host=host, ctid=ctid).values_list("storage_id", flat=True).first()
        if pool_id is None:
            return None
        if pool_id not in pools:
            row = StoragePool.objects.filter(pk=pool_id, host=host).first()
            if row is None:
                return None
            pools[pool_id] = engine_pool(row, lxcpath)
        return pools[pool_id]

    def remember(pool_ids: dict[int, int | None] | None) -> None:
        known.clear()
        known.update(pool_ids or {})
    storage_of.remember = remember
    return storage_of


@contextmanager
def pools_from_rows(lxc, rows):
    """Within the block, `lxc` takes the pools of `rows` (this host's Container rows, just read) from
    them: a pass over 1000 containers asks no query per container. Outside it, each ask reads the row."""
    remember = getattr(lxc.storage_of, "remember", None)
    if remember is None:
        yield
        return
    remember({ct.ctid: ct.storage_id for ct in rows})
    try:
        yield
    finally:
        remember(None)


def refresh_pools(host, lxcpath: Path) -> list[Path]:
    """Mount the host's btrfs pools (not mounted after a reboot) and write each pool's size and use.
    Returns the mountpoints of its btrfs pools, for reconcile to see one unmounted without a query."""
    mountpoints = []
    for row in StoragePool.objects.filter(host=host, status=PoolStatus.READY):
        if row.type == PoolType.BTRFS:
            mountpoints.append(row.mountpoint(lxcpath))
        try:
            pool = engine_pool(row, lxcpath)
            pool.ensure_ready()
            space = pool.space()
        except (StorageError, OSError) as exc:
            logger.warning("storage pool %s: %s", row.name, exc)
            continue
        if space and (space.total_bytes, space.used_bytes) != (row.size_bytes, row.used_bytes):
            StoragePool.objects.filter(pk=row.pk).update(size_bytes=space.total_bytes, used_bytes=space.used_bytes)
    return mountpoints


@handler(TaskType.POOL_CREATE)
def create_pool(task, log):
    row = StoragePool.objects.filter(pk=task.params.get("pool"), host=task.host).first()
    if row is None or row.status != PoolStatus.CREATING or row.type != PoolType.BTRFS:
        raise TaskFailed("this storage pool is not waiting to be made on this host")
    lxcpath = root_only_dir(task.host.lxcpath, "lxcpath")
    pool = engine_pool(row, lxcpath)
    try:
        pool.make(row.loop_size_mb, log)
    except BaseException as exc:
        failure = as_task_failure(exc)
        StoragePool.objects.filter(pk=row.pk).update(status=PoolStatus.FAILED, error=str(failure)[:500])
        raise failure from None
    space = pool.space()
    with transaction.atomic():
        StoragePool.objects.filter(pk=row.pk).update(status=PoolStatus.READY, error="",
                                                     size_bytes=space.total_bytes if space else None,
                                                     used_bytes=space.used_bytes if space else None)
        if task.params.get("make_default"):
            StoragePool.objects.filter(host=task.host, is_default=True).update(is_default=False)
            StoragePool.objects.filter(pk=row.pk).update(is_default=True)
    log(f"Storage pool {row.name} is ready ({(space.total_bytes >> 20) if space else '?'} MiB)")
    return {"pool": row.name}


def _snapshot_row(task) -> Snapshot:
    snap = Snapshot.objects.filter(pk=task.params.get("snapshot"), container=task.container).first()
    if snap is None:
        raise TaskFailed("the snapshot is no longer in the panel")
    return snap


@handler(TaskType.CT_SNAPSHOT)
def take_snapshot(task, log):
    ct = _container(task)
    snap = _snapshot_row(task)
    lxc = lxc_for(task.host)
    state = lxc.state(ct.ctid)
    try:
        frozen = lxc.snapshot(ct.ctid, snap.name, running=state == "RUNNING")
    except BaseException as exc:
        snap.delete()
        raise as_task_failure(exc) from None
    Snapshot.objects.filter(pk=snap.pk).update(ready=True, frozen_ms=None if frozen is None else frozen * 1000)
    if frozen is None:
        log(f"Snapshot {snap.name} of {ct.ctid} taken")
    else:
        log(f"Snapshot {snap.name} of {ct.ctid} taken; the container was frozen for {frozen * 1000:.1f} ms")
    refresh_state(ct, lxc)
    return {"snapshot": snap.name, "frozen_ms": None if frozen is None else round(frozen * 1000, 2)}


@handler(TaskType.CT_SNAPSHOT_SWITCH)
def switch_snapshot(task, log):
    ct = _container(task)
    snap = _snapshot_row(task)
    lxc = lxc_for(task.host)
    try:
        lxc.snapshot_switch(ct.ctid, snap.name, ct.disk_mb)
    except BaseException as exc:
        raise as_task_failure(exc) from None
    log(f"Container {ct.ctid} switched to snapshot {snap.name}")
    refresh_state(ct, lxc)
    return {"snapshot": snap.name}


@handler(TaskType.CT_SNAPSHOT_DELETE)
def delete_snapshot(task, log):
    ct = _container(task)
    snap = _snapshot_row(task)
    lxc = lxc_for(task.host)
    try:
        lxc.storage(ct.ctid).snapshot_delete(ct.ctid, snap.name)
    except StorageError as exc:
        raise TaskFailed(str(exc)) from None
    snap.delete()
    log(f"Snapshot {snap.name} of {ct.ctid} deleted")
    return {"deleted": snap.name}
