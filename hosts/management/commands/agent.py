"""python manage.py agent [--host NAME]: run the host agent for one host."""
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from hosts.agent import Agent, TokenRejected
from hosts.models import Host


class Command(BaseCommand):
    help = "Run the host agent: the RQ worker for this host's queue (needs root)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.PANEL_HOST_NAME,
                            help="the host this agent serves (default: PANEL_HOST_NAME)")
        parser.add_argument("--burst", action="store_true", help="run queued jobs, then exit")
        parser.add_argument("--issue-token", action="store_true",
                            help="serve with a token issued now (any earlier one stops working), as "
                                 "runpanel does for this machine's agent; it never leaves this process")

    def handle(self, *args, **opts):
        try:
            host = Host.objects.get(name=opts["host"])
        except Host.DoesNotExist:
            raise CommandError(f"host {opts['host']!r} is not registered; run "
                               f"'manage.py register_host {opts['host']}' first") from None
        token = settings.HOST_TOKEN
        if opts["issue_token"]:
            from hosts.services import issue_token
            token = issue_token(None, host)
        elif not token and settings.HOST_TOKEN_FILE:
            try:
                token = open(settings.HOST_TOKEN_FILE).read().strip()
            except OSError as exc:
                raise CommandError(f"cannot read PANEL_HOST_TOKEN_FILE: {exc}") from None
        agent = Agent(host, token)
        try:
            agent.run(burst=opts["burst"])
        except TokenRejected as exc:
            raise CommandError(f"refusing to serve host {host.name}: {exc}") from None
        if agent.revoked:
            raise CommandError(f"host {host.name}'s token was revoked; the agent stopped")
