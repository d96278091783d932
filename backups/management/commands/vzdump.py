"""vzdump CTID|--all [--mode stop|suspend|snapshot] [--compress zstd|gzip|none] [--dumpdir DIR]
[--mailto ADDR] [--stdexcludes] [--exclude-path GLOB] [--bwlimit KBPS]: through the same tasks as the UI."""
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError
from django.http import Http404

from accounts.permissions import get_container_for_user, manageable_containers
from backups.models import BackupStorage
from backups.services import backup_container
from containers.management.commands.vzctl import count
from tasks.cli import acting_user, wait_for_task
from tasks.choices import TaskStatus
from tasks.services import TaskError

COMPRESS = {"zstd": "zst", "zst": "zst", "gzip": "gz", "gz": "gz", "none": "none", "0": "none", "1": "gz"}


class Command(BaseCommand):
    help = "Back up containers like vzdump; exits non-zero if any backup failed."

    def add_arguments(self, parser):
        parser.add_argument("ctids", nargs="*", help="CTIDs or names")
        parser.add_argument("--all", action="store_true", help="every container you may manage")
        parser.add_argument("--mode", default="stop", choices=["stop", "suspend", "snapshot"])
        parser.add_argument("--compress", default="zstd", help="zstd, gzip or none")
        parser.add_argument("--dumpdir", help="a backup storage of the container's host, by name or path")
        parser.add_argument("--mailto", action="append", default=[], help="send the vzdump report here")
        parser.add_argument("--stdexcludes", action="store_true", help="leave out /tmp, /var/tmp, /var/run/*.pid")
        parser.add_argument("--exclude-path", action="append", default=[], metavar="GLOB")
        parser.add_argument("--bwlimit", type=count, help="KiB/s")
        parser.add_argument("--notes", default="")
        parser.add_argument("--user", help="act as this panel user (default: the first superuser)")

    def handle(self, *args, **opts):
        user = acting_user(opts["user"])
        if opts["compress"] not in COMPRESS:
            raise CommandError(f"--compress takes zstd, gzip or none, not {opts['compress']!r}")
        if opts["all"]:
            containers = list(manageable_containers(user))
        else:
            if not opts["ctids"]:
                raise CommandError("give CTIDs or --all")
            try:
                containers = [get_container_for_user(user, c, manage=True) for c in opts["ctids"]]
            except Http404 as exc:
                raise CommandError(str(exc)) from None
            except PermissionDenied as exc:
                raise CommandError(str(exc)) from None
        results = []
        for ct in containers:
            storage = None
            if opts["dumpdir"]:
                storage = (BackupStorage.objects.filter(host=ct.host, name=opts["dumpdir"]).first()
                           or BackupStorage.objects.filter(host=ct.host, path=opts["dumpdir"].rstrip("/")).first())
                if storage is None:
                    raise CommandError(f"{opts['dumpdir']} is not a backup storage of host {ct.host.name}; "
                                       "an administrator defines storages")
            try:
                task = backup_container(ct, user, mode=opts["mode"], compress=COMPRESS[opts["compress"]],
                                        storage=storage, notes=opts["notes"], stdexcludes=opts["stdexcludes"],
                                        exclude_paths=opts["exclude_path"], bwlimit_kbps=opts["bwlimit"])
            except TaskError as exc:
                self.stderr.write(f"{ct.ctid}: {exc}")
                results.append((ct, None))
                continue
            task = wait_for_task(task, self.stdout)
            results.append((ct, task))
        if opts["mailto"]:
            from backups.report import send_adhoc_report
            send_adhoc_report([t for _, t in results if t], opts["mailto"])
        failed = [ct.ctid for ct, task in results if task is None or task.status != TaskStatus.OK]
        if failed:
            raise CommandError(f"backup failed for {', '.join(map(str, failed))}")
