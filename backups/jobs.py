"""Agent side of backups: vzdump (stop, suspend, snapshot), restore, verify, delete, import."""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from containers.choices import ContainerStatus
from containers.engine.ctconf import parse_pct_conf, parse_vps_conf, render_pct_conf
from containers.engine.vzdump import (STD_EXCLUDES, ArchiveError, ArchiveOptions, create_archive, log_path_for,
                                      read_member, remove_archive, rsync_copy, safe_extract, sha256_file,
                                      verify_archive)
from containers.jobs import lxc_for, network_up, record_state, refresh_state, spec_for
from containers.models import Container
from tasks.choices import TaskType
from tasks.registry import handler
from tasks.runner import TaskFailed
from tenancy.quotas import QuotaExceeded, check_quota

from .models import Backup, BackupMode
from .services import ARCHIVE_RE

MIB = 1024 * 1024


def config_values(ct: Container) -> dict:
    """The settings a backup records and a restore starts from."""
    values = {k: getattr(ct, k) for k in ("hostname", "ram_mb", "swap_mb", "cpus", "cpuunits", "cpulimit",
                                          "numproc", "disk_mb", "disk_soft_mb", "diskinodes", "diskinodes_soft",
                                          "ioprio", "onboot", "nameservers", "searchdomain", "ostemplate",
                                          "description")}
    values["addresses"] = list(ct.addresses.filter(interface="venet0").values_list("address", flat=True))
    return values


@handler(TaskType.CT_BACKUP)
def backup(task, log):
    ct = task.container
    if ct is None:
        raise TaskFailed(f"container {task.ctid} no longer exists")
    p = task.params
    lxc = lxc_for(task.host)
    dump_dir = Path(p.get("dump_dir") or task.host.dump_dir)
    excludes = (STD_EXCLUDES if p.get("stdexcludes") else []) + list(p.get("exclude_paths") or [])
    opts = ArchiveOptions(compress=p.get("compress", "zst"), level=p.get("level"), threads=p.get("threads"),
                          excludes=excludes, bwlimit_kbps=p.get("bwlimit_kbps"))
    config = config_values(ct)
    mode = p.get("mode", BackupMode.STOP)
    running = lxc.state(ct.ctid) == "RUNNING"
    if mode == BackupMode.SNAPSHOT:
        log(f"Snapshot mode needs a filesystem that can snapshot (btrfs, ZFS, LVM thin); the root filesystem of "
            f"{ct.ctid} is an XFS image on {dump_dir.anchor or '/'}, which cannot: falling back to suspend mode")
        mode = BackupMode.SUSPEND
    if mode == BackupMode.SUSPEND and not running:
        log("The container is not running: nothing to suspend, its files are copied as they are")
    log(f"Backup of container {ct.ctid} ({ct.hostname}) in {mode} mode to {dump_dir}")
    try:
        if mode == BackupMode.SUSPEND and running:
            archive = _suspend_backup(ct, lxc, dump_dir, config, opts, excludes, task, log)
        else:
            archive = _stop_backup(ct, lxc, dump_dir, config, opts, running, task, log)
    except ArchiveError as exc:
        raise TaskFailed(str(exc)) from None
    task.set_progress(90)
    try:
        with transaction.atomic():
            check_quota(ct.tenant, backups=1, backup_mb=-(-archive.size // MIB))
            row = Backup.objects.create(
                ctid=ct.ctid, container=ct, tenant=ct.tenant, owner=ct.owner, host=task.host,
                storage_id=p.get("storage"), storage_path=str(dump_dir), filename=archive.path.name,
                size=archive.size, sha256=archive.sha256, mode=mode, compress=opts.compress, config=config,
                notes=p.get("notes", ""), protected=bool(p.get("protected")), task=task, job_id=p.get("job"))
    except QuotaExceeded as exc:
        remove_archive(archive.path)
        raise TaskFailed(f"{exc} The archive was removed.") from None
    log.flush()
    task.refresh_from_db(fields=["log"])
    log_path_for(archive.path).write_text(task.log)
    return {"backup": row.pk, "filename": row.filename, "size": row.size, "sha256": row.sha256,
            "seconds": round(archive.seconds, 3), "mode": mode}


def _stop_backup(ct, lxc, dump_dir, config, opts, running, task, log):
    if running:
        log(f"Mode stop: stopping container {ct.ctid} for a consistent copy")
        lxc.stop(ct.ctid)
    try:
        task.set_progress(10)
        return create_archive(lxc.rootfs(ct.ctid), render_pct_conf(config), dump_dir, ct.ctid, opts, log)
    finally:
        if running:
            log(f"Starting container {ct.ctid} again")
            lxc.start(ct.ctid)
            refresh_state(ct, lxc, known="RUNNING")
            network_up(ct, lxc, log)


def _suspend_backup(ct, lxc, dump_dir, config, opts, excludes, task, log):
    """rsync while running, freeze, rsync what changed, thaw, archive the copy (vzdump's suspend)."""
    dump_dir.mkdir(parents=True, exist_ok=True)
    copy = Path(tempfile.mkdtemp(prefix=f".vzdump-tmp-{ct.ctid}-", dir=dump_dir))
    try:
        seconds = rsync_copy(lxc.rootfs(ct.ctid), copy, excludes)
        log(f"First copy while running: {seconds:.2f} s")
        task.set_progress(40)
        lxc.freeze(ct.ctid)
        frozen_at = time.monotonic()
        try:
            second = rsync_copy(lxc.rootfs(ct.ctid), copy, excludes)
        finally:
            lxc.unfreeze(ct.ctid)
            frozen = time.monotonic() - frozen_at
        log(f"Frozen for {frozen * 1000:.0f} ms (second copy of what changed: {second:.3f} s)")
        task.set_progress(60)
        archive = create_archive(copy, render_pct_conf(config), dump_dir, ct.ctid, opts, log)
        archive.frozen_seconds = frozen
        return archive
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def _restored_config(rootfs: Path) -> dict:
    """Read and remove ./etc/vzdump/{pct,vps}.conf from a restored tree."""
    for name, parse in (("pct.conf", parse_pct_conf), ("vps.conf", parse_vps_conf)):
        path = rootfs / "etc" / "vzdump" / name
        if path.is_file() and not path.is_symlink():
            values = parse(path.read_text(errors="replace"))
            path.unlink()
            try:
                (rootfs / "etc" / "vzdump").rmdir()
            except OSError:
                pass
            return values
    return {}


@handler(TaskType.CT_RESTORE)
def restore(task, log):
    ct = task.container
    if ct is None:
        raise TaskFailed(f"container {task.ctid} no longer exists")
    overwrite = bool(task.params.get("overwrite"))
    try:
        backup_row = Backup.objects.get(pk=task.params["backup"])
        archive = Path(backup_row.path)
        if not archive.is_file():
            raise TaskFailed(f"the archive {archive} is not on host {task.host.name}")
        log(f"Restoring {archive.name} to container {ct.ctid}" + (" (overwriting it)" if overwrite else ""))
        if backup_row.sha256:
            actual = sha256_file(archive)
            if actual != backup_row.sha256:
                raise TaskFailed(f"checksum mismatch: the archive has {actual}, the backup was {backup_row.sha256}")
            log("Checksum matches")
        lxc = lxc_for(task.host)
        spec = spec_for(ct)
        extracted = {}

        def populate(rootfs: Path) -> None:
            report = safe_extract(archive, rootfs, log, max_bytes=(ct.disk_mb or 1 << 20) * MIB)
            extracted["report"] = report
            extracted["config"] = _restored_config(rootfs)
            log(f"Unpacked {report.members} members, {report.bytes // MIB} MiB, in {report.seconds:.1f} s")

        if overwrite:
            if lxc.state(ct.ctid) not in ("STOPPED", "ABSENT"):
                raise TaskFailed(f"container {ct.ctid} is running; stop it before restoring over it")
            lxc.replace_rootfs(spec, populate, log)
        else:
            lxc.build(spec, populate, log)
    except BaseException:
        if not overwrite:
            # Nothing is on disk (build cleans up); free the CTID in the panel too.
            Container.objects.filter(pk=ct.pk, status=ContainerStatus.CREATING).delete()
            log(f"Container {ct.ctid} removed after the failed restore")
        raise
    record_state(ct, "STOPPED")
    if not overwrite:
        config = extracted.get("config", {})
        dns = {k: config[k] for k in ("nameservers", "searchdomain", "onboot") if config.get(k)}
        if dns:
            Container.objects.filter(pk=ct.pk).update(**dns)
            for key, value in dns.items():
                setattr(ct, key, value)
        _restore_addresses(ct, config, log)
        spec = spec_for(ct)  # now with the addresses and DNS the archive brought
        lxc.write_config(spec)
        lxc.write_identity(spec)
    if task.params.get("start"):
        lxc.start(ct.ctid)
        refresh_state(ct, lxc, known="RUNNING")
        network_up(ct, lxc, log)
    return {"ctid": ct.ctid, "members": extracted["report"].members,
            "skipped_devices": len(extracted["report"].skipped_devices)}


def _restore_addresses(ct, config: dict, log) -> None:
    """Give the restored container its venet addresses back where no other container holds them."""
    from django.db import IntegrityError

    from network.models import IPAddress
    for address in config.get("addresses", []):
        try:
            with transaction.atomic():
                IPAddress.objects.create(address=address, container=ct, interface="venet0")
            log(f"Address {address} restored")
        except (IntegrityError, ValueError):
            log(f"Address {address} is held by another container; not restored")


@handler(TaskType.BACKUP_VERIFY)
def verify(task, log):
    backup_row = Backup.objects.get(pk=task.params["backup"])
    path = Path(backup_row.path)
    if not path.is_file():
        raise TaskFailed(f"{path} is not on host {task.host.name}")
    try:
        count = verify_archive(path, backup_row.sha256, log)
    except ArchiveError as exc:
        raise TaskFailed(str(exc)) from None
    Backup.objects.filter(pk=backup_row.pk).update(verified_at=timezone.now())
    return {"members": count}


@handler(TaskType.BACKUP_DELETE)
def delete(task, log):
    backup_row = Backup.objects.filter(pk=task.params["backup"]).first()
    if backup_row is None:
        return {"deleted": None}
    if backup_row.protected:
        raise TaskFailed(f"{backup_row.filename} is protected")
    remove_archive(Path(backup_row.path))
    backup_row.delete()
    log(f"Deleted {backup_row.filename}")
    return {"deleted": backup_row.filename}


@handler(TaskType.BACKUP_IMPORT)
def import_archive(task, log):
    """Check an archive already on this host, read its configuration, and list it as a backup."""
    source = Path(task.params["path"])
    match = ARCHIVE_RE.match(source.name)
    if not match or not source.is_file() or source.is_symlink():
        raise TaskFailed(f"{source} is not a vzdump archive on host {task.host.name}")
    kind, ctid = match.group(1), int(match.group(2))
    try:
        count = verify_archive(source, None, log)
        found = read_member(source)
    except ArchiveError as exc:
        source.unlink(missing_ok=True) if _is_staged(source) else None
        raise TaskFailed(f"{exc}; the archive was not imported") from None
    if found is None:
        if _is_staged(source):
            source.unlink(missing_ok=True)
        raise TaskFailed("the archive has no ./etc/vzdump/pct.conf or vps.conf: not a vzdump archive")
    name, text = found
    config = parse_vps_conf(text) if name.endswith("vps.conf") else parse_pct_conf(text)
    log(f"{count} members; configuration from {name}: " + ", ".join(f"{k}={v}" for k, v in config.items()))
    dump_dir = Path(task.host.dump_dir)
    dump_dir.mkdir(parents=True, exist_ok=True)
    target = dump_dir / source.name
    if source.resolve() != target.resolve():
        if target.exists():
            raise TaskFailed(f"{target} exists already")
        shutil.move(str(source), str(target))
    row = Backup.objects.create(
        ctid=ctid, host=task.host, tenant_id=task.params.get("tenant"), owner=task.user, storage_path=str(dump_dir),
        filename=target.name, size=target.stat().st_size, sha256=sha256_file(target), kind=kind,
        compress="zst" if target.name.endswith(".zst") else "gz" if target.name.endswith(".gz") else "none",
        config=config, notes=f"imported ({kind})", task=task)
    return {"backup": row.pk, "filename": row.filename, "config": config}


def _is_staged(path: Path) -> bool:
    """An upload waiting to be imported (ours to delete), not a file an admin placed."""
    return "uploads" in path.parts
