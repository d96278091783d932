"""Resource samples (consolidated RRD-style), the latest beancounters, and resource events."""
from django.db import models
from django.utils import timezone

# (tier, seconds per row, seconds kept). Rows per container at most:
#   360 (10 s for 1 h) + 1440 (1 min for 1 day) + 1440 (30 min for 30 days) + 1464 (6 h for 366 days)
#   = 4704, plus at most one row per tier still being filled: ROW_BOUND.
TIERS = [
    (0, 10, 3600),
    (1, 60, 86400),
    (2, 1800, 30 * 86400),
    (3, 21600, 366 * 86400),
]
ROW_BOUND = sum(keep // step for _, step, keep in TIERS) + len(TIERS)


class Sample(models.Model):
    """One point of a container's history. Tier 0 rows are raw; higher tiers hold the
    averages (and maxima) of the tier below over their period."""

    container = models.ForeignKey("containers.Container", on_delete=models.CASCADE, related_name="samples")
    tier = models.PositiveSmallIntegerField(default=0)
    at = models.DateTimeField()
    cpu_pct = models.FloatField(null=True)          # percent of one CPU
    cpu_pct_max = models.FloatField(null=True)
    mem_bytes = models.BigIntegerField(null=True)
    mem_bytes_max = models.BigIntegerField(null=True)
    swap_bytes = models.BigIntegerField(null=True)
    nproc = models.IntegerField(null=True)
    nproc_max = models.IntegerField(null=True)
    net_rx_bps = models.FloatField(null=True)       # bytes per second
    net_tx_bps = models.FloatField(null=True)
    disk_read_bps = models.FloatField(null=True)
    disk_write_bps = models.FloatField(null=True)
    disk_used = models.BigIntegerField(null=True)
    inodes_used = models.BigIntegerField(null=True)

    class Meta:
        indexes = [models.Index(fields=["container", "tier", "at"])]
        ordering = ["at"]


# Fields averaged when consolidating, and the (average, maximum) pairs.
AVERAGED = ["cpu_pct", "mem_bytes", "swap_bytes", "nproc", "net_rx_bps", "net_tx_bps",
            "disk_read_bps", "disk_write_bps", "disk_used", "inodes_used"]
MAXED = {"cpu_pct_max": "cpu_pct", "mem_bytes_max": "mem_bytes", "nproc_max": "nproc"}


class Beancounters(models.Model):
    """The latest user beancounters of a container, as /proc/user_beancounters shows them.

    One row per container holding all counters (a list of dicts with resource, held,
    maxheld, barrier, limit, failcnt, measured, note): the sampler writes it with one
    UPDATE per round, whatever the number of counters.
    """

    container = models.OneToOneField("containers.Container", on_delete=models.CASCADE, related_name="beancounters")
    counters = models.JSONField(default=list)
    # failcnt per resource when a user last looked at the Resources tab: those that rose since are highlighted.
    seen_failcnt = models.JSONField(default=dict)
    updated_at = models.DateTimeField(default=timezone.now)

    def rows(self) -> list[dict]:
        seen = self.seen_failcnt or {}
        return [{**c, "rose": bool(c.get("failcnt")) and c["failcnt"] > seen.get(c["resource"], 0)}
                for c in self.counters]


class ContainerEvent(models.Model):
    """Something about a container's resources worth a look: a failcnt that rose, a soft limit passed."""

    container = models.ForeignKey("containers.Container", null=True, on_delete=models.SET_NULL, related_name="events")
    ctid = models.PositiveIntegerField(db_index=True, db_column="ct_id")  # "ctid" is a system column in PostgreSQL
    tenant = models.ForeignKey("tenancy.Tenant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="+")
    at = models.DateTimeField(default=timezone.now, db_index=True)
    kind = models.CharField(max_length=32)
    resource = models.CharField(max_length=32, blank=True)
    message = models.CharField(max_length=300)

    class Meta:
        ordering = ["-at", "-id"]
