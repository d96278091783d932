"""vzctl's sizes and counts, read strictly: one parser for the CLI, forms and archives' configs.

"512M", "2G", "2.2G", "1048576K", or a bare count of some unit (1 KiB blocks for diskspace,
4 KiB pages for physpages); ASCII digits only (Python's int() also takes "٣" and "²"), no
signs, blanks, exponents, "inf" or "nan". "unlimited" and LONG_MAX mean no limit (None).
"""
from __future__ import annotations

import re

UNLIMITED = 9223372036854775807  # LONG_MAX: vzctl's "unlimited"
MIB = 1024 * 1024
_AMOUNT = re.compile(r"([0-9]{1,19})(?:\.([0-9]{1,6}))?([KMGTP]?)", re.IGNORECASE | re.ASCII)
_FACTORS = {"": None, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
MAX_BYTES = 1 << 62  # past this nothing is a real limit: it is read as unlimited


class BadAmount(ValueError):
    """Not a size or count vzctl would take; the message says what is expected."""


def parse_amount(text: str, unit_bytes: int = 1) -> int | None:
    """Bytes (or a count, with unit_bytes=1 and no suffix), or None for unlimited."""
    if not isinstance(text, str):
        raise BadAmount(f"{text!r} is not a size like 512M or 2G")
    if text.lower() == "unlimited":
        return None
    match = _AMOUNT.fullmatch(text)
    if not match:
        raise BadAmount(f"{text!r} is not a size like 512M, 2.5G or a whole number")
    whole, fraction, suffix = match.group(1), match.group(2), match.group(3).upper()
    if int(whole) >= UNLIMITED:
        return None
    factor = _FACTORS[suffix] or unit_bytes
    if fraction and not suffix:
        raise BadAmount(f"{text!r}: a fraction needs a unit, as in 2.5G")
    value = int(whole) * factor + (int(fraction) * factor // 10 ** len(fraction) if fraction else 0)
    return None if value >= MAX_BYTES else value


def parse_mb(text: str, unit_bytes: int = MIB) -> int | None:
    """parse_amount() in whole MiB (rounded down, at least 1 for anything above zero)."""
    value = parse_amount(text, unit_bytes)
    if value is None:
        return None
    return max(1, value // MIB) if value else 0
