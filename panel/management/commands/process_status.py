"""manage.py process_status: what the production units tell the dashboard about themselves.

    ExecStartPost=+... manage.py process_status started agent $MAINPID
    ExecStopPost=+...  manage.py process_status exited agent   (reads SERVICE_RESULT, EXIT_CODE, EXIT_STATUS)
    ExecStartPre=+...  manage.py process_status backoff agent  (waits the restart back-off of its last crash)
"""
import os
import time

from django.core.management.base import BaseCommand, CommandError

from panel import process_status

NAMES = ("web", "agent", "scheduler", "redis")


class Command(BaseCommand):
    help = "Record that one of the panel's processes started or exited (for the dashboard; used by systemd units)."

    def add_arguments(self, parser):
        parser.add_argument("event", choices=["started", "exited", "backoff"])
        parser.add_argument("name", choices=NAMES)
        parser.add_argument("pid", nargs="?", default="")

    def handle(self, *args, event, name, pid, **opts):
        if event == "backoff":
            wait = process_status.backoff_wait(name)
            if wait > 0:
                self.stdout.write(f"{name} crashed {wait:.0f} s ago or less: restarting it after a back-off of {wait:.0f} s")
                time.sleep(wait)
            return
        if event == "started":
            if pid and not pid.isdigit():
                raise CommandError(f"not a process id: {pid!r}")
            process_status.note_started(name, int(pid) if pid else None)
            return
        result = os.environ.get("SERVICE_RESULT", "success")
        status = process_status.exit_status(os.environ.get("EXIT_CODE", ""), os.environ.get("EXIT_STATUS", ""))
        process_status.note_exited(name, failed=result != "success", status=status)
