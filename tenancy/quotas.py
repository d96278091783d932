"""Tenant quotas: usage, and the check that every create, limit change, address, backup
and restore passes through.

`check_quota` must run inside the transaction that records the new usage. It first
locks the tenant row (SELECT ... FOR UPDATE on PostgreSQL; on SQLite the panel's
transactions are IMMEDIATE and so already serialized), so two requests racing
cannot both see the old usage and together exceed the limit.
"""
from __future__ import annotations

from typing import Callable

from django.db import transaction
from django.db.models import Sum

from tasks.services import TaskError

from .models import QUOTA_FIELDS, Tenant


class QuotaExceeded(TaskError):
    http_status = 409


def _container_sum(field: str) -> Callable[[Tenant], int]:
    def usage(tenant: Tenant) -> int:
        from containers.models import Container
        return Container.objects.filter(tenant=tenant).aggregate(n=Sum(field))["n"] or 0
    return usage


def _container_count(tenant: Tenant) -> int:
    from containers.models import Container
    return Container.objects.filter(tenant=tenant).count()


# resource -> how to measure the tenant's use of it. Apps that add resources
# (addresses, backups) register theirs with `register_usage`.
USAGE: dict[str, Callable[[Tenant], int]] = {
    "containers": _container_count,
    "ram_mb": _container_sum("ram_mb"),
    "swap_mb": _container_sum("swap_mb"),
    "cpus": _container_sum("cpus"),
    "disk_mb": _container_sum("disk_mb"),
}


def register_usage(resource: str, func: Callable[[Tenant], int]) -> None:
    USAGE[resource] = func


def resource_of(field: str) -> str:
    return field.removeprefix("max_")


def usage_of(tenant: Tenant, resource: str) -> int:
    func = USAGE.get(resource)
    return func(tenant) if func else 0


def check_quota(tenant: Tenant | None, **deltas: int) -> None:
    """Refuse if adding `deltas` (e.g. containers=1, ram_mb=512) would pass any of the tenant's quotas."""
    if tenant is None:
        return
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("check_quota must run inside the transaction that records the usage")
    tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
    for field, (label, unit) in QUOTA_FIELDS.items():
        resource = resource_of(field)
        delta = int(deltas.get(resource, 0) or 0)
        limit = getattr(tenant, field)
        if delta <= 0 or limit is None:
            continue
        used = usage_of(tenant, resource)
        if used + delta > limit:
            u = f" {unit}" if unit else ""
            raise QuotaExceeded(
                f"Quota exceeded for tenant {tenant.slug}: {label} would be {used + delta}{u} "
                f"(in use {used}{u}, requested {delta}{u}, limit {limit}{u}).")


def quota_rows(tenant: Tenant) -> list[dict]:
    """Usage against each quota, for the bars on the dashboard and the tenant page."""
    rows = []
    for field, (label, unit) in QUOTA_FIELDS.items():
        limit = getattr(tenant, field)
        used = usage_of(tenant, resource_of(field))
        if limit is None:
            percent = 0
        elif limit == 0:
            percent = 100 if used else 0
        else:
            percent = min(100, round(100 * used / limit))
        rows.append({"label": label, "unit": unit, "used": used, "limit": limit, "percent": percent,
                     "level": "danger" if percent >= 90 else "warning" if percent >= 75 else "success"})
    return rows
