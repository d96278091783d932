"""The OS template pages: /templates/ (the catalogue, and for administrators and operators the forms
to build, download, upload, copy and delete templates) and "Make a template" from a stopped container.

Thin views over containers.ostemplates, which checks names and rights again and audits. Whoever may
not change the catalogue gets 403 on every POST; a refused request changes nothing and says why."""
from __future__ import annotations

import os

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_POST

from accounts.decorators import page_for
from accounts.permissions import get_container_for_user, manages_hosts, placeable_hosts, sees_templates, visible_hosts
from panel.uploads import UploadRefused, save_upload, stream_uploads_to_disk, upload_dir
from tasks.services import TaskError

from . import ostemplates
from .engine.templates import NAME_RE, SUFFIXES
from .models import OSTemplate

from panel.uploads import MAX_UPLOAD_BYTES  # noqa: E402  (one limit for every upload)
DEFAULT_INDEX_URL = "https://images.linuxcontainers.org/"


# -- helpers ----------------------------------------------------------------------------
def _require_manager(request) -> None:
    if not manages_hosts(request.user):
        raise PermissionDenied("Only administrators and operators change the OS template catalogue.")


def _field(request, key: str) -> str:
    return (request.POST.get(key) or "").strip()


def _host(request, key: str = "host"):
    """The visible host named in the form, or None (with a message saying so)."""
    name = _field(request, key)
    host = visible_hosts(request.user).filter(name=name).first() if name else None
    if host is None:
        messages.error(request, f"No host {name!r}; choose one of the list." if name else "Choose a host.")
    return host


def _template_for(request, pk) -> OSTemplate:
    template = (OSTemplate.objects.filter(host__in=placeable_hosts(request.user), pk=pk)
                .select_related("host").first())
    if template is None:
        raise Http404(f"No template {pk}")
    return template


def _queued(request, task, what: str):
    messages.success(request, f"Task #{task.pk} queued: {what}.")
    return redirect("task-detail", task.pk)


# -- the catalogue ----------------------------------------------------------------------
@login_required
@page_for(sees_templates, "OS templates")
def template_list(request):
    hosts = list(placeable_hosts(request.user).order_by("name"))
    templates = OSTemplate.objects.filter(host__in=hosts).select_related("host")
    return render(request, "hosts/templates.html", {
        "templates": templates,
        "hosts": hosts,
        "can_manage_templates": manages_hosts(request.user),
        "distributions": ostemplates.DISTRIBUTIONS,
        "default_index_url": DEFAULT_INDEX_URL,
        "suffixes": ", ".join(SUFFIXES),
    })


def _host_operation(request, operation, failed: str, done: str):
    """A catalogue change on the host the form names: call `operation(host)`, report, redirect."""
    _require_manager(request)
    host = _host(request)
    if host is None:
        return redirect("template-list")
    try:
        task = operation(host)
    except TaskError as exc:
        messages.error(request, f"{failed}: {exc}")
        return redirect("template-list")
    return _queued(request, task, done.format(name=task.params["name"], host=host.name))


@login_required
@require_POST
def template_build(request):
    return _host_operation(request, lambda host: ostemplates.build_template(
        request.user, host, distribution=_field(request, "distribution") or "debian",
        release=_field(request, "release") or "bookworm", architecture=_field(request, "architecture") or "amd64",
        mirror=_field(request, "mirror") or None, name=_field(request, "name") or None),
        "Not built", "build {name} on {host}")


@login_required
@require_POST
def template_download(request):
    return _host_operation(request, lambda host: ostemplates.download_template(
        request.user, host, url=_field(request, "url"), sha256=_field(request, "sha256") or None,
        name=_field(request, "name") or None),
        "Not downloaded", "download {name} to {host}")


@login_required
@require_POST
def template_download_index(request):
    return _host_operation(request, lambda host: ostemplates.download_from_index(
        request.user, host, index_url=_field(request, "index_url"),
        distribution=_field(request, "distribution"), release=_field(request, "release"),
        architecture=_field(request, "architecture") or "amd64", variant=_field(request, "variant") or "default",
        name=_field(request, "name") or None),
        "Not downloaded", "download {name} to {host}")


@csrf_exempt  # the upload handler must be set before CSRF reads the body: checked just below
@login_required
@require_POST
def template_upload(request):
    """Stream a root filesystem tarball into the uploads directory and queue its import on the chosen
    host. Nothing is read from a non-manager; what is not kept is removed when the request ends."""
    _require_manager(request)
    stream_uploads_to_disk(request, MAX_UPLOAD_BYTES, "The template")
    return _template_upload(request)


@csrf_protect
def _template_upload(request):
    host = _host(request)
    if host is None:
        return redirect("template-list")
    upload = request.FILES.get("file")
    if upload is None or getattr(request, "upload_refused", None):
        messages.error(request, f"Not uploaded: {getattr(request, 'upload_refused', None) or 'choose a tarball to upload.'}")
        return redirect("template-list")
    name = _field(request, "name")
    filename = os.path.basename(upload.name or "")
    suffix = next((s for s in SUFFIXES if filename.endswith(s)), None)
    if suffix is None:
        messages.error(request, f"Not uploaded: {filename!r} is not a tarball ({', '.join(SUFFIXES)}).")
        return redirect("template-list")
    if not name:
        name = filename[: -len(suffix)]
    if not NAME_RE.match(name):
        messages.error(request, f"Not uploaded: {name!r} is not a template name: letters, digits, '.', '_', '+' "
                                "and '-', starting with a letter or digit.")
        return redirect("template-list")
    if OSTemplate.objects.filter(host=host, name=name).exists():
        messages.error(request, f"Not uploaded: host {host.name} already has a template {name}; "
                                "delete it first or pick another name.")
        return redirect("template-list")
    try:
        dest = save_upload(upload, upload_dir() / f"template-{name}{suffix}", f"a template named {name}",
                           MAX_UPLOAD_BYTES)
    except UploadRefused as exc:
        messages.error(request, f"Not uploaded: {exc}")
        return redirect("template-list")
    written = dest.stat().st_size
    try:
        task = ostemplates.import_uploaded_template(request.user, host, str(dest), name)
    except TaskError as exc:
        dest.unlink(missing_ok=True)
        messages.error(request, f"Not imported: {exc}")
        return redirect("template-list")
    return _queued(request, task, f"import {name} ({written} bytes) on {host.name}")


@login_required
@require_POST
def template_copy(request, pk):
    _require_manager(request)  # before the lookup: one answer for every template
    template = _template_for(request, pk)
    target = _host(request)
    if target is None:
        return redirect("template-list")
    try:
        task = ostemplates.copy_template(request.user, template, target)
    except TaskError as exc:
        messages.error(request, f"Not copied: {exc}")
        return redirect("template-list")
    return _queued(request, task, f"copy {template.name} from {template.host.name} to {target.name}")


@login_required
@require_POST
def template_delete(request, pk):
    _require_manager(request)  # before the lookup: one answer for every template
    template = _template_for(request, pk)
    if _field(request, "confirm") != template.name:
        messages.error(request, f"Not deleted: type the template's name, {template.name}, to confirm.")
        return redirect("template-list")
    try:
        task = ostemplates.delete_template(request.user, template)
    except TaskError as exc:
        messages.error(request, f"Not deleted: {exc}")
        return redirect("template-list")
    messages.success(request, f"Task #{task.pk} queued: delete {template.name} on {template.host.name}.")
    return redirect("template-list")


# -- from a container -------------------------------------------------------------------
@login_required
@require_POST
def template_from_container(request, ident):
    ct = get_container_for_user(request.user, ident, manage=True)
    _require_manager(request)
    name = _field(request, "name")
    try:
        task = ostemplates.template_from_container(ct, request.user, name)
    except TaskError as exc:
        messages.error(request, f"No template made: {exc}")
        return redirect("container-detail", ct.ctid)
    return _queued(request, task, f"make template {name} from container {ct.ctid}")
