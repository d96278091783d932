"""Container states and which operations each state allows."""
from django.db import models


class ContainerStatus(models.TextChoices):
    CREATING = "creating", "creating"
    STOPPED = "stopped", "stopped"
    RUNNING = "running", "running"
    FROZEN = "frozen", "frozen"
    MISSING = "missing", "missing"  # in the panel, but LXC does not have it
    UNKNOWN = "unknown", "unknown"


# LXC's states (lxc-info) mapped onto ours.
LXC_STATE_MAP = {
    "RUNNING": ContainerStatus.RUNNING,
    "STOPPED": ContainerStatus.STOPPED,
    "STARTING": ContainerStatus.RUNNING,
    "STOPPING": ContainerStatus.RUNNING,
    "ABORTING": ContainerStatus.RUNNING,
    "FREEZING": ContainerStatus.FROZEN,
    "FROZEN": ContainerStatus.FROZEN,
    "THAWED": ContainerStatus.RUNNING,
    "ABSENT": ContainerStatus.MISSING,
}


class Action(models.TextChoices):
    START = "start", "start"
    STOP = "stop", "stop"
    RESTART = "restart", "restart"
    DESTROY = "destroy", "destroy"
    EXEC = "exec", "exec"
    SET = "set", "set"
    SUSPEND = "suspend", "suspend"
    RESUME = "resume", "resume"
    MOUNT = "mount", "mount"
    UMOUNT = "umount", "unmount"


# Which actions make sense in which state; the service refuses the rest with a reason.
ALLOWED_ACTIONS = {
    ContainerStatus.CREATING: set(),
    ContainerStatus.STOPPED: {Action.START, Action.DESTROY, Action.SET, Action.MOUNT, Action.UMOUNT},
    ContainerStatus.RUNNING: {Action.STOP, Action.RESTART, Action.EXEC, Action.SET, Action.SUSPEND, Action.MOUNT},
    ContainerStatus.FROZEN: {Action.STOP, Action.SET, Action.RESUME, Action.MOUNT},
    ContainerStatus.MISSING: {Action.DESTROY, Action.SET},
    ContainerStatus.UNKNOWN: {Action.START, Action.STOP, Action.SET},
}

REFUSAL_REASONS = {
    (ContainerStatus.RUNNING, Action.START): "is already running",
    (ContainerStatus.STOPPED, Action.STOP): "is already stopped",
    (ContainerStatus.STOPPED, Action.RESTART): "is stopped; start it instead",
    (ContainerStatus.STOPPED, Action.EXEC): "is stopped; start it to run commands in it",
    (ContainerStatus.RUNNING, Action.DESTROY): "is running; stop it first",
    (ContainerStatus.FROZEN, Action.DESTROY): "is frozen; stop it first",
    (ContainerStatus.FROZEN, Action.SUSPEND): "is already suspended",
    (ContainerStatus.FROZEN, Action.EXEC): "is suspended; resume it to run commands in it",
    (ContainerStatus.RUNNING, Action.RESUME): "is not suspended",
    (ContainerStatus.STOPPED, Action.SUSPEND): "is stopped; only a running container can be suspended",
    (ContainerStatus.STOPPED, Action.RESUME): "is stopped, not suspended",
    # vzctl's own words for vzctl umount of a running container
    (ContainerStatus.RUNNING, Action.UMOUNT): "is running -- stop it first",
    (ContainerStatus.FROZEN, Action.UMOUNT): "is suspended -- stop it first",
}


def refusal(status: str, action: str) -> str | None:
    """Why `action` is not possible in `status`, or None if it is."""
    status, action = ContainerStatus(status), Action(action)
    if action in ALLOWED_ACTIONS[status]:
        return None
    return REFUSAL_REASONS.get((status, action), f"is {status.label}; {action.label} is not possible now")
