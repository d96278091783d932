"""Paging of API lists: `limit` and `offset` are checked, not silently ignored or passed to the
database as numbers it cannot hold."""
from __future__ import annotations

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination


class CheckedLimitOffsetPagination(LimitOffsetPagination):
    default_limit = 100
    max_limit = 1000
    max_offset = 2 ** 31  # far past any real list; beyond it SQLite's integers are no longer safe

    def _checked(self, request, name: str, low: int, high: int, default: int | None) -> int | None:
        raw = request.query_params.get(name)
        if raw is None:
            return default
        if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
            raise ValidationError({name: [f"Give a whole number from {low} to {high}."]})
        return int(raw)

    def get_limit(self, request):
        return self._checked(request, self.limit_query_param, 1, self.max_limit, self.default_limit)

    def get_offset(self, request):
        return self._checked(request, self.offset_query_param, 0, self.max_offset, 0)
