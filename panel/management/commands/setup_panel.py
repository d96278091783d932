"""One-time set-up that `make run` performs: admin user, this host, a default OS template."""
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from containers.engine.busybox import build_busybox_template


class Command(BaseCommand):
    help = "Create the admin user, register this machine as a host and build the busybox template."

    def handle(self, *args, **opts):
        call_command("ensure_admin", stdout=self.stdout)
        call_command("register_host", settings.PANEL_HOST_NAME, stdout=self.stdout)
        path = build_busybox_template(settings.PANEL_TEMPLATE_DIR)
        self.stdout.write(f"Default OS template: {path}")
