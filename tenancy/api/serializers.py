from rest_framework import serializers

from accounts.models import AuditEvent, User
from tenancy.models import QUOTA_FIELDS, Plan, Tenant
from tenancy.quotas import quota_rows


def _visible_tenant_ids(serializer) -> set:
    """The caller's visible tenants, computed once per response (the view puts them in the context)."""
    return serializer.context.get("visible_tenant_ids", set())


class TenantSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api-tenant-detail", lookup_field="slug")
    quotas = serializers.SerializerMethodField()

    class Meta:
        model = Tenant
        fields = ["slug", "url", "name", "description", *QUOTA_FIELDS, "quotas", "created_at"]
        read_only_fields = fields

    def get_quotas(self, tenant) -> list[dict]:
        return quota_rows(tenant)


class PlanSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api-plan-detail")
    tenants = serializers.SerializerMethodField(help_text="Slugs of the (visible) tenants it is offered to; "
                                                          "empty: offered to every tenant.")

    class Meta:
        model = Plan
        fields = ["id", "url", "name", "description", "ram_mb", "swap_mb", "cpus", "disk_mb", "tenants"]
        read_only_fields = fields

    def get_tenants(self, plan) -> list[str]:
        ids = _visible_tenant_ids(self)
        return [t.slug for t in plan.tenants.all() if t.pk in ids]


class AuditEventSerializer(serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)

    class Meta:
        model = AuditEvent
        fields = ["id", "created_at", "username", "action", "object_type", "object_id", "object_repr", "tenant",
                  "address", "result", "detail"]
        read_only_fields = fields


class UserSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api-user-detail")
    role = serializers.CharField(source="global_role", read_only=True)
    email = serializers.CharField(read_only=True, help_text="empty when none was given")
    tenants = serializers.SerializerMethodField(help_text="Memberships in tenants the caller may see.")

    class Meta:
        model = User
        fields = ["id", "url", "username", "email", "first_name", "last_name", "role", "is_active", "tenants",
                  "last_login", "date_joined"]
        read_only_fields = fields

    def get_tenants(self, user) -> list[dict]:
        ids = _visible_tenant_ids(self)
        return [{"tenant": m.tenant.slug, "role": m.role} for m in user.memberships.all() if m.tenant_id in ids]
