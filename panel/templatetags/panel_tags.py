"""Small display helpers shared by all templates."""
from django import template
from django.utils.html import format_html

register = template.Library()

BADGE = {
    "running": "success", "ok": "success", "stopped": "secondary", "queued": "info",
    "creating": "info", "failed": "danger", "missing": "danger", "cancelled": "warning",
    "frozen": "primary", "unknown": "warning",
}


@register.simple_tag
def status_badge(status):
    cls = BADGE.get(str(status), "light")
    return format_html('<span class="badge text-bg-{} status-badge" data-status="{}">{}</span>', cls, status, status)


@register.filter
def bytes_h(value):
    """1536 -> '1.5 KiB'."""
    try:
        size = float(value)
    except (TypeError, ValueError):
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024


@register.filter
def percent(used, total):
    try:
        return round(100 * float(used) / float(total)) if float(total) else 0
    except (TypeError, ValueError):
        return 0


@register.filter
def duration_h(seconds):
    try:
        seconds = int(seconds)
    except (TypeError, ValueError):
        return "-"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    return f"{days}d {hours}h {minutes}m" if days else f"{hours}h {minutes}m"


@register.filter
def invalid(field) -> str:
    """" is-invalid" for a bound field in error: the class Bootstrap marks a hand-drawn input with."""
    return " is-invalid" if field is not None and getattr(field, "errors", None) else ""


@register.filter
def kept(field) -> str:
    """A hand-drawn input's value: what the user typed (a bound form), else the form's initial value."""
    value = field.value() if field is not None and hasattr(field, "value") else None
    return "" if value is None else value


@register.filter
def feedback(field) -> str:
    """A hand-drawn input's errors, each as Bootstrap's invalid-feedback beside it."""
    from django.utils.html import format_html_join
    errors = getattr(field, "errors", None) or []
    return format_html_join("", '<div class="invalid-feedback">{}</div>', ((e,) for e in errors))
