"""vzmemcheck [-v] [-A] [--host NAME]: a host's memory promised to its containers and used by them,
from the panel's own capacity numbers (hosts.capacity)."""
from django.core.management.base import BaseCommand, CommandError

from tasks.cli import acting_user, local_host

from .vzcalc import cell


class Command(BaseCommand):
    help = "Show a host's memory: what its containers use and are promised (percent of the host's)."

    def add_arguments(self, parser):
        parser.add_argument("-v", "--verbose", action="store_true", help="one line per container")
        parser.add_argument("-A", "--absolute", action="store_true", help="MiB instead of percent")
        parser.add_argument("--host", help="this host (default: this machine's)")
        parser.add_argument("--user", help="act as this panel user (default: the first superuser)")

    def create_parser(self, prog_name, subcommand, **kwargs):
        # vzmemcheck's -v is --verbose, not Django's verbosity
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def handle(self, *args, **opts):
        from accounts.permissions import visible_hosts
        from hosts.capacity import MIB, memcheck
        user = acting_user(opts["user"])
        hosts = visible_hosts(user)
        host = hosts.filter(name=opts["host"]).first() if opts["host"] else local_host()
        if host is None or not hosts.filter(pk=host.pk).exists():
            raise CommandError(f"no host {opts['host']!r}" if opts["host"] else
                               "vzmemcheck shows a host: give --host (administrators, operators and auditors)")
        rows, totals = memcheck(host)
        scale = (host.stats or {}).get("mem_total", 0) / MIB / 100 if opts["absolute"] else None
        self.stdout.write("Output values in " + ("MiB" if scale is not None else "%"))
        self.stdout.write(f"{'veid':<10} {'RAM':>8} {'RAM':>8} {'MemSwap':>8} {'MemSwap':>8}")
        self.stdout.write(f"{'':<10} {'util':>8} {'commit':>8} {'util':>8} {'commit':>8}")

        def fmt(values):
            return " ".join(f"{cell(v * scale if scale is not None and v is not None else v):>8}" for v in values)
        if opts["verbose"]:
            for ctid, values in rows:
                self.stdout.write(f"{ctid:<10} {fmt(values)}")
        self.stdout.write("-" * 46)
        self.stdout.write(f"{'Summary:':<10} {fmt(totals)}")
