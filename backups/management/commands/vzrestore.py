"""vzrestore ARCHIVE CTID [--force] [--host H] [--start]: restore a backup (by file name, path or id).

ARCHIVE may also be an archive file on this machine that the panel does not list yet (ours or
OpenVZ's: .tar, .tar.gz, .tgz, .tar.zst): root may name any file, which is imported first, the
way the Backups page imports an upload (backups.services.import_upload), then restored.
"""
import os

from django.core.management.base import BaseCommand, CommandError

from accounts.permissions import creatable_tenants, placeable_hosts, visible_backups
from panel.validators import argparse_type, is_ascii_number, parse_ctid
from tasks.cli import acting_user, finish_task, local_host
from tasks.services import TaskError

from backups.services import restore_backup


class Command(BaseCommand):
    help = "Restore a backup to a new CTID, or over a stopped container with --force."

    def add_arguments(self, parser):
        parser.add_argument("archive", help="a listed backup's file name or id, or (root) an archive file's path")
        parser.add_argument("ctid", type=argparse_type(parse_ctid))
        parser.add_argument("--force", action="store_true", help="overwrite the (stopped) container CTID")
        parser.add_argument("--host", help="restore on this host (default: where the archive is, or this machine)")
        parser.add_argument("--tenant", help="an imported file's tenant (whose backup space it counts against)")
        parser.add_argument("--start", action="store_true")
        parser.add_argument("--override-capacity", action="store_true",
                            help="administrators: restore even if the host's promise policy (RAM, CPU, disk) "
                                 "has no room; recorded in the audit log (OpenVZ had no such check)")
        parser.add_argument("--user")

    def handle(self, *args, **opts):
        user = acting_user(opts["user"])
        backups = visible_backups(user)
        name = opts["archive"].rsplit("/", 1)[-1]
        backup = ((backups.filter(pk=int(name)).first() if is_ascii_number(name) else None)
                  or backups.filter(filename=name).first())
        host = None
        if opts["host"]:
            host = placeable_hosts(user).filter(name=opts["host"]).first()
            if host is None:
                raise CommandError(f"no host {opts['host']!r}")
        try:
            if backup is None:
                backup = self._import(user, opts["archive"], host, opts)
            task = restore_backup(backup, user, ctid=opts["ctid"], host=host, force=opts["force"],
                                  confirm=opts["ctid"] if opts["force"] else None, start=opts["start"],
                                  override_capacity=opts["override_capacity"])
        except TaskError as exc:
            raise CommandError(str(exc)) from None
        finish_task(task, self.stdout)

    def _import(self, user, path: str, host, opts):
        """An archive file named at the shell, imported as an upload is; its Backup row."""
        from django.core.files import File

        from backups.models import Backup
        from backups.services import archive_name, import_archive, import_upload
        from containers.models import Container
        from panel.uploads import UploadRefused
        if not os.path.isfile(path):
            raise CommandError(f"no backup {path!r}: neither a listed backup nor an archive file")
        if os.geteuid() != 0:
            raise CommandError(f"{path}: only root restores from a file at the shell (it may read any file); "
                               "upload it on the Backups page, or name a listed backup")
        archive_name(os.path.basename(path))  # a name the import takes, before anything is copied
        if not opts["force"] and Container.objects.filter(ctid=opts["ctid"]).exists():
            raise CommandError(f"CTID {opts['ctid']} is already in use; choose another (or --force over it)")
        host = host or local_host()
        if host is None:
            raise CommandError("which host? give --host (no host of the panel is this machine)")
        tenant = None
        if opts["tenant"]:
            tenant = creatable_tenants(user).filter(slug=opts["tenant"]).first()
            if tenant is None:
                raise CommandError(f"no tenant {opts['tenant']!r} that you may import into")
        real = os.path.realpath(path)
        if os.path.dirname(real) == os.path.realpath(host.dump_dir) and archive_name(os.path.basename(real)) == \
                os.path.basename(real):
            # Already in the host's dump directory under its vzdump name: listed where it is.
            task = import_archive(user, host, real, tenant=tenant, size=os.path.getsize(real))
        else:
            with open(path, "rb") as fh:
                try:
                    task = import_upload(user, host, File(fh), os.path.basename(path), tenant=tenant,
                                         mtime=os.fstat(fh.fileno()).st_mtime)
                except UploadRefused as exc:
                    raise CommandError(str(exc)) from None
        task = finish_task(task, self.stdout)
        self.stdout.write(f"Imported {path} as {task.result['filename']}\n")
        return Backup.objects.get(pk=task.result["backup"])
