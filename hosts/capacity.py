"""What a host has promised against what it has: vzmemcheck, vzcpucheck and vzcalc for the panel."""
from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Sum

from tasks.services import TaskError

MIB = 1024 * 1024


def _committed(host, exclude=None) -> dict:
    from containers.models import Container
    qs = Container.objects.filter(host=host)
    if exclude is not None:
        qs = qs.exclude(pk=exclude.pk)
    sums = qs.aggregate(ram=Sum("ram_mb"), swap=Sum("swap_mb"), cpus=Sum("cpus"), units=Sum("cpuunits"),
                        disk=Sum("disk_mb"))
    return {k: v or 0 for k, v in sums.items()}


# Each resource: what a refusal calls it, the host's promise that bounds it, and its unit.
RESOURCES = (("ram", "memory", "RAM", " MiB"), ("cpus", "CPUs", "CPU", ""), ("disk", "disk", "disk", " MiB"))


def _available(host) -> dict | None:
    """What the host may promise in all under its policy; None for a resource that is not a limit
    (CPUs by default), None altogether while the agent has not reported the host's size."""
    stats = host.stats or {}
    if not stats.get("mem_total"):
        return None  # the agent has not reported yet: nothing to compare with
    return {
        "ram": int(stats["mem_total"] // MIB * host.ram_promise),
        "cpus": None if host.cpu_promise is None else int(stats.get("cpu_count", 1) * host.cpu_promise),
        "disk": int(stats.get("disk_total", 0) // MIB * host.disk_promise),
    }


def _ratio(value) -> str:
    return "(not a limit: CPU time is shared)" if value is None else f"× {value:g}"


def capacity_rows(host) -> list[dict]:
    """For the dashboard: each resource promised to containers against the host's (overcommitted) size."""
    used = _committed(host)
    have = _available(host)
    stats = host.stats or {}
    rows = [
        ("Memory (vzmemcheck)", used["ram"], have and have["ram"], "MiB",
         f"{stats.get('mem_total', 0) // MIB} MiB RAM {_ratio(host.ram_promise)}"),
        ("CPUs (vzcpucheck)", used["cpus"], have and have["cpus"], "",
         f"{stats.get('cpu_count', 0)} cores {_ratio(host.cpu_promise)}"),
        ("Disk (vzcalc)", used["disk"], have and have["disk"], "MiB",
         f"{stats.get('disk_total', 0) // MIB} MiB {_ratio(host.disk_promise)}"),
    ]
    out = []
    for label, promised, total, unit, basis in rows:
        percent = min(100, round(100 * promised / total)) if total else 0
        out.append({"label": label, "used": promised, "limit": total, "unit": unit, "basis": basis,
                    "percent": percent, "level": "danger" if percent >= 90 else "warning" if percent >= 75 else "success"})
    out.append({"label": "CPU units", "used": used["units"], "limit": None, "unit": "", "percent": 0,
                "basis": "relative weights", "level": "success"})
    return out


@dataclass(frozen=True)
class Shortfall:
    """One resource a host cannot promise: the numbers every refusal is written from."""
    host: str
    resource: str      # "memory", "CPUs", "disk"
    policy: str        # "RAM", "CPU", "disk": the host's promise an administrator can raise
    unit: str
    promised: int      # to the containers there now
    wanted: int        # by this one
    can_promise: int   # under the host's policy

    @property
    def short(self) -> int:
        return self.promised + self.wanted - self.can_promise

    def numbers(self, adding: str = "this one") -> str:
        return (f"containers there are promised {self.promised}{self.unit}, {adding} would add "
                f"{self.wanted}{self.unit}, and the host can promise {self.can_promise}{self.unit}: "
                f"{self.short}{self.unit} short")

    def message(self, action: str = "create", adding: str = "this one") -> str:
        """`action` names what is refused ("create", "class import" ...), `adding` what asked for the room."""
        return (f"Host {self.host} has not enough {self.resource}: {self.numbers(adding)}. An administrator can "
                f"raise the host's {self.policy} promise (on the host's page) or override this {action}.")


class InsufficientCapacity(TaskError):
    """A refusal for want of room on a host. Every path that checks capacity raises this one, so
    every refusal says what is short, by how much, where, and who can change it."""

    http_status = 409

    def __init__(self, shortfall: Shortfall, action: str = "create", adding: str = "this one"):
        self.shortfall = shortfall
        super().__init__(shortfall.message(action, adding))


def shortfall(host, exclude=None, ram_mb: int = 0, cpus: int = 0, disk_mb: int = 0) -> Shortfall | None:
    """The first resource that giving a container these limits would promise past the host's
    policy, or None."""
    have = _available(host)
    if have is None:
        return None
    used = _committed(host, exclude)
    wanted = {"ram": ram_mb, "cpus": cpus, "disk": disk_mb}
    for key, resource, policy, unit in RESOURCES:
        if have[key] and used[key] + wanted[key] > have[key]:
            return Shortfall(host.name, resource, policy, unit, used[key], wanted[key], have[key])
    return None


def headroom(host) -> dict:
    """What is left on a host under its policy, as a tenant admin may see it: free RAM, disk and
    (when limited) CPUs, with no word on whose containers use the rest."""
    have, used = _available(host), _committed(host)
    free = {}
    for key, *_ in RESOURCES:
        limit = have[key] if have else None
        free[key] = None if limit is None else max(0, limit - used[key])
    return {"host": host.name, "known": have is not None, "ram_mb": free["ram"], "cpus": free["cpus"],
            "disk_mb": free["disk"], "cpu_limited": host.cpu_promise is not None}


def headroom_for(user) -> list[dict]:
    """headroom() of each host `user` may place containers on (accounts.permissions.placeable_hosts):
    what a tenant admin needs to know why a create would be refused, and nothing of other tenants."""
    from accounts.permissions import placeable_hosts
    return [headroom(host) for host in placeable_hosts(user)]


def _percent(part, whole) -> float | None:
    return round(100 * part / whole, 2) if part is not None and whole else None


def container_shares(ct) -> list[tuple[str, float | None, float | None]]:
    """vzcalc: the share of its host one container uses now (its last sample) and is promised
    (its limits), in percent of what the host has; None where either is not known."""
    from metrics.models import Sample
    stats = ct.host.stats or {}
    sample = Sample.objects.filter(container=ct, tier=0).order_by("-at").first() if ct.status == "running" else None
    mem, swap = stats.get("mem_total"), stats.get("swap_total", 0)

    def now(field):
        return getattr(sample, field, None) if sample else (0 if ct.status != "running" else None)
    used_mem, used_swap = now("mem_bytes"), now("swap_bytes")
    cpu = now("cpu_pct")
    return [
        ("Total RAM", _percent(used_mem, mem), _percent(ct.ram_mb * MIB, mem)),
        ("Mem + Swap", _percent(None if used_mem is None else used_mem + (used_swap or 0), (mem or 0) + swap),
         _percent((ct.ram_mb + ct.swap_mb) * MIB, (mem or 0) + swap)),
        ("CPUs", _percent(cpu, 100 * stats.get("cpu_count", 0)), _percent(ct.cpus, stats.get("cpu_count"))),
        ("Disk", _percent(now("disk_used"), stats.get("disk_total")), _percent(ct.disk_mb * MIB, stats.get("disk_total"))),
    ]


def memcheck(host) -> tuple[list[tuple[int, list[float | None]]], list[float | None]]:
    """vzmemcheck: per container on `host`, RAM and RAM+swap used now and promised, in percent of the
    host's; and their sums. (The panel has no low memory or allocated memory to speak of.)"""
    from containers.models import Container
    rows, totals = [], [0.0, 0.0, 0.0, 0.0]
    for ct in Container.objects.filter(host=host).order_by("ctid"):
        shares = dict((name, (now, promised)) for name, now, promised in container_shares(ct))
        values = [*shares["Total RAM"], *shares["Mem + Swap"]]
        rows.append((ct.ctid, values))
        totals = [t + (v or 0) for t, v in zip(totals, values)]
    return rows, [round(t, 2) for t in totals]
