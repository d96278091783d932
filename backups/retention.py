"""Which backups a retention policy keeps: Proxmox VE's prune algorithm (vzdump / pvesm prune-backups).

The backups are taken newest first. The rules run in the order keep_last, keep_hourly, keep_daily,
keep_weekly, keep_monthly, keep_yearly. Each rule cuts time into periods (a backup of its own for
keep_last, then the hour, the day, the ISO week, the month, the year, in the panel's time zone) and:

* ignores the periods that already hold a backup kept by an earlier rule;
* walks the backups not yet decided, newest first, and keeps the first (newest) one of each new
  period, until it has kept backups of N periods; the other backups of a period it kept one of
  are decided too: they are removed, and a later rule does not look at them again.

Whatever no rule kept is removed. Without any keep option set to 1 or more, everything is kept.
This is PVE::Storage::prune_mark_backup_group (and Proxmox Backup Server's prune) to the letter,
so the panel's answer matches the Proxmox prune simulator. Protected backups are handled by the
caller (backups.services.prune_plan): they are kept and take no part in the selection.

One consequence of following Proxmox exactly: ISO weeks do not nest in months or years, so with
keep_weekly together with keep_monthly or keep_yearly, raising keep_weekly can move the monthly
(yearly) pick of a month that a kept week straddles to an older backup. Every other combination
is monotonic: raising any keep value never drops a backup that was kept.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from datetime import datetime

from django.utils import timezone

RULES = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")

_PERIOD: dict[str, Callable[[Hashable, datetime], Hashable]] = {
    "keep_last": lambda ident, t: ("backup", ident),
    "keep_hourly": lambda ident, t: (t.year, t.month, t.day, t.hour),
    "keep_daily": lambda ident, t: (t.year, t.month, t.day),
    "keep_weekly": lambda ident, t: t.isocalendar()[:2],  # (ISO year, ISO week): weeks start on Monday
    "keep_monthly": lambda ident, t: (t.year, t.month),
    "keep_yearly": lambda ident, t: t.year,
}


def normalize(retention: dict | None) -> dict[str, int]:
    """{"keep_daily": 7, ...}: the rules with a count of 1 or more. Accepts "keep-daily" too."""
    clean = {}
    for key, value in (retention or {}).items():
        key = str(key).replace("-", "_")
        if key not in RULES:
            raise ValueError(f"Unknown retention option {key!r}; one of {', '.join(RULES)}.")
        if value is None:
            continue
        count = int(value)
        if count < 0:
            raise ValueError(f"{key} cannot be negative.")
        if count:
            clean[key] = count
    return clean


def _local(t: datetime) -> datetime:
    return timezone.localtime(t) if timezone.is_aware(t) else t


def select(items: Iterable[tuple[Hashable, datetime]], retention: dict | None) -> set:
    """The ids of `items` ((id, created_at) pairs) that `retention` keeps."""
    items = list(items)
    rules = normalize(retention)
    if not rules:
        return {ident for ident, _ in items}
    # Newest first; the id breaks ties so the answer does not depend on the input order.
    ordered = sorted(((ident, _local(t)) for ident, t in items), key=lambda it: (it[1], _sort_key(it[0])),
                     reverse=True)
    mark: dict = {}  # id -> "keep" | "remove"
    for rule in RULES:
        count = rules.get(rule)
        if not count:
            continue
        period = _PERIOD[rule]
        covered = {period(ident, t) for ident, t in ordered if mark.get(ident) == "keep"}
        included: set = set()
        for ident, t in ordered:
            if ident in mark:
                continue
            p = period(ident, t)
            if p in covered:
                continue
            if p in included:
                mark[ident] = "remove"
                continue
            if len(included) >= count:
                break
            included.add(p)
            mark[ident] = "keep"
    return {ident for ident, decision in mark.items() if decision == "keep"}


def _sort_key(ident):
    # Ids are usually ints; anything else sorts after them, by its text.
    return (0, ident, "") if isinstance(ident, int) else (1, 0, str(ident))
