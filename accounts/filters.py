"""The user list's filters, for the page and the API alike."""
from __future__ import annotations

import django_filters
from django.db.models import Q

from panel.filters import PanelFilterSet

from .models import AuditEvent, GlobalRole, User
from .permissions import visible_tenants


class UserFilterSet(PanelFilterSet):
    """Search (username, name, email), global role, tenant (among those the viewer sees), active."""

    role = django_filters.ChoiceFilter(choices=[("none", "no global role")] + [c for c in GlobalRole.choices if c[0]],
                                       empty_label="any role", method="filter_role")
    tenant = django_filters.CharFilter(method="filter_tenant", max_length=40)
    active = django_filters.ChoiceFilter(choices=[("yes", "active"), ("no", "disabled")], empty_label="active or not",
                                         method="filter_active")

    class Meta:
        model = User
        fields = ["q", "role", "tenant", "active"]

    def search_match(self, value):
        return (Q(username__icontains=value) | Q(email__icontains=value) | Q(first_name__icontains=value)
                | Q(last_name__icontains=value))

    def filter_role(self, queryset, name, value):
        # A superuser is an administrator whatever their role field says (User.global_role).
        if value == "none":
            return queryset.filter(role="", is_superuser=False)
        if value == GlobalRole.ADMIN:
            return queryset.filter(Q(role=value) | Q(is_superuser=True))
        return queryset.filter(role=value, is_superuser=False)

    def filter_tenant(self, queryset, name, value):
        # Memberships in tenants the viewer sees only, in one join: a user who is also in another
        # tenant is never found by that tenant's slug.
        return queryset.filter(memberships__tenant__slug=value,
                               memberships__tenant__in=visible_tenants(self.user)).distinct()

    def filter_active(self, queryset, name, value):
        return queryset.filter(is_active=value == "yes")


AUDIT_RESULTS = ["ok", "refused", "failed", "locked"]


class AuditFilterSet(PanelFilterSet):
    """The audit log's filters, the page's and the API's: ?q= (user, action, object, address, detail),
    ?user= (username contains), ?action= (starts with), ?result=, ?tenant= (slug), ?from= and ?to=
    (dates; ?date_from= and ?date_to= too, the page's names). Only narrows the events the user may see."""

    user = django_filters.CharFilter(field_name="username", lookup_expr="icontains", max_length=150,
                                     help_text="Username contains.")
    action = django_filters.CharFilter(lookup_expr="startswith", max_length=64,
                                       help_text="Action starts with, e.g. container.")
    result = django_filters.ChoiceFilter(choices=[(r, r) for r in AUDIT_RESULTS], empty_label="any",
                                         error_messages={"invalid_choice": "The result is one of: "
                                                         + ", ".join(AUDIT_RESULTS) + "."})
    tenant = django_filters.CharFilter(field_name="tenant__slug", max_length=40, help_text="Tenant slug.")
    date_from = django_filters.DateFilter(field_name="created_at", lookup_expr="date__gte", label="From",
                                          error_messages={"invalid": "Enter the from date as YYYY-MM-DD."})
    date_to = django_filters.DateFilter(field_name="created_at", lookup_expr="date__lte", label="To",
                                        error_messages={"invalid": "Enter the to date as YYYY-MM-DD."})

    class Meta:
        model = AuditEvent
        fields = ["q", "user", "action", "result", "tenant", "date_from", "date_to"]

    def __init__(self, data=None, *args, **kwargs):
        if data is not None:
            # ?from= and ?to= on the API and in links; date_from/date_to are the form's names.
            data = data.copy()
            for short in ("from", "to"):
                if data.get(short) is not None:
                    data[f"date_{short}"] = data[short]
        super().__init__(data, *args, **kwargs)
        for name in ("date_from", "date_to"):
            self.form.fields[name].widget.input_type = "date"

    def search_match(self, value):
        return (Q(username__icontains=value) | Q(action__icontains=value) | Q(object_repr__icontains=value)
                | Q(object_id=value) | Q(address__startswith=value) | Q(detail__icontains=value))
