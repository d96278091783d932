"""Container configuration inside backups: our pct.conf, and OpenVZ's vps.conf converted.

pct.conf follows Proxmox's "key: value" layout with the panel's settings; vps.conf is
OpenVZ's shell-style KEY="value" file. Both parse into the same dict of panel fields
(hostname, ram_mb, swap_mb, cpus, cpuunits, cpulimit, numproc, disk_mb, disk_soft_mb,
diskinodes, diskinodes_soft, ioprio, onboot, nameservers, searchdomain, addresses,
ostemplate, description). What does not map is left out, never guessed.
"""
from __future__ import annotations

import re
import shlex

from .units import BLOCK, PAGE, BadAmount, parse_amount, parse_count

_WHOLE = re.compile(r"[0-9]{1,18}")
FIELDS = ("hostname", "ram_mb", "swap_mb", "cpus", "cpuunits", "cpulimit", "numproc", "disk_mb", "disk_soft_mb",
          "diskinodes", "diskinodes_soft", "ioprio", "onboot", "nameservers", "searchdomain", "addresses",
          "ostemplate", "description")


def render_pct_conf(values: dict) -> str:
    lines = ["# vzpanel container configuration (restore reads this)"]
    for key in FIELDS:
        value = values.get(key)
        if value is None or value == "" or value == []:
            continue
        if isinstance(value, (list, tuple)):
            value = " ".join(str(v) for v in value)
        elif isinstance(value, bool):
            value = 1 if value else 0
        lines.append(f"{key}: {str(value).replace(chr(10), ' ')}")
    return "\n".join(lines) + "\n"


def parse_pct_conf(text: str) -> dict:
    out: dict = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key not in FIELDS:
            continue
        if key in ("nameservers", "addresses"):
            out[key] = value.split()
        elif key in ("hostname", "searchdomain", "ostemplate", "description"):
            out[key] = value
        elif key == "onboot":
            out[key] = value in ("1", "yes", "true")
        elif _WHOLE.fullmatch(value):  # ASCII digits only: int() would take "٣", " 7" or "1_000"
            out[key] = int(value)
    return out


def _amount(text: str, unit_bytes: int | None) -> int | None:
    """A vzctl value in bytes (units.parse_amount), or a count when `unit_bytes` is None
    (units.parse_count); None: unlimited, or not a value at all."""
    try:
        return parse_count(text) if unit_bytes is None else parse_amount(text, unit_bytes)
    except BadAmount:
        return None


def _pair(text: str, unit_bytes: int | None) -> tuple[int | None, int | None]:
    """barrier[:limit] as vzctl reads it: one value is both."""
    soft, _, hard = text.partition(":")
    return _amount(soft, unit_bytes), _amount(hard or soft, unit_bytes)


def _mb(value: int | None) -> int | None:
    return None if value is None else max(1, value // (1024 * 1024))


def parse_vps_conf(text: str) -> dict:
    """OpenVZ's CTID.conf (as vzdump stored it in ./etc/vzdump/vps.conf) to panel fields."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        try:
            parts = shlex.split(value, comments=True)
        except ValueError:
            continue
        env[key.strip().upper()] = " ".join(parts)
    out: dict = {}
    if env.get("HOSTNAME"):
        out["hostname"] = env["HOSTNAME"]
    _, ram = _pair(env.get("PHYSPAGES", ""), PAGE)
    if ram is None and env.get("PRIVVMPAGES"):  # before vSwap, privvmpages was the memory limit
        _, ram = _pair(env["PRIVVMPAGES"], PAGE)
    if ram is not None:
        out["ram_mb"] = _mb(ram)
    _, swap = _pair(env.get("SWAPPAGES", ""), PAGE)
    if swap is not None:
        out["swap_mb"] = _mb(swap)
    soft, hard = _pair(env.get("DISKSPACE", ""), BLOCK)
    if hard is not None:
        out["disk_mb"], out["disk_soft_mb"] = _mb(hard), _mb(soft)
    soft, hard = _pair(env.get("DISKINODES", ""), None)
    if hard is not None:
        out["diskinodes"], out["diskinodes_soft"] = hard, soft
    _, numproc = _pair(env.get("NUMPROC", ""), None)
    if numproc is not None:
        out["numproc"] = numproc
    for key, field in (("CPUUNITS", "cpuunits"), ("CPULIMIT", "cpulimit"), ("CPUS", "cpus"), ("IOPRIO", "ioprio")):
        if _WHOLE.fullmatch(env.get(key, "")):
            out[field] = int(env[key])
    if env.get("IP_ADDRESS"):
        out["addresses"] = [a.split("/")[0] for a in env["IP_ADDRESS"].split()]
    if env.get("NAMESERVER"):
        out["nameservers"] = env["NAMESERVER"].split()[:3]
    if env.get("SEARCHDOMAIN"):
        out["searchdomain"] = env["SEARCHDOMAIN"]
    if env.get("ONBOOT"):
        out["onboot"] = env["ONBOOT"].lower() == "yes"
    if env.get("OSTEMPLATE"):
        out["ostemplate"] = env["OSTEMPLATE"]
    if env.get("DESCRIPTION"):
        out["description"] = env["DESCRIPTION"]
    return out
