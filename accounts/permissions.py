"""Who may see and do what: the one place the UI, the CLI and the API all ask.

Global roles: admin (everything), operator (all containers and hosts, no user
management), auditor (sees everything, changes nothing). Tenant roles: tenant
admin (the tenant's members, containers, backups and tasks) and member (the
containers given to them). What a user may not see answers 404, never 403, so
existence does not leak; what they may see but not change answers 403.
"""
from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404

from containers.models import Container, resolve_container
from hosts.models import Host
from tasks.models import Task
from tenancy.models import Membership, Plan, Tenant, TenantRole

from .models import AuditEvent, GlobalRole, User


def role_of(user) -> str:
    if not (user and user.is_authenticated and user.is_active):
        return "anonymous"
    return user.global_role


def sees_everything(user) -> bool:
    return role_of(user) in (GlobalRole.ADMIN, GlobalRole.OPERATOR, GlobalRole.AUDITOR)


def manages_all_containers(user) -> bool:
    return role_of(user) in (GlobalRole.ADMIN, GlobalRole.OPERATOR)


def manages_users(user) -> bool:
    return role_of(user) == GlobalRole.ADMIN


def manages_hosts(user) -> bool:
    return role_of(user) in (GlobalRole.ADMIN, GlobalRole.OPERATOR)


def is_admin(user) -> bool:
    return role_of(user) == GlobalRole.ADMIN


def administered_tenant_ids(user) -> list[int]:
    if role_of(user) == "anonymous":
        return []
    return list(Membership.objects.filter(user=user, role=TenantRole.ADMIN).values_list("tenant_id", flat=True))


def is_tenant_admin(user, tenant) -> bool:
    return tenant is not None and (tenant.pk in administered_tenant_ids(user) or is_admin(user))


# -- containers -----------------------------------------------------------------
def _own_or_administered(user) -> Q:
    return Q(owner=user) | Q(tenant_id__in=administered_tenant_ids(user))


def visible_containers(user) -> QuerySet[Container]:
    qs = Container.objects.select_related("host", "lock_task", "tenant", "owner")
    if sees_everything(user):
        return qs
    if role_of(user) == "anonymous":
        return qs.none()
    return qs.filter(_own_or_administered(user))


def manageable_containers(user) -> QuerySet[Container]:
    qs = Container.objects.select_related("host", "lock_task", "tenant", "owner")
    if manages_all_containers(user):
        return qs
    if role_of(user) in ("anonymous", GlobalRole.AUDITOR):
        return qs.none()
    return qs.filter(_own_or_administered(user))


def get_container_for_user(user, ident, manage: bool = False) -> Container:
    """The container `ident` (CTID or name) if `user` may see it; 404 otherwise, 403 if read-only."""
    try:
        ct = resolve_container(visible_containers(user), ident)
    except Container.DoesNotExist:
        raise Http404(f"No container {ident}") from None
    if manage and not manageable_containers(user).filter(pk=ct.pk).exists():
        raise PermissionDenied(f"You may look at container {ct.ctid} but not change it.")
    return ct


# -- tasks ----------------------------------------------------------------------
def visible_tasks(user) -> QuerySet[Task]:
    qs = Task.objects.select_related("host", "user", "container")
    if sees_everything(user):
        return qs
    if role_of(user) == "anonymous":
        return qs.none()
    return qs.filter(Q(user=user) | Q(container__owner=user) | Q(tenant_id__in=administered_tenant_ids(user)))


def get_task_for_user(user, task_id) -> Task:
    try:
        return visible_tasks(user).get(pk=int(task_id))
    except (Task.DoesNotExist, ValueError, TypeError):
        raise Http404(f"No task {task_id}") from None


def can_cancel_task(user, task) -> bool:
    return (manages_all_containers(user) or task.user_id == getattr(user, "pk", None)
            or (task.tenant_id is not None and task.tenant_id in administered_tenant_ids(user)))


# -- which pages a role may open --------------------------------------------------
def sees_infrastructure(user) -> bool:
    """Hosts (their load, capacity, unmanaged containers), IP pools, bridges, the template cache:
    the global roles only. Tenants' people see their own containers, never the machines."""
    return sees_everything(user)


def oversees_people(user) -> bool:
    """Plans, users and the audit log: the global roles and tenant admins (scoped to their
    tenants by the querysets below). Members and students see their tenant's page and quotas only."""
    return sees_everything(user) or bool(administered_tenant_ids(user))


def may_create_containers(user) -> bool:
    return manages_all_containers(user) or bool(administered_tenant_ids(user))


def sees_templates(user) -> bool:
    """The template catalogue: who manages or reads the hosts, and who creates containers from it."""
    return sees_infrastructure(user) or may_create_containers(user)


def navigation(user) -> dict[str, bool]:
    """What the menu offers: exactly the pages the role may open."""
    infra, people = sees_infrastructure(user), oversees_people(user)
    return {"templates": sees_templates(user), "hosts": infra, "tenants": role_of(user) != "anonymous",
            "plans": people, "pools": people, "users": people, "audit": people, "create": may_create_containers(user)}


# -- IP pools -------------------------------------------------------------------
def visible_pools(user):
    """All pools for the global roles; for a tenant admin those assigned to their tenants and the shared
    ones (their names and networks only: another tenant's pool is not theirs to learn of)."""
    from network.models import IPPool
    if sees_everything(user):
        return IPPool.objects.all()
    if role_of(user) == "anonymous":
        return IPPool.objects.none()
    return IPPool.objects.filter(Q(shared=True) | Q(tenants__in=administered_tenant_ids(user))).distinct()


# -- hosts ----------------------------------------------------------------------
def visible_hosts(user) -> QuerySet[Host]:
    """Hosts as pages and objects (load, capacity, tokens, unmanaged containers): global roles only."""
    return Host.objects.all() if sees_infrastructure(user) else Host.objects.none()


def placeable_hosts(user) -> QuerySet[Host]:
    """Hosts a user may name when placing a container, a class or a restore: their names are all a
    tenant admin learns of them."""
    if sees_infrastructure(user):
        return Host.objects.all()
    return Host.objects.filter(drained_at__isnull=True) if may_create_containers(user) else Host.objects.none()


# -- tenants, users, audit ------------------------------------------------------
def visible_tenants(user) -> QuerySet[Tenant]:
    if sees_everything(user):
        return Tenant.objects.all()
    if role_of(user) == "anonymous":
        return Tenant.objects.none()
    return Tenant.objects.filter(memberships__user=user).distinct()


def manageable_tenants(user) -> QuerySet[Tenant]:
    if is_admin(user):
        return Tenant.objects.all()
    return Tenant.objects.filter(pk__in=administered_tenant_ids(user))


def get_tenant_for_user(user, slug, manage: bool = False) -> Tenant:
    tenant = visible_tenants(user).filter(slug=slug).first()
    if tenant is None:
        raise Http404(f"No tenant {slug}")
    if manage and not manageable_tenants(user).filter(pk=tenant.pk).exists():
        raise PermissionDenied(f"You may look at tenant {tenant.slug} but not change it.")
    return tenant


def visible_users(user) -> QuerySet[User]:
    if manages_users(user) or role_of(user) == GlobalRole.AUDITOR:
        return User.objects.all()
    if role_of(user) == "anonymous":
        return User.objects.none()
    return User.objects.filter(Q(pk=user.pk) | Q(memberships__tenant_id__in=administered_tenant_ids(user))).distinct()


def visible_audit_events(user) -> QuerySet[AuditEvent]:
    qs = AuditEvent.objects.select_related("tenant")
    if manages_users(user) or role_of(user) == GlobalRole.AUDITOR:
        return qs
    if role_of(user) == "anonymous":
        return qs.none()
    return qs.filter(Q(user=user) | Q(tenant_id__in=administered_tenant_ids(user)))


def creatable_tenants(user) -> QuerySet[Tenant]:
    """Tenants the user may create containers in."""
    if manages_all_containers(user):
        return Tenant.objects.all()
    return Tenant.objects.filter(pk__in=administered_tenant_ids(user))


def may_create_without_tenant(user) -> bool:
    return manages_all_containers(user)


def visible_plans(user) -> QuerySet[Plan]:
    """Plans offered to the user's tenants (those offered to every tenant included); admins: all."""
    if is_admin(user):
        return Plan.objects.all()
    tenants = visible_tenants(user)
    if not tenants.exists():
        return Plan.objects.none()
    return Plan.objects.filter(Q(tenants=None) | Q(tenants__in=tenants)).distinct()


# -- backups --------------------------------------------------------------------
def visible_backups(user):
    from backups.models import Backup
    qs = Backup.objects.select_related("host", "container", "tenant", "storage")
    if sees_everything(user):
        return qs
    if role_of(user) == "anonymous":
        return qs.none()
    # Through the containers the user owns now, or as a tenant admin: never through Backup.owner alone,
    # which would keep a member removed from the tenant in its archives.
    return qs.filter(Q(container__owner=user) | Q(tenant_id__in=administered_tenant_ids(user)))


def manageable_backups(user):
    from backups.models import Backup
    if manages_all_containers(user):
        return Backup.objects.all()
    if role_of(user) in ("anonymous", GlobalRole.AUDITOR):
        return Backup.objects.none()
    return visible_backups(user)


def get_backup_for_user(user, pk):
    try:
        return visible_backups(user).get(pk=int(pk))
    except (Exception,):
        raise Http404(f"No backup {pk}") from None


def visible_backup_jobs(user):
    from backups.models import BackupJob
    qs = BackupJob.objects.select_related("tenant", "owner", "storage")
    if sees_everything(user):
        return qs
    if role_of(user) == "anonymous":
        return qs.none()
    return qs.filter(Q(owner=user) | Q(tenant_id__in=administered_tenant_ids(user)))
