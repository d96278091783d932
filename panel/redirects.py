"""Where a `next` parameter may send the browser: only to a path on this site."""
from __future__ import annotations

from django.utils.http import url_has_allowed_host_and_scheme


def local_path(value: str | None) -> str | None:
    """`value` if it is a plain local path ("/containers/101/"), else None.

    Browsers drop tabs and newlines inside URLs and read a backslash as a slash, so
    "/\\t/evil.example/" would leave the site: any whitespace, control character or
    backslash makes the value unusable, as does a scheme or a host."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return None
    if "\\" in value or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        return None
    return value if url_has_allowed_host_and_scheme(value, allowed_hosts=set()) else None
