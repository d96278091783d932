"""python manage.py register_host NAME [--lxcpath P] [--template-dir D]."""
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from hosts.models import HOST_PATHS, Host
from panel.validators import clean_host_path, messages


class Command(BaseCommand):
    help = "Register a host (or update its paths) so an agent can serve it."

    def add_arguments(self, parser):
        parser.add_argument("name", nargs="?", default=settings.PANEL_HOST_NAME)
        parser.add_argument("--lxcpath", default=settings.PANEL_LXCPATH)
        parser.add_argument("--template-dir", default=settings.PANEL_TEMPLATE_DIR)
        parser.add_argument("--dump-dir", default=settings.PANEL_DUMP_DIR)

    def handle(self, *args, **opts):
        host = Host.objects.filter(name=opts["name"]).first() or Host(name=opts["name"])
        host.lxcpath, host.template_dir, host.dump_dir = opts["lxcpath"], opts["template_dir"], opts["dump_dir"]
        try:
            host.full_clean()
        except ValidationError as exc:
            raise CommandError(messages(exc)) from None
        for field in HOST_PATHS:
            setattr(host, field, clean_host_path(getattr(host, field)))
        created = host.pk is None
        host.save()
        self.stdout.write(f"{'Registered' if created else 'Updated'} host {host.name} "
                          f"(lxcpath {host.lxcpath}, templates {host.template_dir}, dumps {host.dump_dir})")
