"""Container pages: thin views over accounts.permissions and containers.services."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from panel.forms import ActionForm, form_response, wants_fragment
from panel.redirects import local_path
from accounts.decorators import page_for
from accounts.permissions import (get_container_for_user, manageable_containers, manages_hosts, may_create_containers,
                                  visible_tasks)

from . import live, services
from .bulk import BULK_ACTIONS, BulkForm, run_bulk
from .bulk import selected as bulk_selected
from .choices import ContainerStatus
from .forms import (ContainerCreateForm, ContainerSettingsForm, DestroyForm, ExecForm, MigrateForm, PasswordForm,
                    SSHKeyForm, TemplateNameForm)

ACTIONS = {
    "start": services.start_container,
    "stop": services.stop_container,
    "restart": services.restart_container,
}
TABS = ("overview", "console", "resources", "events", "network", "backups", "snapshots")


@login_required
def container_list(request):
    from panel.lists import ListView, list_response

    from accounts.permissions import visible_tenants

    from .filters import ContainerFilterSet, known_hosts
    from .tables import ContainerTable, listed_containers
    containers = listed_containers(request.user)
    filterset = ContainerFilterSet(request.GET, containers, request=request)
    manageable = manageable_ctids(request.user)
    listing = ListView(request, ContainerTable, filterset, noun="container", manageable=manageable)
    return list_response(request, listing, "containers/list.html", lambda: {
        "can_bulk": bool(manageable),
        "statuses": ContainerStatus.choices,
        "hosts": known_hosts(request.user).values_list("name", flat=True),
        "tenants": visible_tenants(request.user).values_list("slug", "name"),
        "ostemplates": containers.order_by("ostemplate").values_list("ostemplate", flat=True).distinct(),
        "bulk_actions": BULK_ACTIONS,
    })


@login_required
@require_POST
def container_bulk(request):
    """The list's bulk actions: the first post shows what will be done to which containers (the one
    confirmation), the second does it, container by container, and shows each one's result."""
    form = BulkForm(request.POST)
    back = local_path(request.POST.get("next")) or reverse("container-list")
    if not form.is_valid():
        # Bad input (no selection, no such action, the confirmation mistyped): this page again, 400.
        found, missing = bulk_selected(request.user, form.cleaned_data.get("ctids") or [])
        return render(request, "containers/bulk.html", {"form": form, "found": found, "missing": missing,
                                                        "back": back}, status=400)
    data = form.cleaned_data
    if not data["confirmed"]:
        found, missing = bulk_selected(request.user, data["ctids"])
        return render(request, "containers/bulk.html", {"form": form, "found": found, "missing": missing,
                                                        "back": back})
    results = run_bulk(request.user, data["action"], data["ctids"])
    return render(request, "containers/bulk.html", {"form": form, "results": results, "back": back,
                                                    "queued": sum(r.ok for r in results)})


class EveryContainer:
    """`ctid in EveryContainer()`: always, for who manages every container (no query to ask)."""

    def __contains__(self, ctid) -> bool:
        return True


def manageable_ctids(user):
    """What `ctid in ...` asks for the rows' checkboxes and buttons: one query at most, none for the
    global roles (an auditor manages nothing, an admin or operator everything)."""
    from accounts.permissions import manages_all_containers
    if manages_all_containers(user):
        return EveryContainer()
    return set(manageable_containers(user).values_list("ctid", flat=True))


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
            storage=data.get("storage") or None,

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


OVERVIEW_PARTS = ("status", "details", "tasks")
MANAGER_PARTS = ("exec_run", "settings", "destroy", "migrate", "make_template")


def live_part_names(tab: str, can_manage: bool) -> tuple[str, ...]:
    """The live parts (containers/live.py) the page shows on `tab`."""
    if tab == "overview":
        return OVERVIEW_PARTS + (MANAGER_PARTS if can_manage else ())
    if tab == "console":
        return ("console",)
    return ()


def container_page(request, ct, tab: str = "overview", status: int = 200, **forms) -> HttpResponse:
    """The container page on `tab`, with fresh forms except those given (a form in error, bound).
    The page's poller (a GET over htmx) gets its badge again and the live parts that changed."""
    from django.conf import settings
    can_manage = manageable_containers(request.user).filter(pk=ct.pk).exists()
    context = {"ct": ct, "can_manage": can_manage, "tab": tab, "ws_port": settings.CONSOLE_BROWSER_PORT}
    polled = request.method == "GET" and wants_fragment(request)
    seen = live.parse_seen(request.GET.get("live", "")) if polled else {}
    names = [name for name in live_part_names(tab, can_manage) if not polled or name in seen]
    if "tasks" in names:
        # This container's life only: a CTID used before keeps its older tasks on the CTID's history.
        tasks = visible_tasks(request.user)
        context["tasks"] = tasks.filter(container=ct)[:15]
        context["earlier_tasks"] = tasks.filter(ctid=ct.ctid).exclude(container=ct).exists()
    fresh = {}
    if set(MANAGER_PARTS) & set(names):
        fresh.update(settings_form=ContainerSettingsForm(container=ct), exec_form=ExecForm(),
                     destroy_form=DestroyForm(), template_form=TemplateNameForm())
        if manages_hosts(request.user):
            fresh["migrate_form"] = MigrateForm(container=ct)
    if not polled:
        fresh.update(password_form=PasswordForm(), sshkey_form=SSHKeyForm(), action_form=ActionForm())
    if tab == "console":
        context["console_idle_minutes"] = max(1, settings.CONSOLE_IDLE_SECONDS // 60)
        context["console_browser_port"] = settings.CONSOLE_BROWSER_PORT
    context.update(fresh)
    context.update(forms)
    if polled:
        answer = render_to_string("containers/_poller.html", context, request)
        return HttpResponse(answer + live.changed_parts(request, context, seen, names))
    if tab == "resources":
        # The table only: the charts fetch their samples from series.json.
        from metrics.consolidate import RANGES
        from metrics.models import Beancounters
        from metrics.views import beancounter_rows, mark_seen
        snapshot = Beancounters.objects.filter(container=ct).first()
        measured, unmeasured = beancounter_rows(snapshot)
        chart_range = request.GET.get("range")
        context.update({
            "beancounters": snapshot,
            "counter_rows": measured,
            "unmeasured_rows": unmeasured,
            "ranges": list(RANGES),
            "chart_range": chart_range if chart_range in RANGES else "hour",
        })
        mark_seen(snapshot)
    elif tab == "events":
        context["events"] = ct.events.all()[:200]
    elif tab == "network":
        from network.views import container_network
        context.update(container_network(ct, request.user, can_manage))
    elif tab == "backups":
        from backups.views import container_backups
        context.update(container_backups(ct, request.user, can_manage))
    elif tab == "snapshots":
        from storage.views import container_snapshots
        context.update(container_snapshots(ct))
    context.update(forms)  # again: over the fresh forms of the tab's own (network, backups)
    # A form in error (bound) stays until the state changes: the parts' digests are those of a poll's drawing.
    key_context = {**context, **fresh} if forms else None
    context["live"] = live.render_parts(request, context, names, key_context)
    return render(request, "containers/detail.html", context, status=status)


HISTORY_TASKS = 500


@login_required
def container_history(request, ident):
    """CTID history: the tasks of the CTID's earlier containers (a CTID is used again once its container
    is destroyed), one list per container. Each user sees the tasks they may see (accounts.permissions:
    a tenant sees its own containers' tasks, never another tenant's); a CTID of which they see nothing,
    neither a task nor the container living now, answers 404 like one that never existed."""
    from django.core.exceptions import ValidationError

    from panel.validators import parse_ctid
    from .models import Container
    try:
        ctid = parse_ctid(str(ident).strip())
    except ValidationError:
        ctid = get_container_for_user(request.user, ident).ctid  # a name: the container living now
    current = Container.objects.filter(ctid=ctid).first()
    tasks = visible_tasks(request.user).filter(ctid=ctid)
    if current is not None:
        tasks = tasks.exclude(container=current)
    shown = None  # the container living now, if the user may see it
    if current is not None:
        try:
            shown = get_container_for_user(request.user, ctid)
        except Http404:
            pass
    tasks = list(tasks[:HISTORY_TASKS + 1])
    if not tasks and shown is None:
        raise Http404(f"No container {ctid}")
    lives: dict = {}
    for task in tasks[:HISTORY_TASKS]:
        lives.setdefault(task.container_created_at, []).append(task)
    return render(request, "containers/history.html", {
        "ctid": ctid, "current": shown, "lives": [{"created_at": created, "tasks": rows}
                                                  for created, rows in lives.items()],
        "cut": len(tasks) > HISTORY_TASKS, "limit": HISTORY_TASKS})


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
            context = {"ct": ct, "exec_form": form, "exec_task": task, "ws_port": settings.CONSOLE_BROWSER_PORT}
            context["live"] = live.render_parts(request, context, ["exec_run"])
            return render(request, "containers/_exec_box.html", context)
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
