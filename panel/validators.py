"""The one set of validators for what people, the CLI and archives hand the panel.

Models, forms, serializers, the CLI parsers and the archive import all call these, so an input
is judged once and alike wherever it comes in. It lives in `panel/` because it spans the apps:
containers (CTIDs, hostnames, names, limits), network (addresses, nameservers, search domains),
tenancy, backups and hosts (names and paths).

Every pattern spells ASCII out and matches the whole value (`fullmatch`/`\\Z`; `$` lets a trailing
newline through, and `[a-z]` with IGNORECASE lets the Kelvin sign, the long s and the dotless i
through); numbers are ASCII digits only (int() and str.isdigit() also take "٣", "²" and " 7\\n").
Each refusal is a ValidationError with one line saying what is expected.
"""
from __future__ import annotations

import argparse
import ipaddress
import re

from django.core.exceptions import ValidationError

from containers.engine.units import MIB, BadAmount, parse_mb

CTID_MIN = 101  # 0..100 are reserved, as in OpenVZ
CTID_MAX = 999_999_999
UTS_NAME_MAX = 64  # the kernel's limit for a hostname (__NEW_UTS_LEN); LXC refuses a longer lxc.uts.name
DOMAIN_MAX = 253
SEARCH_DOMAINS_MAX = 6  # glibc reads at most 6 search domains (MAXDNSRCH), 256 characters in all
SEARCH_CHARS_MAX = 256
NAMESERVERS_MAX = 3  # glibc uses the first 3 (MAXNS), as vzctl allows
PATH_MAX = 255
NUMBER_DIGITS_MAX = 18  # below 2**63: SQLite and PostgreSQL bigint take every number that passes

_LABEL_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_ALIAS_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_CTID_DIGITS_RE = re.compile(r"[0-9]{1,10}")
_NUMBER_RE = re.compile(r"[0-9]{1,%d}" % NUMBER_DIGITS_MAX)
_SYSTEM_USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_PATH_RE = re.compile(r"/[A-Za-z0-9._+@:,=~/-]*")
_SLUG_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?")
_RESERVED_SLUGS = ("new", "edit", "api", "admin")
_HOST_NAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")

# Names of containers (aliases), plans, IP pools and backup storages: what may appear in a URL,
# a file name or a log line as it is.
_NAME_MESSAGE = "A name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit."


def is_ascii_number(text) -> bool:
    """True for "101", False for "²", "٣", " 7" or "7\\n" (str.isdigit() says True to the first two).
    At most 10 digits: every CTID, and nothing an SQL integer cannot hold."""
    return isinstance(text, str) and bool(_CTID_DIGITS_RE.fullmatch(text))


def whole_number(value, what: str, low: int | None = None, high: int | None = None) -> int:
    """`value` as an int: an int (not a bool, not a float) or a string of ASCII digits, within
    [low, high]. What forms, serializers, the CLI and archives' configurations all accept."""
    if isinstance(value, str) and _NUMBER_RE.fullmatch(value):
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        shown = value if not isinstance(value, str) else value[:40]
        raise ValidationError(f"{what} is a whole number written in ASCII digits, not {shown!r}.", code="invalid")
    if (low is not None and number < low) or (high is not None and number > high):
        bounds = (f"between {low} and {high}" if low is not None and high is not None
                  else f"at least {low}" if low is not None else f"at most {high}")
        raise ValidationError(f"{what} must be {bounds}.", code="range")
    return number


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


def parse_ctid(value) -> int:
    """A CTID as the CLI, a URL or a form gives it, or ValidationError."""
    validate_ctid(value)
    return int(value)


def _check_labels(value: str, what: str) -> None:
    for label in (value[:-1] if value.endswith(".") else value).split("."):  # one trailing dot: the root
        if not _LABEL_RE.fullmatch(label):
            raise ValidationError(
                f"{value[:80]!r} is not a valid {what}: each dot-separated part must be 1-63 ASCII letters, "
                "digits or hyphens, and may not start or end with a hyphen.", code="invalid")


def validate_hostname(value) -> None:
    """RFC 1123 host name within the kernel's 64 characters (the container's UTS name)."""
    if not isinstance(value, str) or not value:
        raise ValidationError("A hostname is required.", code="required")
    if len(value) > UTS_NAME_MAX:
        raise ValidationError(f"A hostname is at most {UTS_NAME_MAX} characters (the kernel's limit).",
                              code="length")
    _check_labels(value, "hostname")


def validate_domain(value, what: str = "domain name") -> None:
    """A DNS name of ASCII LDH labels, at most 253 characters."""
    if not isinstance(value, str) or not value:
        raise ValidationError(f"A {what} is required.", code="required")
    if len(value) > DOMAIN_MAX:
        raise ValidationError(f"A {what} is at most {DOMAIN_MAX} characters.", code="length")
    _check_labels(value, what)


def clean_searchdomain(value) -> str:
    """vzctl --searchdomain: domains separated by spaces (no other blanks: a newline would start a
    line of its own in the container's resolv.conf), as many as glibc reads. "" clears them."""
    if not isinstance(value, str) or len(value) > SEARCH_CHARS_MAX or any(c.isspace() and c != " " for c in value):
        raise ValidationError(f"Search domains are separated by spaces, {SEARCH_CHARS_MAX} characters in all.",
                              code="invalid")
    domains = value.split(" ")
    domains = [d for d in domains if d]
    if len(domains) > SEARCH_DOMAINS_MAX:
        raise ValidationError(f"At most {SEARCH_DOMAINS_MAX} search domains.", code="length")
    for domain in domains:
        validate_domain(domain, "search domain")
    return " ".join(domains)


def validate_name_alias(value) -> None:
    """A container's name, usable wherever a CTID is: so it may not look like a number."""
    if not isinstance(value, str) or not _ALIAS_RE.fullmatch(value):
        raise ValidationError(_NAME_MESSAGE, code="invalid")
    if value.isascii() and value.isdigit():
        raise ValidationError("A name may not be all digits: it would be mistaken for a CTID.", code="numeric")


def validate_name(value) -> None:
    """The name of a plan, an IP pool or a backup storage."""
    if not isinstance(value, str) or not _ALIAS_RE.fullmatch(value):
        raise ValidationError(_NAME_MESSAGE, code="invalid")


def validate_title(value, what: str, max_length: int) -> None:
    """Free text shown as one line (a backup job's or a tenant's name, which go into mail subjects and
    page titles): printable, no line breaks or control characters, no blanks around it."""
    if not isinstance(value, str) or not value:
        raise ValidationError(f"Give the {what}.", code="required")
    if len(value) > max_length:
        raise ValidationError(f"The {what} is at most {max_length} characters.", code="length")
    if not value.isprintable() or value != value.strip():
        raise ValidationError(f"The {what} is one line of printable text, without blanks around it.",
                              code="invalid")


def validate_display_name(value) -> None:
    """A tenant's or a class's name as people read it."""
    validate_title(value, "name", 100)


def validate_slug(value) -> None:
    """A tenant's or class's slug: part of URLs and container names."""
    if not isinstance(value, str) or not _SLUG_RE.fullmatch(value) or value in _RESERVED_SLUGS:
        raise ValidationError("Use 1-40 lower-case letters, digits and inner hyphens (not 'new', 'edit', 'api' "
                              "or 'admin').", code="invalid")


def validate_host_name(value) -> None:
    """A host's name: one DNS label in lower case (it names the host's Redis queue and user too)."""
    if not isinstance(value, str) or not _HOST_NAME_RE.fullmatch(value):
        raise ValidationError("A host name is 1-63 lower-case letters, digits and hyphens, not starting or "
                              "ending with a hyphen.", code="invalid")


_PANEL_USERNAME_RE = re.compile(r"[a-z][a-z0-9._-]{1,31}")


def validate_panel_username(value) -> None:
    """A user's login name in the panel (and in mail, logs and the audit trail)."""
    if not isinstance(value, str) or not _PANEL_USERNAME_RE.fullmatch(value):
        raise ValidationError(f"{str(value)[:40]!r} is not a valid username: use 2-32 lower-case letters, digits, "
                              "'.', '_' or '-', starting with a letter.", code="invalid")


def validate_system_user(value) -> None:
    """A user name inside a container (useradd's rule), for --userpasswd and SSH keys."""
    if not isinstance(value, str) or not _SYSTEM_USER_RE.fullmatch(value):
        raise ValidationError(f"{str(value)[:40]!r} is not a valid user name (lower-case letters, digits, '_' "
                              "and '-', at most 32).", code="invalid")


def parse_ip(value, what: str = "an IP address"):
    """An IP address written plainly: ASCII, no blanks inside, no IPv6 scope id ('%eth0' would be
    dropped, or with a newline in it written into the container's files). Blanks around it go."""
    text = value.strip() if isinstance(value, str) else ""
    if not text.isascii() or "%" in text or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValidationError(f"{text[:60]!r} is not {what} (write it plainly, without a %scope).", code="invalid")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ValidationError(f"{text[:60]!r} is not {what}.", code="invalid") from None


def parse_network(value, what: str = "a network"):
    """ADDRESS/PREFIX, strictly: ASCII, no scope id, host bits zero."""
    text = value.strip() if isinstance(value, str) else ""
    if not text.isascii() or "%" in text or any(c.isspace() or ord(c) < 32 for c in text):
        raise ValidationError(f"Not {what}: {text[:60]!r} (write it plainly, without a %scope).", code="invalid")
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise ValidationError(f"Not {what}: {exc}.", code="invalid") from None


def clean_nameservers(values) -> list[str]:
    """vzctl --nameserver, up to 3, each an address in canonical form."""
    values = list(values or [])
    if len(values) > NAMESERVERS_MAX:
        raise ValidationError(f"At most {NAMESERVERS_MAX} nameservers.", code="length")
    return [str(parse_ip(text, "a nameserver address")) for text in values]


def clean_host_path(value, what: str = "path") -> str:
    """An absolute directory path on a host, as an administrator types it: ASCII without blanks or
    control characters, no '.' or '..' parts (one spelling per directory). Trailing '/' dropped."""
    if not isinstance(value, str) or len(value) > PATH_MAX or not _PATH_RE.fullmatch(value) \
            or any(part in (".", "..") for part in value.split("/")):
        raise ValidationError(f"The {what} must be an absolute path without blanks, '.' or '..' parts, "
                              "of ASCII letters, digits and ._+@:,=~-", code="invalid")
    return re.sub("/+", "/", value).rstrip("/") or "/"


def validate_host_path(value) -> None:
    """clean_host_path() as a model field's validator."""
    clean_host_path(value)


def size_mb(text, unit_bytes: int = MIB, what: str = "size") -> int:
    """A vzctl size ("512M", "2.5G", or a count of `unit_bytes` units) in MiB: containers.engine.units,
    the one size parser; 'unlimited' is refused here (the caller says where it means something)."""
    try:
        mb = parse_mb(text, unit_bytes)
    except BadAmount as exc:
        raise ValidationError(f"{what}: {exc}", code="invalid") from None
    if mb is None:
        raise ValidationError(f"{what}: give a size; 'unlimited' is not one here", code="invalid")
    return mb


def clean_archive_config(config: dict) -> tuple[dict, list[str]]:
    """An archive's configuration (containers.engine.ctconf's parse) through the validators that
    vzctl set uses: the settings that pass, and one line per setting left out. The archive is its
    uploader's word; what it names is checked again where it is used (limits and hostname by
    create_container, addresses against pools and quota by network.services.restore_network)."""
    clean: dict = {}
    skipped: list[str] = []
    for key, value in config.items():
        try:
            if key == "hostname":
                validate_hostname(value)
            elif key == "nameservers":  # each on its own: a bad one does not cost the others
                value, bad = [], value
                for text in list(bad)[:NAMESERVERS_MAX]:
                    try:
                        value.append(str(parse_ip(text, "a nameserver address")))
                    except ValidationError as exc:
                        skipped.append(f"nameserver not restored: {messages(exc)}")
            elif key == "searchdomain":
                value = clean_searchdomain(value)
            elif key in ("ostemplate", "description"):
                value = str(value)[:2000]
                validate_title(value, key, 2000)
            elif key == "addresses":
                value = [str(a)[:64] for a in value]
            elif key == "onboot":
                value = value is True
            elif value is not None:  # a limit
                value = whole_number(value, key, 0)
        except ValidationError as exc:
            skipped.append(f"{key} not restored: {messages(exc)}")
            continue
        clean[key] = value
    return clean, skipped


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


def messages(exc: ValidationError) -> str:
    """A ValidationError (of a value, or a model's full_clean() by field) as the one line a service
    error or a CLI error shows."""
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{field}: {' '.join(errors)}" for field, errors in exc.message_dict.items())
    return " ".join(exc.messages)


def argparse_type(check):
    """One of these validators as an argparse `type=`: the CLI refuses what the forms and the API
    refuse, with the same words (and no traceback). A validate_* gives the text back as it is;
    a parse_*/clean_* gives what it made of it."""
    def convert(text: str):
        try:
            value = check(text)
        except ValidationError as exc:
            raise argparse.ArgumentTypeError(messages(exc)) from None
        return text if value is None else value
    return convert
