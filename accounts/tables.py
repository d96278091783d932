"""The user list's table (django-tables2)."""
from __future__ import annotations

import django_tables2 as tables
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from panel.lists import PanelTable


class UserTable(PanelTable):
    """One row a user, with their memberships in the tenants the viewer sees (prefetched, see
    accounts.admin_views.listed_users); `can_manage` adds the enable/disable button."""

    username = tables.Column(verbose_name="Username")
    name = tables.Column(verbose_name="Name", empty_values=(), order_by=("last_name", "first_name", "username"))
    email = tables.Column(verbose_name="Email", order_by=("email", "username"))
    role = tables.Column(verbose_name="Role", empty_values=(), order_by=("is_superuser", "role", "username"))
    is_active = tables.Column(verbose_name="Active", order_by=("is_active", "username"))
    tenants = tables.Column(verbose_name="Tenants", empty_values=(), orderable=False)
    actions = tables.Column(verbose_name="", empty_values=(), orderable=False, attrs={"td": {"class": "text-end"}})

    def __init__(self, *args, viewer=None, can_manage=False, **kwargs):
        if not can_manage:
            kwargs["exclude"] = ("actions",)
        super().__init__(*args, **kwargs)
        self.viewer, self.can_manage = viewer, can_manage

    class Meta(PanelTable.Meta):
        attrs = {"class": "table table-sm table-hover align-middle mb-0", "id": "user-table"}
        empty_text = "No users."

    def extra_row_attrs(self, record) -> str:
        return format_html(' data-user="{}"', record.username)

    def render_name(self, record):
        return record.get_full_name() or "-"

    def render_role(self, record):
        role = record.global_role
        return format_html('<span class="badge text-bg-primary">{}</span>', role) if role else "-"

    def render_is_active(self, value):
        if value:
            return mark_safe('<span class="badge text-bg-success">active</span>')
        return mark_safe('<span class="badge text-bg-secondary">disabled</span>')

    def render_tenants(self, record):
        memberships = record.shown_memberships
        if not memberships:
            return "-"
        return format_html_join(", ", '<a href="{}">{}</a>{}', (
            (reverse("tenant-detail", args=[m.tenant.slug]), m.tenant.slug,
             mark_safe(' <span class="small text-body-secondary">(admin)</span>') if m.role == "admin" else "")
            for m in memberships))

    def render_actions(self, record):
        if record.pk == getattr(self.viewer, "pk", None):
            return ""
        url = reverse("user-active", args=[record.pk])
        if record.is_active:
            return format_html(
                '<button class="btn btn-sm btn-outline-danger" form="row-action-form" formaction="{}" name="active" '
                'value="0" onclick="return confirm(\'Disable {}? They are logged out everywhere and their queued '
                'tasks are cancelled.\')">Disable</button>', url, record.username)
        return format_html('<button class="btn btn-sm btn-outline-success" form="row-action-form" formaction="{}" '
                           'name="active" value="1">Enable</button>', url)


RESULT_BADGE = {"ok": "success", "refused": "warning", "failed": "danger", "locked": "dark"}


class AuditTable(PanelTable):
    created_at = tables.Column(verbose_name="Time", attrs={"td": {"class": "text-nowrap"}},
                               order_by=("created_at", "id"))
    username = tables.Column(verbose_name="User", order_by=("username", "id"))
    action = tables.Column(verbose_name="Action", order_by=("action", "id"))
    object = tables.Column(verbose_name="Object", empty_values=(), order_by=("object_type", "object_id", "id"))
    tenant = tables.Column(verbose_name="Tenant", accessor="tenant__slug", order_by=("tenant__slug", "id"))
    address = tables.Column(verbose_name="Address", order_by=("address", "id"))
    result = tables.Column(verbose_name="Result", order_by=("result", "id"))
    detail = tables.Column(verbose_name="Detail", orderable=False, attrs={"td": {"class": "text-break"}})

    class Meta(PanelTable.Meta):
        attrs = {"class": "table table-sm align-middle small mb-0", "id": "audit-table"}
        empty_text = "No events."

    def extra_row_attrs(self, record) -> str:
        return format_html(' data-action="{}" data-result="{}"', record.action, record.result)

    def render_created_at(self, value):
        from django.utils import timezone
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S")

    def render_action(self, value):
        return format_html("<code>{}</code>", value)

    def render_object(self, record):
        if not record.object_type:
            return "-"
        return format_html('{} {} <span class="text-body-secondary">{}</span>', record.object_type, record.object_id,
                           record.object_repr)

    def render_result(self, value):
        return format_html('<span class="badge text-bg-{}">{}</span>', RESULT_BADGE.get(value, "secondary"), value)

    def render_detail(self, value):
        return value
