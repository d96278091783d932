"""python manage.py register_host NAME [--lxcpath P] [--template-dir D]."""
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from hosts.models import Host


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
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        created = host.pk is None
        host.save()
        self.stdout.write(f"{'Registered' if created else 'Updated'} host {host.name} "
                          f"(lxcpath {host.lxcpath}, templates {host.template_dir}, dumps {host.dump_dir})")
