"""Paging of API lists: `limit` and `offset` are checked, not silently ignored or passed to the
database as numbers it cannot hold. The same check serves other whole-number query parameters."""
from __future__ import annotations

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination


def checked_query_number(request, name: str, low: int, high: int, default: int | None = None) -> int | None:
    """The query parameter `name` as a whole number from `low` to `high` (ASCII digits only), `default`
    when absent; anything else answers 400 with the range."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise ValidationError({name: [f"Give a whole number from {low} to {high}."]})
    return int(raw)


def checked_query_choice(request, name: str, choices) -> str | None:
    """The query parameter `name` if it is one of `choices` (None when absent or empty); else 400."""
    raw = request.query_params.get(name)
    if not raw:
        return None
    if raw not in choices:
        raise ValidationError({name: [f"Give one of: {', '.join(choices)}."]})
    return raw


class CheckedLimitOffsetPagination(LimitOffsetPagination):
    default_limit = 100
    max_limit = 1000
    max_offset = 2 ** 31  # far past any real list; beyond it SQLite's integers are no longer safe

    def get_limit(self, request):
        return checked_query_number(request, self.limit_query_param, 1, self.max_limit, self.default_limit)

    def get_offset(self, request):
        return checked_query_number(request, self.offset_query_param, 0, self.max_offset, 0)

    def get_schema_operation_parameters(self, view):
        """The same bounds in the schema as in the checks, so clients know what is refused."""
        parameters = super().get_schema_operation_parameters(view)
        bounds = {self.limit_query_param: (1, self.max_limit), self.offset_query_param: (0, self.max_offset)}
        for parameter in parameters:
            low, high = bounds[parameter["name"]]
            parameter["schema"].update(minimum=low, maximum=high)
        return parameters


def ctid_query_parameter(description: str = "the container's CTID"):
    """The schema of a `ctid` query filter as checked_query_number(..., 0, CTID_MAX) takes it."""
    from drf_spectacular.utils import OpenApiParameter
    from containers.validators import CTID_MAX
    return OpenApiParameter("ctid", {"type": "integer", "minimum": 0, "maximum": CTID_MAX}, description=description)
