"""Task states and types, in one place."""
from django.db import models


class TaskStatus(models.TextChoices):
    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    OK = "ok", "ok"
    FAILED = "failed", "failed"
    CANCELLED = "cancelled", "cancelled"


ACTIVE_STATES = frozenset({TaskStatus.QUEUED, TaskStatus.RUNNING})
FINISHED_STATES = frozenset({TaskStatus.OK, TaskStatus.FAILED, TaskStatus.CANCELLED})

# The only moves a task may make; anything else is a bug.
TRANSITIONS = {
    TaskStatus.QUEUED: {TaskStatus.RUNNING, TaskStatus.CANCELLED, TaskStatus.FAILED},
    TaskStatus.RUNNING: {TaskStatus.OK, TaskStatus.FAILED},
    TaskStatus.OK: set(),
    TaskStatus.FAILED: set(),
    TaskStatus.CANCELLED: set(),
}


def can_transition(old: str, new: str) -> bool:
    return new in TRANSITIONS.get(TaskStatus(old), set())


class TaskType(models.TextChoices):
    CT_CREATE = "ct.create", "create"
    CT_START = "ct.start", "start"
    CT_STOP = "ct.stop", "stop"
    CT_RESTART = "ct.restart", "restart"
    CT_DESTROY = "ct.destroy", "destroy"
    CT_SET = "ct.set", "set"
    CT_EXEC = "ct.exec", "exec"
    CT_SUSPEND = "ct.suspend", "suspend"
    CT_RESUME = "ct.resume", "resume"
    CT_MOUNT = "ct.mount", "mount"
    CT_UMOUNT = "ct.umount", "unmount"
    CT_RESET = "ct.reset", "reset to template"
    CT_USERPASSWD = "ct.userpasswd", "set password"
    CT_SSHKEY = "ct.sshkey", "add SSH key"
    CT_BACKUP = "ct.backup", "backup"
    CT_RESTORE = "ct.restore", "restore"
    BACKUP_VERIFY = "backup.verify", "verify backup"
    BACKUP_DELETE = "backup.delete", "delete backup"
    BACKUP_IMPORT = "backup.import", "import backup"
    CT_NET = "ct.net", "network"
    HOST_BRIDGE = "host.bridge", "bridge"
    TPL_BUILD = "template.build", "build template"
    TPL_DOWNLOAD = "template.download", "download template"
    TPL_IMPORT = "template.import", "import template"
    TPL_FROM_CT = "template.from_ct", "template from container"
    TPL_COPY = "template.copy", "copy template"
    TPL_RECEIVE = "template.receive", "receive template"
    TPL_DELETE = "template.delete", "delete template"
    CT_MIGRATE = "ct.migrate", "migrate"
    CT_MIGRATE_IN = "ct.migrate_in", "migrate (destination step)"
    HOST_EVACUATE = "host.evacuate", "evacuate host"
    POOL_CREATE = "storage.create", "make storage pool"
    CT_SNAPSHOT = "ct.snapshot", "snapshot"
    CT_SNAPSHOT_SWITCH = "ct.snapshot_switch", "switch to snapshot"
    CT_SNAPSHOT_DELETE = "ct.snapshot_delete", "delete snapshot"
    NOOP = "noop", "no-op"
