"""The container list's table (django-tables2): the columns vzlist shows, and what the page needs."""
from __future__ import annotations

import django_tables2 as tables
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from panel.lists import PanelTable
from panel.templatetags.panel_tags import status_badge


def listed_containers(user):
    """The container list's queryset (the page's, the API's, the host and tenant pages' tables): the
    user's containers, with what each row shows (host, lock, tenant, owner, plan, addresses) fetched
    in a fixed number of queries whatever the number of rows."""
    from accounts.permissions import visible_containers
    return visible_containers(user).select_related("plan").prefetch_related(addresses_prefetch())


def address_order() -> tuple:
    """venet's addresses first (OpenVZ's vzlist shows those), then each veth interface's, in the order
    they were added."""
    from django.db.models import Case, IntegerField, Value, When
    return (Case(When(interface="venet0", then=Value(0)), default=Value(1), output_field=IntegerField()),
            "interface", "id")


def addresses_prefetch():
    """Every listed container's addresses in one query, in address_order."""
    from django.db.models import Prefetch

    from network.models import IPAddress
    return Prefetch("addresses", queryset=IPAddress.objects.only("address", "interface", "container_id")
                    .order_by(*address_order()))


def addresses_of(ct) -> list[str]:
    """The container's addresses, venet's and veth's, from the page's one prefetch (no query per row)."""
    return [a.address for a in ct.addresses.all()]


class ContainerTable(PanelTable):
    """One row a container. `manageable` (CTIDs) decides which rows get a checkbox and buttons:
    who may only look (an auditor) sees neither."""

    select = tables.Column(empty_values=(), orderable=False, verbose_name="",
                           attrs={"td": {"class": "select-cell"}, "th": {"class": "select-cell"}})
    ctid = tables.Column(verbose_name="CTID", attrs={"td": {"class": "text-end"}, "th": {"class": "text-end"}})
    nproc = tables.Column(verbose_name="NPROC", attrs={"td": {"class": "text-end"}, "th": {"class": "text-end"}},
                          order_by=("nproc", "ctid"))
    status = tables.Column(verbose_name="STATUS", order_by=("status", "ctid"))
    ip = tables.Column(verbose_name="IP_ADDR", empty_values=(), orderable=False)
    hostname = tables.Column(verbose_name="HOSTNAME")
    name = tables.Column(verbose_name="NAME", order_by=("name", "ctid"))
    host = tables.Column(verbose_name="HOST", accessor="host__name", order_by=("host__name", "ctid"))
    tenant = tables.Column(verbose_name="TENANT", accessor="tenant__slug", order_by=("tenant__slug", "ctid"))
    ostemplate = tables.Column(verbose_name="OSTEMPLATE", order_by=("ostemplate", "ctid"))
    actions = tables.Column(empty_values=(), orderable=False, verbose_name="Actions",
                            attrs={"td": {"class": "text-end text-nowrap"}, "th": {"class": "text-end"}})

    def __init__(self, *args, manageable=frozenset(), **kwargs):
        if not manageable:  # nothing to tick or press: no such columns at all
            kwargs["exclude"] = ("select", "actions")
        super().__init__(*args, **kwargs)
        self.manageable = manageable

    class Meta(PanelTable.Meta):
        attrs = {"class": "table table-sm table-hover align-middle mb-0", "id": "container-table"}
        empty_text = "No containers."

    def row_key(self, record) -> str:
        return str(record.ctid)

    def render_select(self, record):
        if record.ctid not in self.manageable:
            return ""
        return format_html('<input class="form-check-input" type="checkbox" name="ctid" value="{}" form="bulk-form" '
                           'aria-label="Select container {}">', record.ctid, record.ctid)

    def render_ctid(self, record):
        return format_html('<a href="{}">{}</a>', reverse("container-detail", args=[record.ctid]), record.ctid)

    def render_nproc(self, value):
        return "-" if value is None else value

    def render_status(self, record):
        badge = status_badge(record.status)
        if record.lock_task_id:
            return format_html('{} <a class="small" href="{}">{}…</a>', badge,
                               reverse("task-detail", args=[record.lock_task_id]), record.lock_task.get_type_display())
        return badge

    def render_ip(self, record):
        addresses = addresses_of(record)
        if not addresses:
            return "-"
        return format_html_join(" ", '<span class="text-nowrap">{}</span>', ((a,) for a in addresses))

    def render_name(self, value):
        return value or "-"

    def render_tenant(self, value):
        return value or "-"

    def render_actions(self, record):
        if record.lock_task_id or record.ctid not in self.manageable:
            return ""
        # The buttons post through one form outside the table (#row-action-form, with the CSRF token),
        # so a row's HTML, and so its version for live updates, is the same on every poll.
        def button(action, style, label, confirm=None):
            onclick = format_html(' onclick="return confirm(\'{} container {}?\')"', label, record.ctid) if confirm else ""
            return format_html('<button class="btn btn-sm btn-outline-{}" form="row-action-form" formaction="{}"{}>{}'
                               '</button>', style, reverse("container-action", args=[record.ctid, action]),
                               onclick, label)
        if record.status == "stopped":
            return button("start", "success", "Start")
        if record.status == "running":
            return format_html("{} {}", button("restart", "secondary", "Restart", True),
                               button("stop", "warning", "Stop", True))
        return ""
