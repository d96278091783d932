"""Agent side of backups: vzdump (stop, suspend, snapshot), restore, verify, delete, import."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from containers.choices import ContainerStatus
from containers.engine.faults import fault_point
from containers.engine.ctconf import parse_pct_conf, parse_vps_conf, render_pct_conf
from containers.engine.vzdump import (STD_EXCLUDES, ArchiveError, ArchiveOptions, ArchiveReport, create_archive,
                                      log_path_for, open_archive, remove_archive, rsync_copy, safe_extract,
                                      scan_archive, verify_archive, write_private, ARCHIVE_MODE,
                                      prepare_dump_dir, entry_of, is_file_of, place_open_file, unlink_if_same)
from containers.engine.safefs import SafeFsError, root_only_dir
from containers.jobs import (as_task_failure, live_view, lxc_for, needs_rootfs, network_up, record_state,
                            refresh_state, spec_for)
from containers.models import Container
from network.services import restore_network
from panel.validators import clean_archive_config
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
@needs_rootfs
def backup(task, log):
    ct = task.container
    if ct is None:
        raise TaskFailed(f"container {task.ctid} no longer exists")
    p = task.params
    lxc = lxc_for(task.host)
    try:  # a storage or the host's dump directory, from rows: root's alone, or no archive goes there
        dump_dir = root_only_dir(p.get("dump_dir") or task.host.dump_dir, "dump directory")
    except SafeFsError as exc:
        raise TaskFailed(str(exc)) from None
    excludes = (STD_EXCLUDES if p.get("stdexcludes") else []) + list(p.get("exclude_paths") or [])
    opts = ArchiveOptions(compress=p.get("compress", "zst"), level=p.get("level"), threads=p.get("threads"),
                          excludes=excludes, bwlimit_kbps=p.get("bwlimit_kbps"), gid=panel_gid())
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
    write_private(log_path_for(archive.path), task.log, opts.gid)
    return {"backup": row.pk, "filename": row.filename, "size": row.size, "sha256": row.sha256,
            "seconds": round(archive.seconds, 3), "mode": mode}


def _stop_backup(ct, lxc, dump_dir, config, opts, running, task, log):
    if running:
        log(f"Mode stop: stopping container {ct.ctid} for a consistent copy")
        # Said before the stop, so that an agent that dies before the start below still knows.
        task.note_recovery(restart_container=True)
        lxc.stop(ct.ctid)
    try:
        fault_point("backup.stopped")
        task.set_progress(10)
        with live_view(lxc, ct.ctid) as view:  # stopped, but its files are still the tenant's
            return create_archive(view, render_pct_conf(config), dump_dir, ct.ctid, opts, log)
    finally:
        if running:
            log(f"Starting container {ct.ctid} again")
            lxc.start(ct.ctid)
            refresh_state(ct, lxc, known="RUNNING")
            network_up(ct, lxc, log)


FROZEN_RECORD = "longest-frozen-seconds"  # in the agent's data directory


def freeze_deadline() -> float:
    """PANEL_FREEZE_DEADLINE, or a few seconds past the longest frozen window measured here."""
    if settings.FREEZE_DEADLINE:
        return float(settings.FREEZE_DEADLINE)
    try:
        longest = float((Path(settings.AGENT_DATA_DIR) / FROZEN_RECORD).read_text())
    except (OSError, ValueError):
        return float(settings.FREEZE_FIRST_DEADLINE)
    return longest + settings.FREEZE_MARGIN


def note_frozen_window(seconds: float) -> None:
    record = Path(settings.AGENT_DATA_DIR) / FROZEN_RECORD
    try:
        if float(record.read_text()) >= seconds:
            return
    except (OSError, ValueError):
        pass
    record.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = record.with_name(f".{record.name}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.write_text(f"{seconds:.3f}\n")
    tmp.replace(record)


def _suspend_backup(ct, lxc, dump_dir, config, opts, excludes, task, log):
    """rsync while running, freeze, rsync what changed, thaw, archive the copy (vzdump's suspend)."""
    dump_dir.mkdir(parents=True, exist_ok=True)
    copy = Path(tempfile.mkdtemp(prefix=f".vzdump-tmp-{ct.ctid}-", dir=dump_dir))
    try:
        # rsync reads the running container through a view on which no link is followed.
        with live_view(lxc, ct.ctid) as view:
            seconds = rsync_copy(view, copy, excludes, log, live=True)
            log(f"First copy while running: {seconds:.2f} s")
            task.set_progress(40)
            fault_point("backup.copied")
            log("Freezing the container to copy what changed")
            frozen_at = time.monotonic()
            with lxc.frozen(ct.ctid, freeze_deadline()):
                fault_point("backup.frozen")
                second = rsync_copy(view, copy, excludes)
            frozen = time.monotonic() - frozen_at
            note_frozen_window(frozen)
            fault_point("backup.thawed")
        log(f"Frozen for {frozen * 1000:.0f} ms (second copy of what changed: {second:.3f} s)")
        task.set_progress(60)
        archive = create_archive(copy, render_pct_conf(config), dump_dir, ct.ctid, opts, log)
        archive.frozen_seconds = frozen
        return archive
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def _restored_config(found: tuple[str, bytes] | None, log) -> tuple[dict, list[str]]:
    """The settings in the archive's own configuration (pct.conf, or an OpenVZ vps.conf) as the walker
    took it from the stream: never read from an unpacked tree, never more than 64 KiB. What does not
    pass the panel's validators is left out: one line each, also logged."""
    if found is None:
        return {}, []
    name, data = found
    text = data.decode("utf-8", "replace")
    config, left_out = clean_archive_config(parse_vps_conf(text) if name.endswith("vps.conf") else parse_pct_conf(text))
    for line in left_out:
        log(line)
    return config, left_out


@handler(TaskType.CT_RESTORE)
@needs_rootfs
def restore(task, log):
    """vzrestore: unpack an archive into a new container, or over a stopped one (`overwrite`).

    A failed restore leaves nothing behind and says why in one line: a new container is removed
    (files and row), an overwritten one keeps its old root filesystem. With `start`, a restored
    container that then fails to start stays, whole and stopped, and the task fails saying so,
    as `pct restore --start` does: the data is back, and the start is a problem of its own."""
    ct = task.container
    if ct is None:
        raise TaskFailed(f"container {task.ctid} no longer exists")
    overwrite = bool(task.params.get("overwrite"))
    lxc = lxc_for(task.host)
    addresses: list[dict] = []  # what became of each address of the archive (filled as they are taken)
    try:
        report, not_restored = _restore_rootfs(task, ct, lxc, overwrite, log, addresses)
        fault_point("restore.built")
    except BaseException as exc:
        if overwrite:
            _give_back_addresses(ct, addresses, log)
            log(f"Container {ct.ctid} keeps its old root filesystem")
        else:
            # Nothing is on disk (build cleans up); free the CTID in the panel too.
            Container.objects.filter(pk=ct.pk, status=ContainerStatus.CREATING).delete()
            log(f"Container {ct.ctid} removed after the failed restore")
        raise as_task_failure(exc) from None
    record_state(ct, "STOPPED")
    if task.params.get("start"):
        try:
            lxc.start(ct.ctid)
        except BaseException as exc:
            refresh_state(ct, lxc)
            reason = as_task_failure(exc)
            if not isinstance(reason, TaskFailed):
                raise
            raise TaskFailed(f"container {ct.ctid} was restored but did not start ({reason}); "
                             f"it is {ct.status}") from None
        refresh_state(ct, lxc, known="RUNNING")
        network_up(ct, lxc, log)
    return {"ctid": ct.ctid, "members": report.members, "dropped": report.dropped,
            "not_restored": not_restored, "addresses": addresses}


def _restore_rootfs(task, ct, lxc, overwrite: bool, log, addresses: list[dict]) -> tuple[ArchiveReport, list[str]]:
    """Unpack the backup into the container's new root filesystem; a new container also takes
    the DNS settings and addresses of the archive's configuration. Returns the unpacking's report
    and what of that configuration was left out."""
    backup_row = Backup.objects.filter(pk=task.params["backup"]).first()
    if backup_row is None:
        raise TaskFailed("the backup no longer exists")
    archive = Path(backup_row.path)
    try:
        fd = open_archive(archive)  # hashed and unpacked from this one open file, in one pass
    except ArchiveError as exc:
        raise TaskFailed(f"the archive is not on host {task.host.name}: {exc}") from None
    try:
        log(f"Restoring {archive.name} to container {ct.ctid}" + (" (overwriting it)" if overwrite else ""))
        found = {}

        def populate(rootfs: Path):
            # The checksum is computed while the archive is read and checked: a mismatch fails the
            # unpacking, and the new root filesystem, built aside, goes with it.
            report = safe_extract(fd, rootfs, log, max_bytes=(ct.disk_mb or 1 << 20) * MIB,
                                  expected_sha256=backup_row.sha256 or None)
            if backup_row.sha256:
                log("Checksum matches")
            found["report"] = report
            log(f"Unpacked {report.members} members, {report.bytes // MIB} MiB, in {report.seconds:.1f} s")
            config, left_out = _restored_config(report.config, log)
            if overwrite:
                # Over the same container only its addresses come from the archive (its settings
                # stay the panel's); those it still holds are kept as they are.
                found["skipped"] = _restore_archive_addresses(ct, task.user, config, log, addresses)
                return None
            found["skipped"] = left_out + _apply_restored_config(ct, task.user, config, log, addresses)
            return spec_for(ct)  # written into the new container with the addresses and DNS it brought

        if overwrite:
            if lxc.state(ct.ctid) not in ("STOPPED", "ABSENT"):
                raise TaskFailed(f"container {ct.ctid} is running; stop it before restoring over it")
            lxc.replace_rootfs(spec_for(ct), populate, log)
            if any(o.get("new") for o in addresses):  # the configuration and /etc/hosts as the rows are now
                spec = spec_for(ct)
                lxc.write_config(spec)
                lxc.write_identity(spec)
        else:
            lxc.build(spec_for(ct), populate, log)
        return found["report"], found.get("skipped", [])
    finally:
        os.close(fd)


def _apply_restored_config(ct, user, config: dict, log, addresses: list[dict]) -> list[str]:
    """onboot, DNS and venet addresses from the archive's configuration: the archive's word, so the
    network goes through the checks, pools and quota of vzctl set (network.services.restore_network).
    Returns what was left out, also logged; `addresses` gets what became of each address."""
    if config.get("onboot"):
        Container.objects.filter(pk=ct.pk).update(onboot=True)
        ct.onboot = True
    skipped = restore_network(ct, user, {**config, "addresses": []})
    for line in skipped:
        log(line)
    return skipped + _restore_archive_addresses(ct, user, config, log, addresses)


def _restore_archive_addresses(ct, user, config: dict, log, addresses: list[dict]) -> list[str]:
    """Each venet address of the archive kept (free, or still the container's, and one its tenant
    may hold) or dropped with the reason (network.services.restore_addresses), one log line each;
    returns a line per dropped one for the result's not_restored."""
    from network.services import restore_addresses
    held_before = set(ct.addresses.values_list("address", flat=True))
    for outcome in restore_addresses(ct, user, config.get("addresses") or []):
        outcome["new"] = outcome["kept"] and outcome["address"] not in held_before
        addresses.append(outcome)
        log(f"Address {outcome['address']}: {'kept' if outcome['kept'] else 'dropped'} ({outcome['reason']})")
    if not config.get("addresses"):
        log("The archive names no addresses")
    return [f"{o['address']} was not restored: {o['reason']}" for o in addresses if not o["kept"]]


def _give_back_addresses(ct, addresses: list[dict], log) -> None:
    """A restore over a container that failed: the addresses it took for it are free again (those it
    held before stay its own)."""
    from network.models import IPAddress
    taken = [o["address"] for o in addresses if o.get("new")]
    if taken:
        IPAddress.objects.filter(container=ct, address__in=taken).delete()
        log(f"Addresses given back: {', '.join(taken)}")


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
    """Check an archive already on this host, read its configuration, and list it as a backup.

    The file is opened once, never through a link planted at its name, and all the rest is done
    with that open file: read through the restore's checks (its configuration taken from the
    stream), hashed, and given its name in the dump directory. Swapping the file at its name
    meanwhile changes nothing."""
    source = Path(task.params["path"])
    match = ARCHIVE_RE.match(source.name)
    if not match:
        raise TaskFailed(f"{source} is not a vzdump archive on host {task.host.name}")
    # Only what was uploaded, or placed in the dump directory by an administrator: the row does not
    # get to name any other file of the host.
    try:
        source = entry_of(settings.UPLOAD_DIR, source)
    except ArchiveError:
        try:
            source = entry_of(task.host.dump_dir, source)
        except ArchiveError:
            raise TaskFailed(f"{source} is neither an upload nor in the dump directory of {task.host.name}") from None
    kind, ctid = match.group(1), int(match.group(2))
    try:
        fd = open_archive(source)
    except ArchiveError:
        raise TaskFailed(f"{source} is not a vzdump archive on host {task.host.name}") from None
    try:
        try:
            report = scan_archive(fd, hashed=True)  # the checksum of what was checked, in the same pass
            if report.config is None:
                raise ArchiveError("the archive has no ./etc/vzdump/pct.conf or vps.conf: not a vzdump archive")
        except ArchiveError as exc:
            if _is_staged(source):
                unlink_if_same(source, fd)
            raise TaskFailed(f"{exc}; the archive was not imported") from None
        config, _ = _restored_config(report.config, log)
        log(f"{report.checked} members; configuration from ./{report.config[0]}: "
            + ", ".join(f"{k}={v}" for k, v in config.items()))
        try:
            dump_dir = root_only_dir(task.host.dump_dir, "dump directory")
        except SafeFsError as exc:
            raise TaskFailed(str(exc)) from None
        prepare_dump_dir(dump_dir, panel_gid())
        target = dump_dir / source.name
        if not is_file_of(target, fd):
            if target.exists() or target.is_symlink():
                raise TaskFailed(f"{target} exists already")
            # The file is the uploader's (the web user's) until now: root's from here, 0640 to the panel.
            gid = panel_gid()
            os.fchown(fd, 0, gid if gid is not None else 0)
            os.fchmod(fd, ARCHIVE_MODE)
            place_open_file(fd, target)
            unlink_if_same(source, fd)
        size, sha256 = os.fstat(fd).st_size, report.sha256
    finally:
        os.close(fd)
    row = Backup.objects.create(
        ctid=ctid, host=task.host, tenant_id=task.params.get("tenant"), owner=task.user, storage_path=str(dump_dir),
        filename=target.name, size=size, sha256=sha256, kind=kind,
        compress="zst" if target.name.endswith(".zst") else "gz" if target.name.endswith(".gz") else "none",
        config=config, notes=f"imported ({kind})", task=task)
    return {"backup": row.pk, "filename": row.filename, "config": config}


def panel_gid() -> int | None:
    """The web user's group: it serves downloads, so archives are readable by it (and root) only."""
    import grp
    try:
        return grp.getgrnam(settings.WEB_USER).gr_gid if settings.WEB_USER else None
    except KeyError:
        return None


def _is_staged(path: Path) -> bool:
    """An upload waiting to be imported (ours to delete), not a file an admin placed."""
    return os.path.realpath(path.parent) == os.path.realpath(settings.UPLOAD_DIR)
