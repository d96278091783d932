"""The container page's live parts: the cards that show the container's state, kept true without a reload.

Each part is a template rendered server-side and placed in the page inside an element that carries
its id and a digest of what it shows (`data-live-key`). The page's poller (`#ct-live`, in the page's
header on every tab; static/js/ctlive.js) sends the digests it has; the answer is the poller again
plus, as htmx out-of-band swaps, exactly the parts whose digest differs: a card changes when what it
shows changes, and only then, so a form is not redrawn under the user at every poll (and the script
leaves a part the user is typing in for the next poll).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.middleware.csrf import get_token
from django.template.loader import render_to_string
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe


@dataclass(frozen=True)
class Part:
    element_id: str
    template: str


# Name (the key in the page's `live` context) -> part. The tab a part belongs to is the template's affair
# (detail.html places them); the poll renders only those the page says it has.
PARTS = {
    "status": Part("ct-status", "containers/_status.html"),
    "details": Part("ct-details", "containers/_details.html"),
    "exec_run": Part("ct-exec-run", "containers/_exec_run.html"),
    "tasks": Part("ct-tasks", "containers/_tasks_card.html"),
    "settings": Part("ct-settings", "containers/_settings_card.html"),
    "destroy": Part("ct-destroy", "containers/_destroy_card.html"),
    "migrate": Part("ct-migrate", "containers/_migrate_card.html"),
    "make_template": Part("ct-make-template", "containers/_template_card.html"),
    "console": Part("ct-console", "containers/_console_part.html"),
}
BY_ELEMENT_ID = {part.element_id: name for name, part in PARTS.items()}
# The CSRF token is masked anew for every response: the parts are rendered with this stand-in, digested,
# and given the real token after, so that a digest changes only when what the part shows changes.
CSRF_STAND_IN = "vzpanelcsrfstandin0e6b2c"


@dataclass(frozen=True)
class Rendered:
    name: str
    key: str
    html: str

    @property
    def element_id(self) -> str:
        return PARTS[self.name].element_id

    def wrapped(self, oob: bool = False) -> SafeString:
        return format_html('<div id="{}" data-live-key="{}"{}>{}</div>', self.element_id, self.key,
                           mark_safe(' hx-swap-oob="outerHTML"') if oob else "", mark_safe(self.html))

    def __str__(self) -> str:
        return self.wrapped()

    def __html__(self) -> str:  # placed in a template as {{ live.NAME }}
        return self.wrapped()


def render_parts(request, context: dict, names, key_context: dict | None = None) -> dict[str, Rendered]:
    """Render the parts `names` with the page's `context`: {name: Rendered}. `key_context`: the context
    a poll would render them with, when the page shows something a poll would not (a form in error,
    bound): the digest is of that rendering, so the error stays until the container's state changes."""
    token = get_token(request)
    out = {}
    for name in names:
        html = _render(request, PARTS[name].template, context)
        shown_as_polled = html if key_context is None else _render(request, PARTS[name].template, key_context)
        key = hashlib.blake2s(shown_as_polled.encode(), digest_size=8).hexdigest()
        out[name] = Rendered(name, key, html.replace(CSRF_STAND_IN, token))
    return out


def _render(request, template: str, context: dict) -> str:
    # Without the request, so without the context processors: they would run again for every part (the
    # menu's permission queries among them), and a part needs only the user from them.
    return render_to_string(template, {**context, "csrf_token": CSRF_STAND_IN, "user": request.user,
                                       "request": request})


def parse_seen(value: str) -> dict[str, str]:
    """The poller's `live` parameter, "ct-status:KEY,ct-tasks:KEY", as {part name: key}. Unknown
    ids are left out: the poll renders only parts this module knows."""
    seen = {}
    for item in (value or "").split(",")[:len(PARTS)]:
        element_id, _, key = item.partition(":")
        if element_id in BY_ELEMENT_ID:
            seen[BY_ELEMENT_ID[element_id]] = key
    return seen


def changed_parts(request, context: dict, seen: dict[str, str], allowed) -> SafeString:
    """The out-of-band swaps for the parts the page has (`seen`, among `allowed`) that now differ."""
    names = [name for name in seen if name in allowed]
    rendered = render_parts(request, context, names)
    return mark_safe("".join(str(part.wrapped(oob=True)) for part in rendered.values()
                             if part.key != seen[part.name]))
