"""Storage pools on the host page, and a container's Snapshots tab."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from accounts.permissions import is_admin
from hosts.views import host_form
from panel.forms import ActionForm

from containers.views import container_form

from . import services
from .forms import PoolAddForm, SnapshotForm


@login_required
@require_POST
def pool_add(request, name):
    def act(host, form):
        d = form.cleaned_data
        pool = services.add_pool(host=host, user=request.user, name=d["name"], type=d["type"],
                                 device=d["device"].strip(), loop_size_mb=d["loop_size_mb"], tenants=d["tenants"],
                                 make_default=d["make_default"])
        task = getattr(pool, "task", None)
        messages.success(request, f"Storage pool {pool.name} added to {host.name}"
                         + (f"; task #{task.pk} makes its filesystem." if task else "."))
        return redirect("host-detail", host.name)
    return host_form(request, name, "pool_form", PoolAddForm(request.POST), act, may=is_admin)


@login_required
@require_POST
def pool_default(request, name, pk):
    def act(host, form):
        pool = host.storage_pools.filter(pk=pk).first()
        if pool is None:
            raise Http404("No such storage pool")
        services.set_default_pool(pool=pool, user=request.user)
        messages.success(request, f"New containers on {host.name} go on storage pool {pool.name}.")
        return redirect("host-detail", host.name)
    return host_form(request, name, "pool_default_form", ActionForm(request.POST), act, may=is_admin)


def container_snapshots(ct) -> dict:
    """The Snapshots tab: the container's own snapshots (it was looked up for the user)."""
    pool = ct.storage
    return {"snapshots": services.visible_snapshots(ct), "snapshot_form": SnapshotForm(),
            "snapshots_possible": pool is not None and pool.type == "btrfs"}


@login_required
@require_POST
def snapshot_take(request, ident):
    def act(ct, form):
        d = form.cleaned_data
        task = services.take_snapshot(ct, request.user, d["name"] or None, d["description"])
        messages.success(request, f"Task #{task.pk} queued: snapshot of {ct.ctid}.")
        return redirect("task-detail", task.pk)
    return container_form(request, ident, "snapshot_form", lambda ct: SnapshotForm(request.POST), act, tab="snapshots")


@login_required
@require_POST
def snapshot_action(request, ident, name, action):
    funcs = {"switch": services.switch_snapshot, "delete": services.delete_snapshot}
    if action not in funcs:
        raise Http404("No such action")

    def act(ct, form):
        task = funcs[action](ct, request.user, name)
        messages.success(request, f"Task #{task.pk} queued: {action} snapshot {name} of {ct.ctid}.")
        return redirect("task-detail", task.pk)
    return container_form(request, ident, "snapshot_action_form", lambda ct: ActionForm(request.POST), act,
                          tab="snapshots")
