"""python manage.py prepare_redis: set up the panel's redis-server for a service manager to start.

What runpanel does before it starts redis (tasks/redis_server.py): the password files, the redis and
run directories, and redis.conf with every client's ACL user. The production unit vzpanel-redis runs
this as root before it starts `redis-server VAR/redis/redis.conf` as the redis user.
"""
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from tasks.redis_server import RedisSetupError, prepare


class Command(BaseCommand):
    help = "Write redis.conf and the Redis password files under PANEL_VAR_DIR (root: as runpanel does)."

    def handle(self, *args, **opts):
        try:
            argv, sock = prepare(Path(settings.VAR_DIR), web_group=settings.WEB_USER or None)
        except RedisSetupError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"redis-server ready to start: {argv[-1]} (socket {sock})")
