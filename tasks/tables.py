"""The task list's table (django-tables2)."""
from __future__ import annotations

import django_tables2 as tables
from django.template.loader import get_template
from django.urls import reverse
from django.utils.html import format_html

from panel.lists import PanelTable
from panel.templatetags.panel_tags import status_badge


class TaskTable(PanelTable):
    id = tables.Column(verbose_name="#", order_by=("id",))
    type = tables.Column(verbose_name="Task", order_by=("type", "id"))
    ctid = tables.Column(verbose_name="CT", order_by=("ctid", "id"))
    host = tables.Column(verbose_name="Host", accessor="host__name", order_by=("host__name", "id"),
                         default="(removed host)")
    user = tables.Column(verbose_name="User", accessor="user__username", order_by=("user__username", "id"),
                         default="system")
    status = tables.Column(verbose_name="Status", order_by=("status", "id"))
    progress = tables.Column(verbose_name="Progress", orderable=False, empty_values=(),
                             attrs={"th": {"style": "width: 18%"}})
    created_at = tables.Column(verbose_name="Queued", order_by=("created_at", "id"),
                               attrs={"td": {"class": "small text-nowrap"}})

    class Meta(PanelTable.Meta):
        attrs = {"class": "table table-sm table-hover align-middle mb-0", "id": "task-table"}
        empty_text = "No tasks."

    def render_id(self, value):
        return format_html('<a href="{}">{}</a>', reverse("task-detail", args=[value]), value)

    def render_type(self, record):
        return record.get_type_display()

    def render_ctid(self, record):
        if record.container_id:
            return format_html('<a href="{}">{}</a>', reverse("container-detail", args=[record.ctid]), record.ctid)
        return format_html('<a href="{}" title="a container destroyed since: the CTID\'s history">{}</a>',
                           reverse("container-history", args=[record.ctid]), record.ctid)

    def render_status(self, value):
        return status_badge(value)

    def render_progress(self, record):
        return get_template("_progress.html").render({"task": record})

    def render_created_at(self, value):
        from django.utils import timezone
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S")
