"""RRD-style consolidation: averages and maxima of each tier into the next, and pruning."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone as dt_timezone

from django.db import transaction
from django.db.models import Max

from .models import AVERAGED, MAXED, TIERS, Sample

EPOCH = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)


def bucket_start(when: datetime, step: int) -> datetime:
    seconds = int((when - EPOCH).total_seconds())
    return EPOCH + timedelta(seconds=seconds - seconds % step)


def _aggregate(rows: list[Sample]) -> dict:
    out = {}
    for field in AVERAGED:
        values = [getattr(r, field) for r in rows if getattr(r, field) is not None]
        out[field] = (sum(values) / len(values)) if values else None
        if field in ("mem_bytes", "swap_bytes", "nproc", "disk_used", "inodes_used") and out[field] is not None:
            out[field] = int(round(out[field]))
    for max_field, base in MAXED.items():
        values = [getattr(r, max_field) if getattr(r, max_field) is not None else getattr(r, base) for r in rows]
        values = [v for v in values if v is not None]
        out[max_field] = max(values) if values else None
    return out


def consolidate(container_id: int, now: datetime) -> int:
    """Fill every higher tier up to the last complete period and prune each tier; returns rows written."""
    written = 0
    with transaction.atomic():
        for (tier, step, _keep), (lower, _lstep, _lkeep) in zip(TIERS[1:], TIERS[:-1]):
            last = Sample.objects.filter(container_id=container_id, tier=tier).aggregate(m=Max("at"))["m"]
            end = bucket_start(now, step)
            first_lower = (Sample.objects.filter(container_id=container_id, tier=lower)
                           .order_by("at").values_list("at", flat=True).first())
            if first_lower is None:
                continue
            start = last + timedelta(seconds=step) if last else bucket_start(first_lower, step)
            if start >= end:
                continue
            rows = list(Sample.objects.filter(container_id=container_id, tier=lower, at__gte=start, at__lt=end))
            buckets: dict[datetime, list[Sample]] = {}
            for row in rows:
                buckets.setdefault(bucket_start(row.at, step), []).append(row)
            new = [Sample(container_id=container_id, tier=tier, at=at, **_aggregate(group))
                   for at, group in sorted(buckets.items())]
            Sample.objects.bulk_create(new)
            written += len(new)
        for tier, _step, keep in TIERS:
            Sample.objects.filter(container_id=container_id, tier=tier, at__lt=now - timedelta(seconds=keep)).delete()
    return written


RANGES = {  # name -> (seconds shown, preferred tier)
    "hour": (3600, 0),
    "day": (86400, 1),
    "week": (7 * 86400, 2),
    "month": (30 * 86400, 2),
    "year": (365 * 86400, 3),
}


def series(container_id: int, range_name: str, now: datetime) -> list[Sample]:
    """The samples to draw for a range, from the finest tier that covers it."""
    seconds, tier = RANGES[range_name]
    return list(Sample.objects.filter(container_id=container_id, tier=tier,
                                      at__gte=now - timedelta(seconds=seconds)).order_by("at"))
