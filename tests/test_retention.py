"""backups.retention.select: Proxmox VE's prune semantics, by properties over random histories,
by an independent oracle for each single rule, and by hand-worked examples."""
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, assume, example, given, settings, strategies as st

from backups.retention import RULES, normalize, select
from backups.services import prune_plan

UTC = dt_timezone.utc
BASE = datetime(2023, 11, 20, tzinfo=UTC)
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def keep(items, retention, tz="UTC"):
    with timezone.override(tz):
        return select(items, retention)


# Histories: up to 60 backups over ~15 months, minutes apart to months apart, some at the same
# minute; ids are unique ints.
def histories(max_size=60, span_minutes=460 * 24 * 60):
    offsets = st.lists(st.one_of(st.integers(0, span_minutes), st.integers(0, 3 * 24 * 60)),
                       min_size=0, max_size=max_size)
    return offsets.map(lambda ms: [(i, BASE + timedelta(minutes=m)) for i, m in enumerate(ms)])


counts = st.one_of(st.none(), st.integers(0, 8))
retentions = st.fixed_dictionaries({}, optional={rule: counts for rule in RULES})
# The rules whose periods nest (hour in day in month in year; hour in day in ISO week). ISO weeks
# straddle months and years, so weekly together with monthly/yearly is not monotonic in Proxmox
# either (see test_weekly_then_monthly_follows_proxmox_not_monotonic).
NESTED = [("keep_last", "keep_hourly", "keep_daily", "keep_monthly", "keep_yearly"),
          ("keep_last", "keep_hourly", "keep_daily", "keep_weekly")]
nested_retentions = st.sampled_from(NESTED).flatmap(
    lambda rules: st.fixed_dictionaries({}, optional={rule: counts for rule in rules}))


def active(retention) -> bool:
    return any((v or 0) >= 1 for v in retention.values())


def newest_first(items):
    return sorted(items, key=lambda it: (it[1], it[0]), reverse=True)


# -- properties -------------------------------------------------------------------------
@PROPERTY
@given(histories(), retentions)
def test_never_keeps_more_than_the_sum_of_the_keep_values(items, retention):
    kept = keep(items, retention)
    assert kept <= {i for i, _ in items}
    if active(retention):
        assert len(kept) <= sum(v or 0 for v in retention.values())
    else:
        assert kept == {i for i, _ in items}  # nothing set: everything is kept


@PROPERTY
@given(histories(), st.integers(0, 70))
def test_keep_last_keeps_exactly_the_n_newest(items, n):
    kept = keep(items, {"keep_last": n})
    if n == 0:
        assert kept == {i for i, _ in items}  # 0 means "not used"
    else:
        assert kept == {i for i, _ in newest_first(items)[:n]}


@PROPERTY
@given(histories(), retentions)
def test_the_n_newest_are_kept_whatever_else_is_set(items, retention):
    n = retention.get("keep_last") or 0
    assert {i for i, _ in newest_first(items)[:n]} <= keep(items, retention)


@PROPERTY
@given(histories(), retentions)
def test_the_newest_backup_is_always_kept(items, retention):
    assume(items and active(retention))
    assert newest_first(items)[0][0] in keep(items, retention)


@PROPERTY
@given(histories(), nested_retentions, st.data())
def test_raising_a_keep_value_never_removes_a_kept_backup(items, retention, data):
    assume(active(retention))
    rule = data.draw(st.sampled_from(sorted(retention) or ["keep_last"]))
    raised = {**retention, rule: (retention.get(rule) or 0) + data.draw(st.integers(1, 5))}
    assert keep(items, retention) <= keep(items, raised)


@PROPERTY
@given(histories(), nested_retentions, st.data())
def test_adding_a_rule_never_removes_a_kept_backup(items, retention, data):
    assume(active(retention))
    family = next(f for f in NESTED if set(retention) <= set(f))
    rule = data.draw(st.sampled_from(family))
    assume(not retention.get(rule))
    assert keep(items, retention) <= keep(items, {**retention, rule: data.draw(st.integers(1, 5))})


@PROPERTY
@given(histories(), retentions, st.randoms(use_true_random=False))
def test_the_answer_does_not_depend_on_the_order_given(items, retention, rnd):
    shuffled = list(items)
    rnd.shuffle(shuffled)
    assert keep(items, retention) == keep(shuffled, retention)


def _period(rule, t):
    return {"keep_hourly": (t.year, t.month, t.day, t.hour), "keep_daily": t.date(),
            "keep_weekly": t.isocalendar()[:2], "keep_monthly": (t.year, t.month), "keep_yearly": t.year}[rule]


@PROPERTY
@given(histories(), st.sampled_from(RULES[1:]), st.integers(1, 10))
def test_a_single_period_rule_keeps_the_newest_of_the_n_latest_periods(items, rule, n):
    """An oracle written the other way round: group by period, take the N latest, newest of each."""
    groups = {}
    for ident, t in newest_first(items):
        groups.setdefault(_period(rule, t), ident)  # newest first: the first seen is the newest
    latest = sorted(groups, reverse=True)[:n]
    assert keep(items, {rule: n}) == {groups[p] for p in latest}


@PROPERTY
@given(histories(), retentions)
@example(items=[], retention={"keep_daily": 3})
def test_each_kept_backup_is_the_newest_of_its_finest_period(items, retention):
    """A backup kept by a period rule is the newest of that period among what is left; in
    particular no two kept backups share an hour unless keep_last kept them."""
    kept = keep(items, retention)
    n_last = retention.get("keep_last") or 0
    by_last = {i for i, _ in newest_first(items)[:n_last]}
    if not active(retention):
        return
    hours = {}
    for ident, t in items:
        if ident in kept and ident not in by_last:
            hours.setdefault(_period("keep_hourly", t), []).append(ident)
    assert all(len(v) == 1 for v in hours.values())


# -- worked examples ----------------------------------------------------------------------
def daily_history(days, hour=2):
    """One backup a day at `hour`:00 UTC for `days` days up to 2024-03-31; id = day number."""
    end = datetime(2024, 3, 31, hour, tzinfo=UTC)
    return [(d, end - timedelta(days=d)) for d in range(days)]


def test_keep_daily_and_weekly_like_the_proxmox_documentation():
    # Daily backups; keep-daily=7 keeps the last 7 days (ids 0-6: 31 down to 25 March); keep-weekly=4
    # then takes the newest backup of each of the 4 next ISO weeks not already covered. 25 March is
    # a Monday, so week 13 is covered; weeks 12, 11, 10, 9 remain: their Sundays 24, 17, 10, 3 March.
    kept = keep(daily_history(60), {"keep_daily": 7, "keep_weekly": 4})
    assert kept == set(range(7)) | {7, 14, 21, 28}


def test_keep_monthly_and_yearly_skip_covered_periods():
    items = daily_history(800)  # 2022-01-22 to 2024-03-31
    kept = keep(items, {"keep_last": 2, "keep_monthly": 3, "keep_yearly": 2})
    days = sorted((dict(items)[i].date().isoformat() for i in kept), reverse=True)
    # keep-last: 31 and 30 March. keep-monthly: March is covered, so February, January, December.
    # keep-yearly: 2024 and 2023 are covered, so 2022 (its newest, 31 Dec); there is no 2021.
    assert days == ["2024-03-31", "2024-03-30", "2024-02-29", "2024-01-31", "2023-12-31", "2022-12-31"]


def test_the_panel_time_zone_decides_where_a_day_ends():
    late = [(1, datetime(2024, 1, 1, 22, 30, tzinfo=UTC)), (2, datetime(2024, 1, 1, 23, 30, tzinfo=UTC))]
    assert keep(late, {"keep_daily": 2}, tz="UTC") == {2}  # the same day in UTC
    assert keep(late, {"keep_daily": 2}, tz="Europe/Berlin") == {1, 2}  # 23:30 and 00:30 in Berlin


def test_weekly_then_monthly_follows_proxmox_not_monotonic():
    # ISO week 48 of 2023 runs from Mon 27 Nov to Sun 3 Dec. keep-weekly keeps 1 Dec and marks
    # 29 Nov (same week) as removed, so keep-monthly takes the next November backup, as
    # PVE::Storage::prune_mark_backup_group does. Raising keep-weekly thus drops 29 Nov.
    items = [("dec1", datetime(2023, 12, 1, tzinfo=UTC)), ("nov29", datetime(2023, 11, 29, tzinfo=UTC)),
             ("nov10", datetime(2023, 11, 10, tzinfo=UTC))]
    assert keep(items, {"keep_monthly": 2}) == {"dec1", "nov29"}
    assert keep(items, {"keep_monthly": 2, "keep_weekly": 1}) == {"dec1", "nov10"}


def test_several_backups_in_one_period_keep_only_the_newest():
    hour = datetime(2024, 5, 5, 10, tzinfo=UTC)
    items = [(i, hour + timedelta(minutes=i * 5)) for i in range(6)]  # all within 10:00-10:25
    assert keep(items, {"keep_hourly": 5}) == {5}
    assert keep(items, {"keep_last": 2, "keep_hourly": 5}) == {5, 4}  # the hour is covered by keep-last


def test_options_are_checked_and_accept_the_vzdump_spelling():
    assert normalize({"keep-daily": 3, "keep_last": 0, "keep_weekly": None}) == {"keep_daily": 3}
    with pytest.raises(ValueError, match="Unknown retention option"):
        normalize({"keep_forever": 1})
    with pytest.raises(ValueError, match="negative"):
        normalize({"keep_last": -1})
    assert keep([(1, BASE)], {}) == {1}
    assert keep([], {"keep_last": 3}) == set()


# -- prune_plan: protected backups ---------------------------------------------------------
@dataclass(eq=False)
class FakeBackup:
    pk: int
    created_at: datetime
    protected: bool = False


@PROPERTY
@given(histories(40), retentions, st.sets(st.integers(0, 39)))
def test_prune_plan_keeps_protected_backups_outside_the_count(items, retention, protected_ids):
    backups = [FakeBackup(i, t, protected=i in protected_ids) for i, t in items]
    with timezone.override("UTC"):
        kept, removed = prune_plan(backups, retention)
    assert set(map(id, kept)) | set(map(id, removed)) == set(map(id, backups))
    assert not set(map(id, kept)) & set(map(id, removed))
    assert all(b in kept for b in backups if b.protected)
    unprotected = [(b.pk, b.created_at) for b in backups if not b.protected]
    assert {b.pk for b in kept if not b.protected} == keep(unprotected, retention)


def test_prune_plan_protected_newest_does_not_use_up_keep_last():
    t = [BASE + timedelta(days=d) for d in range(5)]
    backups = [FakeBackup(i, t[i], protected=(i == 4)) for i in range(5)]
    random.Random(1).shuffle(backups)
    with timezone.override("UTC"):
        kept, removed = prune_plan(backups, {"keep_last": 2})
    assert sorted(b.pk for b in kept) == [2, 3, 4]
    assert sorted(b.pk for b in removed) == [0, 1]
