"""The audit log: record(...) from any service; the address comes from the request context."""
from __future__ import annotations

import contextvars
import functools
import inspect
import logging

logger = logging.getLogger(__name__)

# Where the current action comes from: the client address for web and API requests,
# "cli" for management commands, "agent" or "scheduler" for the panel's own work.
current_address: contextvars.ContextVar[str] = contextvars.ContextVar("audit_address", default="")


def describe(obj) -> tuple[str, str, str, object]:
    """(type, id, repr, tenant) of an audited object."""
    if obj is None:
        return "", "", "", None
    kind = obj._meta.model_name
    ident = getattr(obj, "ctid", None) or obj.pk
    tenant = getattr(obj, "tenant", None) if kind != "tenant" else obj
    return kind, str(ident), str(obj)[:200], tenant


def record(user, action: str, obj=None, result: str = "ok", detail: str = "", tenant=None, address=None,
           username: str | None = None):
    from .models import AuditEvent
    kind, ident, text, obj_tenant = describe(obj)
    real_user = user if getattr(user, "pk", None) else None
    try:
        return AuditEvent.objects.create(
            user=real_user, username=username or (user.get_username() if real_user else ""),
            action=action, object_type=kind, object_id=ident, object_repr=text,
            tenant=tenant or obj_tenant, address=address if address is not None else current_address.get(),
            result=result, detail=str(detail)[:4000])
    except Exception:  # the audit log must never break the action it describes
        logger.exception("could not write audit event %s", action)


def audited(action: str, target: str = "ct"):
    """Record a service call: ok (with the task it queued) or refused (with the reason).

    The wrapped function names its acting user `user` and its object `target`.
    """
    def wrap(func):
        sig = inspect.signature(func)

        @functools.wraps(func)
        def inner(*args, **kwargs):
            bound = sig.bind_partial(*args, **kwargs)
            user = bound.arguments.get("user")
            obj = bound.arguments.get(target)
            try:
                result = func(*args, **kwargs)
            except Exception as exc:
                from tasks.services import TaskError
                if isinstance(exc, TaskError):
                    record(user, action, obj, "refused", str(exc))
                raise
            task = result if getattr(result, "_meta", None) and result._meta.model_name == "task" else None
            if task is not None and task.container_id:
                obj = task.container
            record(user, action, obj, "ok", f"task #{task.pk}" if task else "")
            return result
        return inner
    return wrap
