"""The Resources and Events tabs, series.json, user_beancounters as text and /metrics, on real rows."""
import re
from dataclasses import asdict
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from containers.engine.cgroups import _ROW, Counter
from containers.models import Container
from metrics.models import Beancounters, ContainerEvent, Sample
from metrics.views import _escape_label


def _counters(physpages_failcnt=3):
    rows = [asdict(c) for c in (
        Counter("kmemsize", 123456, None, None, None, None, True, "held only (memory.stat kernel)"),
        Counter("lockedpages", None, None, None, None, None, False, "no counterpart in the mainline kernel"),
        Counter("numproc", 7, 12, None, 64, 0, True),
        Counter("physpages", 4000, 9000, None, 65536, physpages_failcnt, True),
        Counter("swappages", 0, None, None, 0, 0, True),
    )]
    rows.append({"resource": "diskspace", "held": 51200, "maxheld": None, "barrier": 1048576, "limit": 1048576,
                 "failcnt": None, "measured": True, "note": "1K blocks; the hard limit is the disk image's size"})
    return rows


def _samples(ct, now):
    """Tier 0 every 10 s for the last hour, tier 1 every minute for the day, tier 2 every 30 min for the week."""
    rows = []
    for tier, step, span in ((0, 10, 3600), (1, 60, 86400), (2, 1800, 7 * 86400)):
        for i in range(span // step):
            rows.append(Sample(container=ct, tier=tier, at=now - timedelta(seconds=i * step + 1),
                               cpu_pct=10.0 + i % 7, cpu_pct_max=None if tier == 0 else 20.0,
                               mem_bytes=100_000_000 + i, swap_bytes=0, nproc=7, net_rx_bps=1000.5,
                               net_tx_bps=200.25, disk_read_bps=0.0, disk_write_bps=4096.0,
                               disk_used=52_428_800, inodes_used=900))
    Sample.objects.bulk_create(rows, batch_size=500)


@pytest.fixture
def running_ct(student_ct):
    Container.objects.filter(pk=student_ct.pk).update(status="running")
    student_ct.refresh_from_db()
    now = timezone.now()
    _samples(student_ct, now)
    Beancounters.objects.create(container=student_ct, counters=_counters(), seen_failcnt={"physpages": 1},
                                updated_at=now)
    return student_ct


@pytest.fixture
def foreign_ct(host, template_name, other_tenant, people):
    """A running container of another tenant, with beancounters of its own."""
    ct = Container.objects.create(ctid=502, name="other-ct", hostname="other.test", ostemplate=template_name,
                                  host=host, tenant=other_tenant, owner=people["outsider"], status="running")
    Beancounters.objects.create(container=ct, counters=_counters(physpages_failcnt=0))
    return ct


def _login(client, user):
    client.force_login(user)
    return client


# -- the Resources tab ------------------------------------------------------------
def test_resources_tab_shows_the_beancounter_table(client, people, running_ct):
    _login(client, people["student"])
    html = client.get("/containers/501/?tab=resources").content.decode()
    assert 'id="ct-tabs"' in html and ">Overview<" in html and ">Events<" in html
    assert "<th>resource</th>" in html and '<th class="text-end">failcnt</th>' in html
    assert 'data-resource="kmemsize"' in html and "123456" in html
    assert "not measured" in html  # lockedpages has no counterpart
    assert "unlimited" in html  # physpages barrier
    assert "held only (memory.stat kernel)" in html  # the note
    assert 'id="last-sampled"' in html and "Last sampled" in html
    assert 'href="/containers/501/user_beancounters"' in html
    assert 'href="/containers/501/series.json?range=hour"' in html
    assert "vendor/chart.umd.js" in html and "js/charts.js" in html
    assert 'id="chart-cpu"' in html and 'id="chart-mem"' in html and 'id="chart-net"' in html


def test_overview_is_still_the_default_tab(client, people, running_ct):
    _login(client, people["student"])
    html = client.get("/containers/501/").content.decode()
    assert 'id="ct-status"' in html and "Backups" in html
    assert 'id="beancounters-card"' not in html


def _row(html, resource):
    start = html.index(f'data-resource="{resource}"')
    return html[start:html.index("</tr>", start)]


def test_a_failcnt_that_rose_is_highlighted_once(client, people, running_ct):
    _login(client, people["student"])
    first = client.get("/containers/501/?tab=resources").content.decode()
    assert "table-danger" in _row(first, "physpages")
    assert "table-danger" not in _row(first, "numproc")
    assert Beancounters.objects.get(container=running_ct).seen_failcnt == {"numproc": 0, "physpages": 3,
                                                                           "swappages": 0}
    second = client.get("/containers/501/?tab=resources").content.decode()
    assert "table-danger" not in _row(second, "physpages")
    # It rises again: highlighted again.
    Beancounters.objects.filter(container=running_ct).update(counters=_counters(physpages_failcnt=5))
    third = client.get("/containers/501/?tab=resources").content.decode()
    assert "table-danger" in _row(third, "physpages")


def test_the_resources_tab_does_not_load_samples(client, people, running_ct):
    _login(client, people["student"])
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/containers/501/?tab=resources").status_code == 200
    assert not [q["sql"] for q in queries.captured_queries if "metrics_sample" in q["sql"]]


def test_resources_tab_without_samples_yet(client, people, student_ct):
    _login(client, people["student"])
    html = client.get("/containers/501/?tab=resources").content.decode()
    assert "Not sampled yet" in html


# -- series.json ------------------------------------------------------------------
@pytest.mark.parametrize("range_name,tier,count", [
    ("hour", 0, 360), ("day", 1, 1440), ("week", 2, 336), ("month", 2, 336),
    ("year", 2, 336),  # no tier 3 rows yet: the finest tier below that has rows
])
def test_series_json_per_range(client, people, running_ct, range_name, tier, count):
    _login(client, people["student"])
    response = client.get(f"/containers/501/series.json?range={range_name}")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    data = response.json()
    assert data["range"] == range_name and data["tier"] == tier
    assert abs(len(data["points"]) - count) <= 1
    assert len(data["points"]) == Sample.objects.filter(container=running_ct, tier=tier,
                                                        at__gte=timezone.now() - timedelta(
                                                            seconds=data["seconds"])).count()
    first, last = data["points"][0], data["points"][-1]
    assert first["t"] < last["t"]  # oldest first
    assert set(first) >= {"t", "cpu_pct", "mem_bytes", "swap_bytes", "nproc", "net_rx_bps", "net_tx_bps",
                          "disk_read_bps", "disk_write_bps", "disk_used"}
    assert last["nproc"] == 7 and last["disk_used"] == 52_428_800


def test_series_json_unknown_range_is_400(client, people, running_ct):
    _login(client, people["student"])
    response = client.get("/containers/501/series.json?range=fortnight")
    assert response.status_code == 400
    assert "fortnight" in response.json()["error"] and "hour" in response.json()["error"]


# -- /proc/user_beancounters as text ----------------------------------------------------
def test_text_download_has_the_proc_layout(client, people, running_ct):
    _login(client, people["student"])
    response = client.get("/containers/501/user_beancounters")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    lines = response.content.decode().splitlines()
    assert lines[0] == "Version: 2.5"
    assert lines[1] == _ROW % ("uid", "resource", "held", "maxheld", "barrier", "limit", "failcnt")
    assert lines[2].split()[:3] == ["501:", "kmemsize", "123456"]
    assert lines[3].split() == ["lockedpages", "-", "-", "-", "-", "-"]
    physpages = next(line for line in lines if "physpages" in line).split()
    assert physpages == ["physpages", "4000", "9000", "9223372036854775807", "65536", "3"]
    assert any(line.split()[0] == "diskspace" for line in lines[2:])


def test_host_text_lists_the_visible_running_containers(client, people, running_ct, foreign_ct, host):
    _login(client, people["student"])  # the host is infrastructure: a student has their container's text only
    assert client.get(f"/hosts/{host.name}/user_beancounters").status_code == 404
    admin_client = client.__class__()
    admin_client.force_login(people["operator"])
    text = admin_client.get(f"/hosts/{host.name}/user_beancounters").content.decode()
    assert [line.split()[0] for line in text.splitlines()[2:] if line[:11].strip()] == ["501:", "502:"]
    assert client.get("/hosts/no-such-host/user_beancounters").status_code == 404


def test_outsider_sees_none_of_it(client, people, running_ct, foreign_ct, host):
    _login(client, people["outsider"])
    assert client.get("/containers/501/?tab=resources").status_code == 404
    assert client.get("/containers/501/?tab=events").status_code == 404
    assert client.get("/containers/501/series.json?range=day").status_code == 404
    assert client.get("/containers/501/series.json?range=nonsense").status_code == 404  # not a 400: no leak
    assert client.get("/containers/501/user_beancounters").status_code == 404
    assert client.get(f"/hosts/{host.name}/user_beancounters").status_code == 404
    # Seen counters are not touched by someone who may not see the container.
    assert Beancounters.objects.get(container=running_ct).seen_failcnt == {"physpages": 1}


def test_anonymous_is_sent_to_the_login(client, running_ct):
    for url in ("/containers/501/series.json", "/containers/501/user_beancounters", "/hosts/x/user_beancounters"):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login" in response["Location"]


# -- events -------------------------------------------------------------------------
def test_events_tab_and_dashboard_card(client, people, running_ct, foreign_ct, host):
    ContainerEvent.objects.create(container=running_ct, ctid=501, tenant=running_ct.tenant, host=host,
                                  kind="resource", resource="physpages",
                                  message="physpages failcnt rose from 1 to 3")
    ContainerEvent.objects.create(container=foreign_ct, ctid=502, tenant=foreign_ct.tenant, host=host,
                                  kind="resource", resource="numproc", message="numproc failcnt rose from 0 to 9")
    _login(client, people["student"])
    html = client.get("/containers/501/?tab=events").content.decode()
    assert "physpages failcnt rose from 1 to 3" in html and "numproc failcnt rose" not in html
    dashboard = client.get("/").content.decode()
    assert 'id="events-card"' in dashboard
    assert "physpages failcnt rose from 1 to 3" in dashboard and "numproc failcnt rose" not in dashboard
    assert "host-capacity" not in dashboard  # what all tenants were promised is not a member's business

    client.force_login(people["operator"])
    dashboard = client.get("/").content.decode()
    assert "physpages failcnt rose" in dashboard and "numproc failcnt rose" in dashboard
    assert f'data-capacity="{host.name}"' in dashboard and "Memory (vzmemcheck)" in dashboard


# -- /metrics -----------------------------------------------------------------------
def test_metrics_is_off_without_a_token(client, settings, running_ct):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


def test_metrics_wants_the_right_token(client, settings, running_ct):
    settings.METRICS_TOKEN = "s3cret-token"
    assert client.get("/metrics").status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong")
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Basic s3cret-token").status_code == 401


def test_metrics_exposition(client, settings, running_ct, foreign_ct):
    settings.METRICS_TOKEN = "s3cret-token"
    Container.objects.filter(pk=foreign_ct.pk).update(status="stopped")
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.content.decode()
    labels = 'ctid="501",name="acme-student",host="vzt-host",tenant="acme"'
    assert "# HELP vzpanel_beancounter_held " in text and "# TYPE vzpanel_beancounter_held gauge" in text
    assert f'vzpanel_beancounter_held{{{labels},resource="physpages"}} 4000' in text
    assert f'vzpanel_beancounter_limit{{{labels},resource="physpages"}} 65536' in text
    assert f'vzpanel_beancounter_failcnt{{{labels},resource="physpages"}} 3' in text
    assert f'vzpanel_beancounter_barrier{{{labels},resource="physpages"}}' not in text  # unlimited: absent
    assert 'resource="lockedpages"' not in text  # not measured
    assert f"vzpanel_container_up{{{labels}}} 1" in text
    assert f"vzpanel_container_processes{{{labels}}} 7" in text
    assert f"vzpanel_container_disk_used_bytes{{{labels}}} 52428800" in text
    assert f"vzpanel_container_network_receive_bytes_per_second{{{labels}}} 1000.5" in text
    assert f"vzpanel_container_cpu_percent{{{labels}}} " in text
    # The stopped container: up 0, no stale beancounters.
    assert 'vzpanel_container_up{ctid="502",name="other-ct",host="vzt-host",tenant="other"} 0' in text
    assert 'ctid="502"' not in text.replace('vzpanel_container_up{ctid="502"', "")
    # Each family has its HELP and TYPE once, before its samples.
    for line in text.splitlines():
        if line.startswith("# TYPE"):
            assert text.count(line) == 1
    assert text.endswith("\n")


def test_label_values_are_escaped():
    assert _escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'


# -- the limit lines and the unmeasured counters (issue 18) --------------------------
def test_the_measured_counters_come_first_and_the_others_are_one_line(client, people, running_ct):
    _login(client, people["student"])
    html = client.get("/containers/501/?tab=resources").content.decode()
    table = html[html.index('<table class="table table-sm align-middle mb-0 beancounters">'):html.index("</table>")]
    rows = re.findall(r'<tr data-resource="([a-z]+)"', table)
    assert rows == ["kmemsize", "numproc", "physpages", "swappages", "diskspace"]  # OpenVZ's order, measured
    assert table.count('id="unmeasured-counters"') == 1 and table.index("unmeasured-counters") > table.index(
        'data-resource="diskspace"')
    fold = table[table.index('id="unmeasured-counters"'):]
    assert "1 more of OpenVZ's counters are not measured" in fold and "lockedpages" in fold
    assert "no counterpart in the mainline kernel" in fold  # each one's note, behind the summary


def test_series_json_carries_the_limits_the_charts_draw(client, people, running_ct):
    Container.objects.filter(pk=running_ct.pk).update(ram_mb=256, ram_barrier_mb=200, swap_mb=128, cpus=2,
                                                      cpulimit=150, numproc=64, disk_mb=1024, disk_soft_mb=None)
    _login(client, people["student"])
    limits = client.get("/containers/501/series.json?range=hour").json()["limits"]
    mib = 1024 * 1024
    assert limits == [
        {"field": "cpu_pct", "label": "CPU limit", "value": 150, "hard": True},  # min(cpulimit, cpus x 100 %)
        {"field": "mem_bytes", "label": "RAM limit", "value": 256 * mib, "hard": True},
        {"field": "mem_bytes", "label": "RAM barrier", "value": 200 * mib, "hard": False},
        {"field": "swap_bytes", "label": "swap limit", "value": 128 * mib, "hard": True},
        {"field": "nproc", "label": "process limit", "value": 64, "hard": True},
        {"field": "disk_used", "label": "disk limit", "value": 1024 * mib, "hard": True},
    ]
    # No swap and no process limit: no line for them (0 swap is no swap at all, not a level to draw).
    Container.objects.filter(pk=running_ct.pk).update(swap_mb=0, numproc=None, cpulimit=0, cpus=1)
    limits = client.get("/containers/501/series.json?range=hour").json()["limits"]
    assert {line["label"] for line in limits} == {"CPU limit", "RAM limit", "RAM barrier", "disk limit"}
    assert limits[0]["value"] == 100
