"""python manage.py agent [--host NAME]: run the host agent for one host."""
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from hosts.agent import Agent
from hosts.models import Host


class Command(BaseCommand):
    help = "Run the host agent: the RQ worker for this host's queue (needs root)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.PANEL_HOST_NAME,
                            help="the host this agent serves (default: PANEL_HOST_NAME)")
        parser.add_argument("--burst", action="store_true", help="run queued jobs, then exit")

    def handle(self, *args, **opts):
        try:
            host = Host.objects.get(name=opts["host"])
        except Host.DoesNotExist:
            raise CommandError(f"host {opts['host']!r} is not registered; run "
                               f"'manage.py register_host {opts['host']}' first") from None
        Agent(host).run(burst=opts["burst"])
