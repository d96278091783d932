"""The user list's filters, for the page and the API alike."""
from __future__ import annotations

import django_filters
from django.db.models import Q

from panel.filters import PanelFilterSet, user_scoped

from .models import GlobalRole, User
from .permissions import visible_tenants


class UserFilterSet(PanelFilterSet):
    """Search (username, name, email), global role, tenant (among those the viewer sees), active."""

    role = django_filters.ChoiceFilter(choices=[("none", "no global role")] + [c for c in GlobalRole.choices if c[0]],
                                       empty_label="any role", method="filter_role")
    tenant = django_filters.ModelChoiceFilter(queryset=user_scoped(visible_tenants), to_field_name="slug",
                                              field_name="memberships__tenant", empty_label="any tenant",
                                              distinct=True)
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

    def filter_active(self, queryset, name, value):
        return queryset.filter(is_active=value == "yes")
