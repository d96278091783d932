"""vzcalc [-v] CTID: the share of its host's resources a container uses now and is promised, from
the panel's own capacity numbers (hosts.capacity), for those who see hosts."""
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError
from django.http import Http404

from tasks.cli import acting_user


def cell(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


class Command(BaseCommand):
    help = "Show the share of its host a container uses now and is promised (percent)."

    def add_arguments(self, parser):
        parser.add_argument("ctid")
        parser.add_argument("-v", "--verbose", action="store_true", help="accepted for vzcalc compatibility")
        parser.add_argument("--user", help="act as this panel user (default: the first superuser)")

    def create_parser(self, prog_name, subcommand, **kwargs):
        # vzcalc's -v is --verbose, not Django's verbosity
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def handle(self, *args, **opts):
        from accounts.permissions import get_container_for_user, visible_hosts
        from hosts.capacity import container_shares
        user = acting_user(opts["user"])
        try:
            ct = get_container_for_user(user, opts["ctid"])
        except (Http404, PermissionDenied):
            raise CommandError(f"Container {opts['ctid']} does not exist") from None
        if not visible_hosts(user).filter(pk=ct.host_id).exists():
            raise CommandError("vzcalc shows a host's capacity: for administrators, operators and auditors")
        self.stdout.write(f"{'Resource':<12} {'Current(%)':>10} {'Promised(%)':>11}")
        for name, now, promised in container_shares(ct):
            self.stdout.write(f"{name:<12} {cell(now):>10} {cell(promised):>11}")
