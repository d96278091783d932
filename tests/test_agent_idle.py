"""The agent at rest does nothing per container that has not changed (issue 22): consolidation
looks only at containers with new samples, in a fixed number of queries; reconcile writes only
rows that differ; the mount table is read once per pass; housekeeping runs beside the tasks'
process, not in it. Rows are made in bulk: no real container is needed, except in the last test."""
import math
import os
import signal
from datetime import datetime, timedelta, timezone

import psutil
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from containers.engine import diskimage
from hosts import housekeeping
from containers.engine.cgroups import Usage
from containers.engine.diskimage import DiskUsage
from containers.models import Container
from metrics.consolidate import Consolidator, consolidate
from metrics.models import TIERS, Sample

from .conftest import wait_until

MANY = 1000
START = datetime(2025, 3, 1, 12, 0, 5, tzinfo=timezone.utc)
FIELDS = ["tier", "at", "cpu_pct", "cpu_pct_max", "mem_bytes", "mem_bytes_max", "swap_bytes", "nproc", "nproc_max",
          "net_rx_bps", "net_tx_bps", "disk_read_bps", "disk_write_bps", "disk_used", "inodes_used"]


@pytest.fixture
def idle_host(db, tmp_path):
    """A host of its own, with an lxcpath no other test uses (nothing in it runs)."""
    from hosts.models import Host
    return Host.objects.create(name="idle-host", lxcpath=str(tmp_path / "lxc"), template_dir=str(tmp_path / "tpl"),
                               dump_dir=str(tmp_path / "dump"))


def make_containers(host, count: int, status: str = "stopped", first_ctid: int = 20000) -> list[Container]:
    Container.objects.bulk_create([Container(ctid=first_ctid + i, hostname=f"idle{i}.test", ostemplate="busybox",
                                             host=host, status=status) for i in range(count)])
    return list(Container.objects.filter(host=host))


def add_samples(containers, start: datetime, count: int, every_s: int = 10, seed=lambda ct: ct.pk) -> datetime:
    """`count` raw samples per container from `start`; returns the time after the last."""
    Sample.objects.bulk_create([Sample(container=ct, tier=0, at=start + timedelta(seconds=every_s * k),
                                       cpu_pct=float((seed(ct) + k) % 50), mem_bytes=1000 * k + seed(ct),
                                       nproc=k % 5)
                                for ct in containers for k in range(count)], batch_size=2000)
    return start + timedelta(seconds=every_s * count)


def rows_of(containers) -> list[tuple]:
    return list(Sample.objects.filter(container__in=containers).order_by("container_id", "tier", "at")
                .values_list("container_id", *FIELDS))


def statements(captured, verb: str) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if q["sql"].lstrip().upper().startswith(verb)]


def insert_batches(rows: int) -> int:
    """How many INSERT statements Django's bulk_create splits `rows` new samples into here (SQLite takes
    999 parameters per statement)."""
    fields = [f for f in Sample._meta.concrete_fields if not f.primary_key]
    return math.ceil(rows / connection.ops.bulk_batch_size(fields, [Sample()] * rows))


# -- consolidation ---------------------------------------------------------------------------------------------
READS_AND_DELETES = 16  # ids; per tier: due, starts, rows; 4 prunes; savepoints


def test_a_pass_over_1000_containers_takes_a_fixed_number_of_queries(idle_host, django_assert_max_num_queries):
    """Reads and deletes are a fixed number; the new rows go in one bulk insert, which Django cuts
    into statements of 999 parameters on SQLite."""
    cts = make_containers(idle_host, MANY, status="running")
    consolidator = Consolidator(Container.objects.filter(host=idle_host))
    now = add_samples(cts, START, 6)
    for _minute in range(3):  # the first pass, where every container is new to it, and two after it
        with django_assert_max_num_queries(READS_AND_DELETES + insert_batches(MANY)) as captured:
            assert consolidator.run(now) == MANY
        assert len(statements(captured, "SELECT")) <= 7
        now = add_samples(cts, now, 6)


def test_stopped_containers_without_new_samples_are_not_touched(idle_host, monkeypatch,
                                                               django_assert_max_num_queries):
    import metrics.consolidate
    stopped = make_containers(idle_host, MANY)
    running = make_containers(idle_host, 3, status="running", first_ctid=30000)[-3:]
    consolidator = Consolidator(Container.objects.filter(host=idle_host))
    now = add_samples(stopped + running, START, 12)
    consolidator.run(now + timedelta(minutes=1))  # all they had is consolidated: they stopped then
    before = rows_of(stopped)
    looked_at = []
    whole_tier = metrics.consolidate._consolidate_tier
    monkeypatch.setattr(metrics.consolidate, "_consolidate_tier",
                        lambda ids, *args: looked_at.append(set(ids)) or whole_tier(ids, *args))
    now = now + timedelta(minutes=1)
    for _minute in range(3):
        now = add_samples(running, now, 6)
        with django_assert_max_num_queries(READS_AND_DELETES):
            assert consolidator.run(now) == len(running)
    assert looked_at and all(ids == {ct.pk for ct in running} for ids in looked_at)
    assert rows_of(stopped) == before


def test_a_quiet_minute_at_rest_reads_no_samples_of_any_container(idle_host, django_assert_max_num_queries):
    cts = make_containers(idle_host, MANY)
    consolidator = Consolidator(Container.objects.filter(host=idle_host))
    now = add_samples(cts, START, 6)
    consolidator.run(now)
    with django_assert_max_num_queries(7) as captured:  # ids, the one "who has new samples", 4 prunes, savepoint
        assert consolidator.run(now + timedelta(seconds=30)) == 0
    assert not statements(captured, "INSERT") and not statements(captured, "UPDATE")


def test_passes_that_skip_containers_write_what_whole_passes_write(idle_host):
    """Over a day with containers that stop and start again, passes that look only at containers
    with new samples leave the same rows as the per-container consolidation, pass for pass."""
    cts = make_containers(idle_host, 6, status="running")
    consolidator = Consolidator(Container.objects.filter(pk__in=[ct.pk for ct in cts[:3]]))
    now = START
    for minute in range(26 * 60 // 7):
        awake = [ct for i, ct in enumerate(cts) if (minute // (40 + 13 * (i % 3))) % 2 == 0]
        now = add_samples(awake, now, 42, seed=lambda ct: ct.ctid % 3)  # 7 minutes of samples
        consolidator.run(now)
        for ct in cts[3:]:
            consolidate(ct.pk, now)
    for ours, whole in zip(cts[:3], cts[3:]):
        mine = [row[1:] for row in rows_of([ours]) if row[1] > 0]
        theirs = [row[1:] for row in rows_of([whole]) if row[1] > 0]
        assert mine == theirs and len({row[0] for row in mine}) == len(TIERS) - 1


# -- reconcile ---------------------------------------------------------------------------------------------------
@pytest.fixture
def idle_agent(idle_host, monkeypatch):
    from hosts.agent import Agent
    os.makedirs(idle_host.lxcpath, mode=0o700, exist_ok=True)
    agent = Agent(idle_host)
    monkeypatch.setattr(agent.lxc, "nproc", lambda ctid: 7)
    return agent


def test_reconcile_writes_nothing_when_nothing_changed(idle_agent, idle_host, monkeypatch,
                                                       django_assert_max_num_queries):
    cts = make_containers(idle_host, MANY)
    monkeypatch.setattr(idle_agent.lxc, "list_all", lambda: {str(ct.ctid): "STOPPED" for ct in cts})
    with django_assert_max_num_queries(1) as captured:
        idle_agent.reconcile()
    assert not statements(captured, "UPDATE")


def test_reconcile_writes_only_what_differs_in_one_statement(idle_agent, idle_host, monkeypatch):
    cts = make_containers(idle_host, MANY)
    woke = {cts[5].ctid, cts[500].ctid, cts[999].ctid}
    monkeypatch.setattr(idle_agent.lxc, "list_all",
                        lambda: {str(ct.ctid): "RUNNING" if ct.ctid in woke else "STOPPED" for ct in cts})
    with CaptureQueriesContext(connection) as captured:
        idle_agent.reconcile()
    assert len(statements(captured, "UPDATE")) == 1
    changed = Container.objects.filter(host=idle_host).exclude(status="stopped")
    assert {(ct.ctid, ct.status, ct.nproc) for ct in changed} == {(ctid, "running", 7) for ctid in woke}
    with CaptureQueriesContext(connection) as captured:
        idle_agent.reconcile()
    assert not statements(captured, "UPDATE")


def test_reconcile_leaves_a_row_that_a_task_changed_while_it_looked(idle_agent, idle_host, monkeypatch):
    """A stop that ends while lxc-ls runs: LXC's answer is older than the row; the row stays stopped
    (it said "running" for a whole reconcile interval, and a start was refused as "already running")."""
    ct, moved = make_containers(idle_host, 2, status="running")

    def list_all_while_tasks_end():
        Container.objects.filter(pk=ct.pk).update(status="stopped")  # a stop task ended after LXC answered
        Container.objects.filter(pk=moved.pk).update(status="stopped")  # and a stop of the other one, too
        return {str(ct.ctid): "RUNNING", str(moved.ctid): "FROZEN"}
    monkeypatch.setattr(idle_agent.lxc, "list_all", list_all_while_tasks_end)
    monkeypatch.setattr("hosts.recovery.thaw_if_frozen", lambda *args: False)
    idle_agent.reconcile()
    assert set(Container.objects.filter(host=idle_host).values_list("status", flat=True)) == {"stopped"}


# -- the mount table -----------------------------------------------------------------------------------------------
@pytest.fixture
def image_containers(idle_agent, idle_host, monkeypatch):
    """50 containers with disk images, all mounted; reads of the mount table counted, mounts refused."""
    cts = make_containers(idle_host, 50, status="running")
    table = {}
    for ct in cts:
        os.makedirs(idle_agent.lxc.rootfs(ct.ctid))
        open(idle_agent.lxc.path(ct.ctid) / diskimage.IMAGE_NAME, "w").close()
        table[str(idle_agent.lxc.rootfs(ct.ctid))] = "/dev/loop9"
    reads = []
    monkeypatch.setattr(diskimage, "read_mount_table", lambda: reads.append(1) or dict(table))
    monkeypatch.setattr(diskimage, "run", lambda *a, **kw: pytest.fail(f"ran {a}: the image is mounted"))
    monkeypatch.setattr(idle_agent.lxc, "list_all", lambda: {str(ct.ctid): "RUNNING" for ct in cts})
    return cts, reads


def test_reconcile_reads_the_mount_table_once(idle_agent, image_containers):
    _cts, reads = image_containers
    idle_agent.reconcile()
    assert len(reads) == 1


def test_the_sampler_reads_the_mount_table_once_per_round(idle_agent, image_containers, monkeypatch):
    from metrics.models import Beancounters
    from metrics.sampler import Sampler

    class IdleCgroup:
        def __init__(self, name):
            pass

        def beancounters(self, limits):
            return []

        def usage(self):
            return Usage(cpu_ns=1, io_read_bytes=0, io_write_bytes=0, oom_kills=0, nproc=1)

    cts, reads = image_containers
    monkeypatch.setattr("metrics.sampler.Cgroup", IdleCgroup)
    monkeypatch.setattr(diskimage.DiskImage, "usage", lambda self: DiskUsage(5 << 20, 300 << 20, 10, 1000))
    assert Sampler(idle_agent.host, idle_agent.lxc).round() == len(cts)
    assert len(reads) == 1
    assert Sample.objects.filter(container__in=cts, disk_used=5 << 20).count() == len(cts)
    assert Beancounters.objects.filter(container__in=cts).count() == len(cts)


# -- housekeeping beside the tasks --------------------------------------------------------------------------------
def housekeeping_of(agent_proc, other_than: int | None = None) -> psutil.Process:
    """The agent's housekeeping process (`python -m hosts.housekeeping`), once it runs."""
    agent = psutil.Process(agent_proc.pid)

    def found():
        return [c for c in agent.children() if "hosts.housekeeping" in c.cmdline() and c.pid != other_than
                and c.status() != psutil.STATUS_ZOMBIE]
    wait_until(found, 30, message="the housekeeping process")
    (child,) = found()
    return child


def heartbeat_after(host, moment) -> None:
    from hosts.models import Host
    wait_until(lambda: Host.objects.get(pk=host.pk).agent_seen_at > moment, 30, message="a heartbeat")


def test_housekeeping_runs_in_a_process_beside_the_agent_and_dies_with_it(agent, host):
    from hosts.models import Host
    child = housekeeping_of(agent.proc)
    heartbeat_after(host, Host.objects.get(pk=host.pk).agent_seen_at)  # its own: it is past its start
    assert child.nice() == psutil.Process(agent.proc.pid).nice() + 10
    assert agent.token not in " ".join(child.cmdline())  # it came through a pipe
    assert "PANEL_HOST_TOKEN" not in child.environ()
    assert Host.objects.get(pk=host.pk).agent_pid == agent.proc.pid  # the agent's, not the child's
    agent.proc.send_signal(signal.SIGKILL)
    agent.proc.wait()
    wait_until(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, 10,
               message="the housekeeping process to die with the agent")


def test_a_killed_housekeeping_process_is_started_again_and_heartbeats_resume(agent, host):
    """Issue 15: nothing goes down with one process. Without its housekeeping process the agent
    still runs tasks but the host shows it offline: the agent starts it again, and says why."""
    from django.utils import timezone
    from hosts.models import Host
    first = housekeeping_of(agent.proc)
    heartbeat_after(host, Host.objects.get(pk=host.pk).agent_seen_at)
    for _ in range(2):  # twice: the second waits the doubled back-off
        dead = housekeeping_of(agent.proc)
        dead.send_signal(signal.SIGKILL)
        killed_at = timezone.now()
        wait_until(lambda: not dead.is_running() or dead.status() == psutil.STATUS_ZOMBIE, 10,
                   message="the housekeeping process to die")
        again = housekeeping_of(agent.proc, other_than=dead.pid)
        heartbeat_after(host, killed_at)
        assert again.nice() == psutil.Process(agent.proc.pid).nice() + 10
    assert again.pid != first.pid and agent.proc.poll() is None
    assert Host.objects.get(pk=host.pk).agent_pid == agent.proc.pid
    log = agent.log_path.read_text()
    assert f"the housekeeping process (pid {first.pid}) was killed by SIGKILL" in log
    assert "starting it again in 1 s" in log and "starting it again in 2 s" in log


def test_housekeeping_stops_with_the_agent(agent, host):
    from hosts.models import Host
    child = housekeeping_of(agent.proc)
    heartbeat_after(host, Host.objects.get(pk=host.pk).agent_seen_at)  # the agent serves: its worker handles SIGTERM
    # SIGTERM: RQ's warm shutdown, then the agent stops its housekeeping process, which may finish the
    # duty under way for up to STOP_SECONDS; on a loaded machine the whole stop took past 20 s and the
    # fixture killed the agent (-9). Waited for long enough that only a stop that hangs fails.
    agent.stop(timeout=3 * housekeeping.STOP_SECONDS + 30)
    assert agent.proc.returncode == 0
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    assert "housekeeping process (pid" not in agent.log_path.read_text().split("housekeeping process started")[-1]
