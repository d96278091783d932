#!/usr/bin/env python3
"""Run pytest against a real PostgreSQL server that this script starts and removes.

`make test` runs the database-touching tests a second time this way, so the panel is
known to work on the database several hosts share. Usage: with_postgres.py [PYTEST ARGS...]
"""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def bindir() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not versions:
        sys.exit("PostgreSQL is not installed (Debian package postgresql): make test installs it")
    return versions[-1].parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    pg = bindir()
    owner = pwd.getpwnam("postgres")  # initdb refuses to run as root
    work = Path(tempfile.mkdtemp(prefix="vzpg-"))
    os.chown(work, owner.pw_uid, owner.pw_gid)
    data, sock = work / "data", work
    as_postgres = ["setpriv", f"--reuid={owner.pw_uid}", f"--regid={owner.pw_gid}", "--init-groups", "--"]
    port = free_port()
    try:
        subprocess.run([*as_postgres, str(pg / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                        "--no-sync", "-E", "UTF8"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([*as_postgres, str(pg / "pg_ctl"), "-D", str(data), "-l", str(work / "server.log"), "-w",
                        "-o", f"-k {sock} -p {port} -c listen_addresses='' -c fsync=off -c full_page_writes=off",
                        "start"], check=True, stdout=subprocess.DEVNULL)
        env = dict(os.environ, PANEL_DATABASE_URL=f"postgresql://postgres@/vzpanel?host={sock}&port={port}",
                   PGPORT=str(port))
        env["PANEL_DATABASE_URL"] = f"postgresql://postgres@localhost:{port}/vzpanel?host={sock}"
        print(f"PostgreSQL {pg.parent.name} on {sock} port {port}", flush=True)
        return subprocess.call([sys.executable, "-m", "pytest", *sys.argv[1:]], env=env)
    finally:
        subprocess.run([*as_postgres, str(pg / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.2)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
