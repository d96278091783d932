"""Tenant, class and plan pages: thin views over accounts.permissions and tenancy.services."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.decorators import page_for
from accounts.permissions import (oversees_people, placeable_hosts, visible_plans, get_tenant_for_user, is_admin, is_tenant_admin, visible_containers,
                                  visible_tenants, visible_users)
from tasks.services import TaskError

from . import services
from .forms import (AddMemberForm, BulkActionForm, CreateMemberForm, ImportForm, PlanForm, QuotaForm,
                    StudentClassForm, TenantForm)
from .models import StudentClass
from .quotas import quota_rows


def _form_errors(form) -> str:
    return " ".join(f"{'' if f == '__all__' else form.fields[f].label or f}: {' '.join(e)}".lstrip(": ")
                    for f, e in form.errors.items())


# -- tenants ----------------------------------------------------------------------
@login_required
def tenant_list(request):
    tenants = visible_tenants(request.user).annotate(
        n_members=Count("memberships", distinct=True), n_containers=Count("containers", distinct=True))
    rows = [(t, [r for r in quota_rows(t) if r["limit"] is not None]) for t in tenants]
    return render(request, "tenancy/tenant_list.html", {"rows": rows, "can_create": is_admin(request.user)})


@login_required
def tenant_create(request):
    if not is_admin(request.user):
        raise PermissionDenied("Only an administrator can create tenants.")
    form = TenantForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            tenant = services.create_tenant(request.user, slug=data["slug"], name=data["name"],
                                            description=data["description"], **form.quotas())
        except TaskError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Tenant {tenant.slug} created.")
            return redirect("tenant-detail", tenant.slug)
    return render(request, "tenancy/tenant_form.html", {"form": form})


def _tenant_context(request, tenant, **forms):
    user = request.user
    can_manage = is_tenant_admin(user, tenant)
    return {
        "tenant": tenant,
        "quotas": quota_rows(tenant),
        "memberships": tenant.memberships.filter(user__in=visible_users(user)).select_related("user")
                                         .order_by("user__username"),
        "containers": visible_containers(user).filter(tenant=tenant),
        "classes": tenant.classes.select_related("plan", "host").annotate(n_containers=Count("containers")),
        "can_manage": can_manage,
        "can_edit_quotas": is_admin(user),
        "add_form": forms.get("add_form") or AddMemberForm(),
        "create_form": forms.get("create_form") or CreateMemberForm(),
    }


@login_required
def tenant_detail(request, slug):
    tenant = get_tenant_for_user(request.user, slug)
    return render(request, "tenancy/tenant_detail.html", _tenant_context(request, tenant))


@login_required
def tenant_quotas(request, slug):
    tenant = get_tenant_for_user(request.user, slug)
    if not is_admin(request.user):
        raise PermissionDenied("Only an administrator can change quotas.")
    form = QuotaForm.for_tenant(tenant, request.POST or None)
    if request.method == "POST" and form.is_valid():
        from network.services import set_bridge_grants
        try:
            with transaction.atomic():
                services.set_quotas(request.user, tenant, **form.quotas())
                set_bridge_grants(request.user, tenant, form.cleaned_data["bridges"].split())
        except TaskError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Quotas of {tenant.slug} saved.")
            return redirect("tenant-detail", tenant.slug)
    return render(request, "tenancy/tenant_quotas.html", {"tenant": tenant, "form": form,
                                                          "quotas": quota_rows(tenant)})


@login_required
@require_POST
def member_add(request, slug):
    tenant = get_tenant_for_user(request.user, slug, manage=True)
    form = AddMemberForm(request.POST)
    if form.is_valid():
        try:
            membership = services.add_member_by_name(request.user, tenant, form.cleaned_data["username"],
                                                     form.cleaned_data["role"])
        except TaskError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"{membership.user.username} is now {form.cleaned_data['role']} of {tenant.slug}.")
            return redirect("tenant-detail", tenant.slug)
    return render(request, "tenancy/tenant_detail.html", _tenant_context(request, tenant, add_form=form))


@login_required
@require_POST
def member_create(request, slug):
    tenant = get_tenant_for_user(request.user, slug, manage=True)
    form = CreateMemberForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            user, sent = services.create_member(request.user, tenant, username=data["username"], email=data["email"],
                                                first_name=data["first_name"], last_name=data["last_name"],
                                                role=data["role"])
        except TaskError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"User {user.username} created and added to {tenant.slug} as {data['role']}; "
                             + (f"an email with a link to choose a password went to {user.email}." if sent else
                                "the email with their password link could not be sent (see the audit log)."))
            return redirect("tenant-detail", tenant.slug)
    return render(request, "tenancy/tenant_detail.html", _tenant_context(request, tenant, create_form=form))


@login_required
@require_POST
def member_remove(request, slug, user_id):
    tenant = get_tenant_for_user(request.user, slug, manage=True)
    member = tenant.members.filter(pk=user_id).first()
    if member is None:
        raise Http404(f"No member {user_id} in {tenant.slug}")
    try:
        services.remove_member(request.user, tenant, member)
    except TaskError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{member.username} removed from {tenant.slug}.")
    return redirect("tenant-detail", tenant.slug)


# -- classes ----------------------------------------------------------------------
@login_required
def class_create(request, slug):
    tenant = get_tenant_for_user(request.user, slug, manage=True)
    form = StudentClassForm(request.POST or None, hosts=placeable_hosts(request.user),
                            plans=services.plans_for(tenant))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            cls = services.create_class(
                request.user, tenant=tenant, slug=data["slug"], name=data["name"], host=data["host"],
                ostemplate=data["ostemplate"], plan=data["plan"], expires_at=data["expires_at"],
                grace_days=data["grace_days"], backup_before_destroy=data["backup_before_destroy"])
        except TaskError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Class {cls.slug} created. Import the students next.")
            return redirect("class-detail", cls.slug)
    return render(request, "tenancy/class_form.html", {"tenant": tenant, "form": form})


def _get_class(user, slug, manage: bool = False) -> StudentClass:
    """The class `slug` if its tenant is visible to `user` (404 otherwise); 403 if manage and not allowed."""
    cls = StudentClass.objects.select_related("tenant", "host", "plan").filter(slug=slug).first()
    if cls is None:
        raise Http404(f"No class {slug}")
    try:
        get_tenant_for_user(user, cls.tenant.slug, manage=manage)
    except Http404:
        raise Http404(f"No class {slug}") from None
    return cls


def _class_page(request, cls, status=200, **extra):
    context = {
        "cls": cls,
        "containers": visible_containers(request.user).filter(student_class=cls).select_related("owner"),
        "can_manage": is_tenant_admin(request.user, cls.tenant),
        "expired": bool(cls.expires_at and cls.expires_at <= timezone.now()),
        "import_form": extra.pop("import_form", None) or ImportForm(),
        "bulk_form": extra.pop("bulk_form", None) or BulkActionForm(),
        **extra,
    }
    return render(request, "tenancy/class_detail.html", context, status=status)


@login_required
def class_detail(request, slug):
    return _class_page(request, _get_class(request.user, slug))


@login_required
@require_POST
def class_import(request, slug):
    cls = _get_class(request.user, slug, manage=True)
    form = ImportForm(request.POST, request.FILES)
    if not form.is_valid():
        return _class_page(request, cls, import_form=form)
    try:
        created = services.import_students(request.user, cls, form.cleaned_data["csv"],
                                           start=form.cleaned_data["start"])
    except services.ImportRefused as exc:
        form.add_error(None, str(exc))
        return _class_page(request, cls, import_form=form, import_rows=exc.rows)
    except TaskError as exc:
        form.add_error(None, str(exc))
        return _class_page(request, cls, import_form=form)
    messages.success(request, f"{len(created)} student(s) imported into {cls.slug}: their containers are queued "
                              "and welcome emails go out now.")
    return redirect("class-detail", cls.slug)


@login_required
@require_POST
def class_bulk(request, slug):
    cls = _get_class(request.user, slug, manage=True)
    form = BulkActionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Nothing done: " + _form_errors(form))
        return redirect("class-detail", cls.slug)
    data = form.cleaned_data
    try:
        outcomes = services.class_bulk_action(request.user, cls, data["action"], confirm=data["confirm"],
                                              expires_at=data["expires_at"])
    except TaskError as exc:
        messages.error(request, str(exc))
        return redirect("class-detail", cls.slug)
    if not outcomes:
        messages.info(request, f"Class {cls.slug} has no containers: nothing to {data['action']}.")
    for ct, outcome in outcomes:
        level = messages.SUCCESS if outcome.startswith(("task #", "extended")) else messages.ERROR
        messages.add_message(request, level, f"{ct}: {outcome}")
    return redirect("class-detail", cls.slug)


# -- plans ------------------------------------------------------------------------
@login_required
@page_for(oversees_people, "Plans")
def plan_list(request):
    admin = is_admin(request.user)
    tenant_ids = set(visible_tenants(request.user).values_list("pk", flat=True))
    plans = visible_plans(request.user).prefetch_related("tenants")
    rows = [(p, [t for t in p.tenants.all() if admin or t.pk in tenant_ids]) for p in plans]
    return render(request, "tenancy/plan_list.html", {"rows": rows, "can_edit": admin})


def _plan_form(request, plan=None):
    if not is_admin(request.user):
        raise PermissionDenied("Only an administrator can define plans.")
    form = PlanForm(request.POST or None, instance=plan)
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                saved = services.save_plan(request.user, form.save(commit=False))
                form.save_m2m()
        except TaskError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Plan {saved.name} saved.")
            return redirect("plan-list")
    return render(request, "tenancy/plan_form.html", {"form": form, "plan": plan})


@login_required
@page_for(oversees_people, "Plans")
def plan_create(request):
    return _plan_form(request)


@login_required
@page_for(oversees_people, "Plans")
def plan_edit(request, pk):
    plan = visible_plans(request.user).filter(pk=pk).first()
    if plan is None:
        raise Http404(f"No plan {pk}")
    return _plan_form(request, plan)
