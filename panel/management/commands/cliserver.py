"""manage.py cliserver: the command server behind vzctl, vzlist, vzdump... at the shell (panel/cliserver.py)."""
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from panel import cliserver


class Command(BaseCommand):
    help = ("Serve the shell commands (vzctl, vzlist, vzdump, ...) from one process that has Django loaded: "
            "each command runs in a fork of it, as its caller, on the caller's terminal.")

    def add_arguments(self, parser):
        parser.add_argument("--socket", default=settings.CLI_SOCKET,
                            help="where to listen (default: PANEL_CLI_SOCKET, or VAR_DIR/cli/cli.sock)")
        parser.add_argument("--max-sessions", type=int, default=cliserver.MAX_SESSIONS,
                            help="commands at once; past that callers run theirs themselves")

    def handle(self, *args, **opts):
        cliserver.warm_up()
        try:
            cliserver.Server(Path(opts["socket"]), max_sessions=opts["max_sessions"]).serve()
        except RuntimeError as exc:
            raise CommandError(str(exc)) from None
