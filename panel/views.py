"""The dashboard: hosts with their metrics and agent status, containers by state, recent tasks,
quota usage per tenant and the containers expiring soon."""
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.shortcuts import render
from django.utils import timezone

from accounts.permissions import visible_containers, visible_hosts, visible_tasks, visible_tenants
from containers.choices import ContainerStatus
from tasks.choices import ACTIVE_STATES
from tenancy.expiry import expiring_soon
from tenancy.quotas import quota_rows

DASHBOARD_TENANTS = 10  # quota cards shown; the rest are on the tenants page


@login_required
def dashboard(request):
    counts = dict(visible_containers(request.user).values_list("status").annotate(n=Count("id")))
    by_state = [(label, value, counts.get(value, 0)) for value, label in ContainerStatus.choices
                if counts.get(value, 0) or value in (ContainerStatus.RUNNING, ContainerStatus.STOPPED)]
    tasks = visible_tasks(request.user)
    tenants = visible_tenants(request.user)
    # Only the quotas with a limit: those are the ones that can run out.
    quota_tenants = [(t, [r for r in quota_rows(t) if r["limit"] is not None]) for t in tenants[:DASHBOARD_TENANTS]]
    return render(request, "dashboard.html", {
        "hosts": visible_hosts(request.user),
        "by_state": by_state,
        "total": sum(counts.values()),
        "active_tasks": tasks.filter(status__in=ACTIVE_STATES)[:10],
        "recent_tasks": tasks[:8],
        "quota_tenants": quota_tenants,
        "more_tenants": max(0, tenants.count() - len(quota_tenants)),
        "expiring": expiring_soon(visible_containers(request.user))[:10],
        "now": timezone.now(),
    })
