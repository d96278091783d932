"""Container pages: thin views over accounts.permissions and containers.services."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from panel.redirects import local_path
from accounts.decorators import page_for
from accounts.permissions import get_container_for_user, manageable_containers, may_create_containers, visible_containers, visible_tasks
from tasks.services import TaskError

from . import services
from .choices import ContainerStatus
from .forms import (ContainerCreateForm, ContainerSettingsForm, DestroyForm, ExecForm, PasswordForm,
                    SSHKeyForm)

ACTIONS = {
    "start": services.start_container,
    "stop": services.stop_container,
    "restart": services.restart_container,
}


@login_required
def container_list(request):
    containers = visible_containers(request.user)
    status = request.GET.get("status")
    if status in ContainerStatus.values:
        containers = containers.filter(status=status)
    template = "containers/_table.html" if request.headers.get("HX-Request") else "containers/list.html"
    return render(request, template, {"containers": containers, "status": status,
                                      "statuses": ContainerStatus.choices})


@login_required
@page_for(may_create_containers, "Creating containers")
def container_create(request):
    if request.method == "POST":
        form = ContainerCreateForm(request.POST, user=request.user)
        if form.is_valid():
            data = form.cleaned_data
            try:
                task = services.create_container(
                    user=request.user, ctid=data["ctid"], ostemplate=data["ostemplate"],
                    hostname=data["hostname"], host=data["host"], name=data["name"],
                    onboot=data["onboot"], description=data["description"], start=data["start"],
                    tenant=data.get("tenant"), plan=data.get("plan"), limits=form.limits(),
                    override_capacity=data.get("override_capacity", False))
            except TaskError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"Task #{task.pk} queued: create container {data['ctid']}.")
                return redirect("task-detail", task.pk)
    else:
        form = ContainerCreateForm(initial={"ctid": services.next_free_ctid()}, user=request.user)
    return render(request, "containers/create.html", {"form": form})


@login_required
def container_detail(request, ident):
    ct = get_container_for_user(request.user, ident)
    context = {
        "ct": ct,
        "can_manage": manageable_containers(request.user).filter(pk=ct.pk).exists(),
        "tasks": visible_tasks(request.user).filter(ctid=ct.ctid)[:15],
        "settings_form": ContainerSettingsForm(container=ct),
        "exec_form": ExecForm(),
        "destroy_form": DestroyForm(),
        "password_form": PasswordForm(),
        "sshkey_form": SSHKeyForm(),
    }
    from accounts.permissions import manages_hosts
    if manages_hosts(request.user) and context["can_manage"]:
        from .forms import MigrateForm
        context["migrate_form"] = MigrateForm(container=ct)
    if request.headers.get("HX-Request"):
        return render(request, "containers/_status.html", context)
    tab = request.GET.get("tab")
    context["tab"] = tab if tab in ("resources", "events", "network", "backups") else "overview"
    if context["tab"] == "resources":
        # The table only: the charts fetch their samples from series.json.
        from metrics.consolidate import RANGES
        from metrics.models import Beancounters
        from metrics.views import beancounter_rows, mark_seen
        snapshot = Beancounters.objects.filter(container=ct).first()
        chart_range = request.GET.get("range")
        context.update({
            "beancounters": snapshot,
            "counter_rows": beancounter_rows(snapshot),
            "ranges": list(RANGES),
            "chart_range": chart_range if chart_range in RANGES else "hour",
        })
        mark_seen(snapshot)
    elif context["tab"] == "events":
        context["events"] = ct.events.all()[:200]
    elif context["tab"] == "network":
        from network.views import container_network
        context.update(container_network(ct, request.user, context["can_manage"]))
    elif context["tab"] == "backups":
        from backups.views import container_backups
        context.update(container_backups(ct, request.user, context["can_manage"]))
    return render(request, "containers/detail.html", context)


def _queued(request, task, what: str):
    messages.success(request, f"Task #{task.pk} queued: {what}.")


@login_required
@require_POST
def container_action(request, ident, action):
    ct = get_container_for_user(request.user, ident, manage=True)
    if action not in ACTIONS:
        messages.error(request, f"Unknown action {action!r}.")
        return redirect("container-detail", ct.ctid)
    try:
        task = ACTIONS[action](ct, request.user)
    except TaskError as exc:
        messages.error(request, str(exc))
    else:
        _queued(request, task, f"{action} container {ct.ctid}")
    if request.POST.get("next"):
        return redirect(local_path(request.POST["next"]) or "/")
    return redirect("container-detail", ct.ctid)


@login_required
@require_POST
def container_settings(request, ident):
    ct = get_container_for_user(request.user, ident, manage=True)
    form = ContainerSettingsForm(request.POST, container=ct)
    if form.is_valid():
        changes = {k: form.cleaned_data[k] for k in ("hostname", "name", "onboot", "description")}
        changes.update(form.limits())
        try:
            task = services.update_container(ct, request.user, **changes)
        except TaskError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Settings saved; task #{task.pk} applies them on the host."
                             if task else "Settings saved.")
    else:
        messages.error(request, "Settings not saved: " + _form_errors(form))
    return redirect("container-detail", ct.ctid)


@login_required
@require_POST
def container_exec(request, ident):
    ct = get_container_for_user(request.user, ident, manage=True)
    form = ExecForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Command not run: " + _form_errors(form))
        return redirect("container-detail", ct.ctid)
    try:
        task = services.exec_in_container(ct, request.user, form.cleaned_data["command"],
                                          form.cleaned_data["timeout"])
    except TaskError as exc:
        messages.error(request, str(exc))
        return redirect("container-detail", ct.ctid)
    return redirect("task-detail", task.pk)


def _confirmed_operation(request, ident, operation, what):
    ct = get_container_for_user(request.user, ident, manage=True)
    form = DestroyForm(request.POST)
    try:
        if not form.is_valid():
            raise TaskError(_form_errors(form))
        task = operation(ct, request.user, form.cleaned_data["confirm"])
    except TaskError as exc:
        messages.error(request, str(exc))
        return redirect("container-detail", ct.ctid)
    _queued(request, task, f"{what} container {ct.ctid}")
    return redirect("task-detail", task.pk)


@login_required
@require_POST
def container_destroy(request, ident):
    return _confirmed_operation(request, ident, services.destroy_container, "destroy")


@login_required
@require_POST
def container_migrate(request, ident):
    from .forms import MigrateForm
    return _form_operation(request, ident, MigrateForm, lambda ct, data: services.migrate_container(
        ct, request.user, data["destination"], online=data["online"], remove_source=data["remove_source"],
        keep_dst=data["keep_dst"], bwlimit_kib=data["bwlimit_kib"] or 0), "migrate", show_task=True)


@login_required
@require_POST
def container_reset(request, ident):
    return _confirmed_operation(request, ident, services.reset_container, "reset to its template")


def _form_operation(request, ident, form_class, operation, what: str, show_task: bool = False):
    """POST a form, run `operation(ct, form data)`, report; refusals change nothing."""
    ct = get_container_for_user(request.user, ident, manage=True)
    form = form_class(request.POST)
    try:
        if not form.is_valid():
            raise TaskError(_form_errors(form))
        task = operation(ct, form.cleaned_data)
    except TaskError as exc:
        messages.error(request, f"Could not {what}: {exc}")
        return redirect("container-detail", ct.ctid)
    _queued(request, task, f"{what} of container {ct.ctid}")
    return redirect("task-detail", task.pk) if show_task else redirect("container-detail", ct.ctid)


@login_required
@require_POST
def container_password(request, ident):
    return _form_operation(request, ident, PasswordForm, lambda ct, d: services.set_user_password(
        ct, request.user, d["user"], d["password"]), "set the password")


@login_required
@require_POST
def container_sshkey(request, ident):
    return _form_operation(request, ident, SSHKeyForm, lambda ct, d: services.set_ssh_key(
        ct, request.user, d["key"], d["user"]), "add the SSH key")


def _form_errors(form) -> str:
    return " ".join(f"{'' if f == '__all__' else form.fields[f].label or f}: {' '.join(e)}".lstrip(": ")
                    for f, e in form.errors.items())
