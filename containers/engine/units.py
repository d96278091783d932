"""vzctl's sizes and counts, read strictly: one parser for the CLI, forms and archives' configs.

What vzctl 4 accepted, with its meaning (vzctl(8), "Resource limits"): a bare number counts the
parameter's own unit (4 KiB pages for the page-based beancounters, 1 KiB blocks for diskspace,
bytes for kmemsize and the buffers); a suffix names the unit instead: K, M, G, T (KiB to TiB),
P (memory pages, 4 KiB here) or B (bytes), either case; a fraction with a suffix ("2.2G",
"1.5M") is that many bytes, rounded down (vzctl then rounded down to whole units); "unlimited" and LONG_MAX mean no limit
(None). Counts (numproc, diskinodes: the parameters whose names start with num, and inodes)
take no suffix. Stricter than vzctl where vzctl read past garbage: ASCII digits only (Python's
int() also takes "٣" and "²"), no signs, blanks, exponents, "inf" or "nan", and no fraction
without a suffix (vzctl silently dropped it).
"""
from __future__ import annotations

import re

UNLIMITED = 9223372036854775807  # LONG_MAX: vzctl's "unlimited"
MIB = 1024 * 1024
PAGE = 4096  # vzctl's P suffix and the unit of physpages, swappages and the other *pages
BLOCK = 1024  # the unit of diskspace
_AMOUNT = re.compile(r"([0-9]{1,19})(?:\.([0-9]{1,6}))?([KMGTPB]?)", re.IGNORECASE | re.ASCII)
_FACTORS = {"": None, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": PAGE}
_COUNT = re.compile(r"[0-9]{1,19}", re.ASCII)
MAX_BYTES = 1 << 62  # past this nothing is a real limit: it is read as unlimited

# The smallest disk quota. A quota is an XFS filesystem of the container's own, in an image on a loop
# device (engine/diskimage.py), and XFS sets the floor: mkfs.xfs (xfsprogs 5.19 and later; Debian 12
# has 6.1) refuses a filesystem under 300 MiB ("Filesystem must be larger than 300MB") and gives each
# one a log of at least 64 MiB, which it writes out in full. The panel adds the log to the image, so
# a container gets the space it was promised; bench/bench_density.py measures what each one costs.
MIN_DISK_MB = 300
XFS_LOG_MB = 64
DISK_MIN_REASON = (f"a disk quota is an XFS filesystem of the container's own, and XFS makes none smaller than "
                   f"{MIN_DISK_MB} MiB. Each one costs, before any file is written, about {XFS_LOG_MB + 2} MiB of "
                   f"real disk (XFS writes out its {XFS_LOG_MB} MiB log), a loop device, a mount and about 1 MiB of "
                   "kernel memory")


def disk_too_small(what: str = "disk_mb") -> str:
    """Why a disk quota under the minimum is refused, with what the smallest one really costs."""
    return f"{what} must be at least {MIN_DISK_MB} MiB: {DISK_MIN_REASON}."


class BadAmount(ValueError):
    """Not a size or count vzctl would take; the message says what is expected."""


def parse_amount(text: str, unit_bytes: int = 1) -> int | None:
    """Bytes (a bare number counts `unit_bytes` units), or None for unlimited."""
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


def parse_count(text: str) -> int | None:
    """A count (processes, inodes): ASCII digits, no unit; None for unlimited."""
    if not isinstance(text, str) or not (text.lower() == "unlimited" or _COUNT.fullmatch(text)):
        raise BadAmount(f"{text!r} is not a whole number (counts take no unit)")
    if text.lower() == "unlimited" or int(text) >= UNLIMITED:
        return None
    return int(text)


def parse_mb(text: str, unit_bytes: int = MIB) -> int | None:
    """parse_amount() in whole MiB (rounded down, at least 1 for anything above zero)."""
    value = parse_amount(text, unit_bytes)
    if value is None:
        return None
    return max(1, value // MIB) if value else 0
