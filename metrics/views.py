"""Resource figures out of the panel: JSON series for the charts, /proc/user_beancounters as
plain text (per container and per host) and a Prometheus /metrics endpoint.

Every view scopes through accounts.permissions, except /metrics, which answers to a bearer
token (settings.METRICS_TOKEN) and shows every container: it is meant for the operator's
Prometheus, not for users.
"""
from __future__ import annotations

import dataclasses
import hmac
import math
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models import OuterRef, Subquery
from django.http import Http404, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.permissions import get_container_for_user, visible_containers, visible_hosts
from containers.choices import ContainerStatus
from containers.engine.cgroups import Counter, cpu_cap_percent, format_user_beancounters
from containers.models import Container

from .consolidate import RANGES
from .models import TIERS, Beancounters, Sample

SERIES_FIELDS = ("cpu_pct", "cpu_pct_max", "mem_bytes", "mem_bytes_max", "swap_bytes", "nproc", "nproc_max",
                 "net_rx_bps", "net_tx_bps", "disk_read_bps", "disk_write_bps", "disk_used", "inodes_used")
# States in which a container has a cgroup, hence beancounters worth listing (OpenVZ listed running ones only).
LIVE_STATES = (ContainerStatus.RUNNING, ContainerStatus.FROZEN)
TEXT = "text/plain; charset=utf-8"
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"
_COUNTER_FIELDS = [f.name for f in dataclasses.fields(Counter)]


# -- helpers ------------------------------------------------------------------
def counters_from_rows(rows: list[dict]) -> list[Counter]:
    """Stored beancounter dicts (dataclasses.asdict(Counter), maybe with extra keys) back to Counters."""
    out = []
    for row in rows or []:
        values = {name: row.get(name) for name in _COUNTER_FIELDS}
        values["measured"] = bool(row.get("measured"))
        values["note"] = row.get("note") or ""
        out.append(Counter(**values))
    return out


UNITS = {"kmemsize": "bytes", "tcpsndbuf": "bytes", "tcprcvbuf": "bytes", "othersockbuf": "bytes",
         "dgramrcvbuf": "bytes", "dcachesize": "bytes", "numproc": "processes", "diskspace": "1K blocks",
         "diskinodes": "inodes"}


def beancounter_rows(snapshot: Beancounters | None) -> tuple[list[dict], list[dict]]:
    """Rows for the Resources tab: Beancounters.rows() (with "rose") plus the unit of each counter, as
    (measured, not measured), each in OpenVZ's order. Most of OpenVZ's 23 counters have no counterpart
    in the mainline kernel: listed one by one among the others, "not measured" over and over read as
    a broken sampler, so the tab shows the measured ones and folds the rest into one line that says why."""
    if snapshot is None:
        return [], []
    rows = [{**row, "unit": "pages" if row["resource"].endswith("pages") else UNITS.get(row["resource"], "")}
            for row in snapshot.rows()]
    return [r for r in rows if r.get("measured")], [r for r in rows if not r.get("measured")]


def mark_seen(snapshot: Beancounters | None) -> None:
    """Remember the current failcnts: a failcnt that rose is highlighted once, not on the next visit.
    A single-field UPDATE, so it never overwrites counters the sampler writes meanwhile."""
    if snapshot is None:
        return
    seen = {c["resource"]: c["failcnt"] for c in snapshot.counters if c.get("failcnt") is not None}
    if seen != (snapshot.seen_failcnt or {}):
        Beancounters.objects.filter(pk=snapshot.pk).update(seen_failcnt=seen)


def series_points(container_id: int, range_name: str, now) -> tuple[int, list[dict]]:
    """(tier used, points) for a range: the same rows as metrics.consolidate.series, read with
    .values() (no model instances). While the preferred tier has nothing in the window yet (a new
    container before the first consolidation), the finest tier below it that has rows is used."""
    seconds, preferred = RANGES[range_name]
    since = now - timedelta(seconds=seconds)
    for tier in range(preferred, -1, -1):
        rows = list(Sample.objects.filter(container_id=container_id, tier=tier, at__gte=since)
                    .order_by("at").values("at", *SERIES_FIELDS))
        if rows or tier == 0:
            break
    points = []
    for row in rows:
        point = {"t": row.pop("at").isoformat()}
        for key, value in row.items():
            point[key] = round(value, 3) if isinstance(value, float) else value
        points.append(point)
    return tier, points


def chart_limits(ct: Container) -> list[dict]:
    """The limit lines the charts draw: the container's settings now, in the units of the series field
    each belongs with (field, label, value, hard)."""
    mib = 1024 * 1024
    lines = [
        ("cpu_pct", "CPU limit", cpu_cap_percent(ct.cpulimit, ct.cpus), True),
        ("mem_bytes", "RAM limit", ct.ram_mb * mib, True),
        ("mem_bytes", "RAM barrier", ct.ram_barrier_mb * mib if ct.ram_barrier_mb else None, False),
        ("swap_bytes", "swap limit", ct.swap_mb * mib if ct.swap_mb else None, True),
        ("nproc", "process limit", ct.numproc, True),
        ("disk_used", "disk limit", ct.disk_mb * mib, True),
        ("disk_used", "disk soft limit", ct.disk_soft_mb * mib if ct.disk_soft_mb else None, False),
    ]
    return [{"field": field, "label": label, "value": value, "hard": hard}
            for field, label, value, hard in lines if value]


# -- JSON series ----------------------------------------------------------------
@login_required
@require_GET
def container_series(request, ident):
    ct = get_container_for_user(request.user, ident)
    range_name = request.GET.get("range", "hour")
    if range_name not in RANGES:
        return JsonResponse({"error": f"unknown range {range_name!r}: use one of {', '.join(RANGES)}"}, status=400)
    now = timezone.now()
    tier, points = series_points(ct.pk, range_name, now)
    # Tier 0 holds one row per sampling round; the higher tiers one per consolidation period.
    step = settings.SAMPLE_SECONDS if tier == 0 else dict((t, s) for t, s, _keep in TIERS)[tier]
    return JsonResponse({"ctid": ct.ctid, "range": range_name, "tier": tier, "step": step,
                         "seconds": RANGES[range_name][0], "now": now.isoformat(), "points": points,
                         "limits": chart_limits(ct)})


# -- /proc/user_beancounters as text ---------------------------------------------
def _text(body: str, filename: str) -> HttpResponse:
    response = HttpResponse(body, content_type=TEXT)
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    return response


@login_required
@require_GET
def container_beancounters(request, ident):
    """The container's last known beancounters (also after it stopped: they are what it had then)."""
    ct = get_container_for_user(request.user, ident)
    snapshot = Beancounters.objects.filter(container=ct).first()
    rows = [(str(ct.ctid), counters_from_rows(snapshot.counters))] if snapshot and snapshot.counters else []
    return _text(format_user_beancounters(rows), f"user_beancounters-{ct.ctid}.txt")


@login_required
@require_GET
def host_beancounters(request, name):
    """The host's /proc/user_beancounters: its running containers the user may see, uid = CTID."""
    host = visible_hosts(request.user).filter(name=name).first()
    if host is None:
        raise Http404(f"No host {name}")
    ids = visible_containers(request.user).filter(host=host, status__in=LIVE_STATES).values("pk")
    snapshots = (Beancounters.objects.filter(container__in=ids).select_related("container")
                 .order_by("container__ctid"))
    rows = [(str(s.container.ctid), counters_from_rows(s.counters)) for s in snapshots if s.counters]
    return _text(format_user_beancounters(rows), f"user_beancounters-{host.name}.txt")


# -- Prometheus -----------------------------------------------------------------
def _escape_label(value) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _labels(pairs) -> str:
    return "{" + ",".join(f'{key}="{_escape_label(value)}"' for key, value in pairs) + "}"


BEANCOUNTER_METRICS = [
    ("held", "Current usage of a beancounter, in OpenVZ units (pages for *pages, bytes for kmemsize and "
             "socket buffers, processes for numproc, 1K blocks for diskspace)."),
    ("maxheld", "Highest usage of a beancounter seen by the kernel, in OpenVZ units."),
    ("barrier", "Soft limit (barrier) of a beancounter, in OpenVZ units; absent when unlimited."),
    ("limit", "Hard limit of a beancounter, in OpenVZ units; absent when unlimited."),
    ("failcnt", "How often the beancounter's limit was hit since the container started."),
]
SAMPLE_METRICS = [  # (metric, Sample field, help)
    ("vzpanel_container_cpu_percent", "cpu_pct", "CPU used, in percent of one CPU, over the last sample period."),
    ("vzpanel_container_memory_bytes", "mem_bytes", "Memory used by the container."),
    ("vzpanel_container_swap_bytes", "swap_bytes", "Swap used by the container."),
    ("vzpanel_container_processes", "nproc", "Processes (tasks) in the container."),
    ("vzpanel_container_network_receive_bytes_per_second", "net_rx_bps", "Network bytes received per second."),
    ("vzpanel_container_network_transmit_bytes_per_second", "net_tx_bps", "Network bytes sent per second."),
    ("vzpanel_container_disk_read_bytes_per_second", "disk_read_bps", "Block I/O bytes read per second."),
    ("vzpanel_container_disk_write_bytes_per_second", "disk_write_bps", "Block I/O bytes written per second."),
    ("vzpanel_container_disk_used_bytes", "disk_used", "Space used on the container's disk."),
    ("vzpanel_container_disk_inodes_used", "inodes_used", "Inodes used on the container's disk."),
]


def _authorized(request) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        token = ""
    return hmac.compare_digest(token.strip().encode(), settings.METRICS_TOKEN.encode())


@require_GET
def prometheus_metrics(request):
    """Prometheus text exposition format 0.0.4; `Authorization: Bearer <PANEL_METRICS_TOKEN>`."""
    if not settings.METRICS_TOKEN:
        raise Http404("metrics are disabled (PANEL_METRICS_TOKEN is not set)")
    if not _authorized(request):
        response = HttpResponse("missing or wrong bearer token\n", status=401, content_type=TEXT)
        response["WWW-Authenticate"] = 'Bearer realm="vzpanel metrics"'
        return response

    latest = Sample.objects.filter(container=OuterRef("pk"), tier=0).order_by("-at").values("pk")[:1]
    containers = list(Container.objects.select_related("host", "tenant").annotate(latest_sample=Subquery(latest))
                      .order_by("ctid"))
    samples = {row["pk"]: row for row in Sample.objects.filter(
        pk__in=[c.latest_sample for c in containers if c.latest_sample]).values("pk", "at", *SERIES_FIELDS)}
    snapshots = {s.container_id: s.counters for s in Beancounters.objects.filter(
        container__status__in=LIVE_STATES).only("container_id", "counters")}
    # A sample older than this is from before the container (or the agent) stopped: not current.
    fresh_after = timezone.now() - timedelta(seconds=max(60, 3 * settings.SAMPLE_SECONDS))

    families: dict[str, list[str]] = {}
    for ct in containers:
        base = [("ctid", ct.ctid), ("name", ct.name or ""), ("host", ct.host.name),
                ("tenant", ct.tenant.slug if ct.tenant else "")]
        labels = _labels(base)
        families.setdefault("vzpanel_container_up", []).append(
            f"vzpanel_container_up{labels} {1 if ct.status == ContainerStatus.RUNNING else 0}")
        for counter in snapshots.get(ct.pk, []):
            if not counter.get("measured"):
                continue
            counter_labels = _labels([*base, ("resource", counter.get("resource", ""))])
            for field, _help in BEANCOUNTER_METRICS:
                value = counter.get(field)
                if value is not None:
                    families.setdefault(f"vzpanel_beancounter_{field}", []).append(
                        f"vzpanel_beancounter_{field}{counter_labels} {_number(value)}")
        sample = samples.get(ct.latest_sample)
        if sample and ct.status in LIVE_STATES and sample["at"] >= fresh_after:
            for metric, field, _help in SAMPLE_METRICS:
                if sample[field] is not None:
                    families.setdefault(metric, []).append(f"{metric}{labels} {_number(sample[field])}")

    helps = {f"vzpanel_beancounter_{field}": text for field, text in BEANCOUNTER_METRICS}
    helps.update({metric: text for metric, _field, text in SAMPLE_METRICS})
    helps["vzpanel_container_up"] = "1 when the container is running, 0 otherwise."
    lines = []
    for metric in dict.fromkeys(["vzpanel_container_up", *helps]):
        if metric in families:
            lines += [f"# HELP {metric} {_escape_help(helps[metric])}", f"# TYPE {metric} gauge", *families[metric]]
    return HttpResponse("\n".join(lines) + "\n" if lines else "", content_type=PROMETHEUS)
