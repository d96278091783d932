"""Host pages and the OS template catalogue."""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.decorators import page_for
from accounts.permissions import is_admin, manages_hosts, sees_infrastructure, visible_hosts
from containers.tables import listed_containers
from panel.forms import ActionForm, form_response

from .forms import DrainForm, EvacuateForm, HostAddForm, PromiseForm, RemoveHostForm, SSHForm, StorageForm


@login_required
@page_for(sees_infrastructure, "Hosts")
def host_list(request):
    hosts = visible_hosts(request.user).annotate(container_count=Count("containers"))
    return render(request, "hosts/list.html", {"hosts": hosts})


@login_required
def host_detail(request, name):
    return host_page(request, _visible_host(request, name))


def _visible_host(request, name):
    host = visible_hosts(request.user).filter(name=name).first()
    if host is None:
        raise Http404(f"No host {name}")
    return host


def host_page(request, host, status: int = 200, **forms) -> HttpResponse:
    """The host page with fresh forms, except those given (a form in error, bound)."""
    from network.views import host_network
    from .capacity import capacity_rows
    if status != 200:
        host.refresh_from_db()  # a refused change may have touched the instance, not the row
    return render(request, "hosts/detail.html", {
        "host": host,
        "containers": listed_containers(request.user).filter(host=host),
        "templates": host.templates.all(),
        "storages": host.storages.all(),
        "can_manage_host": manages_hosts(request.user),
        "is_admin": is_admin(request.user),
        "capacity": capacity_rows(host) if manages_hosts(request.user) else None,
        **host_network(host, request.user),
        "drain_form": DrainForm(),
        "ssh_form": SSHForm(initial={"ssh_address": host.ssh_address}),
        "promise_form": PromiseForm(initial={k: getattr(host, k) for k in PromiseForm.base_fields}),
        "remove_form": RemoveHostForm(),
        "storage_form": StorageForm(),
        **storage_pools_context(host),
        **forms,
        # The buttons' forms in error, shown at the top of their card.
        "maintenance_forms": [forms.get(f"{a}_form") for a in ("drain", "undrain", "evacuate") if forms.get(f"{a}_form")],
        "access_forms": [forms.get(f"{a}_form") for a in ("token", "revoke", "ssh", "promise", "remove") if forms.get(f"{a}_form")],
    }, status=status)


def storage_pools_context(host) -> dict:
    """The host's storage pools (issue 21) with their container counts, and the form to add one."""
    from django.db.models import Count
    from storage.forms import PoolAddForm
    pools = host.storage_pools.annotate(container_count=Count("containers")).prefetch_related("tenants")
    return {"pools": pools, "pool_form": PoolAddForm()}


def host_form(request, name, key: str, form, act, may=manages_hosts) -> HttpResponse:
    """A form of the host page (`key` in its context) posted by someone `may` allow (else 403):
    `act(host, form)` answers; bad input or a refusal shows the host page again with this form bound."""
    host = _visible_host(request, name)
    if not may(request.user):
        raise PermissionDenied(f"Your role may not do this on host {host.name}.")
    return form_response(request, form, lambda form: act(host, form),
                         lambda form, status: host_page(request, host, status, **{key: form}))


@login_required
@require_POST
def storage_create(request, name):
    from backups.services import save_storage

    def act(host, form):
        d = form.cleaned_data
        storage = save_storage(request.user, host=host, name=d["name"].strip(), path=d["path"].strip())
        messages.success(request, f"Storage {storage.name} ({storage.path}) added to {host.name}.")
        return redirect("host-detail", host.name)
    return host_form(request, name, "storage_form", StorageForm(request.POST), act)


@login_required
@require_POST
def storage_delete(request, name, pk):
    host = visible_hosts(request.user).filter(name=name).first()
    storage = host.storages.filter(pk=pk).first() if host else None
    if storage is None:
        raise Http404("No such storage")
    from backups.services import delete_storage

    def act(host, form):
        delete_storage(request.user, storage)
        messages.success(request, f"Storage {storage.name} removed.")
        return redirect("host-detail", host.name)
    return host_form(request, name, "storage_delete_form", ActionForm(request.POST), act)


# -- administration: add, token, SSH, drain, evacuate, remove ---------------------------------------
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
    if not is_admin(request.user):
        raise PermissionDenied("Only an administrator adds hosts.")

    def act(form):
        host, token = services.add_host(request.user, **form.host_fields())
        return render(request, "hosts/token.html", {"host": host, "token": token,
                                                    "command": install_command(host, token), "new": True})

    def page(form, status=200):
        return render(request, "hosts/add.html", {"form": form}, status=status)
    return form_response(request, HostAddForm(request.POST), act, page) if request.method == "POST" \
        else page(HostAddForm())


def _host_actions(request, host_name: str) -> dict:
    """action -> (form class, who may, what it does: act(host, form) -> response)."""
    from . import services
    user = request.user

    def done(text):
        messages.success(request, text)
        return redirect("host-detail", host_name)

    def drain(host, form):
        services.drain_host(user, host, form.cleaned_data["reason"])
        return done(f"{host.name} is drained: no new containers are placed there.")

    def undrain(host, form):
        services.undrain_host(user, host)
        return done(f"{host.name} takes new containers again.")

    def evacuate(host, form):
        task = services.evacuate_host(user, host, online=form.cleaned_data["online"])
        messages.success(request, f"Task #{task.pk} queued: evacuate {host.name}.")
        return redirect("task-detail", task.pk)

    def token(host, form):
        token = services.issue_token(user, host)
        return render(request, "hosts/token.html", {"host": host, "token": token,
                                                    "command": install_command(host, token)})

    def revoke(host, form):
        services.revoke_token(user, host)
        return done(f"The token of {host.name} is revoked; its agent stops at its next heartbeat.")

    def ssh(host, form):
        services.set_ssh(user, host, form.cleaned_data["ssh_address"], repin=form.cleaned_data["repin"])
        return done(f"SSH settings of {host.name} saved.")

    def promise(host, form):
        services.set_promise(user, host, **form.cleaned_data)
        return done(f"Promise policy of {host.name} saved.")

    def remove(host, form):
        services.remove_host(user, host, confirm=form.cleaned_data["confirm"].strip())
        messages.success(request, f"Host {host_name} removed; its task history is kept.")
        return redirect("host-list")
    return {"drain": (DrainForm, manages_hosts, drain), "undrain": (ActionForm, manages_hosts, undrain),
            "evacuate": (EvacuateForm, manages_hosts, evacuate), "token": (ActionForm, is_admin, token),
            "revoke": (ActionForm, is_admin, revoke), "ssh": (SSHForm, is_admin, ssh),
            "promise": (PromiseForm, is_admin, promise), "remove": (RemoveHostForm, is_admin, remove)}


@login_required
@require_POST
def host_action(request, name, action):
    """drain, undrain, evacuate, token, revoke, ssh, promise, remove: each a service call; refusals change nothing."""
    actions = _host_actions(request, name)
    if action not in actions:
        _visible_host(request, name)
        raise Http404("No such action")
    form_class, may, act = actions[action]
    return host_form(request, name, f"{action}_form", form_class(request.POST), act, may=may)
