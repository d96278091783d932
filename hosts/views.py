"""Host pages and the OS template catalogue."""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from tasks.services import TaskError
from django.db.models import Count
from django.http import Http404
from django.shortcuts import render

from accounts.permissions import visible_containers, visible_hosts


@login_required
def host_list(request):
    hosts = visible_hosts(request.user).annotate(container_count=Count("containers"))
    return render(request, "hosts/list.html", {"hosts": hosts})


@login_required
def host_detail(request, name):
    host = visible_hosts(request.user).filter(name=name).first()
    if host is None:
        raise Http404(f"No host {name}")
    from accounts.permissions import manages_hosts
    from network.views import host_network
    return render(request, "hosts/detail.html", {
        "host": host,
        "containers": visible_containers(request.user).filter(host=host),
        "templates": host.templates.all(),
        "storages": host.storages.all(),
        "can_manage_host": manages_hosts(request.user),
        **host_network(host, request.user),
    })


@login_required
@require_POST
def storage_create(request, name):
    host = visible_hosts(request.user).filter(name=name).first()
    if host is None:
        raise Http404(f"No host {name}")
    from backups.services import save_storage
    try:
        storage = save_storage(request.user, host=host, name=request.POST.get("name", "").strip(),
                               path=request.POST.get("path", "").strip())
    except TaskError as exc:
        messages.error(request, f"Storage not added: {exc}")
    else:
        messages.success(request, f"Storage {storage.name} ({storage.path}) added to {host.name}.")
    return redirect("host-detail", host.name)


@login_required
@require_POST
def storage_delete(request, name, pk):
    host = visible_hosts(request.user).filter(name=name).first()
    storage = host.storages.filter(pk=pk).first() if host else None
    if storage is None:
        raise Http404("No such storage")
    from backups.services import delete_storage
    try:
        delete_storage(request.user, storage)
    except TaskError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Storage {storage.name} removed.")
    return redirect("host-detail", host.name)
