"""The agent's sampler: every running container's beancounters and usage, every 10 s.

Runs in the agent's housekeeping process. One Sample row and one Beancounters update
per container per round; a failcnt that rose (or a soft disk limit passed) becomes
a ContainerEvent. Consolidation into the coarser tiers (metrics/consolidate.py) is
a duty of its own there, once a minute.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict

from django.db import transaction
from django.utils import timezone

from containers.choices import ContainerStatus
from containers.engine import diskimage, netstats
from containers.engine.cgroups import Cgroup, CgroupError
from containers.jobs import limits_for
from containers.models import Container

from .models import Beancounters, ContainerEvent, Sample

logger = logging.getLogger("vzpanel.sampler")


class Sampler:
    def __init__(self, host, lxc):
        self.host = host
        self.lxc = lxc
        # ctid -> (monotonic time, cpu_ns, io read, io write, net in, net out) of the last round
        self.previous: dict[int, tuple] = {}

    def round(self) -> int:
        """Sample every running container of the host once; returns how many were sampled."""
        containers = list(Container.objects.filter(host=self.host, status=ContainerStatus.RUNNING)
                          .select_related("tenant"))
        if not containers:
            return 0  # at rest: no netlink dump, no mount table
        try:
            from pyroute2 import IPRoute
            with IPRoute() as ipr:
                net = netstats.interface_bytes(ipr)
        except Exception:  # no netlink (should not happen on a host): network is then "not measured"
            net = {}
        now = timezone.now()
        from network.models import NetInterface
        host_names: dict[int, list[str]] = {}
        for ct_id, name in NetInterface.objects.filter(container__in=containers).values_list("container_id", "host_ifname"):
            host_names.setdefault(ct_id, []).append(name)
        mounts = diskimage.read_mount_table()
        sampled = 0
        from storage.jobs import pools_from_rows
        with pools_from_rows(self.lxc, containers):  # each container's pool from its row: no query each
            for ct in containers:
                try:
                    self._sample(ct, now, net, mounts, host_names.get(ct.pk))
                    sampled += 1
                except CgroupError:
                    self.previous.pop(ct.ctid, None)  # stopped meanwhile: the next round starts afresh
                except Exception:
                    logger.exception("sampling CT %s failed", ct.ctid)
        return sampled

    def _sample(self, ct: Container, now, net: dict, mounts: diskimage.MountTable,
                host_names: list[str] | None = None) -> None:
        cgroup = Cgroup(str(ct.ctid))
        limits = limits_for(ct)
        counters = cgroup.beancounters(limits)
        usage = cgroup.usage()
        disk = self.lxc.disk_usage(ct.ctid, mounts)
        net_bytes = netstats.container_bytes(net, ct.ctid, host_names)
        clock = time.monotonic()
        current = (clock, usage.cpu_ns, usage.io_read_bytes, usage.io_write_bytes,
                   *(net_bytes if net_bytes else (None, None)))
        rates = _rates(self.previous.get(ct.ctid), current)
        self.previous[ct.ctid] = current
        by_name = {c.resource: c for c in counters}
        mem = by_name.get("physpages")
        swap = by_name.get("swappages")
        page = 4096
        sample = Sample(
            container=ct, tier=0, at=now,
            cpu_pct=rates.get("cpu"), mem_bytes=mem.held * page if mem and mem.held is not None else None,
            swap_bytes=swap.held * page if swap and swap.held is not None else None, nproc=usage.nproc,
            net_rx_bps=rates.get("net_in"), net_tx_bps=rates.get("net_out"),
            disk_read_bps=rates.get("io_read"), disk_write_bps=rates.get("io_write"),
            disk_used=disk.used_bytes if disk else None, inodes_used=disk.inodes_used if disk else None)
        rows = [asdict(c) for c in counters]
        if disk:
            rows += _disk_counters(ct, disk)
        with transaction.atomic():
            sample.save()
            snapshot, created = Beancounters.objects.get_or_create(container=ct, defaults={"counters": rows})
            if not created:
                self._events(ct, snapshot.counters, rows, now)
                Beancounters.objects.filter(pk=snapshot.pk).update(counters=rows, updated_at=now)

    def _events(self, ct: Container, before: list[dict], after: list[dict], now) -> None:
        old = {c["resource"]: c for c in before}
        events = []
        for c in after:
            was = old.get(c["resource"], {})
            if c.get("failcnt") is not None and was.get("failcnt") is not None and c["failcnt"] > was["failcnt"]:
                events.append(f"{c['resource']} failcnt rose from {was['failcnt']} to {c['failcnt']}")
            if c["resource"] in ("diskspace", "diskinodes") and c.get("barrier") is not None:
                over, was_over = c["held"] > c["barrier"], (was.get("held") or 0) > (was.get("barrier") or 1 << 62)
                if over and not was_over:
                    events.append(f"{c['resource']} passed its soft limit: {c['held']} of {c['barrier']}")
        ContainerEvent.objects.bulk_create([
            ContainerEvent(container=ct, ctid=ct.ctid, tenant=ct.tenant, host=self.host, at=now, kind="resource",
                           resource=text.split()[0], message=text) for text in events])


def _rates(before: tuple | None, now: tuple) -> dict:
    if before is None:
        return {}
    elapsed = now[0] - before[0]
    if elapsed <= 0:
        return {}
    out = {}
    for i, key in enumerate(("cpu", "io_read", "io_write", "net_in", "net_out"), start=1):
        if now[i] is None or before[i] is None or now[i] < before[i]:
            continue
        delta = now[i] - before[i]
        out[key] = (delta / 1e9 / elapsed * 100) if key == "cpu" else delta / elapsed
    return out


def _disk_counters(ct: Container, disk) -> list[dict]:
    """diskspace (1K blocks) and diskinodes, as vzquota showed them: held, soft (barrier), hard (limit)."""
    # The limits are what the filesystem enforces (statvfs), the barriers the soft limits set, if any.
    space_limit, inode_limit = disk.total_bytes // 1024, disk.inodes_total
    if not inode_limit:  # btrfs: inodes are made as needed and no limit on them can be enforced
        inodes = {"resource": "diskinodes", "held": None, "maxheld": None, "barrier": None, "limit": None,
                  "failcnt": None, "measured": False,
                  "note": "not enforceable on this storage pool (btrfs makes inodes as it needs them)"}
    else:
        inodes = {"resource": "diskinodes", "held": disk.inodes_used, "maxheld": None,
                  "barrier": min(ct.diskinodes_soft, inode_limit) if ct.diskinodes_soft else inode_limit,
                  "limit": inode_limit, "failcnt": None, "measured": True,
                  "note": "the hard limit is what the container's filesystem allows"}
    return [
        {"resource": "diskspace", "held": disk.used_bytes // 1024, "maxheld": None,
         "barrier": min(ct.disk_soft_mb * 1024, space_limit) if ct.disk_soft_mb else space_limit,
         "limit": space_limit, "failcnt": None, "measured": True,
         "note": "1K blocks; the hard limit is the size of the container's filesystem"},
        inodes,
    ]
