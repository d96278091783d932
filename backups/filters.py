"""The backup list's filters and sort, for the page and the API alike.

The backups table stays a template (backups/_table.html) rather than a django-tables2 table: each
row carries its own forms (notes, protect, verify, delete) whose errors show in that row, which a
table's cells would have to rebuild; its sort is django-filter's OrderingFilter instead."""
from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Q

from containers.validators import CTID_MAX
from panel.filters import NumberFilter, PanelFilterSet
from panel.validators import is_ascii_number

from .models import Backup


class StableOrderingFilter(django_filters.OrderingFilter):
    """`sort=field` or `sort=-field`, the primary key last so that pages never overlap or skip a row."""

    def filter(self, qs, value):
        if value in django_filters.constants.EMPTY_VALUES:
            return qs
        ordering = [self.get_ordering_value(param) for param in value]
        return qs.order_by(*ordering, "-pk" if ordering[0].startswith("-") else "pk")


def storage_choice(value: str) -> str:
    if value != "dump" and not is_ascii_number(value):
        raise forms.ValidationError("Give a storage's number, or dump for the dump directory.")
    return value


class BackupFilterSet(PanelFilterSet):
    """Search (file name, notes, CTID), CTID, host, storage (a number, or dump), tenant; sorted by
    CTID, host, tenant, size, time or verification (newest first when not asked)."""

    ctid = NumberFilter(label="CTID", min_value=0, max_value=CTID_MAX,
                        error_messages={"invalid": "That is not a number (a CTID is ASCII digits)."})
    host = django_filters.CharFilter(field_name="host__name", max_length=64)
    storage = django_filters.CharFilter(method="filter_storage", max_length=10, validators=[storage_choice])
    tenant = django_filters.CharFilter(field_name="tenant__slug", max_length=40)
    sort = StableOrderingFilter(fields=(("ctid", "ctid"), ("host__name", "host"), ("tenant__slug", "tenant"),
                                        ("size", "size"), ("created_at", "created"), ("verified_at", "verified")))

    class Meta:
        model = Backup
        fields = ["q", "ctid", "host", "storage", "tenant", "sort"]

    def search_match(self, value):
        match = Q(filename__icontains=value) | Q(notes__icontains=value)
        if is_ascii_number(value):
            match |= Q(ctid=int(value))
        return match

    def filter_storage(self, queryset, name, value):
        return queryset.filter(storage__isnull=True) if value == "dump" else queryset.filter(storage_id=int(value))
