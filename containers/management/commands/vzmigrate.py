"""manage.py vzmigrate [--online] [-r yes|no] [--keep-dst] DESTINATION_HOST CTID — OpenVZ's vzmigrate.

DESTINATION_HOST is a host's name in the panel ("auto": the host placement picks).
Waits for the migration and prints its log, as vzmigrate does (--no-wait: just queue it).
"""
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError
from django.http import Http404

from accounts.permissions import get_container_for_user, visible_hosts
from containers import services
from containers.management.commands.vzctl import count, yes_no
from tasks.choices import TaskStatus
from tasks.cli import acting_user, wait_for_task
from tasks.services import TaskError


class Command(BaseCommand):
    help = "Move a container to another host (offline, or --online with the least downtime)."

    def add_arguments(self, parser):
        parser.add_argument("destination", help="the destination host's name, or 'auto'")
        parser.add_argument("ctid", help="CTID or name of the container")
        parser.add_argument("--online", action="store_true",
                            help="keep it running: copy, freeze, copy what changed, start at the destination")
        parser.add_argument("-r", "--remove-area", type=yes_no, default=True, metavar="yes|no",
                            help="remove the container from the source afterwards (default yes)")
        parser.add_argument("--keep-dst", action="store_true",
                            help="on failure, keep what was copied to the destination for the next attempt")
        parser.add_argument("--bwlimit", type=count, default=0, metavar="KIB/S", help="limit the copy's bandwidth")
        parser.add_argument("--no-wait", action="store_true", help="queue the migration and return")
        parser.add_argument("--user", help="act as this panel user (default: the first superuser)")

    def handle(self, *args, **opts):
        user = acting_user(opts["user"])
        try:
            ct = get_container_for_user(user, opts["ctid"])
        except (Http404, PermissionDenied):
            raise CommandError(f"no container {opts['ctid']!r}") from None
        dest = None
        if opts["destination"] != "auto":
            dest = visible_hosts(user).filter(name=opts["destination"]).first()
            if dest is None:
                raise CommandError(f"no host {opts['destination']!r}")
        try:
            task = services.migrate_container(ct, user, dest, online=opts["online"],
                                              remove_source=opts["remove_area"], keep_dst=opts["keep_dst"],
                                              bwlimit_kib=opts["bwlimit"])
        except TaskError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Task #{task.pk} queued: migrate CT {ct.ctid} from {ct.host.name} to "
                          f"{task.params['dest']}")
        if opts["no_wait"]:
            return
        task = wait_for_task(task, self.stdout)
        if task.status != TaskStatus.OK:
            raise CommandError(f"migration failed: {task.error}")
