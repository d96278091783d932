"""vzlist for the panel: running containers (all with -a), in vzlist's columns."""
from django.core.management.base import BaseCommand, CommandError

from accounts.permissions import visible_containers
from containers.choices import ContainerStatus
from tasks.cli import acting_user

# field -> (header, width, right-aligned, getter)
FIELDS = {
    "ctid": ("CTID", 10, True, lambda ct: ct.ctid),
    "nproc": ("NPROC", 10, True, lambda ct: "-" if ct.nproc is None else ct.nproc),
    "status": ("STATUS", 9, False, lambda ct: ct.status),
    "ip": ("IP_ADDR", 15, False, lambda ct: "-"),
    "hostname": ("HOSTNAME", 0, False, lambda ct: ct.hostname),
    "name": ("NAME", 0, False, lambda ct: ct.name or "-"),
    "host": ("HOST", 0, False, lambda ct: ct.host.name),
    "ostemplate": ("OSTEMPLATE", 0, False, lambda ct: ct.ostemplate),
    "onboot": ("ONBOOT", 6, False, lambda ct: "yes" if ct.onboot else "no"),
}
ALIASES = {"veid": "ctid", "ip_addr": "ip", "numproc": "nproc"}
DEFAULT = "ctid,nproc,status,ip,hostname"


class Command(BaseCommand):
    help = "List containers like vzlist: running only unless -a."

    def add_arguments(self, parser):
        parser.add_argument("-a", "--all", action="store_true", help="list all containers, not only running ones")
        parser.add_argument("-H", "--no-header", action="store_true")
        parser.add_argument("-o", "--output", default=DEFAULT, help=f"fields: {', '.join(FIELDS)}")
        parser.add_argument("--user", help="list as this panel user (default: the first superuser)")

    def handle(self, *args, **opts):
        names = [ALIASES.get(f.strip().lower(), f.strip().lower()) for f in opts["output"].split(",") if f.strip()]
        unknown = [n for n in names if n not in FIELDS]
        if unknown:
            raise CommandError(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}")
        cts = visible_containers(acting_user(opts["user"]))
        if not opts["all"]:
            cts = cts.filter(status=ContainerStatus.RUNNING)
        rows = [[str(FIELDS[n][3](ct)) for n in names] for ct in cts]

        def fmt(cells):
            parts = []
            for n, cell in zip(names, cells):
                _, width, right, _ = FIELDS[n]
                parts.append(cell.rjust(width) if right else cell.ljust(width))
            return " ".join(parts).rstrip()

        if not opts["no_header"]:
            self.stdout.write(fmt([FIELDS[n][0] for n in names]))
        for row in rows:
            self.stdout.write(fmt(row))
