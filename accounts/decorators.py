"""Page-level rules for views: which roles may open a page at all (accounts/permissions.py decides)."""
from __future__ import annotations

from functools import wraps
from typing import Callable

from django.core.exceptions import PermissionDenied


def page_for(check: Callable, what: str):
    """Refuse the view with 403 unless `check(user)`: for pages, not objects (objects answer 404
    through the tenant-scoped lookups, so their existence does not leak)."""
    def decorate(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not check(request.user):
                raise PermissionDenied(f"{what} are not part of your role.")
            return view(request, *args, **kwargs)
        return wrapped
    return decorate


def api_page_for(check: Callable, what: str):
    """The same rule for an API view set: a DRF permission class answering 403."""
    from rest_framework.permissions import IsAuthenticated

    class RolePermission(IsAuthenticated):
        message = f"{what} are not part of your role."

        def has_permission(self, request, view):
            return super().has_permission(request, view) and check(request.user)

    RolePermission.__name__ = f"PageFor_{check.__name__}"
    return RolePermission
