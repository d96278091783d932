"""Backup operations (vzdump, vzrestore, verify, prune), called by the views, the CLI, the API and
the scheduler alike. Each checks permission and quota and queues a task; the agent does the work."""
from __future__ import annotations

import re
import time

from django.db import transaction

from accounts.audit import audited, record
from containers.choices import Action, ContainerStatus
from containers.models import Container
from containers.services import InvalidRequest, InvalidState, NotAllowed, _check_manage, _submit_locked
from panel.validators import clean_host_path, messages
from tasks.choices import TaskType
from tasks.models import Task
from tasks.services import submit_task
from tenancy.quotas import check_quota

from .models import Backup, BackupMode, BackupStorage, Compression

COMPRESSIONS = tuple(Compression.values)
ARCHIVE_RE = re.compile(r"^vzdump-(lxc|openvz)-([0-9]+)-[0-9]{4}_[0-9]{2}_[0-9]{2}-[0-9]{2}_[0-9]{2}_[0-9]{2}"
                        r"\.tar(\.gz|\.zst)?\Z")
# The names vzdump gave over the years: vzdump 1.0's vzdump-CTID.tar|.tgz (no kind, no date),
# vzdump 1.2's vzdump-openvz-CTID-DATE.tgz, and ours.
ARCHIVE_NAMES = re.compile(r"^vzdump-(?:(lxc|openvz)-([0-9]{1,10})(-[0-9]{4}_[0-9]{2}_[0-9]{2}-[0-9]{2}_[0-9]{2}_[0-9]{2})"
                           r"|([0-9]{1,10}))\.(tar|tar\.gz|tgz|tar\.zst)\Z", re.ASCII)
ARCHIVE_SUFFIXES = {"tar": ".tar", "tar.gz": ".tar.gz", "tgz": ".tar.gz", "tar.zst": ".tar.zst"}


def storage_path(host, storage: BackupStorage | None) -> str:
    if storage is None:
        return host.dump_dir
    if storage.host_id != host.pk:
        raise InvalidRequest(f"Storage {storage.name} is on host {storage.host.name}, not {host.name}.")
    if not storage.enabled:
        raise InvalidRequest(f"Storage {storage.name} is disabled.")
    return storage.path


@audited("container.backup")
def backup_container(ct: Container, user, *, mode: str = BackupMode.STOP, compress: str = "zst",
                     storage: BackupStorage | None = None, notes: str = "", stdexcludes: bool = False,
                     exclude_paths: list[str] | tuple = (), bwlimit_kbps: int | None = None,
                     level: int | None = None, threads: int | None = None, protected: bool = False,
                     job=None, run=None) -> Task:
    """Queue a vzdump-style backup of `ct`, within the tenant's quota."""
    if mode not in BackupMode.values:
        raise InvalidRequest(f"Unknown backup mode {mode!r}; one of {', '.join(BackupMode.values)}.")
    if compress not in COMPRESSIONS:
        raise InvalidRequest(f"Unknown compression {compress!r}; one of {', '.join(COMPRESSIONS)}.")
    if len(notes) > 200:
        raise InvalidRequest("Notes are at most 200 characters.")
    if bwlimit_kbps is not None and not 1 <= int(bwlimit_kbps) <= 10_000_000:
        raise InvalidRequest("The bandwidth limit is between 1 and 10000000 KiB/s.")
    if level is not None and not 1 <= int(level) <= 19:
        raise InvalidRequest("The compression level is between 1 and 19.")
    if threads is not None and not 0 <= int(threads) <= 256:
        raise InvalidRequest("Threads are between 0 (all cores) and 256.")
    for pattern in exclude_paths:
        if not pattern or len(pattern) > 500 or "\x00" in pattern or "\n" in pattern:
            raise InvalidRequest(f"Bad exclude path {pattern!r}.")
    path = storage_path(ct.host, storage)
    with transaction.atomic():
        # The archive's size is known only at the end: the count is checked here, the space
        # again by the agent once the archive is written (it removes an archive over quota).
        check_quota(ct.tenant, backups=1)
        task = _submit_locked(ct, Action.SET, TaskType.CT_BACKUP, user, params={
            "mode": mode, "compress": compress, "notes": notes, "dump_dir": path,
            "storage": storage.pk if storage else None, "stdexcludes": bool(stdexcludes),
            "exclude_paths": list(exclude_paths), "bwlimit_kbps": bwlimit_kbps, "level": level,
            "threads": threads, "protected": bool(protected), "job": job.pk if job else None,
            "run": run.pk if run else None})
    return task


def _check_backup_manage(backup: Backup, user) -> None:
    from accounts.permissions import manageable_backups
    if user is not None and not manageable_backups(user).filter(pk=backup.pk).exists():
        raise NotAllowed(f"You may not change backup {backup.filename}.")


@audited("backup.restore", target="backup")
def restore_backup(backup: Backup, user, *, ctid: int, host=None, force: bool = False, confirm=None,
                   tenant=None, plan=None, hostname: str | None = None, start: bool = False,
                   override_capacity: bool = False) -> Task:
    """vzrestore ARCHIVE CTID: to a new CTID (on any host), or over the same, stopped container
    when `force` and `confirm` repeats its CTID. `override_capacity` (administrators): restore to a
    new CTID even past the host's promise policy (over the same container promises nothing new)."""
    from accounts.permissions import manageable_backups
    if user is not None and not manageable_backups(user).filter(pk=backup.pk).exists():
        raise NotAllowed("You may not restore this backup.")
    host = host or backup.host
    existing = Container.objects.filter(ctid=ctid).first()
    params = {"backup": backup.pk}
    if existing is not None:
        from accounts.permissions import manageable_containers
        if user is not None and not manageable_containers(user).filter(pk=existing.pk).exists():
            # The same answer as for any taken CTID: nothing about whose it is or its state.
            raise InvalidRequest(f"CTID {ctid} is already in use; choose another.")
        if not force:
            raise InvalidRequest(f"Container {ctid} exists. To overwrite it with the backup, stop it and "
                                 "restore with force (the panel asks you to type its CTID).")
        if str(confirm).strip() != str(ctid):
            raise InvalidRequest(f"To overwrite container {ctid}, confirm by typing its CTID ({ctid}).")
        _check_manage(existing, user)
        if existing.status not in (ContainerStatus.STOPPED, ContainerStatus.MISSING):
            raise InvalidState(f"Container {ctid} is {existing.status}; stop it before restoring over it.")
        if existing.host_id != host.pk:
            raise InvalidRequest(f"Container {ctid} is on host {existing.host.name}; restore over it there.")
        return _submit_locked(existing, Action.DESTROY, TaskType.CT_RESTORE, user, params={**params, "overwrite": True})
    from containers.services import LIMIT_FIELDS, create_container
    source = backup.container
    tenant = tenant if tenant is not None else backup.tenant
    # What the archive recorded (converted for OpenVZ ones), else the source container as it is now.
    config = dict(backup.config or {})
    if source is not None:
        config = {**{k: getattr(source, k) for k in LIMIT_FIELDS}, "hostname": source.hostname,
                  "ostemplate": source.ostemplate, **config}
    limits = {k: config[k] for k in LIMIT_FIELDS if config.get(k) is not None}
    if limits.get("disk_mb") is not None:
        limits["disk_mb"] = max(limits["disk_mb"], 300)  # the smallest disk the panel makes
    for soft, hard in (("disk_soft_mb", "disk_mb"), ("diskinodes_soft", "diskinodes"), ("ram_barrier_mb", "ram_mb")):
        if limits.get(soft) is not None and limits[soft] > limits.get(hard, 1 << 62):
            limits.pop(soft)  # an old archive's soft limit above the (raised) hard one
    return create_container(
        user=user, ctid=ctid, ostemplate=config.get("ostemplate") or f"restored-{backup.ctid}",
        hostname=hostname or config.get("hostname") or f"ct{ctid}", host=host, tenant=tenant,
        plan=plan or (source.plan if source else None), limits=None if plan else limits, start=start,
        description=config.get("description", "")[:2000], task_type=TaskType.CT_RESTORE, task_params=params,
        override_capacity=override_capacity)


@audited("backup.verify", target="backup")
def verify_backup(backup: Backup, user) -> Task:
    from accounts.permissions import manageable_backups
    if user is not None and not manageable_backups(user).filter(pk=backup.pk).exists():
        raise NotAllowed("You may not verify this backup.")
    with transaction.atomic():
        return submit_task(type=TaskType.BACKUP_VERIFY, host=backup.host, user=user, container=backup.container,
                           params={"backup": backup.pk})


@audited("backup.delete", target="backup")
def delete_backup(backup: Backup, user, confirm: str | None = None) -> Task:
    _check_backup_manage(backup, user)
    if backup.protected:
        raise InvalidRequest(f"{backup.filename} is protected; unprotect it first.")
    if confirm is not None and confirm != backup.filename:
        raise InvalidRequest("Confirm by typing the archive's file name.")
    with transaction.atomic():
        return submit_task(type=TaskType.BACKUP_DELETE, host=backup.host, user=user, container=backup.container,
                           params={"backup": backup.pk})


@audited("backup.update", target="backup")
def update_backup(backup: Backup, user, *, notes: str | None = None, protected: bool | None = None) -> Backup:
    _check_backup_manage(backup, user)
    if notes is not None:
        if len(notes) > 200:
            raise InvalidRequest("Notes are at most 200 characters.")
        backup.notes = notes
    if protected is not None:
        backup.protected = bool(protected)
    backup.save(update_fields=["notes", "protected"])
    return backup


def prune_plan(backups, retention: dict) -> tuple[list, list]:
    """(keep, remove) of `backups` under `retention`; protected ones are always kept."""
    from .retention import select
    keep_ids = select([(b.pk, b.created_at) for b in backups if not b.protected], retention)
    keep = [b for b in backups if b.protected or b.pk in keep_ids]
    remove = [b for b in backups if b not in keep]
    return keep, remove


def prune_backups(user, backups, retention: dict, dry_run: bool = True) -> tuple[list, list, list]:
    """Prune a set of backups (of one container, in one storage) by `retention`.
    With dry_run nothing happens: the (keep, remove) lists say what would."""
    if not retention:
        raise InvalidRequest("Give at least one keep-* option.")
    keep, remove = prune_plan(list(backups), retention)
    tasks = []
    if not dry_run:
        for backup in remove:
            tasks.append(delete_backup(backup, user))
        record(user, "backup.prune", None, detail=f"{len(remove)} removed, {len(keep)} kept, {retention}")
    return keep, remove, tasks


@audited("backup.import")
def import_archive(user, host, path: str, tenant=None, size: int | None = None) -> Task:
    """Register an archive that is already on the host (an upload, or one copied from an old OpenVZ
    host): the agent checks it and reads its configuration."""
    from accounts.permissions import creatable_tenants, manages_hosts
    name = path.rsplit("/", 1)[-1]
    if not ARCHIVE_RE.match(name):
        raise InvalidRequest(f"{name!r} is not a vzdump archive name (vzdump-lxc|openvz-CTID-YYYY_MM_DD-HH_MM_SS.tar[.gz|.zst]).")
    if user is not None and not manages_hosts(user) and tenant is None:
        raise NotAllowed("Only administrators and operators import archives without a tenant.")
    if tenant is not None and user is not None and not creatable_tenants(user).filter(pk=tenant.pk).exists():
        raise NotAllowed(f"You may not import archives into tenant {tenant.slug}.")
    with transaction.atomic():
        # Counted now, so an upload that does not fit is refused (and removed) before any work.
        check_quota(tenant, backups=1, backup_mb=-(-(size or 0) // (1 << 20)))
        return submit_task(type=TaskType.BACKUP_IMPORT, host=host, user=user,
                           params={"path": path, "tenant": tenant.pk if tenant else None})


def archive_name(name: str, mtime: float | None = None) -> str:
    """The name an archive is listed under (ARCHIVE_RE), from any name OpenVZ's vzdump gave it:
    .tgz is .tar.gz; a name without kind is OpenVZ's; one without a date takes `mtime`'s (the
    file's time, local as vzdump wrote it), or now."""
    match = ARCHIVE_NAMES.match(name)
    if not match:
        raise InvalidRequest(f"{name!r} is not a vzdump archive name: vzdump-lxc|openvz-CTID-YYYY_MM_DD-HH_MM_SS "
                             "or vzdump-CTID, with .tar, .tar.gz, .tgz or .tar.zst")
    kind, ctid, stamp, old_ctid, suffix = match.groups()
    stamp = stamp or time.strftime("-%Y_%m_%d-%H_%M_%S", time.localtime(mtime))
    return f"vzdump-{kind or 'openvz'}-{int(ctid or old_ctid)}{stamp}{ARCHIVE_SUFFIXES[suffix]}"


def import_upload(user, host, upload, name: str, tenant=None, mtime: float | None = None) -> Task:
    """Import an archive that arrives as a file (a browser or API upload, or a file root names at
    the shell): kept in the uploads directory under its vzdump name, then import_archive(). What is
    refused leaves nothing there."""
    from panel.uploads import MAX_UPLOAD_BYTES, save_upload, upload_dir
    final = archive_name(name, mtime)
    dest = save_upload(upload, upload_dir() / final, f"an archive named {final}", MAX_UPLOAD_BYTES)
    try:
        return import_archive(user, host, str(dest), tenant=tenant, size=dest.stat().st_size)
    except Exception:
        dest.unlink(missing_ok=True)
        raise


def save_storage(user, *, host, name: str, path: str, enabled: bool = True, **retention) -> BackupStorage:
    """Define a named backup storage on a host: any directory mounted there."""
    from django.core.exceptions import ValidationError

    from accounts.permissions import manages_hosts
    try:
        if user is not None and not manages_hosts(user):
            raise NotAllowed("Only administrators and operators define backup storages.")
        try:
            storage = BackupStorage(host=host, name=name, path=clean_host_path(path, "storage path"),
                                    enabled=enabled, **retention)
            storage.full_clean()
        except ValidationError as exc:
            raise InvalidRequest(messages(exc)) from None
    except (NotAllowed, InvalidRequest) as exc:
        record(user, "storage.create", host, "refused", str(exc))
        raise
    storage.save()
    record(user, "storage.create", host, detail=f"{name} at {storage.path}")
    return storage


def delete_storage(user, storage: BackupStorage) -> None:
    from accounts.permissions import manages_hosts
    if user is not None and not manages_hosts(user):
        raise NotAllowed("Only administrators and operators remove backup storages.")
    if storage.backups.exists():
        raise InvalidRequest(f"Storage {storage.name} still lists backups; delete or move them first.")
    record(user, "storage.delete", storage.host, detail=storage.name)
    storage.delete()
