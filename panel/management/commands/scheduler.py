"""python manage.py scheduler: the panel's recurring work (expiry, backup jobs).

Runs one pass a minute. A Redis lock makes a second scheduler harmless: only one
pass runs at a time, wherever the schedulers are.
"""
import logging
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from accounts.audit import current_address
from tasks.queue import SCHEDULER_LOCK_KEY, redis_connection

logger = logging.getLogger("vzpanel.scheduler")


def run_pass() -> list[str]:
    from backups.jobs_service import due_runs, finish_runs
    from tenancy.expiry import enforce_expiry
    lines = []
    # Each part on its own: one failing must not keep the others from their work.
    for part in (enforce_expiry, finish_runs, due_runs):
        try:
            lines += part()
        except Exception:
            logger.exception("scheduler: %s failed", part.__name__)
    return lines


class Command(BaseCommand):
    help = "Run the panel's recurring work: expiry of containers and classes, backup jobs and their reports."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="one pass, then exit")

    def handle(self, *args, **opts):
        current_address.set("scheduler")
        interval = settings.SCHEDULER_SECONDS
        while True:
            started = time.monotonic()
            if redis_connection().set(SCHEDULER_LOCK_KEY, "1", nx=True, ex=max(5, interval - 1)):
                try:
                    for line in run_pass():
                        self.stdout.write(line)
                except Exception:
                    logger.exception("scheduler pass failed")
                finally:
                    close_old_connections()
            if opts["once"]:
                return
            time.sleep(max(1.0, interval - (time.monotonic() - started)))
