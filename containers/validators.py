"""Validation of what users type: CTIDs, hostnames, name aliases, commands."""
from __future__ import annotations

import re

from django.core.exceptions import ValidationError

CTID_MIN = 101  # 0..100 are reserved, as in OpenVZ
CTID_MAX = 999_999_999

# ASCII only, spelled out: with re.IGNORECASE, [a-z] also matches the Kelvin sign and the long s.
_LABEL_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_DIGITS_RE = re.compile(r"[0-9]{1,10}")
UTS_NAME_MAX = 64  # the kernel's limit for a hostname (__NEW_UTS_LEN); LXC refuses a longer lxc.uts.name


def is_ascii_number(text) -> bool:
    """True for "101", False for "²", "٣", " 7" or "7\\n" (str.isdigit() says True to the first two)."""
    return isinstance(text, str) and bool(_DIGITS_RE.fullmatch(text))


def validate_ctid(value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or (
            isinstance(value, str) and not is_ascii_number(value)):
        # int() would take "٣" (Arabic-Indic three) or " 7\n": a CTID is ASCII digits and nothing else.
        raise ValidationError("A CTID is a whole number, 101 or above.", code="invalid")
    ctid = int(value)
    if 0 <= ctid <= 100:
        raise ValidationError(f"CTID {ctid} is reserved: CTIDs 0-100 belong to the host. Use 101 or above.",
                              code="reserved")
    if ctid < 0 or ctid > CTID_MAX:
        raise ValidationError(f"CTID must be between {CTID_MIN} and {CTID_MAX}.", code="range")


def validate_hostname(value: str) -> None:
    """RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens."""
    if not value:
        raise ValidationError("A hostname is required.", code="required")
    if len(value) > UTS_NAME_MAX:
        raise ValidationError(f"A hostname is at most {UTS_NAME_MAX} characters (the kernel's limit).",
                              code="length")
    for label in value.rstrip(".").split("."):
        if not _LABEL_RE.fullmatch(label):
            raise ValidationError(
                f"{value!r} is not a valid hostname: each dot-separated part must be 1-63 letters, "
                "digits or hyphens, and may not start or end with a hyphen.", code="invalid")


def validate_name_alias(value: str) -> None:
    """A name usable wherever a CTID is: so it may not look like a number."""
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise ValidationError(
            "A name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit.", code="invalid")
    if value.isdigit():
        raise ValidationError("A name may not be all digits: it would be mistaken for a CTID.", code="numeric")


def validate_command(argv) -> None:
    if not isinstance(argv, (list, tuple)) or not argv:
        raise ValidationError("Give the command to run, as a non-empty list of words.", code="required")
    for word in argv:
        if not isinstance(word, str):
            raise ValidationError("Every word of the command must be a string.", code="invalid")
        if "\x00" in word:
            raise ValidationError("The command may not contain NUL characters.", code="invalid")
    if sum(len(w) for w in argv) > 8192:
        raise ValidationError("The command is longer than 8192 characters.", code="length")
