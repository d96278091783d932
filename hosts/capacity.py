"""What a host has promised against what it has: vzmemcheck, vzcpucheck and vzcalc for the panel."""
from __future__ import annotations

from django.conf import settings
from django.db.models import Sum

MIB = 1024 * 1024


def _committed(host, exclude=None) -> dict:
    from containers.models import Container
    qs = Container.objects.filter(host=host)
    if exclude is not None:
        qs = qs.exclude(pk=exclude.pk)
    sums = qs.aggregate(ram=Sum("ram_mb"), swap=Sum("swap_mb"), cpus=Sum("cpus"), units=Sum("cpuunits"),
                        disk=Sum("disk_mb"))
    return {k: v or 0 for k, v in sums.items()}


def _available(host) -> dict | None:
    stats = host.stats or {}
    if not stats.get("mem_total"):
        return None  # the agent has not reported yet: nothing to compare with
    return {
        "ram": int(stats["mem_total"] // MIB * settings.RAM_OVERCOMMIT),
        "cpus": int(stats.get("cpu_count", 1) * settings.CPU_OVERCOMMIT),
        "disk": int(stats.get("disk_total", 0) // MIB * settings.DISK_OVERCOMMIT),
    }


def capacity_rows(host) -> list[dict]:
    """For the dashboard: each resource promised to containers against the host's (overcommitted) size."""
    used = _committed(host)
    have = _available(host)
    stats = host.stats or {}
    rows = [
        ("Memory (vzmemcheck)", used["ram"], have and have["ram"], "MiB",
         f"{stats.get('mem_total', 0) // MIB} MiB RAM × {settings.RAM_OVERCOMMIT:g}"),
        ("CPUs (vzcpucheck)", used["cpus"], have and have["cpus"], "",
         f"{stats.get('cpu_count', 0)} cores × {settings.CPU_OVERCOMMIT:g}"),
        ("Disk (vzcalc)", used["disk"], have and have["disk"], "MiB",
         f"{stats.get('disk_total', 0) // MIB} MiB × {settings.DISK_OVERCOMMIT:g}"),
    ]
    out = []
    for label, promised, total, unit, basis in rows:
        percent = min(100, round(100 * promised / total)) if total else 0
        out.append({"label": label, "used": promised, "limit": total, "unit": unit, "basis": basis,
                    "percent": percent, "level": "danger" if percent >= 90 else "warning" if percent >= 75 else "success"})
    out.append({"label": "CPU units", "used": used["units"], "limit": None, "unit": "", "percent": 0,
                "basis": "relative weights", "level": "success"})
    return out


def capacity_refusal(host, exclude=None, ram_mb: int = 0, cpus: int = 0, disk_mb: int = 0) -> str | None:
    """Why giving a container these limits would promise more than the host has, or None."""
    have = _available(host)
    if have is None:
        return None
    used = _committed(host, exclude)
    for key, wanted, label, unit in (("ram", ram_mb, "memory", " MiB"), ("cpus", cpus, "CPUs", ""),
                                     ("disk", disk_mb, "disk", " MiB")):
        if have[key] and used[key] + wanted > have[key]:
            return (f"Host {host.name} has not enough {label}: containers there are promised {used[key]}{unit}, "
                    f"this one would add {wanted}{unit}, and the host can promise {have[key]}{unit}. "
                    "An administrator can override.")
    return None


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
