"""One function per container operation, called by the views, the CLI and the API alike.

Each validates, takes the container's lock and queues a task in one transaction;
the work itself runs on the host's agent (containers/jobs.py).
"""
from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from hosts.models import Host
from tasks.choices import TaskType
from tasks.models import Task
from tasks.services import TaskError, submit_task

from .choices import Action, ContainerStatus, refusal
from .models import Container, OSTemplate
from .validators import validate_command, validate_ctid, validate_hostname, validate_name_alias


class ContainerLocked(TaskError):
    """Another task holds the container."""

    http_status = 409


class InvalidState(TaskError):
    http_status = 409


class InvalidRequest(TaskError):
    http_status = 400


def _lock(ct: Container, task: Task) -> None:
    """Take the container's lock for `task` by conditional UPDATE, or refuse naming the holder."""
    if Container.objects.filter(pk=ct.pk, lock_task__isnull=True).update(lock_task=task) != 1:
        holder = Container.objects.select_related("lock_task").get(pk=ct.pk).lock_task
        what = (f"task #{holder.pk} ({holder.get_type_display()}, {holder.status})"
                if holder else "another task")
        raise ContainerLocked(f"Container {ct.ctid} is locked by {what}; try again when it has finished.")
    ct.lock_task = task


def _check_state(ct: Container, action: str) -> None:
    reason = refusal(ct.status, action)
    if reason:
        raise InvalidState(f"Container {ct.ctid} {reason}.")


def _submit_locked(ct: Container, action: str, task_type: str, user, params=None) -> Task:
    with transaction.atomic():
        # Lock first, then check the state: any refusal rolls back the task and the lock.
        ct = Container.objects.select_related("host").get(pk=ct.pk)
        task = submit_task(type=task_type, host=ct.host, user=user, container=ct, params=params)
        _lock(ct, task)
        _check_state(ct, action)
    return task


def next_free_ctid() -> int:
    last = Container.objects.order_by("-ctid").values_list("ctid", flat=True).first()
    return max(101, (last or 100) + 1)


def create_container(*, user, ctid: int, ostemplate: str, hostname: str, host: Host,
                     name: str | None = None, onboot: bool = False, description: str = "",
                     start: bool = False) -> Task:
    """Register a container in state 'creating' and queue its creation on `host`."""
    try:
        validate_ctid(ctid)
        validate_hostname(hostname)
        if name:
            validate_name_alias(name)
    except ValidationError as exc:
        raise InvalidRequest(" ".join(exc.messages)) from None
    ctid = int(ctid)
    if not OSTemplate.objects.filter(host=host, name=ostemplate).exists():
        raise InvalidRequest(f"OS template {ostemplate!r} is not in the template cache of host {host.name}.")
    if any(str(u.get("name")) == str(ctid) for u in host.unmanaged):
        raise InvalidRequest(f"CTID {ctid} is already used by a container on {host.name} that the panel "
                             "does not manage; pick another CTID.")
    try:
        with transaction.atomic():
            ct = Container.objects.create(
                ctid=ctid, name=name or None, hostname=hostname, ostemplate=ostemplate, host=host,
                onboot=onboot, description=description, owner=user if user and user.is_authenticated else None,
                status=ContainerStatus.CREATING,
            )
            task = submit_task(type=TaskType.CT_CREATE, host=host, user=user, container=ct,
                               params={"ostemplate": ostemplate, "hostname": hostname, "start": bool(start)})
            _lock(ct, task)
    except IntegrityError:
        if Container.objects.filter(ctid=ctid).exists():
            raise InvalidRequest(f"CTID {ctid} is already in use.") from None
        raise InvalidRequest(f"The name {name!r} is already in use.") from None
    return task


def start_container(ct: Container, user) -> Task:
    return _submit_locked(ct, Action.START, TaskType.CT_START, user)


def stop_container(ct: Container, user) -> Task:
    return _submit_locked(ct, Action.STOP, TaskType.CT_STOP, user)


def restart_container(ct: Container, user) -> Task:
    return _submit_locked(ct, Action.RESTART, TaskType.CT_RESTART, user)


def destroy_container(ct: Container, user, confirm: str | int | None) -> Task:
    """Destroy a stopped container. `confirm` must repeat its CTID, as the UI asks."""
    if str(confirm).strip() != str(ct.ctid):
        raise InvalidRequest(f"To destroy container {ct.ctid}, confirm by typing its CTID ({ct.ctid}).")
    return _submit_locked(ct, Action.DESTROY, TaskType.CT_DESTROY, user)


def exec_in_container(ct: Container, user, argv: list[str], timeout: int = 60) -> Task:
    try:
        validate_command(argv)
    except ValidationError as exc:
        raise InvalidRequest(" ".join(exc.messages)) from None
    if not 1 <= int(timeout) <= 3600:
        raise InvalidRequest("The timeout is between 1 and 3600 seconds.")
    return _submit_locked(ct, Action.EXEC, TaskType.CT_EXEC, user,
                          params={"argv": list(argv), "timeout": int(timeout)})


SETTABLE = ("hostname", "name", "onboot", "description")


def update_container(ct: Container, user, **changes) -> Task | None:
    """vzctl set: saves the settings; queues a task when the host must apply them.

    Name and description live only in the panel and are saved at once; a new
    hostname or onboot flag is written into the container by the agent.
    """
    unknown = set(changes) - set(SETTABLE)
    if unknown:
        raise InvalidRequest(f"Cannot set {', '.join(sorted(unknown))}.")
    try:
        if "hostname" in changes:
            validate_hostname(changes["hostname"])
        if changes.get("name"):
            validate_name_alias(changes["name"])
    except ValidationError as exc:
        raise InvalidRequest(" ".join(exc.messages)) from None
    if "name" in changes:
        changes["name"] = changes["name"] or None
    changed = {k: v for k, v in changes.items() if getattr(ct, k) != v}
    if not changed:
        return None
    needs_agent = bool({"hostname", "onboot"} & set(changed))
    try:
        with transaction.atomic():
            fresh = Container.objects.select_for_update().get(pk=ct.pk)
            task = None
            if needs_agent:
                task = submit_task(type=TaskType.CT_SET, host=fresh.host, user=user, container=fresh,
                                   params={k: changed[k] for k in changed if k in ("hostname", "onboot")})
                _lock(fresh, task)
                _check_state(fresh, Action.SET)
            for key, value in changed.items():
                setattr(fresh, key, value)
            fresh.save(update_fields=[*changed, "updated_at"])
    except IntegrityError:
        raise InvalidRequest(f"The name {changes.get('name')!r} is already in use.") from None
    for key, value in changed.items():
        setattr(ct, key, value)
    return task


def resolve_container(queryset, ident: str | int) -> Container:
    """Find a container by CTID or name alias within `queryset` (which scopes visibility)."""
    ident = str(ident).strip()
    if ident.isdigit():
        return queryset.get(ctid=int(ident))
    return queryset.get(name=ident)
