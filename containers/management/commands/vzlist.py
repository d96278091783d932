"""vzlist for the panel, in vzlist's own columns, field names and JSON.

    vzlist [-a | -S] [-n] [-H] [-o field[,field...] | -1] [-s [-]field] [-j]
           [-h pattern] [-N pattern] [-d pattern] [CTID ...]        vzlist -L

Running containers only unless -a (-S: the stopped ones). Fields are OpenVZ's where the panel has a
counterpart; beancounters take vzlist's suffixes (.m maxheld, .b barrier, .l limit, .f failcnt),
diskspace and diskinodes vzquota's (.s soft, .h hard). Values are in OpenVZ's units: pages for
physpages and swappages, 1 KiB blocks for diskspace. What the panel does not measure here
(laverage) is "-" (null in JSON), never made up.
"""
from __future__ import annotations

import fnmatch
import json

from django.core.management.base import BaseCommand, CommandError

from tasks.cli import acting_user

LONG_MAX = 9223372036854775807  # vzctl's "unlimited"
PAGES_PER_MB, BLOCKS_PER_MB = 256, 1024
# Beancounters with a counterpart here, in vzlist's order, and their column headers.
UBC = {"numproc": "NPROC", "physpages": "PHYSP", "swappages": "SWAPP"}
UBC_PARTS = {"": "held", "m": "maxheld", "b": "barrier", "l": "limit", "f": "failcnt"}
QUOTA = {"diskspace": "DSPACE", "diskinodes": "DINODES"}
QUOTA_PARTS = {"": "usage", "s": "softlimit", "h": "hardlimit"}
# Plain fields: name -> (header, printf-like width: negative is left-aligned).
PLAIN = {
    "ctid": ("CTID", 10), "veid": ("CTID", 10), "vpsid": ("CTID", 10), "hostname": ("HOSTNAME", -32), "name": ("NAME", -32), "smart_name": ("SMARTNAME", 10),
    "description": ("DESCRIPTION", -32), "ostemplate": ("OSTEMPLATE", -32), "ip": ("IP_ADDR", -15),
    "nameserver": ("NAMESERVER", -15), "searchdomain": ("SEARCHDOMAIN", -15), "status": ("STATUS", -9),
    "laverage": ("LAVERAGE", 14), "uptime": ("UPTIME", 15), "cpulimit": ("CPULIM", 7), "cpuunits": ("CPUUNI", 7),
    "cpus": ("CPUS", 5), "ioprio": ("IOP", 3), "onboot": ("ONBOOT", 6), "host": ("HOST", -16),
}
# vzlist -j without -o: every field, in vzlist's order.
JSON_ORDER = ("ctid", "veid", "vpsid", "hostname", "name", "smart_name", "description", "ostemplate", "ip", "nameserver",
              "searchdomain", "status", *UBC, *QUOTA, "laverage", "uptime", "cpulimit", "cpuunits", "cpus", "ioprio",
              "onboot")
ALIASES = {"ip_addr": "ip", "nproc": "numproc"}
DEFAULT, DEFAULT_NAMES = "ctid,numproc,status,ip,hostname", "ctid,numproc,status,ip,name"


def field_names() -> list[str]:
    """Every field -o takes (vzlist -L)."""
    names = list(PLAIN)
    names += [f"{b}.{s}" if s else b for b in UBC for s in UBC_PARTS]
    names += [f"{b}.{s}" if s else b for b in QUOTA for s in QUOTA_PARTS]
    return names


def _pages(mb: int | None) -> int:
    return LONG_MAX if mb is None else mb * PAGES_PER_MB


def record(ct, now) -> dict:
    """One container as vzlist -j shows it: OpenVZ's keys, units and shapes."""
    running = ct.status == "running"
    counters = {}
    if hasattr(ct, "beancounters"):  # the agent's last sample
        counters = {c["resource"]: c for c in ct.beancounters.counters}

    def ubc(resource: str, barrier: int, limit: int, held: int | None = None) -> dict:
        """As vzlist: what is held, only while running (0 otherwise); barrier and limit as configured."""
        c = counters.get(resource, {}) if running else {}
        return {"held": held if held is not None else (c.get("held") or 0), "maxheld": c.get("maxheld") or 0,
                "barrier": barrier, "limit": limit, "failcnt": c.get("failcnt") or 0}

    def quota(resource: str, soft: int, hard: int) -> dict:
        return {"usage": (counters.get(resource) or {}).get("held") or 0, "softlimit": soft, "hardlimit": hard}

    numproc = LONG_MAX if ct.numproc is None else ct.numproc
    addresses = [a.address for a in ct.addresses.all()]
    return {
        "ctid": ct.ctid, "veid": ct.ctid, "vpsid": ct.ctid, "hostname": ct.hostname, "name": ct.name, "smart_name": ct.name or ct.ctid,
        "description": ct.description or None, "ostemplate": ct.ostemplate, "ip": addresses,
        "nameserver": list(ct.nameservers or []), "searchdomain": ct.searchdomain.split() if ct.searchdomain else [],
        "status": {"running": "running", "frozen": "suspended"}.get(ct.status, "stopped"),
        "numproc": ubc("numproc", numproc, numproc, held=ct.nproc if running else 0),
        "physpages": ubc("physpages", 0 if ct.ram_barrier_mb is None else _pages(ct.ram_barrier_mb), _pages(ct.ram_mb)),
        "swappages": ubc("swappages", 0, _pages(ct.swap_mb)),
        "diskspace": quota("diskspace", (ct.disk_soft_mb or ct.disk_mb) * BLOCKS_PER_MB, ct.disk_mb * BLOCKS_PER_MB),
        "diskinodes": quota("diskinodes", ct.diskinodes_soft or ct.diskinodes, ct.diskinodes),
        "laverage": None,  # the panel does not measure a container's load average
        "uptime": round((now - ct.status_changed_at).total_seconds(), 3) if running else 0.0,
        "cpulimit": ct.cpulimit, "cpuunits": ct.cpuunits, "cpus": ct.cpus, "ioprio": ct.ioprio, "onboot": ct.onboot,
        "host": ct.host.name,
    }


def resolve(name: str) -> tuple[str, str | None, int, str]:
    """A field name -> (key in the record, part of a beancounter or quota, width, header)."""
    name = ALIASES.get(name, name)
    base, _, suffix = name.partition(".")
    if base in UBC and suffix in UBC_PARTS:
        return base, UBC_PARTS[suffix], 10, UBC[base] + (f".{suffix.upper()}" if suffix else "")
    if base in QUOTA and suffix in QUOTA_PARTS:
        return base, QUOTA_PARTS[suffix], 10, QUOTA[base] + (f".{suffix.upper()}" if suffix else "")
    if name in PLAIN:
        return name, None, PLAIN[name][1], PLAIN[name][0]
    raise CommandError(f"unknown field {name!r}; vzlist -L lists them")


def text_value(rec: dict, key: str, part: str | None, last: bool) -> str:
    """A cell as vzlist prints it: "-" for nothing (and for usage of a stopped container)."""
    value = rec[key]
    if part is not None:
        running = rec["status"] == "running"
        if key in UBC and not running and part in ("held", "maxheld", "failcnt"):
            return "-"
        if key in QUOTA and part == "usage" and not value[part]:
            return "-"
        return str(value[part])
    if key == "uptime":
        if rec["status"] != "running":
            return "-"
        secs = int(value)
        return f"{secs // 86400:03d}d{secs // 3600 % 24:02d}h:{secs // 60 % 60:02d}m:{secs % 60:02d}s"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return (" ".join(value) if last else value[0]) if value else "-"
    return "-" if value is None or value == "" else str(value)


def text_line(cells: list[str], widths: list[int]) -> str:
    """vzlist's row: each field printed to its width (left-aligned text cut to it, except the last)."""
    out = []
    for i, (cell, width) in enumerate(zip(cells, widths)):
        last = i == len(cells) - 1
        if width < 0:
            out.append(cell if last else cell[:-width].ljust(-width))
        else:
            out.append(cell.rjust(width))
    return " ".join(out).rstrip()


class Command(BaseCommand):
    help = "List containers like vzlist: running only unless -a (or -S), in vzlist's fields and JSON."

    def add_arguments(self, parser):
        parser.add_argument("--help", action="help", help="show this help message and exit")
        parser.add_argument("ctids", nargs="*", metavar="CTID", help="list only these")
        parser.add_argument("-a", "--all", action="store_true", help="list all containers, not only running ones")
        parser.add_argument("-S", "--stopped", action="store_true", help="list only stopped containers")
        parser.add_argument("-n", "--name", action="store_true", help="show names instead of hostnames")
        parser.add_argument("-H", "--no-header", action="store_true", help="no column headers")
        parser.add_argument("-t", "--no-trim", action="store_true", help="accepted for vzlist compatibility")
        parser.add_argument("-j", "--json", action="store_true", help="vzlist's JSON: a list of objects")
        parser.add_argument("-o", "--output", help="fields, comma-separated (vzlist -L lists them)")
        parser.add_argument("-1", dest="ids_only", action="store_true", help="CTIDs only: -H -o ctid")
        parser.add_argument("-s", "--sort", metavar="[-]FIELD", help="sort by a field; -FIELD reverses")
        parser.add_argument("-h", "--hostname", dest="host_pattern", metavar="PATTERN", help="hostnames like this")
        parser.add_argument("-N", "--name_filter", metavar="PATTERN", help="names like this")
        parser.add_argument("-d", "--description", metavar="PATTERN", help="descriptions like this")
        parser.add_argument("-L", "--list", action="store_true", help="the field names -o takes")
        parser.add_argument("--user", help="list as this panel user (default: the first superuser)")

    def run_from_argv(self, argv):
        # vzlist -s -field sorts in reverse: argparse would take "-field" for an option.
        fixed = list(argv[:2])
        rest = iter(argv[2:])
        for arg in rest:
            if arg in ("-s", "--sort"):
                arg = f"--sort={next(rest, '')}"
            fixed.append(arg)
        return super().run_from_argv(fixed)

    def create_parser(self, prog_name, subcommand, **kwargs):
        # vzlist's -h is --hostname; help stays on --help.
        return super().create_parser(prog_name, subcommand, add_help=False, **kwargs)

    def handle(self, *args, **opts):
        if opts["list"]:
            self.stdout.write("\n".join(field_names()))
            return
        if opts["ids_only"]:
            opts["no_header"], opts["output"] = True, "ctid"
        output = opts["output"] or (None if opts["json"] else DEFAULT_NAMES if opts["name"] else DEFAULT)
        names = [f.strip().lower() for f in output.split(",") if f.strip()] if output else list(JSON_ORDER)
        fields = [resolve(n) for n in names]
        sort = None
        if opts["sort"]:
            reverse = opts["sort"].startswith("-")
            sort = (resolve(opts["sort"].lstrip("-").lower()), reverse)
        records = self._records(opts)
        if sort:
            (key, part, _, _), reverse = sort

            def sort_key(rec):
                value = rec[key][part] if part else rec[key]
                value = value[0] if isinstance(value, list) and value else value
                return (value is None or value == [], value if value not in (None, []) else 0)
            records.sort(key=sort_key, reverse=reverse)
        if opts["json"]:
            # As vzlist -j: a beancounter or quota field is its whole object, whichever suffix named it.
            listed = [{n: rec[key] for n, (key, _, _, _) in zip(names, fields)} for rec in records]
            self.stdout.write(json.dumps(listed, indent=2))
            return
        widths = [width for _, _, width, _ in fields]
        if not opts["no_header"]:
            self.stdout.write(text_line([header for _, _, _, header in fields], widths))
        for rec in records:
            cells = [text_value(rec, key, part, i == len(fields) - 1) for i, (key, part, _, _) in enumerate(fields)]
            self.stdout.write(text_line(cells, widths))

    def _records(self, opts) -> list[dict]:
        from django.utils import timezone

        from accounts.permissions import visible_containers
        from panel.validators import is_ascii_number
        from containers.tables import addresses_prefetch
        cts = visible_containers(acting_user(opts["user"])).select_related("beancounters") \
            .prefetch_related(addresses_prefetch()).order_by("ctid")
        if opts["ctids"]:
            bad = [c for c in opts["ctids"] if not is_ascii_number(c)]
            if bad:
                raise CommandError(f"{bad[0]!r} is not a CTID")
            cts = cts.filter(ctid__in=[int(c) for c in opts["ctids"]])
        elif opts["stopped"]:
            cts = cts.exclude(status="running")
        elif not opts["all"]:
            cts = cts.filter(status="running")
        now = timezone.now()
        records = []
        for ct in cts:
            rec = record(ct, now)
            if all(pattern is None or (value is not None and fnmatch.fnmatchcase(value, pattern))
                   for pattern, value in ((opts["host_pattern"], ct.hostname), (opts["name_filter"], ct.name),
                                          (opts["description"], ct.description or None))):
                records.append(rec)
        return records
