"""One-time set-up that `make run` performs: admin user, this host, a default OS template."""
import os
import pwd
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from containers.engine.busybox import build_busybox_template
from containers.engine.commands import run


class Command(BaseCommand):
    help = "Create the admin user, register this machine as a host and build the busybox template."

    def handle(self, *args, **opts):
        call_command("ensure_admin", stdout=self.stdout)
        call_command("register_host", settings.PANEL_HOST_NAME, stdout=self.stdout)
        path = build_busybox_template(settings.PANEL_TEMPLATE_DIR)
        self.stdout.write(f"Default OS template: {path}")
        if settings.WEB_USER and os.geteuid() == 0:
            self.web_user_owns_its_files(settings.WEB_USER)

    def web_user_owns_its_files(self, name: str) -> None:
        """The unprivileged user the web server runs as: it may read and write the database and
        the uploads, read the secret key, and nothing more. The admin password stays root's."""
        try:
            pwd.getpwnam(name)
        except KeyError:
            run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                 "--shell", "/usr/sbin/nologin", name])
            self.stdout.write(f"Created the system user {name} for the web server")
        user = pwd.getpwnam(name)
        var = Path(settings.VAR_DIR)
        os.chown(var, 0, user.pw_gid)
        os.chmod(var, 0o770)  # SQLite makes its -wal and -shm files next to the database
        for path, owner, mode in ((settings.DB_PATH, user.pw_uid, 0o660), (var / "secret_key", 0, 0o640)):
            path = Path(path)
            if path.exists():
                os.chown(path, owner, user.pw_gid)
                os.chmod(path, mode)
        # var/redis and var/run are redis's, never the web user's (tasks/redis_server.py, at each start).
        # Uploads stream onto the backup storage, into a directory of the web user's own; the dump
        # directory above it is root's and the panel's group's only (archives are 0640).
        uploads, dump = Path(settings.UPLOAD_DIR), Path(settings.PANEL_DUMP_DIR)
        dump.mkdir(parents=True, exist_ok=True)
        if uploads.parent == dump:
            os.chown(dump, 0, user.pw_gid)
            os.chmod(dump, 0o750)
        uploads.mkdir(parents=True, exist_ok=True)
        os.chown(uploads, user.pw_uid, user.pw_gid)
        os.chmod(uploads, 0o700)
        for extra in (Path(str(settings.DB_PATH) + "-wal"), Path(str(settings.DB_PATH) + "-shm")):
            if extra.exists():
                os.chown(extra, user.pw_uid, user.pw_gid)
