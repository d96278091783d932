"""The dashboard: hosts with their metrics, capacity and agent status, containers by state, recent tasks,
quota usage per tenant, the containers expiring soon and the latest resource events."""
from datetime import datetime, timezone as dt_timezone

from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.shortcuts import render
from django.utils import timezone

from accounts.permissions import sees_everything, sees_infrastructure, visible_containers, visible_hosts, visible_tasks, visible_tenants
from containers.choices import ContainerStatus
from hosts.capacity import capacity_rows
from metrics.models import ContainerEvent
from panel import process_status
from tasks.choices import ACTIVE_STATES
from tenancy.expiry import expiring_soon
from tenancy.quotas import quota_rows

DASHBOARD_TENANTS = 10  # quota cards shown; the rest are on the tenants page
DASHBOARD_EVENTS = 10  # latest resource events shown


def process_troubles() -> list[dict]:
    """The panel's own processes that died (panel/process_status.py, written by runpanel or the
    systemd units): each was started again, or is waiting for its back-off."""
    troubles = []
    for name, info in sorted(process_status.read().items()):
        if isinstance(info, dict) and info.get("restarts"):
            at = info.get("last_exit_at")
            troubles.append({"name": name, "restarts": info["restarts"], "last_exit": info.get("last_exit"),
                             "running": bool(info.get("pid")), "systemd": info.get("supervisor") == "systemd",
                             "at": datetime.fromtimestamp(at, dt_timezone.utc) if isinstance(at, (int, float)) else None})
    return troubles


@login_required
def dashboard(request):
    counts = dict(visible_containers(request.user).values_list("status").annotate(n=Count("id")))
    by_state = [(label, value, counts.get(value, 0)) for value, label in ContainerStatus.choices
                if counts.get(value, 0) or value in (ContainerStatus.RUNNING, ContainerStatus.STOPPED)]
    tasks = visible_tasks(request.user)
    tenants = visible_tenants(request.user)
    # Only the quotas with a limit: those are the ones that can run out.
    quota_tenants = [(t, [r for r in quota_rows(t) if r["limit"] is not None]) for t in tenants[:DASHBOARD_TENANTS]]
    hosts = list(visible_hosts(request.user))
    # What each host has promised to all its containers: for those who see every container only.
    if sees_everything(request.user):
        for host in hosts:
            host.capacity = capacity_rows(host)
    events = ContainerEvent.objects.select_related("container", "host")
    if not sees_everything(request.user):
        events = events.filter(container__in=visible_containers(request.user).values("pk"))
    return render(request, "dashboard.html", {
        "hosts": hosts,
        "resource_events": events[:DASHBOARD_EVENTS],
        "by_state": by_state,
        "total": sum(counts.values()),
        "active_tasks": tasks.filter(status__in=ACTIVE_STATES)[:10],
        "recent_tasks": tasks[:8],
        "quota_tenants": quota_tenants,
        "more_tenants": max(0, tenants.count() - len(quota_tenants)),
        "expiring": expiring_soon(visible_containers(request.user))[:10],
        "now": timezone.now(),
        "process_troubles": process_troubles() if sees_infrastructure(request.user) else [],
    })
