"""Host pages and the OS template catalogue."""
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from tasks.services import TaskError
from django.db.models import Count
from django.http import Http404
from django.shortcuts import render

from accounts.decorators import page_for
from accounts.permissions import sees_infrastructure, visible_containers, visible_hosts


@login_required
@page_for(sees_infrastructure, "Hosts")
def host_list(request):
    hosts = visible_hosts(request.user).annotate(container_count=Count("containers"))
    return render(request, "hosts/list.html", {"hosts": hosts})


@login_required
def host_detail(request, name):
    host = visible_hosts(request.user).filter(name=name).first()
    if host is None:
        raise Http404(f"No host {name}")
    from accounts.permissions import is_admin, manages_hosts
    from network.views import host_network
    from .capacity import capacity_rows
    return render(request, "hosts/detail.html", {
        "host": host,
        "containers": visible_containers(request.user).filter(host=host),
        "templates": host.templates.all(),
        "storages": host.storages.all(),
        "can_manage_host": manages_hosts(request.user),
        "is_admin": is_admin(request.user),
        "capacity": capacity_rows(host) if manages_hosts(request.user) else None,
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


# -- administration: add, token, SSH, drain, evacuate, remove ---------------------------------------
def _managed_host(request, name):
    host = visible_hosts(request.user).filter(name=name).first()
    if host is None:
        raise Http404(f"No host {name}")
    return host


def install_command(host, token: str) -> str:
    """The one command docs/operations.md documents, filled in for this host."""
    from django.conf import settings
    redis = "redis://" + f"{host.redis_user}:{token}@PANEL-ADDRESS:6379/0"
    database = settings.DATABASE_URL or "postgresql://vzpanel_HOST:PASSWORD@PANEL-ADDRESS/vzpanel"
    from urllib.parse import urlparse
    parsed = urlparse(database)
    if parsed.password:
        database = database.replace(f":{parsed.password}@", ":PASSWORD@")
    return (f"make agent HOST={host.name} PANEL_HOST_TOKEN={token} REDIS_URL={redis} "
            f"PANEL_DATABASE_URL={database}")


@login_required
def host_add(request):
    from . import services
    from accounts.permissions import is_admin
    if not is_admin(request.user):
        raise PermissionDenied("Only an administrator adds hosts.")
    error = None
    if request.method == "POST":
        try:
            host, token = services.add_host(
                request.user, name=request.POST.get("name", "").strip(),
                lxcpath=request.POST.get("lxcpath", "").strip() or "/var/lib/lxc",
                template_dir=request.POST.get("template_dir", "").strip() or "/var/lib/vz/template/cache",
                dump_dir=request.POST.get("dump_dir", "").strip() or "/var/lib/vz/dump",
                ssh_address=request.POST.get("ssh_address", "").strip())
        except TaskError as exc:
            error = str(exc)
        else:
            return render(request, "hosts/token.html", {"host": host, "token": token,
                                                        "command": install_command(host, token), "new": True})
    return render(request, "hosts/add.html", {"error": error, "data": request.POST})


@login_required
@require_POST
def host_action(request, name, action):
    """drain, undrain, evacuate, token, revoke, ssh, remove: each a service call; refusals change nothing."""
    from . import services
    host = _managed_host(request, name)
    post = request.POST
    try:
        if action == "drain":
            services.drain_host(request.user, host, post.get("reason", ""))
            messages.success(request, f"{host.name} is drained: no new containers are placed there.")
        elif action == "undrain":
            services.undrain_host(request.user, host)
            messages.success(request, f"{host.name} takes new containers again.")
        elif action == "evacuate":
            task = services.evacuate_host(request.user, host, online=post.get("online") == "on")
            messages.success(request, f"Task #{task.pk} queued: evacuate {host.name}.")
            return redirect("task-detail", task.pk)
        elif action == "token":
            token = services.issue_token(request.user, host)
            return render(request, "hosts/token.html", {"host": host, "token": token,
                                                        "command": install_command(host, token)})
        elif action == "revoke":
            services.revoke_token(request.user, host)
            messages.success(request, f"The token of {host.name} is revoked; its agent stops at its next heartbeat.")
        elif action == "ssh":
            services.set_ssh(request.user, host, post.get("ssh_address", ""), repin=post.get("repin") == "on")
            messages.success(request, f"SSH settings of {host.name} saved.")
        elif action == "remove":
            services.remove_host(request.user, host, confirm=post.get("confirm", "").strip())
            messages.success(request, f"Host {name} removed; its task history is kept.")
            return redirect("host-list")
        else:
            raise Http404("No such action")
    except TaskError as exc:
        messages.error(request, f"Could not {action} {host.name}: {exc}")
        if getattr(exc, "http_status", 409) == 403:
            raise PermissionDenied(str(exc)) from None
    return redirect("host-detail", host.name)
