"""Tenants, plans, users and the audit log over REST: read-only, scoped by accounts.permissions."""
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import viewsets

from accounts.decorators import api_page_for
from accounts.permissions import (get_tenant_for_user, oversees_people, visible_audit_events, visible_plans,
                                  visible_tenants, visible_users)
from panel.schema import EMPTY_MEANS_ANY

from .serializers import AuditEventSerializer, PlanSerializer, TenantSerializer, UserSerializer


class VisibleTenantsContextMixin:
    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["visible_tenant_ids"] = set(visible_tenants(self.request.user).values_list("pk", flat=True))
        return context


class TenantViewSet(viewsets.ReadOnlyModelViewSet):
    """Tenants the caller may see, by slug, with usage against each quota."""

    serializer_class = TenantSerializer
    lookup_field = "slug"

    def get_queryset(self):
        return visible_tenants(self.request.user)

    def get_object(self):
        return get_tenant_for_user(self.request.user, self.kwargs["slug"])


class PlanViewSet(VisibleTenantsContextMixin, viewsets.ReadOnlyModelViewSet):
    """Plans offered to the caller's tenants (admins: all plans)."""

    permission_classes = [api_page_for(oversees_people, "Plans")]
    serializer_class = PlanSerializer

    def get_queryset(self):
        return visible_plans(self.request.user).prefetch_related("tenants")


AUDIT_FILTERS = [
    OpenApiParameter("user", str, description="username contains", extensions=EMPTY_MEANS_ANY),
    OpenApiParameter("action", str, description="action starts with", extensions=EMPTY_MEANS_ANY),
    OpenApiParameter("result", str, enum=["ok", "refused", "failed", "locked"], extensions=EMPTY_MEANS_ANY),
    OpenApiParameter("tenant", str, description="tenant slug", extensions=EMPTY_MEANS_ANY),
    OpenApiParameter("from", OpenApiTypes.DATE, description="on or after this date (YYYY-MM-DD)",
                     extensions=EMPTY_MEANS_ANY),
    OpenApiParameter("to", OpenApiTypes.DATE, description="on or before this date (YYYY-MM-DD)",
                     extensions=EMPTY_MEANS_ANY),
]


@extend_schema_view(list=extend_schema(parameters=AUDIT_FILTERS))
class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    """The audit log as far as the caller may see it, newest first."""

    permission_classes = [api_page_for(oversees_people, "The audit log")]
    serializer_class = AuditEventSerializer

    def get_queryset(self):
        qs = visible_audit_events(self.request.user).select_related("tenant")
        if self.action != "list":
            return qs
        # The page's filterset (accounts/filters.py) and sort (its table's columns).
        from accounts.filters import AuditFilterSet
        from accounts.tables import AuditTable
        from panel.lists import filtered_for_api
        return filtered_for_api(self.request, AuditFilterSet, AuditTable, qs)


class UserViewSet(VisibleTenantsContextMixin, viewsets.ReadOnlyModelViewSet):
    """Users the caller may see, with their memberships in tenants the caller may see."""

    permission_classes = [api_page_for(oversees_people, "Users")]
    serializer_class = UserSerializer

    def get_queryset(self):
        qs = visible_users(self.request.user).prefetch_related("memberships__tenant").order_by("username")
        if self.action != "list":
            return qs
        # The page's filterset (accounts/filters.py) and sort (its table's columns).
        from accounts.filters import UserFilterSet
        from accounts.tables import UserTable
        from panel.lists import filtered_for_api
        return filtered_for_api(self.request, UserFilterSet, UserTable, qs)
