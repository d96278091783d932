"""RRD-style consolidation keeps each container's samples within a stated bound."""
from datetime import datetime, timedelta, timezone

import pytest

from containers.models import Container
from metrics.consolidate import consolidate, series
from metrics.models import ROW_BOUND, TIERS, Sample


@pytest.fixture
def ct(host, template_name):
    return Container.objects.create(ctid=801, hostname="rrd.test", ostemplate=template_name, host=host,
                                    status="running")


def test_bound_is_what_the_docs_say():
    assert ROW_BOUND == 360 + 1440 + 1440 + 1464 + 4
    doc = open("docs/architecture.md").read()
    assert f"{ROW_BOUND} rows per container" in doc


def test_a_simulated_year_stays_within_the_bound(ct):
    """A year of samples: 6-hour steps with a sample every 10 minutes (consolidated after each
    step), then the last two hours at the real pace, a sample every 10 s and consolidation every
    minute, as the agent does. The row count never passes the bound."""
    now = datetime(2025, 1, 1, tzinfo=timezone.utc)
    highest = 0

    def add(every_s: int, count: int):
        nonlocal now
        Sample.objects.bulk_create([Sample(container=ct, tier=0, at=now + timedelta(seconds=every_s * k),
                                           cpu_pct=float(k % 60), mem_bytes=1000 + k, nproc=k % 7)
                                    for k in range(count)])
        now += timedelta(seconds=every_s * count)
        consolidate(ct.pk, now)

    for i in range(365 * 4 - 1):
        add(600, 36)
        if i % 40 == 0:
            highest = max(highest, Sample.objects.filter(container=ct).count())
    for _ in range(120):
        add(10, 6)
        highest = max(highest, Sample.objects.filter(container=ct).count())
    counts = {tier: Sample.objects.filter(container=ct, tier=tier).count() for tier, _, _ in TIERS}
    assert highest <= ROW_BOUND, (highest, counts)
    for tier, step_s, keep in TIERS:
        assert counts[tier] <= keep // step_s + 1, (tier, counts)
    assert counts[0] == 360 and counts[3] >= 1400  # a full hour of raw samples, a year of 6-hour rows
    # Averages and maxima are carried up: a 6-hour row holds the maxima of its samples.
    top = Sample.objects.filter(container=ct, tier=3).first()
    assert top.cpu_pct_max == 35.0 and top.nproc_max == 6
    for name in ("hour", "day", "week", "month", "year"):
        assert series(ct.pk, name, now), name
