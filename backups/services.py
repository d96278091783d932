"""Backup operations, called by the views, the CLI, the API and the scheduler alike."""
from __future__ import annotations

from django.db import transaction

from accounts.audit import audited
from containers.choices import Action
from containers.services import InvalidRequest, _submit_locked
from tasks.choices import TaskType
from tasks.models import Task
from tenancy.quotas import check_quota

from .models import BackupMode

COMPRESSIONS = ("zst", "gz", "none")


@audited("container.backup")
def backup_container(ct, user, *, mode: str = BackupMode.STOP, compress: str = "zst", notes: str = "") -> Task:
    """Queue a vzdump-style backup of `ct` into its host's dump directory, within the tenant's quota."""
    if mode not in BackupMode.values:
        raise InvalidRequest(f"Unknown backup mode {mode!r}; one of {', '.join(BackupMode.values)}.")
    if mode != BackupMode.STOP:
        raise InvalidRequest(f"Backup mode {mode} is not available yet; use stop.")
    if compress not in COMPRESSIONS:
        raise InvalidRequest(f"Unknown compression {compress!r}; one of {', '.join(COMPRESSIONS)}.")
    if len(notes) > 200:
        raise InvalidRequest("Notes are at most 200 characters.")
    with transaction.atomic():
        # The archive's size is known only at the end: the count is checked here, the space
        # again by the agent once the archive is written (it removes an archive over quota).
        check_quota(ct.tenant, backups=1)
        return _submit_locked(ct, Action.SET, TaskType.CT_BACKUP, user,
                              params={"mode": mode, "compress": compress, "notes": notes})
