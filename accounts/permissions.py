"""Who may see and do what: the one place the UI, the CLI and the API all ask.

Staff see everything; other users see their own containers and the tasks on them.
What a user may not see answers 404, never 403, so existence does not leak.
"""
from __future__ import annotations

from django.db.models import Q, QuerySet
from django.http import Http404

from containers.models import Container
from containers.services import resolve_container
from hosts.models import Host
from tasks.models import Task


def is_admin(user) -> bool:
    return bool(user and user.is_authenticated and (user.is_superuser or user.is_staff))


def visible_containers(user) -> QuerySet[Container]:
    qs = Container.objects.select_related("host", "lock_task")
    if is_admin(user):
        return qs
    if not (user and user.is_authenticated):
        return qs.none()
    return qs.filter(owner=user)


def visible_tasks(user) -> QuerySet[Task]:
    qs = Task.objects.select_related("host", "user", "container")
    if is_admin(user):
        return qs
    if not (user and user.is_authenticated):
        return qs.none()
    return qs.filter(Q(user=user) | Q(container__owner=user))


def visible_hosts(user) -> QuerySet[Host]:
    # Hosts are shared infrastructure: every signed-in user may see them to pick one.
    return Host.objects.all() if user and user.is_authenticated else Host.objects.none()


def get_container_for_user(user, ident) -> Container:
    try:
        return resolve_container(visible_containers(user), ident)
    except Container.DoesNotExist:
        raise Http404(f"No container {ident}") from None


def get_task_for_user(user, task_id) -> Task:
    try:
        return visible_tasks(user).get(pk=int(task_id))
    except (Task.DoesNotExist, ValueError, TypeError):
        raise Http404(f"No task {task_id}") from None
