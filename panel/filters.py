"""What every list's filterset (django-filter) shares: a search box, the panel's form look, and
choices looked up only among what the user may see, so a name or id the user may not see answers
exactly like one that does not exist. The same filterset serves the page and the API list; sorting
is the table's (panel.lists), by its column names, on both."""
from __future__ import annotations

import django_filters
from django import forms

SEARCH_MAX = 100


class PanelFilterSet(django_filters.FilterSet):
    """A filterset bound to the request's user. Its form's errors are the list's answer to bad input."""

    q = django_filters.CharFilter(method="search", label="Search",
                                  max_length=SEARCH_MAX)

    def __init__(self, data=None, queryset=None, *, request=None, **kwargs):
        super().__init__(data, queryset, request=request, **kwargs)
        self.user = getattr(request, "user", None)
        # A list page may also hold a form with the same field names (the users page's "role"):
        # the filters' element ids get their own prefix so ids stay unique on the page.
        self.form.auto_id = "filter_%s"
        for field in self.form.fields.values():
            css = "form-select form-select-sm" if isinstance(field.widget, forms.Select) else "form-control form-control-sm"
            field.widget.attrs.setdefault("class", css)

    def search(self, queryset, name, value):
        value = value.strip()
        return queryset.filter(self.search_match(value)) if value else queryset

    def search_match(self, value: str):
        """What `q` matches: a Q over the list's fields (each list says what it searches)."""
        raise NotImplementedError


class NumberFilter(django_filters.Filter):
    """A whole number in ASCII digits within the field's bounds (min_value, max_value): not 1.5, not "٣"."""

    from panel.fields import AsciiIntegerField as field_class
