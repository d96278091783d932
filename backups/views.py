"""Backup pages: the container's Backups tab (its context), /backups/, downloads, restore, prune, upload.

Thin views over accounts.permissions and backups.services. What the user may not see answers 404,
what they may see but not change 403; a refused request changes nothing and says why.
The web process reads archives to stream them but never runs anything on the host."""
from __future__ import annotations

import os
import stat
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_POST

from accounts.permissions import (creatable_tenants, get_backup_for_user, get_container_for_user,
                                  manageable_backups, manageable_containers, manages_hosts, visible_backups, visible_hosts,
                                  visible_tenants)
from containers.services import next_free_ctid
from containers.services import InvalidState
from panel.forms import ActionForm, form_response
from panel.redirects import local_path
from panel.uploads import MAX_UPLOAD_BYTES, stream_uploads_to_disk
from tasks.services import TaskError

from . import services
from .forms_backup import (KEEP_FIELDS, BackupCreateForm, DeleteForm, NotesForm, ProtectForm,
                           PruneForm, RestoreForm, UploadForm)
from .filters import BackupFilterSet
from .models import BackupStorage

PAGE_SIZE = 100


# -- helpers --------------------------------------------------------------------------
def _back(request, default: str | None = None):
    return redirect(local_path(request.POST.get("next")) or default or reverse("backup-list"))


def _row_form(request, backup, form, act) -> HttpResponse:
    """A backup row's form (verify, protect, notes, delete) posted: `act(form)` answers; bad input or
    a refusal shows the page the row was on again (the container's Backups tab or /backups/, as
    `next` says), with this row's form bound."""
    def page(form, status):
        bound = {"row_form": form, "row_pk": backup.pk}
        ct = backup.container
        if ct is not None and (local_path(request.POST.get("next")) or "").startswith(
                reverse("container-detail", args=[ct.ctid])):
            from containers.views import container_page
            return container_page(request, ct, "backups", status, **bound)
        return backup_list_page(request, status, **bound)
    return form_response(request, form, act, page)


def tab_url(ct) -> str:
    return reverse("container-detail", args=[ct.ctid]) + "?tab=backups"


def _backup_for(request, pk, manage: bool):
    """The backup if visible (else 404); with `manage`, 403 unless the user may change it."""
    backup = get_backup_for_user(request.user, pk)
    if manage and not manageable_backups(request.user).filter(pk=backup.pk).exists():
        raise PermissionDenied(f"You may look at backup {backup.filename} but not change it.")
    return backup


def _open_regular(path: str):
    """The file at `path` opened for reading, if it is a regular file (not a link, not missing): else 404."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        raise Http404("The file is not on the host's disk.") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise Http404("The file is not on the host's disk.")
    return os.fdopen(fd, "rb")


def archive_response(backup) -> FileResponse:
    """Stream the archive (never read into memory) as an attachment; 404 if it is gone."""
    return FileResponse(_open_regular(backup.path), as_attachment=True, filename=backup.filename)


def log_path(backup) -> str:
    stem = backup.filename.rsplit(".tar", 1)[0]
    return f"{backup.storage_path.rstrip('/')}/{stem}.log"


def log_response(backup) -> FileResponse:
    return FileResponse(_open_regular(log_path(backup)), content_type="text/plain; charset=utf-8")


def _row_context(user, backups) -> dict:
    """What each row may offer: the ids of the backups the user may change (and download)."""
    ids = [b.pk for b in backups]
    return {"manageable_ids": set(manageable_backups(user).filter(pk__in=ids).values_list("pk", flat=True))}


def container_backups(ct, user, can_manage: bool) -> dict:
    """The context of the container page's Backups tab."""
    backups = list(visible_backups(user).filter(container=ct).select_related("storage", "task"))
    return {
        "backups": backups,
        **_row_context(user, backups),
        "backup_create_form": BackupCreateForm(host=ct.host) if can_manage else None,
        "prune_form": PruneForm(),
        "backups_next": tab_url(ct),
    }


# -- the container's Backups tab: make a backup, prune ---------------------------------
@login_required
@require_POST
def container_backup_create(request, ident):
    from containers.views import container_form

    def act(ct, form):
        d = form.cleaned_data
        task = services.backup_container(
            ct, request.user, mode=d["mode"], compress=d["compress"], storage=d["storage"], notes=d["notes"],
            stdexcludes=d["stdexcludes"], exclude_paths=d["exclude_paths"], bwlimit_kbps=d["bwlimit_kbps"],
            protected=d["protected"])
        messages.success(request, f"Task #{task.pk} queued: back up container {ct.ctid}.")
        return redirect("task-detail", task.pk)
    return container_form(request, ident, "backup_create_form",
                          lambda ct: BackupCreateForm(request.POST, host=ct.host), act, tab="backups")


def _prune_groups(backups, retention: dict) -> list[dict]:
    """The plan per place (host and directory): retention applies to each storage on its own, as vzdump's."""
    groups: dict[tuple, list] = {}
    for b in backups:
        groups.setdefault((b.host_id, b.storage_path), []).append(b)
    plan = []
    for (_, path), members in groups.items():
        keep, remove = services.prune_plan(members, retention)
        plan.append({"host": members[0].host, "storage": members[0].storage, "storage_path": path,
                     "backups": members, "keep": keep, "remove": remove})
    return plan


def _expect(plan) -> str:
    return ",".join(str(pk) for pk in sorted(b.pk for g in plan for b in g["remove"]))


@login_required
def container_backup_prune(request, ident):
    """GET: the dry run (what would go, what stays). POST: prune now, if the plan is still the one shown
    (else the new plan, 409). Bad keep-* values show the page again with them, 400."""
    post = request.method == "POST"
    ct = get_container_for_user(request.user, ident, manage=post)
    data = request.POST if post else (request.GET if any(k in request.GET for k in KEEP_FIELDS) else None)
    backups = list(visible_backups(request.user).filter(container=ct).order_by("-created_at"))

    def page(form, status=200):
        # A refusal (the plan changed) shows the plan as it is now; wrong keep-* values show none.
        shown = form.is_bound and not form.errors.keys() - {NON_FIELD_ERRORS} and form.retention()
        plan = _prune_groups(backups, form.retention()) if shown else None
        return render(request, "backups/prune.html", {
            "ct": ct, "form": form, "plan": plan, "expect": _expect(plan) if plan else "",
            "removing": sum(len(g["remove"]) for g in plan) if plan else 0,
            "can_manage": manageable_containers(request.user).filter(pk=ct.pk).exists(),
            "retention": form.retention() if plan is not None else {}}, status=status)

    def act(form):
        plan = _prune_groups(backups, form.retention())
        if request.POST.get("expect", "") != _expect(plan):
            raise InvalidState("Nothing pruned: the backups changed since the dry run; review the plan again.")
        with transaction.atomic():
            tasks = []
            for group in plan:
                _, _, queued = services.prune_backups(request.user, group["backups"], form.retention(),
                                                      dry_run=False)
                tasks += queued
        kept = sum(len(g["keep"]) for g in plan)
        messages.success(request, f"Pruned: {len(tasks)} delete task{'s' if len(tasks) != 1 else ''} queued"
                                  f"{' (#' + ', #'.join(str(t.pk) for t in tasks) + ')' if tasks else ''}; "
                                  f"{kept} kept.")
        return redirect(tab_url(ct))
    form = PruneForm(data)
    if post:
        return form_response(request, form, act, page)
    return page(form, 400 if data is not None and not form.is_valid() else 200)


# -- /backups/ ---------------------------------------------------------------------------
@login_required
def backup_list(request):
    return backup_list_page(request)


def backup_list_page(request, status: int = 200, **forms) -> HttpResponse:
    """/backups/ with fresh forms, except those given (a form in error, bound)."""
    user = request.user
    qs = visible_backups(user).select_related("host", "storage", "tenant", "container", "owner")
    filterset = BackupFilterSet(request.GET, qs, request=request)
    if not filterset.is_valid():
        # As this page always has: each filter it cannot apply is said and left out, the others apply.
        for name, errors in filterset.errors.items():
            messages.error(request, f"{filterset.form.fields[name].label or name}: {' '.join(errors)} Not filtered by it.")
        filterset = BackupFilterSet({k: v for k, v in request.GET.items() if k not in filterset.errors}, qs,
                                    request=request)
        filterset.is_valid()
    filters = {k: filterset.form.cleaned_data.get(k) or "" for k in ("ctid", "host", "storage", "tenant", "q")}
    filters = {k: str(v) for k, v in filters.items()}
    sort = filterset.form.cleaned_data.get("sort") or []
    page = Paginator(filterset.qs, PAGE_SIZE).get_page(request.GET.get("page"))
    can_import = manages_hosts(user) or creatable_tenants(user).exists()
    query = urlencode({k: v for k, v in {**filters, "sort": ",".join(sort)}.items() if v})
    return render(request, "backups/list.html", {
        "page": page, "backups": list(page.object_list), **_row_context(user, page.object_list),
        "filters": filters, "query": query, "sort": sort[0] if sort else "",
        "hosts": visible_hosts(user), "tenants": visible_tenants(user),
        "storages": BackupStorage.objects.filter(host__in=visible_hosts(user)).select_related("host"),
        "can_import": can_import, "upload_form": UploadForm(user=user) if can_import else None,
        "backups_next": reverse("backup-list") if request.method == "POST" else request.get_full_path(),
        **forms,
    }, status=status)


def upload_allowance(user) -> int:
    """The most an upload by `user` may hold: 64 GiB for who imports without a tenant, else the
    backup space their tenants have left (the exact tenant is checked again when it is queued)."""
    from tenancy.quotas import usage_of
    if manages_hosts(user):
        return MAX_UPLOAD_BYTES
    best = 0
    for tenant in creatable_tenants(user):
        if tenant.max_backup_mb is None:
            return MAX_UPLOAD_BYTES
        best = max(best, (tenant.max_backup_mb - usage_of(tenant, "backup_mb")) << 20)
    return min(best, MAX_UPLOAD_BYTES)


@csrf_exempt  # the upload handler must be set before CSRF reads the body: checked just below
@login_required
@require_POST
def backup_upload(request):
    """Stream an uploaded archive into the uploads directory (on the backup storage), at most what
    the uploader may store, and queue its import on the chosen host. Anything not kept is removed."""
    user = request.user
    if not (manages_hosts(user) or creatable_tenants(user).exists()):
        raise PermissionDenied("You may not import archives.")
    allowance = upload_allowance(user)
    stream_uploads_to_disk(request, max(allowance, 0), "The archive")  # nothing is kept without space
    return _backup_upload(request, "Your tenants have no backup space left." if allowance <= 0 else None)


@csrf_protect
def _backup_upload(request, no_space: str | None):
    user = request.user

    def act(form):
        upload, host, tenant = form.cleaned_data["archive"], form.cleaned_data["host"], form.cleaned_data["tenant"]
        name = os.path.basename(upload.name or "")
        task = services.import_upload(user, host, upload, name, tenant=tenant)
        messages.success(request, f"Task #{task.pk} queued: import {name} ({upload.size} bytes) on {host.name}.")
        return redirect("task-detail", task.pk)
    form = UploadForm(request.POST, request.FILES, user=user,
                      refused=no_space or getattr(request, "upload_refused", None))
    return form_response(request, form, act, lambda form, status: backup_list_page(request, status, upload_form=form))


# -- one backup ---------------------------------------------------------------------------
@login_required
def backup_download(request, pk):
    return archive_response(_backup_for(request, pk, manage=True))


@login_required
def backup_log(request, pk):
    return log_response(_backup_for(request, pk, manage=False))


@login_required
@require_POST
def backup_verify(request, pk):
    backup = _backup_for(request, pk, manage=True)

    def act(form):
        task = services.verify_backup(backup, request.user)
        messages.success(request, f"Task #{task.pk} queued: verify {backup.filename}.")
        return _back(request)
    return _row_form(request, backup, ActionForm(request.POST), act)


@login_required
@require_POST
def backup_protect(request, pk):
    backup = _backup_for(request, pk, manage=True)

    def act(form):
        protected = form.cleaned_data["protected"]
        services.update_backup(backup, request.user, protected=protected)
        messages.success(request, f"{backup.filename} is {'protected' if protected else 'no longer protected'}.")
        return _back(request)
    return _row_form(request, backup, ProtectForm(request.POST), act)


@login_required
@require_POST
def backup_notes(request, pk):
    backup = _backup_for(request, pk, manage=True)

    def act(form):
        services.update_backup(backup, request.user, notes=form.cleaned_data["notes"])
        messages.success(request, f"Notes of {backup.filename} saved.")
        return _back(request)
    return _row_form(request, backup, NotesForm(request.POST), act)


@login_required
@require_POST
def backup_delete(request, pk):
    backup = _backup_for(request, pk, manage=True)

    def act(form):
        task = services.delete_backup(backup, request.user, confirm=form.cleaned_data["confirm"])
        messages.success(request, f"Task #{task.pk} queued: delete {backup.filename}.")
        return _back(request)
    return _row_form(request, backup, DeleteForm(request.POST), act)


@login_required
def backup_restore(request, pk):
    """vzrestore: the form (GET) and the restore (POST)."""
    backup = _backup_for(request, pk, manage=True)
    user = request.user

    def act(form):
        d = form.cleaned_data
        overwrite = d["target"] == "overwrite"
        task = services.restore_backup(
            backup, user, ctid=d["ctid"], host=d["host"], force=overwrite,
            confirm=d["confirm"] if overwrite else None, tenant=d["tenant"], plan=d["plan"],
            hostname=d["hostname"] or None, start=d["start"], override_capacity=d.get("override_capacity", False))
        what = f"restore {backup.filename} over container {d['ctid']}" if overwrite else \
            f"restore {backup.filename} as container {d['ctid']}"
        messages.success(request, f"Task #{task.pk} queued: {what}.")
        return redirect("task-detail", task.pk)

    def page(form, status=200):
        return render(request, "backups/restore.html", {"backup": backup, "form": form,
                                                        "next": local_path(request.GET.get("next")) or ""},
                      status=status)
    if request.method == "POST":
        return form_response(request, RestoreForm(request.POST, user=user, backup=backup), act, page)
    return page(RestoreForm(initial={"target": "new", "ctid": next_free_ctid(), "host": backup.host.name},
                            user=user, backup=backup))
