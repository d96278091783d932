"""vzrestore ARCHIVE CTID [--force] [--host H]: restore a backup (by file name, path or id)."""
from django.core.management.base import BaseCommand, CommandError

from accounts.permissions import placeable_hosts, visible_backups
from panel.validators import argparse_type, is_ascii_number, parse_ctid
from tasks.choices import TaskStatus
from tasks.cli import acting_user, wait_for_task
from tasks.services import TaskError

from backups.services import restore_backup


class Command(BaseCommand):
    help = "Restore a backup to a new CTID, or over a stopped container with --force."

    def add_arguments(self, parser):
        parser.add_argument("archive", help="the archive's file name or path, or the backup's id")
        parser.add_argument("ctid", type=argparse_type(parse_ctid))
        parser.add_argument("--force", action="store_true", help="overwrite the (stopped) container CTID")
        parser.add_argument("--host", help="restore on this host (default: where the archive is)")
        parser.add_argument("--start", action="store_true")
        parser.add_argument("--user")

    def handle(self, *args, **opts):
        user = acting_user(opts["user"])
        backups = visible_backups(user)
        name = opts["archive"].rsplit("/", 1)[-1]
        backup = ((backups.filter(pk=int(name)).first() if is_ascii_number(name) else None)
                  or backups.filter(filename=name).first())
        if backup is None:
            raise CommandError(f"no backup {opts['archive']!r} (import an archive first: it must be listed)")
        host = None
        if opts["host"]:
            host = placeable_hosts(user).filter(name=opts["host"]).first()
            if host is None:
                raise CommandError(f"no host {opts['host']!r}")
        try:
            task = restore_backup(backup, user, ctid=opts["ctid"], host=host, force=opts["force"],
                                  confirm=opts["ctid"] if opts["force"] else None, start=opts["start"])
        except TaskError as exc:
            raise CommandError(str(exc)) from None
        task = wait_for_task(task, self.stdout)
        if task.status != TaskStatus.OK:
            raise CommandError(task.error or f"task #{task.pk} {task.status}")
