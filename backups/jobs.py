"""Agent side of backups."""
from __future__ import annotations

from pathlib import Path

from django.db import transaction

from containers.engine.vzdump import ArchiveError, create_archive, remove_archive
from containers.jobs import lxc_for, refresh_state, spec_for
from tasks.choices import TaskType
from tasks.registry import handler
from tasks.runner import TaskFailed
from tenancy.quotas import QuotaExceeded, check_quota

from .models import Backup


@handler(TaskType.CT_BACKUP)
def backup(task, log):
    ct = task.container
    if ct is None:
        raise TaskFailed(f"container {task.ctid} no longer exists")
    lxc = lxc_for(task.host)
    was_running = lxc.state(ct.ctid) == "RUNNING"
    config_text = lxc.render_config(spec_for(ct))
    dump_dir = Path(task.host.dump_dir)
    try:
        if was_running:
            log(f"Mode stop: stopping container {ct.ctid} for a consistent copy")
            lxc.stop(ct.ctid)
        task.set_progress(10)
        archive = create_archive(lxc.rootfs(ct.ctid), config_text, dump_dir, ct.ctid,
                                 task.params.get("compress", "zst"), log)
    except ArchiveError as exc:
        raise TaskFailed(str(exc)) from None
    finally:
        if was_running:
            log(f"Starting container {ct.ctid} again")
            lxc.start(ct.ctid)
        refresh_state(ct, lxc)
    task.set_progress(90)
    try:
        with transaction.atomic():
            check_quota(ct.tenant, backups=1, backup_mb=-(-archive.size // (1024 * 1024)))
            row = Backup.objects.create(
                ctid=ct.ctid, container=ct, tenant=ct.tenant, owner=ct.owner, host=task.host,
                storage_path=str(dump_dir), filename=archive.path.name, size=archive.size, sha256=archive.sha256,
                mode=task.params.get("mode", "stop"), notes=task.params.get("notes", ""), task=task)
    except QuotaExceeded as exc:
        remove_archive(archive.path)
        raise TaskFailed(f"{exc} The archive was removed.") from None
    log.flush()
    task.refresh_from_db(fields=["log"])
    archive.path.with_name(archive.path.name.rsplit(".tar", 1)[0] + ".log").write_text(task.log)
    return {"backup": row.pk, "filename": row.filename, "size": row.size, "sha256": row.sha256}
