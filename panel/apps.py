import os
from pathlib import Path

from django.apps import AppConfig
from django.db.backends.signals import connection_created


def _sqlite_side_files_stay_the_databases(sender, connection, **kwargs):
    """Root's processes (the agent, the shell commands) open the SQLite database too. The -wal and
    -shm files the first opener makes must belong to the database's owner, or the web user,
    opening it next, gets "attempt to write a readonly database"."""
    if connection.vendor != "sqlite" or os.geteuid() != 0:
        return
    database = Path(str(connection.settings_dict["NAME"]))
    try:
        owner = database.stat()
    except OSError:
        return
    for side in (database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")):
        try:
            found = side.stat()
            if (found.st_uid, found.st_gid) != (owner.st_uid, owner.st_gid):
                os.chown(side, owner.st_uid, owner.st_gid)
        except OSError:
            pass


class PanelConfig(AppConfig):
    name = "panel"

    def ready(self):
        connection_created.connect(_sqlite_side_files_stay_the_databases)
