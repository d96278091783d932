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
from containers.tables import listed_containers
from hosts.capacity import headroom_for
from panel.forms import ActionForm, form_response

from . import services
from .forms import (AddMemberForm, BulkActionForm, CreateMemberForm, ImportForm, PlanForm, QuotaForm,
                    StudentClassForm, TenantForm)
from .models import StudentClass
from .quotas import quota_rows


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

    def act(form):
        data = form.cleaned_data
        tenant = services.create_tenant(request.user, slug=data["slug"], name=data["name"],
                                        description=data["description"], **form.quotas())
        messages.success(request, f"Tenant {tenant.slug} created.")
        return redirect("tenant-detail", tenant.slug)
    return _form_page(request, TenantForm(request.POST or None), act,
                      lambda form, status=200: render(request, "tenancy/tenant_form.html", {"form": form}, status=status))


def _form_page(request, form, act, page):
    """A page that is its form: GET shows it, POST submits it (panel.forms.form_response)."""
    return form_response(request, form, act, page) if request.method == "POST" else page(form)


def _tenant_context(request, tenant, **forms):
    user = request.user
    can_manage = is_tenant_admin(user, tenant)
    return {
        "tenant": tenant,
        "quotas": quota_rows(tenant),
        "memberships": tenant.memberships.filter(user__in=visible_users(user)).select_related("user")
                                         .order_by("user__username"),
        "containers": listed_containers(user).filter(tenant=tenant),
        "classes": tenant.classes.select_related("plan", "host").annotate(n_containers=Count("containers")),
        "can_manage": can_manage,
        "can_edit_quotas": is_admin(user),
        # Why a create would be refused for want of room: the hosts' free room, for who creates here.
        "headroom": headroom_for(user) if can_manage else None,
        "add_form": forms.get("add_form") or AddMemberForm(),
        "create_form": forms.get("create_form") or CreateMemberForm(),
        "remove_form": forms.get("remove_form"),
    }


@login_required
def tenant_detail(request, slug):
    return tenant_page(request, get_tenant_for_user(request.user, slug))


def tenant_page(request, tenant, status: int = 200, **forms):
    return render(request, "tenancy/tenant_detail.html", _tenant_context(request, tenant, **forms), status=status)


def _tenant_form(request, slug, key: str, make_form, act):
    """A form of a tenant's page, for who manages the tenant: `act(tenant, form)` answers; bad input or a
    refusal shows the page again with this form bound."""
    tenant = get_tenant_for_user(request.user, slug, manage=True)
    return form_response(request, make_form(), lambda form: act(tenant, form),
                         lambda form, status: tenant_page(request, tenant, status, **{key: form}))


@login_required
def tenant_quotas(request, slug):
    tenant = get_tenant_for_user(request.user, slug)
    if not is_admin(request.user):
        raise PermissionDenied("Only an administrator can change quotas.")

    def act(form):
        from network.services import set_bridge_grants
        with transaction.atomic():
            services.set_quotas(request.user, tenant, **form.quotas())
            set_bridge_grants(request.user, tenant, form.cleaned_data["bridges"].split())
        messages.success(request, f"Quotas of {tenant.slug} saved.")
        return redirect("tenant-detail", tenant.slug)

    def page(form, status=200):
        tenant.refresh_from_db()  # a refused change may have touched the instance, not the row
        return render(request, "tenancy/tenant_quotas.html", {"tenant": tenant, "form": form,
                                                              "quotas": quota_rows(tenant)}, status=status)
    return _form_page(request, QuotaForm.for_tenant(tenant, request.POST or None), act, page)


@login_required
@require_POST
def member_add(request, slug):
    def act(tenant, form):
        membership = services.add_member_by_name(request.user, tenant, form.cleaned_data["username"],
                                                 form.cleaned_data["role"])
        messages.success(request, f"{membership.user.username} is now {form.cleaned_data['role']} of {tenant.slug}.")
        return redirect("tenant-detail", tenant.slug)
    return _tenant_form(request, slug, "add_form", lambda: AddMemberForm(request.POST), act)


@login_required
@require_POST
def member_create(request, slug):
    def act(tenant, form):
        data = form.cleaned_data
        user, sent = services.create_member(request.user, tenant, username=data["username"], email=data["email"],
                                            first_name=data["first_name"], last_name=data["last_name"],
                                            role=data["role"])
        messages.success(request, f"User {user.username} created and added to {tenant.slug} as {data['role']}; "
                         + (f"an email with a link to choose a password went to {user.email}." if sent else
                            "the email with their password link could not be sent (see the audit log)."))
        return redirect("tenant-detail", tenant.slug)
    return _tenant_form(request, slug, "create_form", lambda: CreateMemberForm(request.POST), act)


@login_required
@require_POST
def member_remove(request, slug, user_id):
    tenant = get_tenant_for_user(request.user, slug, manage=True)
    member = tenant.members.filter(pk=user_id).first()
    if member is None:
        raise Http404(f"No member {user_id} in {tenant.slug}")

    def act(tenant, form):
        services.remove_member(request.user, tenant, member)
        messages.success(request, f"{member.username} removed from {tenant.slug}.")
        return redirect("tenant-detail", tenant.slug)
    return _tenant_form(request, slug, "remove_form", lambda: ActionForm(request.POST), act)


# -- classes ----------------------------------------------------------------------
@login_required
def class_create(request, slug):
    tenant = get_tenant_for_user(request.user, slug, manage=True)

    def act(form):
        data = form.cleaned_data
        cls = services.create_class(
            request.user, tenant=tenant, slug=data["slug"], name=data["name"], host=data["host"],
            ostemplate=data["ostemplate"], plan=data["plan"], expires_at=data["expires_at"],
            grace_days=data["grace_days"], backup_before_destroy=data["backup_before_destroy"])
        messages.success(request, f"Class {cls.slug} created. Import the students next.")
        return redirect("class-detail", cls.slug)
    form = StudentClassForm(request.POST or None, hosts=placeable_hosts(request.user), plans=services.plans_for(tenant))
    return _form_page(request, form, act, lambda form, status=200: render(
        request, "tenancy/class_form.html", {"tenant": tenant, "form": form}, status=status))


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
        "import_form": extra.pop("import_form", None) or ImportForm(user=request.user),
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
    rows = []

    def act(form):
        try:
            created = services.import_students(request.user, cls, form.cleaned_data["csv"],
                                               start=form.cleaned_data["start"],
                                               override_capacity=form.cleaned_data.get("override_capacity", False))
        except services.ImportRefused as exc:
            rows.extend(exc.rows)  # each row's errors, shown under the form
            raise
        messages.success(request, f"{len(created)} student(s) imported into {cls.slug}: their containers are "
                                  "queued and welcome emails go out now.")
        return redirect("class-detail", cls.slug)
    return form_response(request, ImportForm(request.POST, request.FILES, user=request.user), act, lambda form, status: _class_page(
        request, cls, status, import_form=form, **({"import_rows": rows} if rows else {})))


@login_required
@require_POST
def class_bulk(request, slug):
    cls = _get_class(request.user, slug, manage=True)

    def act(form):
        data = form.cleaned_data
        outcomes = services.class_bulk_action(request.user, cls, data["action"], confirm=data["confirm"],
                                              expires_at=data["expires_at"])
        if not outcomes:
            messages.info(request, f"Class {cls.slug} has no containers: nothing to {data['action']}.")
        for ct, outcome in outcomes:
            level = messages.SUCCESS if outcome.startswith(("task #", "extended")) else messages.ERROR
            messages.add_message(request, level, f"{ct}: {outcome}")
        return redirect("class-detail", cls.slug)
    return form_response(request, BulkActionForm(request.POST), act,
                         lambda form, status: _class_page(request, cls, status, bulk_form=form))


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

    def act(form):
        with transaction.atomic():
            saved = services.save_plan(request.user, form.save(commit=False))
            form.save_m2m()
        messages.success(request, f"Plan {saved.name} saved.")
        return redirect("plan-list")
    return _form_page(request, PlanForm(request.POST or None, instance=plan), act, lambda form, status=200: render(
        request, "tenancy/plan_form.html", {"form": form, "plan": plan}, status=status))


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
