#!/usr/bin/env python3
"""The container list at scale, run by hand (not part of `make test`; no LXC, no root needed):
server time, bytes and queries per page of the list page and the API list with N containers,
each next to the raw SQL that reads the same rows, interleaved in the same run.

    .venv/bin/python bench/bench_lists.py [--containers 1000] [--rounds 15]

What is measured, in this process through Django's test client (the whole request: middleware,
session, permission scoping, filterset, table, template or serializer):
- the list page (50 rows) at page 1 and in the middle, sorted by a column, searched, filtered;
- the API list, its pages of 100 (all of them, as a client reading the list would);
- the live poll: nothing changed (204) and one row changed, bytes per update.
The raw reference: sqlite3 on the same database file, the same rows with the same joins (host,
lock task, tenant, owner, plan, addresses) and the count, as one connection would read them.
Figures are medians of --rounds, each round taking the panel's request and the raw read in turn,
in CPU time of this process (both run in it), which a busy machine does not inflate as it does the
wall clock; WALL=1 in the environment measures the wall clock instead.

Its own database (a temporary PANEL_VAR_DIR), removed at the end: it never touches a live panel.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
RUN = Path(tempfile.mkdtemp(prefix="vzpb-lists-"))
os.environ.update({
    "PANEL_VAR_DIR": str(RUN), "PANEL_TEMPLATE_DIR": str(RUN / "templates"), "PANEL_HOST_NAME": "bench-lists",
    "DJANGO_SETTINGS_MODULE": "panel.settings", "PANEL_ALLOWED_HOSTS": "testserver",
})
for live in ("PANEL_DB_PATH", "PANEL_DATABASE_URL"):  # a live panel's database is never this bench's
    os.environ.pop(live, None)
sys.path.insert(0, str(BASE))

RAW_PAGE = """
SELECT c.*, h.name, t.slug, u.username, p.name, lt.type
FROM containers_container c JOIN hosts_host h ON h.id = c.host_id
LEFT JOIN tenancy_tenant t ON t.id = c.tenant_id LEFT JOIN accounts_user u ON u.id = c.owner_id
LEFT JOIN tenancy_plan p ON p.id = c.plan_id LEFT JOIN tasks_task lt ON lt.id = c.lock_task_id
{where} ORDER BY {order} LIMIT ? OFFSET ?"""
RAW_ADDRESSES = "SELECT container_id, address, interface FROM network_ipaddress WHERE container_id IN ({}) " \
                "ORDER BY interface, id"
RAW_COUNT = "SELECT COUNT(*) FROM containers_container c {where}"


def setup(n: int):
    import django
    django.setup()
    from django.core.management import call_command
    call_command("migrate", verbosity=0)
    from accounts.models import User
    from containers.models import Container
    from hosts.models import Host
    from network.models import IPAddress
    from tenancy.models import Membership, Tenant
    hosts = [Host.objects.create(name=f"bench-{i}", lxcpath=str(RUN / f"lxc{i}")) for i in range(3)]
    tenants = [Tenant.objects.create(slug=f"t{i}", name=f"Tenant {i}") for i in range(10)]
    admin = User.objects.create_superuser("bench-admin", "a@example.test", "x" * 16)
    tadmin = User.objects.create_user("bench-tadmin", "t@example.test", "x" * 16)
    Membership.objects.create(tenant=tenants[0], user=tadmin, role="admin")
    statuses = ("running", "stopped", "stopped", "running", "frozen")
    Container.objects.bulk_create(
        Container(ctid=100000 + i, hostname=f"ct{i}.bench.example", name=f"ct{i}", ostemplate=f"debian-{11 + i % 2}",
                  host=hosts[i % 3], tenant=tenants[i % 10], status=statuses[i % 5], nproc=i % 40 or None,
                  description=f"container {i} of the bench")
        for i in range(n))
    addresses = []
    for ct in Container.objects.all():
        i = ct.ctid - 100000
        addresses.append(IPAddress(container=ct, address=f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"))
        if i % 2:
            addresses.append(IPAddress(container=ct, address=f"fd00::{i:x}", interface="eth0", prefixlen=64))
    IPAddress.objects.bulk_create(addresses)
    return admin, tadmin


def timed(call) -> tuple[float, object]:
    """CPU seconds of this process for `call()` (the server's work: on a machine shared with other
    jobs the wall clock also counts their turns), and its result. WALL=1 takes the wall clock."""
    clock = time.perf_counter if os.environ.get("WALL") == "1" else time.process_time
    start = clock()
    result = call()
    return clock() - start, result


def raw_rows(db: sqlite3.Connection, where: str, args: tuple, order: str, limit: int, offset: int):
    """What the page reads, by hand: the count, the page's rows with their joins, their addresses."""
    total = db.execute(RAW_COUNT.format(where=where), args).fetchone()[0]
    rows = db.execute(RAW_PAGE.format(where=where, order=order), (*args, limit, offset)).fetchall()
    ids = [r[0] for r in rows]
    addresses = db.execute(RAW_ADDRESSES.format(",".join("?" * len(ids))), ids).fetchall()
    return total, rows, addresses


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--containers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=15)
    opts = parser.parse_args()
    try:
        admin, tadmin = setup(opts.containers)
        run(opts, admin, tadmin)
    finally:
        shutil.rmtree(RUN, ignore_errors=True)


def run(opts, admin, tadmin):
    import re

    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from containers.models import Container
    db = sqlite3.connect(str(settings.DATABASES["default"]["NAME"]))
    n = opts.containers
    middle = max(1, n // 50 // 2)
    cases = [
        # (label, user, url, raw WHERE, args, raw ORDER BY, limit, offset)
        ("page 1", admin, "/containers/", "", (), "c.ct_id", 50, 0),
        (f"page {middle}", admin, f"/containers/?page={middle}", "", (), "c.ct_id", 50, (middle - 1) * 50),
        ("sorted by hostname desc", admin, "/containers/?sort=-hostname", "", (), "c.hostname DESC, c.id DESC", 50, 0),
        ("search 'ct1'", admin, "/containers/?q=ct1",
         "WHERE c.hostname LIKE ? OR c.name LIKE ? OR c.description LIKE ?", ("%ct1%",) * 3, "c.ct_id", 50, 0),
        ("status+host filter", admin, "/containers/?status=running&host=bench-1",
         "WHERE c.status = ? AND c.host_id = (SELECT id FROM hosts_host WHERE name = ?)", ("running", "bench-1"),
         "c.ct_id", 50, 0),
        ("tenant admin, page 1", tadmin, "/containers/",
         "WHERE c.tenant_id IN (SELECT tenant_id FROM tenancy_membership WHERE user_id = ? AND role = 'admin')",
         (tadmin.pk,), "c.ct_id", 50, 0),
    ]
    api_pages = [(f"/api/containers/?limit=100&offset={o}", o) for o in range(0, n, 100)]
    clients = {}
    for user in (admin, tadmin):
        clients[user.pk] = Client()
        clients[user.pk].force_login(user)

    results = {label: {"panel": [], "raw": [], "bytes": 0, "queries": 0} for label, *_ in cases}
    api = {"panel": [], "raw": [], "bytes": 0, "queries": 0}
    floor = []  # an API page of one row: what any signed-in API request costs before the list's own work
    for round_ in range(opts.rounds + 1):  # the first round warms caches and is not counted
        for label, user, url, where, args, order, limit, offset in cases:
            client = clients[user.pk]
            with CaptureQueriesContext(connection) as ctx:
                seconds, response = timed(lambda: client.get(url))
            assert response.status_code == 200, (url, response.status_code)
            raw_seconds, _ = timed(lambda: raw_rows(db, where, args, order, limit, offset))
            if round_:
                results[label]["panel"].append(seconds)
                results[label]["raw"].append(raw_seconds)
            results[label]["bytes"], results[label]["queries"] = len(response.content), len(ctx.captured_queries)
        total, raw_total, byte_total, query_total = 0.0, 0.0, 0, 0
        for url, offset in api_pages:
            with CaptureQueriesContext(connection) as ctx:
                seconds, response = timed(lambda: clients[admin.pk].get(url))
            assert response.status_code == 200
            raw_seconds, _ = timed(lambda: raw_rows(db, "", (), "c.ct_id", 100, offset))
            total += seconds
            raw_total += raw_seconds
            byte_total += len(response.content)
            query_total += len(ctx.captured_queries)
        seconds, response = timed(lambda: clients[admin.pk].get("/api/containers/?limit=1"))
        assert response.status_code == 200
        if round_:
            floor.append(seconds)
            api["panel"].append(total)
            api["raw"].append(raw_total)
        api["bytes"], api["queries"] = byte_total, query_total

    print(f"{n} containers, medians of {opts.rounds} rounds (panel request / raw SQL of the same rows, interleaved)")
    print(f"{'list page':28} {'server ms':>10} {'raw ms':>8} {'ratio':>7} {'KB':>7} {'queries':>8}")
    for label, r in results.items():
        p, raw = statistics.median(r["panel"]) * 1000, statistics.median(r["raw"]) * 1000
        print(f"{label:28} {p:10.1f} {raw:8.2f} {p / raw:6.1f}x {r['bytes'] / 1000:7.1f} {r['queries']:8d}")
    p, raw = statistics.median(api["panel"]) * 1000, statistics.median(api["raw"]) * 1000
    pages = len(api_pages)
    print(f"{'API, all ' + str(pages) + ' pages of 100':28} {p:10.1f} {raw:8.2f} {p / raw:6.1f}x "
          f"{api['bytes'] / 1000:7.1f} {api['queries']:8d}")
    print(f"{'API, per page':28} {p / pages:10.1f} {raw / pages:8.2f} {p / raw:6.1f}x "
          f"{api['bytes'] / pages / 1000:7.1f} {api['queries'] // pages:8d}")
    base = statistics.median(floor) * 1000
    print(f"{'API, a 1-row page (floor)':28} {base:10.1f}")
    print(f"{'API, per page above floor':28} {p / pages - base:10.1f} {raw / pages:8.2f} "
          f"{(p / pages - base) / (raw / pages):6.1f}x")

    # Live updates: the page's poll with the versions it holds.
    client = clients[admin.pk]
    page = client.get("/containers/").content.decode()
    known = ",".join(f"{k}.{v}" for k, v in re.findall(r'<tr data-key="(\d+)" data-v="(\w+)"', page))
    poll = f"/containers/?live=1&known={known}&total={n}"
    quiet, changed = [], []
    for i in range(opts.rounds):
        seconds, response = timed(lambda: client.get(poll))
        assert response.status_code == 204
        quiet.append((seconds, len(response.content)))
        Container.objects.filter(ctid=100000 + i % 50).update(nproc=1000 + i)  # one row on the page changes
        seconds, response = timed(lambda: client.get(poll))
        assert response.status_code == 200
        changed.append((seconds, len(response.content)))
        Container.objects.filter(ctid=100000 + i % 50).update(nproc=(i % 50) % 40 or None)
    for label, samples in (("live poll, nothing changed", quiet), ("live poll, one row changed", changed)):
        ms = statistics.median(s for s, _ in samples) * 1000
        size = statistics.median(b for _, b in samples)
        print(f"{label:28} {ms:10.1f} ms  {size:6.0f} bytes")


if __name__ == "__main__":
    main()
