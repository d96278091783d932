"""Create the admin user once: password from PANEL_ADMIN_PASSWORD or generated."""
import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the superuser 'admin' if missing; a generated password is printed once."

    def handle(self, *args, **opts):
        User = get_user_model()
        if User.objects.filter(username="admin").exists():
            self.stdout.write("Admin user 'admin' exists; keeping its password.")
            return
        password = os.environ.get("PANEL_ADMIN_PASSWORD")
        generated = not password
        if generated:
            password = secrets.token_urlsafe(12)
        User.objects.create_superuser("admin", "", password)
        if generated:
            path = Path(settings.VAR_DIR) / "admin-password"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(password + "\n")
            os.chmod(path, 0o600)
            self.stdout.write(self.style.WARNING(
                f"Created user 'admin' with password: {password}\n"
                f"(shown once; also saved in {path}, readable by root only)"))
        else:
            self.stdout.write("Created user 'admin' with the password from PANEL_ADMIN_PASSWORD.")
