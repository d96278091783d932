"""The task list's filters, for the page and the API alike."""
from __future__ import annotations

import django_filters
from django.db.models import Q

from containers.validators import CTID_MAX
from panel.filters import NumberFilter, PanelFilterSet
from panel.validators import is_ascii_number

from .choices import TaskStatus, TaskType
from .models import Task


class TaskFilterSet(PanelFilterSet):
    """Search (a task number, a CTID, a user's name), status, type, CTID: all within the user's tasks."""

    status = django_filters.ChoiceFilter(choices=TaskStatus.choices, empty_label="any status")
    type = django_filters.ChoiceFilter(choices=TaskType.choices, empty_label="any task")
    ctid = NumberFilter(label="CTID", min_value=0, max_value=CTID_MAX)

    class Meta:
        model = Task
        fields = ["q", "status", "type", "ctid"]

    def search_match(self, value):
        match = Q(user__username__icontains=value) | Q(error__icontains=value)
        if is_ascii_number(value):
            match |= Q(pk=int(value)) | Q(ctid=int(value))
        return match
