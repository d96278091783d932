"""The users page (admins create, enable and disable users) and the audit log."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from panel.forms import form_response
from tenancy import services
from tenancy.forms import UserCreateForm

from .decorators import page_for
from .forms import UserActiveForm
from .models import ApiToken
from .permissions import manages_users, oversees_people, visible_audit_events, visible_tenants, visible_users

AUDIT_PAGE_SIZE = 100


def listed_users(viewer):
    """The user list's queryset: the users `viewer` may see, each with its memberships in the tenants
    `viewer` may see (`shown_memberships`), in a fixed number of queries."""
    from django.db.models import Prefetch

    from tenancy.models import Membership
    shown = Membership.objects.filter(tenant__in=visible_tenants(viewer)).select_related("tenant").order_by("tenant__slug")
    return visible_users(viewer).prefetch_related(
        Prefetch("memberships", queryset=shown, to_attr="shown_memberships")).order_by("username")


def _users_page(request, form=None, status=200, active_form=None):
    from panel.lists import ListView

    from .filters import UserFilterSet
    from .tables import UserTable
    can_manage = manages_users(request.user)
    data = request.GET if request.method == "GET" else {}
    filterset = UserFilterSet(data, listed_users(request.user), request=request)
    listing = ListView(request, UserTable, filterset, noun="user", viewer=request.user, can_manage=can_manage)
    context = listing.context()
    context.update({
        "can_manage": can_manage,
        "form": (form or UserCreateForm()) if can_manage else None,
        "active_form": active_form,
        "tokens": ApiToken.objects.select_related("user") if can_manage else None,
        "tenants": visible_tenants(request.user).values_list("slug", "name"),
    })
    return render(request, "accounts/users.html", context, status=status if listing.valid else 400)


@login_required
@page_for(oversees_people, "Users and the audit log")
def user_list(request):
    return _users_page(request)


@login_required
@page_for(oversees_people, "Users and the audit log")
@require_POST
def user_create(request):
    if not manages_users(request.user):
        raise PermissionDenied("Only an administrator can create users here.")

    def act(form):
        data = form.cleaned_data
        user = services.create_user(request.user, username=data["username"], email=data["email"],
                                    first_name=data["first_name"], last_name=data["last_name"],
                                    role=data["role"], password=data["password"])
        messages.success(request, f"User {user.username} created"
                         + ("." if data["password"] else " without a password: they cannot log in until "
                                                          "one is set."))
        return redirect("user-list")
    return form_response(request, UserCreateForm(request.POST), act,
                         lambda form, status: _users_page(request, form, status))


@login_required
@page_for(oversees_people, "Users and the audit log")
@require_POST
def user_active(request, pk):
    target = visible_users(request.user).filter(pk=pk).first()
    if target is None:
        raise Http404(f"No user {pk}")
    if not manages_users(request.user):
        raise PermissionDenied("Only an administrator can enable or disable users.")

    def act(form):
        active = form.cleaned_data["active"]
        cancelled = services.set_user_active(request.user, target, active)
        if active:
            messages.success(request, f"User {target.username} enabled.")
        else:
            messages.success(request, f"User {target.username} disabled and logged out everywhere; "
                                      f"{cancelled} queued task(s) cancelled.")
        return redirect("user-list")
    return form_response(request, UserActiveForm(request.POST), act,
                         lambda form, status: _users_page(request, status=status, active_form=form))


@login_required
@page_for(oversees_people, "Users and the audit log")
def audit_list(request):
    from panel.lists import ListView, list_response

    from .filters import AuditFilterSet
    from .tables import AuditTable
    filterset = AuditFilterSet(request.GET, visible_audit_events(request.user), request=request)
    listing = ListView(request, AuditTable, filterset, noun="event", default_per_page=AUDIT_PAGE_SIZE)
    return list_response(request, listing, "accounts/audit.html")
