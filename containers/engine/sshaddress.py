"""Parsing a host's SSH address. Plain Python with no host commands: the web process validates
addresses with it, the agent connects with it."""
from __future__ import annotations

import re

_V6 = re.compile(r"^\[([0-9a-fA-F:.]+)\](?::([0-9]+))?\Z")
# A name or IPv4 address; never starting with "-", which ssh would read as an option.
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9.-]*)(?::([0-9]+))?\Z")


class AddressError(ValueError):
    pass


def split_address(address: str) -> tuple[str, int]:
    """"host", "host:port" or "[v6]:port" → (host, port)."""
    m = _V6.match(address or "") or _NAME.match(address or "")
    if not m:
        raise AddressError(f"bad SSH address {address!r}: use host, host:port or [v6]:port")
    port = int(m.group(2) or 22)
    if not 0 < port < 65536:
        raise AddressError(f"bad SSH port in {address!r}")
    return m.group(1), port
