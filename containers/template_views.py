"""The OS template pages: /templates/ (the catalogue, and for administrators and operators the forms
to build, download, upload, copy and delete templates) and "Make a template" from a stopped container.

Thin views over containers.ostemplates, which checks names and rights again and audits. Whoever may
not change the catalogue gets 403 on every POST; a refused request changes nothing and says why."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_POST

from accounts.decorators import page_for
from accounts.permissions import get_container_for_user, manages_hosts, placeable_hosts, sees_templates, visible_hosts
from panel.forms import form_response
from panel.uploads import MAX_UPLOAD_BYTES, save_upload, stream_uploads_to_disk, upload_dir
from tasks.services import TaskError

from . import ostemplates
from .engine.templates import SUFFIXES
from .forms import (TemplateBuildForm, TemplateDeleteForm, TemplateDownloadForm, TemplateHostForm, TemplateIndexForm,
                    TemplateNameForm, TemplateUploadForm)
from .models import OSTemplate


# -- helpers ----------------------------------------------------------------------------
def _require_manager(request) -> None:
    if not manages_hosts(request.user):
        raise PermissionDenied("Only administrators and operators change the OS template catalogue.")


def _template_for(request, pk) -> OSTemplate:
    template = (OSTemplate.objects.filter(host__in=placeable_hosts(request.user), pk=pk)
                .select_related("host").first())
    if template is None:
        raise Http404(f"No template {pk}")
    return template


def _queued(request, task, what: str):
    messages.success(request, f"Task #{task.pk} queued: {what}.")
    return redirect("task-detail", task.pk)


def _hosts(request):
    return visible_hosts(request.user)


# -- the catalogue ----------------------------------------------------------------------
@login_required
@page_for(sees_templates, "OS templates")
def template_list(request):
    return template_page(request)


def template_page(request, status: int = 200, **forms) -> HttpResponse:
    """The catalogue with fresh forms, except those given (a form in error, bound; a row's form
    comes with `row_pk`, the template it was for)."""
    hosts = list(placeable_hosts(request.user).order_by("name"))
    templates = OSTemplate.objects.filter(host__in=hosts).select_related("host")
    fresh = {"hosts": _hosts(request)}
    return render(request, "hosts/templates.html", {
        "templates": templates,
        "hosts": hosts,
        "can_manage_templates": manages_hosts(request.user),
        "distributions": ostemplates.DISTRIBUTIONS,
        "suffixes": ", ".join(SUFFIXES),
        "build_form": TemplateBuildForm(**fresh),
        "download_form": TemplateDownloadForm(**fresh),
        "index_form": TemplateIndexForm(**fresh),
        "upload_form": TemplateUploadForm(**fresh),
        **forms,
    }, status=status)


def _catalogue_form(request, key: str, form, act, **extra) -> HttpResponse:
    """A catalogue form posted: `act(form)` answers; bad input or a refusal shows the catalogue again."""
    return form_response(request, form, act,
                         lambda form, status: template_page(request, status, **{key: form}, **extra))


def _host_operation(request, key: str, form_class, operation, done: str):
    """A catalogue change on the host the form names: `operation(host, cleaned data)` queues it."""
    _require_manager(request)

    def act(form):
        host = form.cleaned_data["host"]
        data = {k: (v.strip() or form.fields[k].initial) if isinstance(v, str) else v
                for k, v in form.cleaned_data.items()}  # empty: the field's default
        task = operation(host, data)
        return _queued(request, task, done.format(name=task.params["name"], host=host.name))
    return _catalogue_form(request, key, form_class(request.POST, hosts=_hosts(request)), act)


@login_required
@require_POST
def template_build(request):
    return _host_operation(request, "build_form", TemplateBuildForm, lambda host, d: ostemplates.build_template(
        request.user, host, distribution=d["distribution"], release=d["release"], architecture=d["architecture"],
        mirror=d["mirror"] or None, name=d["name"] or None), "build {name} on {host}")


@login_required
@require_POST
def template_download(request):
    return _host_operation(request, "download_form", TemplateDownloadForm, lambda host, d: (
        ostemplates.download_template(request.user, host, url=d["url"], sha256=d["sha256"] or None,
                                      name=d["name"] or None)), "download {name} to {host}")


@login_required
@require_POST
def template_download_index(request):
    return _host_operation(request, "index_form", TemplateIndexForm, lambda host, d: ostemplates.download_from_index(
        request.user, host, index_url=d["index_url"], distribution=d["distribution"], release=d["release"],
        architecture=d["architecture"], variant=d["variant"], name=d["name"] or None), "download {name} to {host}")


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
    def act(form):
        d = form.cleaned_data
        host, name = d["host"], d["name"]
        dest = save_upload(d["file"], upload_dir() / f"template-{name}{d['suffix']}", f"a template named {name}",
                           MAX_UPLOAD_BYTES)
        written = dest.stat().st_size
        try:
            task = ostemplates.import_uploaded_template(request.user, host, str(dest), name)
        except TaskError:
            dest.unlink(missing_ok=True)
            raise
        return _queued(request, task, f"import {name} ({written} bytes) on {host.name}")
    form = TemplateUploadForm(request.POST, request.FILES, hosts=_hosts(request),
                              refused=getattr(request, "upload_refused", None))
    return _catalogue_form(request, "upload_form", form, act)


@login_required
@require_POST
def template_copy(request, pk):
    _require_manager(request)  # before the lookup: one answer for every template
    template = _template_for(request, pk)

    def act(form):
        target = form.cleaned_data["host"]
        task = ostemplates.copy_template(request.user, template, target)
        return _queued(request, task, f"copy {template.name} from {template.host.name} to {target.name}")
    return _catalogue_form(request, "row_form", TemplateHostForm(request.POST, hosts=_hosts(request)), act,
                           row_pk=template.pk, row_action="copy")


@login_required
@require_POST
def template_delete(request, pk):
    _require_manager(request)  # before the lookup: one answer for every template
    template = _template_for(request, pk)

    def act(form):
        task = ostemplates.delete_template(request.user, template)
        messages.success(request, f"Task #{task.pk} queued: delete {template.name} on {template.host.name}.")
        return redirect("template-list")
    return _catalogue_form(request, "row_form", TemplateDeleteForm(template, request.POST), act,
                           row_pk=template.pk, row_action="delete")


# -- from a container -------------------------------------------------------------------
@login_required
@require_POST
def template_from_container(request, ident):
    from .views import container_form
    get_container_for_user(request.user, ident, manage=True)  # 404 before 403, as every container page
    _require_manager(request)

    def act(ct, form):
        name = form.cleaned_data["name"].strip()
        task = ostemplates.template_from_container(ct, request.user, name)
        return _queued(request, task, f"make template {name} from container {ct.ctid}")
    return container_form(request, ident, "template_form", lambda ct: TemplateNameForm(request.POST), act)
