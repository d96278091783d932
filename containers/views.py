"""Container pages: thin views over accounts.permissions and containers.services."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from panel.forms import ActionForm, form_response, wants_fragment
from panel.redirects import local_path
from accounts.decorators import page_for
from accounts.permissions import (get_container_for_user, manageable_containers, manages_hosts, may_create_containers,
                                  visible_containers, visible_tasks)

from . import services
from .choices import ContainerStatus
from .forms import (ContainerCreateForm, ContainerSettingsForm, DestroyForm, ExecForm, MigrateForm, PasswordForm,
                    SSHKeyForm, TemplateNameForm)

ACTIONS = {
    "start": services.start_container,
    "stop": services.stop_container,
    "restart": services.restart_container,
}
TABS = ("overview", "console", "resources", "events", "network", "backups")


@login_required
def container_list(request):
    containers = visible_containers(request.user)
    status = request.GET.get("status")
    if status in ContainerStatus.values:
        containers = containers.filter(status=status)
    template = "containers/_table.html" if wants_fragment(request) else "containers/list.html"
    return render(request, template, {"containers": containers, "status": status,
                                      "statuses": ContainerStatus.choices})


@sensitive_post_parameters("root_password", "root_password_confirm")
@login_required
@page_for(may_create_containers, "Creating containers")
def container_create(request):
    def act(form):
        data = form.cleaned_data
        task = services.create_container(
            user=request.user, ctid=data["ctid"], ostemplate=data["ostemplate"],
            hostname=data["hostname"], host=data["host"], name=data["name"],
            onboot=data["onboot"], description=data["description"], start=data["start"],
            tenant=data.get("tenant"), plan=data.get("plan"), limits=form.limits(),
            override_capacity=data.get("override_capacity", False),
            addresses=data["ipadd"], root_password=data["root_password"], ssh_public_keys=data["ssh_public_keys"])
        messages.success(request, f"Task #{task.pk} queued: create container {data['ctid']}.")
        return redirect("task-detail", task.pk)

    def page(form, status=200):
        from hosts.capacity import headroom_for
        return render(request, "containers/create.html", {"form": form, "headroom": headroom_for(request.user)},
                      status=status)
    if request.method != "POST":
        return page(ContainerCreateForm(initial={"ctid": services.next_free_ctid()}, user=request.user))
    return form_response(request, ContainerCreateForm(request.POST, user=request.user), act, page)


@login_required
def container_detail(request, ident):
    ct = get_container_for_user(request.user, ident)
    tab = request.GET.get("tab")
    return container_page(request, ct, tab if tab in TABS else "overview")


def container_page(request, ct, tab: str = "overview", status: int = 200, **forms) -> HttpResponse:
    """The container page on `tab`, with fresh forms except those given (a form in error, bound)."""
    context = {
        "ct": ct,
        "can_manage": manageable_containers(request.user).filter(pk=ct.pk).exists(),
        "tasks": visible_tasks(request.user).filter(ctid=ct.ctid)[:15],
        "settings_form": ContainerSettingsForm(container=ct),
        "exec_form": ExecForm(),
        "destroy_form": DestroyForm(),
        "password_form": PasswordForm(),
        "sshkey_form": SSHKeyForm(),
        "template_form": TemplateNameForm(),
        "action_form": ActionForm(),
        "tab": tab,
    }
    if manages_hosts(request.user) and context["can_manage"]:
        context["migrate_form"] = MigrateForm(container=ct)
    if wants_fragment(request):
        return render(request, "containers/_status.html", context)
    if tab == "resources":
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
    elif tab == "events":
        context["events"] = ct.events.all()[:200]
    elif tab == "console":
        from django.conf import settings
        context["console_idle_minutes"] = max(1, settings.CONSOLE_IDLE_SECONDS // 60)
        context["console_browser_port"] = settings.CONSOLE_BROWSER_PORT
    elif tab == "network":
        from network.views import container_network
        context.update(container_network(ct, request.user, context["can_manage"]))
    elif tab == "backups":
        from backups.views import container_backups
        context.update(container_backups(ct, request.user, context["can_manage"]))
    context.update(forms)
    return render(request, "containers/detail.html", context, status=status)


def container_form(request, ident, key: str, make_form, act, tab: str = "overview") -> HttpResponse:
    """A form of the container page (`key` in its context) posted: `act(ct, form)` answers on
    success; bad input or a refusal shows the page's `tab` again with this form bound (panel.forms)."""
    ct = get_container_for_user(request.user, ident, manage=True)
    return form_response(request, make_form(ct), lambda form: act(ct, form),
                         lambda form, status: container_page(request, ct, tab, status, **{key: form}))


def _queued(request, task, what: str):
    messages.success(request, f"Task #{task.pk} queued: {what}.")


@login_required
@require_POST
def container_action(request, ident, action):
    """Start, stop, restart (from this page or a container table). A refusal (locked, wrong state) shows
    the container's page with it beside the buttons, whichever page the button was on."""
    if action not in ACTIONS:
        raise Http404(f"No action {action!r}")

    def act(ct, form):
        task = ACTIONS[action](ct, request.user)
        _queued(request, task, f"{action} container {ct.ctid}")
        return redirect(local_path(request.POST.get("next")) or reverse("container-detail", args=[ct.ctid]))
    return container_form(request, ident, "action_form", lambda ct: ActionForm(request.POST), act)


@login_required
@require_POST
def container_settings(request, ident):
    def act(ct, form):
        changes = {k: form.cleaned_data[k] for k in ("hostname", "name", "onboot", "description")}
        changes.update(form.limits())
        task = services.update_container(ct, request.user, **changes)
        messages.success(request, f"Settings saved; task #{task.pk} applies them on the host."
                         if task else "Settings saved.")
        return redirect("container-detail", ct.ctid)
    return container_form(request, ident, "settings_form",
                          lambda ct: ContainerSettingsForm(request.POST, container=ct), act)


@login_required
@require_POST
def container_exec(request, ident):
    """The Run-a-command box: from htmx, the box again with the task's output as it comes (on the
    container page); a plain POST goes to the task's page, which shows the same."""
    def act(ct, form):
        task = services.exec_in_container(ct, request.user, form.cleaned_data["command"], form.cleaned_data["timeout"])
        if wants_fragment(request):
            from django.conf import settings
            return render(request, "containers/_exec_box.html", {
                "ct": ct, "exec_form": form, "exec_task": task, "ws_port": settings.CONSOLE_BROWSER_PORT})
        return redirect("task-detail", task.pk)
    return container_form(request, ident, "exec_form", lambda ct: ExecForm(request.POST), act)


def _confirmed_operation(request, ident, operation, what):
    def act(ct, form):
        task = operation(ct, request.user, form.cleaned_data["confirm"])
        _queued(request, task, f"{what} container {ct.ctid}")
        return redirect("task-detail", task.pk)
    return container_form(request, ident, "destroy_form", lambda ct: DestroyForm(request.POST), act)


@login_required
@require_POST
def container_destroy(request, ident):
    return _confirmed_operation(request, ident, services.destroy_container, "destroy")


@login_required
@require_POST
def container_migrate(request, ident):
    def act(ct, form):
        data = form.cleaned_data
        task = services.migrate_container(
            ct, request.user, data["destination"], online=data["online"], remove_source=data["remove_source"],
            keep_dst=data["keep_dst"], bwlimit_kib=data["bwlimit_kib"] or 0)
        _queued(request, task, f"migrate of container {ct.ctid}")
        return redirect("task-detail", task.pk)
    return container_form(request, ident, "migrate_form", lambda ct: MigrateForm(request.POST, container=ct), act)


@login_required
@require_POST
def container_reset(request, ident):
    return _confirmed_operation(request, ident, services.reset_container, "reset to its template")


def _queued_here(request, ct, task, what: str):
    _queued(request, task, f"{what} of container {ct.ctid}")
    return redirect("container-detail", ct.ctid)


@login_required
@require_POST
def container_password(request, ident):
    return container_form(request, ident, "password_form", lambda ct: PasswordForm(request.POST), lambda ct, f: (
        _queued_here(request, ct, services.set_user_password(ct, request.user, f.cleaned_data["user"],
                                                             f.cleaned_data["password"]),
                     "set the password")))


@login_required
@require_POST
def container_sshkey(request, ident):
    return container_form(request, ident, "sshkey_form", lambda ct: SSHKeyForm(request.POST), lambda ct, f: (
        _queued_here(request, ct, services.set_ssh_key(ct, request.user, f.cleaned_data["key"], f.cleaned_data["user"]),
                     "add the SSH key")))


@login_required
@require_POST
def container_console_ticket(request, ident):
    """A one-time ticket for the Console tab's WebSocket (consoles/): JSON {url} to open it with,
    or {error} with 409 (the container is not running, no such mode)."""
    from accounts.middleware import client_address
    from consoles.services import ConsoleRefused, new_ticket
    ct = get_container_for_user(request.user, ident, manage=True)
    try:
        session, ticket = new_ticket(request.user, ct, request.POST.get("mode", ""), client_address(request),
                                     request.session.session_key)
    except ConsoleRefused as exc:
        return JsonResponse({"error": str(exc)}, status=409)
    return JsonResponse({"url": f"/ws/containers/{ct.ctid}/console/{session.mode}/?ticket={ticket}"})
