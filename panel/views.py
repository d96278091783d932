"""The dashboard: hosts with their metrics and agent status, containers by state, recent tasks."""
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.shortcuts import render

from accounts.permissions import visible_containers, visible_hosts, visible_tasks
from containers.choices import ContainerStatus
from tasks.choices import ACTIVE_STATES


@login_required
def dashboard(request):
    counts = dict(visible_containers(request.user).values_list("status").annotate(n=Count("id")))
    by_state = [(label, value, counts.get(value, 0)) for value, label in ContainerStatus.choices
                if counts.get(value, 0) or value in (ContainerStatus.RUNNING, ContainerStatus.STOPPED)]
    tasks = visible_tasks(request.user)
    return render(request, "dashboard.html", {
        "hosts": visible_hosts(request.user),
        "by_state": by_state,
        "total": sum(counts.values()),
        "active_tasks": tasks.filter(status__in=ACTIVE_STATES)[:10],
        "recent_tasks": tasks[:8],
    })
