"""RRD-style consolidation: averages and maxima of each tier into the next, and pruning."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone as dt_timezone

from django.db import transaction
from django.db.models import OuterRef, Q, QuerySet, Subquery

from containers.models import Container

from .models import AVERAGED, MAXED, TIERS, Sample

EPOCH = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)


def bucket_start(when: datetime, step: int) -> datetime:
    seconds = int((when - EPOCH).total_seconds())
    return EPOCH + timedelta(seconds=seconds - seconds % step)


def _aggregate(rows: list[dict]) -> dict:
    out = {}
    for field in AVERAGED:
        values = [r[field] for r in rows if r[field] is not None]
        out[field] = (sum(values) / len(values)) if values else None
        if field in ("mem_bytes", "swap_bytes", "nproc", "disk_used", "inodes_used") and out[field] is not None:
            out[field] = int(round(out[field]))
    for max_field, base in MAXED.items():
        values = [r[max_field] if r[max_field] is not None else r[base] for r in rows]
        values = [v for v in values if v is not None]
        out[max_field] = max(values) if values else None
    return out


class Consolidator:
    """Fills every higher tier of a set of containers up to its last complete period and prunes each
    tier, pass after pass, in a fixed number of queries whatever the number of containers.

    A tier gains rows only when a period of it ends: between two such ends a pass does not look at it.
    When one ended, only containers with rows of the tier below in the periods completed since the
    last pass are consolidated (the others, stopped ones among them, have nothing new to add); a
    container it has not seen before (the first pass after a start, one moved in) is looked at whole,
    from its own last row of each tier, as it always was.
    """

    def __init__(self, containers: QuerySet):
        self.containers = containers  # a queryset of Container, read again at each pass
        self.known: set[int] = set()
        self.done_until: dict[int, datetime] = {}  # tier -> where its complete periods ended at the last pass

    def run(self, now: datetime) -> int:
        """One pass: returns the rows written."""
        ids = set(self.containers.values_list("pk", flat=True))
        newcomers = ids - self.known
        written, done_until = 0, {}
        with transaction.atomic():
            for (tier, step, _keep), (lower, _lstep, _lkeep) in zip(TIERS[1:], TIERS[:-1]):
                end = done_until[tier] = bucket_start(now, step)
                due = set(newcomers)
                since = self.done_until.get(tier)
                if since is not None and since < end:
                    due |= set(Sample.objects.filter(container__in=self.containers.values("pk"), tier=lower,
                                                     at__gte=since, at__lt=end)
                               .values_list("container_id", flat=True).distinct())
                if due:
                    written += _consolidate_tier(due, tier, step, lower, end)
            for tier, _step, keep in TIERS:
                Sample.objects.filter(container__in=self.containers.values("pk"), tier=tier,
                                      at__lt=now - timedelta(seconds=keep)).delete()
        self.known, self.done_until = ids, done_until
        return written


def _consolidate_tier(container_ids: set[int], tier: int, step: int, lower: int, end: datetime) -> int:
    """The rows of `tier` for the complete periods before `end` that these containers do not have yet,
    from their rows of the tier below: three queries and one bulk insert."""
    last_row = Sample.objects.filter(container=OuterRef("pk"), tier=tier).order_by("-at").values("at")[:1]
    first_lower = Sample.objects.filter(container=OuterRef("pk"), tier=lower).order_by("at").values("at")[:1]
    # Containers that start from the same period are read together: after the first pass, nearly all.
    by_start: dict[datetime, list[int]] = {}
    for ct_id, last, first in (Container.objects.filter(pk__in=container_ids)
                               .annotate(last=Subquery(last_row), first=Subquery(first_lower))
                               .values_list("pk", "last", "first")):
        if first is None:
            continue
        start = last + timedelta(seconds=step) if last else bucket_start(first, step)
        if start < end:
            by_start.setdefault(start, []).append(ct_id)
    if not by_start:
        return 0
    window = Q()
    for start, members in by_start.items():
        window |= Q(container_id__in=members, at__gte=start)
    buckets: dict[tuple[int, datetime], list[dict]] = {}
    for row in (Sample.objects.filter(window, tier=lower, at__lt=end).order_by("container_id", "at")
                .values("container_id", "at", *AVERAGED, *MAXED)):
        buckets.setdefault((row["container_id"], bucket_start(row["at"], step)), []).append(row)
    Sample.objects.bulk_create([Sample(container_id=ct_id, tier=tier, at=at, **_aggregate(group))
                                for (ct_id, at), group in sorted(buckets.items())])
    return len(buckets)


def consolidate(container_id: int, now: datetime) -> int:
    """One container's pass, as if seen for the first time; returns rows written."""
    return Consolidator(Container.objects.filter(pk=container_id)).run(now)


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
