"""vzmigrate between real hosts: a second host on this machine (local copies) and a host in a
network namespace of its own reached over SSH. Containers are real; a process inside each
writes a counter line every 20 ms, so a lost or doubled write shows as a break in the sequence.

CTIDs 98xx. Failures are injected for real: the destination's disk fills up, sshd dies
mid-copy, the destination's agent is killed mid-way.
"""
from __future__ import annotations

import io
import os
import subprocess
import time
from pathlib import Path

import pytest

from containers import services
from containers.models import Container
from metrics.models import ContainerEvent
from network import services as net
from tasks.models import Task
from tasks.services import TaskError

from .conftest import LXCPATH, wait_task, wait_until
from .hosts_fixtures import NSENTER, NS_SIDE_IP, remote_host, remote_site, second_host  # noqa: F401

pytestmark = pytest.mark.integration

COUNTER = """#!/bin/sh
# One line per tick; after a restart it carries on from the last line written.
mkdir -p /data
i=$(tail -n 1 /data/log 2>/dev/null)
i=${i:-0}
while true; do
  i=$((i+1))
  echo $i >> /data/log
  usleep 20000
done
"""


def lxc_state(lxcpath, ctid, prefix=()) -> str:
    res = subprocess.run([*prefix, "lxc-info", "-n", str(ctid), "-P", str(lxcpath), "-sH"],
                         capture_output=True, text=True)
    return res.stdout.strip() if res.returncode == 0 else "ABSENT"


def counting_container(admin, host, template_name, ctid, filler_mb=0, start=True) -> Container:
    """A container whose init runs the counter; `filler_mb` of random data makes copies take a while."""
    task = services.create_container(user=admin, ctid=ctid, ostemplate=template_name, hostname=f"m{ctid}.test",
                                     host=host, limits={"disk_mb": 600})
    assert wait_task(task).status == "ok", task.log
    rootfs = Path(host.lxcpath) / str(ctid) / "rootfs"
    (rootfs / "counter.sh").write_text(COUNTER)
    os.chmod(rootfs / "counter.sh", 0o755)
    with open(rootfs / "etc/inittab", "a") as fh:
        fh.write("::respawn:/counter.sh\n")
    if filler_mb:
        with open(rootfs / "filler.bin", "wb") as fh:
            for _ in range(filler_mb):
                fh.write(os.urandom(1 << 20))
    ct = Container.objects.get(ctid=ctid)
    if start:
        assert wait_task(services.start_container(ct, admin)).status == "ok"
        wait_until(lambda: len(counter(rootfs)) >= 10, 20, message="the counter to run")
        ct.refresh_from_db()
    return ct


def counter(rootfs: Path) -> list[int]:
    try:
        return [int(x) for x in (rootfs / "data/log").read_text().split()]
    except FileNotFoundError:
        return []


def assert_intact(lines: list[int]) -> None:
    """Every tick once, in order: nothing lost, nothing written twice."""
    assert lines, "no counter lines"
    assert lines == list(range(1, len(lines) + 1)), f"counter broken near {first_break(lines)}"


def first_break(lines):
    for i, value in enumerate(lines):
        if value != i + 1:
            return lines[max(0, i - 3):i + 3]
    return None


def ping_from_here(address: str) -> bool:
    return subprocess.run(["busybox", "ping", "-c", "1", "-W", "2", address], capture_output=True).returncode == 0


def loop_devices_for(path: Path) -> list[str]:
    out = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(path) in line]


# -- offline, on this machine ------------------------------------------------------------------------
def test_offline_migration_to_a_second_host_and_back(agent, second_host, admin_user, host, template_name, client):
    h2, h2_agent = second_host
    h2_agent.start()
    ct = counting_container(admin_user, host, template_name, 9801, start=False)
    rootfs = LXCPATH / "9801" / "rootfs"
    (rootfs / "data").mkdir()
    (rootfs / "data/marker").write_text("made on the first host\n")
    os.link(rootfs / "data/marker", rootfs / "data/marker-link")

    # vzmigrate at the shell: waits, prints the task's log, fails loudly on a refusal.
    from django.core.management import call_command
    from django.core.management.base import CommandError
    with pytest.raises(CommandError, match="no host 'nowhere'"):
        call_command("vzmigrate", "nowhere", "9801")
    out = io.StringIO()
    call_command("vzmigrate", "-r", "yes", h2.name, "9801", stdout=out)
    task = ct.tasks.get(type="ct.migrate")
    assert task.status == "ok", task.log
    assert f"Task #{task.pk} queued: migrate CT 9801 from {host.name} to vzt-h2" in out.getvalue()
    assert "local filesystem" in task.log and "local filesystem" in out.getvalue()
    ct.refresh_from_db()
    assert ct.host == h2 and ct.status == "stopped" and ct.lock_task is None
    assert not (LXCPATH / "9801").exists()
    moved = Path(h2.lxcpath) / "9801" / "rootfs"
    assert (moved / "data/marker").read_text() == "made on the first host\n"
    assert (moved / "data/marker").stat().st_ino == (moved / "data/marker-link").stat().st_ino  # hard links kept
    assert ContainerEvent.objects.filter(container=ct, kind="migration").exists()

    # It works there: start it, the counter runs on h2.
    assert wait_task(services.start_container(ct, admin_user)).status == "ok"
    assert lxc_state(h2.lxcpath, 9801) == "RUNNING"
    wait_until(lambda: len(counter(moved)) >= 5, 20, message="the counter on h2")

    # Back from the container page's Migrate form, keeping the source copy (-r no): set aside,
    # unmounted, never started, listed as unmanaged.
    client.force_login(admin_user)
    page = client.get("/containers/9801/").content.decode()
    assert 'id="migrate"' in page and f'<option value="{host.pk}">{host.name}</option>' in page
    assert f'<option value="{h2.pk}">' not in page  # not to where it already is
    res = client.post("/containers/9801/migrate/", {"destination": host.pk, "bwlimit_kib": ""})
    task = ct.tasks.filter(type="ct.migrate").latest("pk")
    assert res.status_code == 302 and res["Location"] == f"/tasks/{task.pk}/"
    assert task.params["remove_source"] is False and task.params["online"] is False
    task = wait_task(task, 120)
    assert task.status == "ok", task.log
    ct.refresh_from_db()
    assert ct.host == host and ct.status == "running"  # offline migration of a running one: stopped, copied, started
    kept = Path(h2.lxcpath) / "9801.migrated"
    assert (kept / "config").exists() and "lxc.start.auto = 0" in (kept / "config").read_text()
    assert lxc_state(h2.lxcpath, "9801.migrated") == "STOPPED"
    assert loop_devices_for(kept) == []
    assert_intact(counter(LXCPATH / "9801" / "rootfs"))
    wait_until(lambda: {"name": "9801.migrated", "state": "STOPPED"} in type(h2).objects.get(pk=h2.pk).unmanaged,
               20, message="the kept copy listed as unmanaged")


def test_migration_refusals_change_nothing(agent, second_host, admin_user, host, template_name, people):
    h2, h2_agent = second_host
    ct = counting_container(admin_user, host, template_name, 9802, start=False)
    # The destination's agent has never run.
    with pytest.raises(TaskError, match="vzt-h2 cannot take part: agent has never run"):
        services.migrate_container(ct, admin_user, h2)
    h2_agent.start()
    with pytest.raises(TaskError, match="already on"):
        services.migrate_container(ct, admin_user, host)
    type(h2).objects.filter(pk=h2.pk).update(drained_at="2026-01-01T00:00:00Z", drain_reason="new disks")
    h2.refresh_from_db()
    with pytest.raises(TaskError, match=r"drained \(new disks\)"):
        services.migrate_container(ct, admin_user, h2)
    type(h2).objects.filter(pk=h2.pk).update(drained_at=None)
    h2.refresh_from_db()
    # Tenants do not move containers between hosts, not even their own.
    with pytest.raises(TaskError, match="may not change|Only administrators and operators"):
        services.migrate_container(ct, people["student"], h2)
    ct.refresh_from_db()
    assert ct.host == host and ct.lock_task is None and not ct.tasks.filter(type="ct.migrate").exists()


# -- online, over SSH to the host in the namespace -----------------------------------------------------
def remote_ready(h3, h3_agent, remote_site, source_host):
    h3_agent.start()
    h3.refresh_from_db()
    assert h3.ssh_host_key and h3.ssh_host_key.split()[1] in (remote_site.host_key.with_suffix(".pub")).read_text()
    source_key = type(h3).objects.get(pk=source_host.pk).ssh_client_key.split()[1]
    wait_until(lambda: source_key in remote_site.authorized_keys.read_text(), 20,
               message="the source's key authorized on the remote host")
    line = next(l for l in remote_site.authorized_keys.read_text().splitlines() if source_key in l)
    assert line.startswith('command="/usr/bin/python3 -I ') and f'rsync_gate.py {h3.lxcpath}",restrict ' in line


def test_online_migration_over_ssh_keeps_the_counter_going(agent, remote_host, remote_site, admin_user, host,
                                                            template_name):
    h3, h3_agent = remote_host
    remote_ready(h3, h3_agent, remote_site, host)
    ct = counting_container(admin_user, host, template_name, 9803)
    assert wait_task(net.add_addresses(ct, admin_user, ["198.18.0.50"])).status == "ok"
    assert ping_from_here("198.18.0.50")
    before = counter(LXCPATH / "9803" / "rootfs")

    task = services.migrate_container(ct, admin_user, h3, online=True)
    # Locked for the whole migration: any other change waits.
    with pytest.raises(TaskError, match=f"locked by task #{task.pk}"):
        services.stop_container(ct, admin_user)
    task = wait_task(task, 180)
    assert task.status == "ok", task.log
    # Off by default (settings.CRIU_LIVE_MIGRATION: lxc-checkpoint did not restore the panel's containers).
    assert "Live migration with CRIU is not possible (it is off (PANEL_CRIU_LIVE_MIGRATION)" in task.log
    assert f"root@{NS_SIDE_IP} over SSH" in task.log
    downtime = task.result["downtime_seconds"]
    assert downtime > 0 and f"Downtime (frozen on {host.name} until running on {h3.name}): {downtime:.3f} s" in task.log
    event = ContainerEvent.objects.get(container=ct, kind="migration")
    assert f"downtime {downtime:.3f} s" in event.message

    ct.refresh_from_db()
    assert ct.host == h3 and ct.status == "running" and ct.lock_task is None
    assert lxc_state(h3.lxcpath, 9803, NSENTER) == "RUNNING"
    assert not (LXCPATH / "9803").exists() and lxc_state(LXCPATH, 9803) == "ABSENT"
    moved = Path(h3.lxcpath) / "9803" / "rootfs"
    wait_until(lambda: len(counter(moved)) > len(before) + 50, 20, message="the counter to go on at the destination")
    assert_intact(counter(moved))
    # The address moved with it: reached from here through the namespace's link, routed there now.
    assert ping_from_here("198.18.0.50")
    routes = subprocess.run(["ip", "route", "show", "198.18.0.50"], capture_output=True, text=True).stdout
    assert "venet" not in routes
    ns_routes = subprocess.run([*NSENTER, "ip", "route", "show", "198.18.0.50"], capture_output=True, text=True).stdout
    assert "venet9803" in ns_routes


def test_a_changed_host_key_is_refused(agent, remote_host, remote_site, admin_user, host, template_name):
    h3, h3_agent = remote_host
    remote_ready(h3, h3_agent, remote_site, host)
    ct = counting_container(admin_user, host, template_name, 9804)
    other = Path(remote_site.base / "other_key")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    type(h3).objects.filter(pk=h3.pk).update(ssh_host_key=other.with_suffix(".pub").read_text().strip())
    task = wait_task(services.migrate_container(ct, admin_user, h3, online=True), 60)
    assert task.status == "failed"
    assert "Host key verification failed" in task.error
    ct.refresh_from_db()
    assert ct.host == host and ct.status == "running"
    assert list(Path(h3.lxcpath).glob(".vzpanel-incoming-*")) == []


# -- failures injected mid-way ------------------------------------------------------------------------------
def start_migration_and(action, ct, admin, dest, when_path_glob, bwlimit=6000, **options):
    """Queue an online migration with a slow copy; once the destination's incoming copy exists, do `action`."""
    task = services.migrate_container(ct, admin, dest, online=True, bwlimit_kib=bwlimit, **options)
    lxcpath = Path(dest.lxcpath)
    wait_until(lambda: list(lxcpath.glob(when_path_glob)), 60, interval=0.01, message="the destination's copy")
    time.sleep(0.5)  # well into the first copy
    action()
    return wait_task(task, 180)


def assert_back_on_source(ct, host, dest, before_len, prefix=()):
    ct.refresh_from_db()
    assert ct.host == host and ct.status == "running" and ct.lock_task is None
    assert lxc_state(LXCPATH, ct.ctid) == "RUNNING"
    rootfs = LXCPATH / str(ct.ctid) / "rootfs"
    wait_until(lambda: len(counter(rootfs)) > before_len + 30, 20, message="the counter to go on at the source")
    assert_intact(counter(rootfs))
    assert lxc_state(dest.lxcpath, ct.ctid, prefix) == "ABSENT"


def test_destination_disk_full_mid_copy(agent, second_host, admin_user, host, template_name):
    h2, h2_agent = second_host
    # The destination's lxcpath is a small filesystem of its own, which fills up during the copy.
    lxcpath = Path(h2.lxcpath)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200m,mode=0755", "vzpt-h2-tmpfs", str(lxcpath)], check=True)
    try:
        h2_agent.start()
        ct = counting_container(admin_user, host, template_name, 9805, filler_mb=24)
        before = len(counter(LXCPATH / "9805" / "rootfs"))

        def fill_disk():
            subprocess.run(["dd", "if=/dev/zero", f"of={lxcpath}/fill", "bs=1M", "count=400"], capture_output=True)
        # (The administrator overrides the capacity check: promised disk is not what fills up here.)
        task = start_migration_and(fill_disk, ct, admin_user, h2, ".vzpanel-incoming-9805-*", override_capacity=True)
        assert task.status == "failed", task.log
        assert "No space left on device" in task.log
        assert "thawed" not in task.log  # it failed before the freeze: the container never stopped
        assert_back_on_source(ct, host, h2, before)
        assert list(lxcpath.glob(".vzpanel-incoming-*")) == []
        assert loop_devices_for(lxcpath) == []

        # Not enough room from the start: refused before anything is copied, with the numbers.
        task = wait_task(services.migrate_container(ct, admin_user, h2, online=True, override_capacity=True), 60)
        assert task.status == "failed"
        assert "not enough disk space on vzt-h2" in task.error and "MiB free" in task.error
        assert_back_on_source(ct, host, h2, before)
    finally:
        h2_agent.kill()
        subprocess.run(["umount", "-R", "-l", str(lxcpath)], capture_output=True)


def test_ssh_cut_mid_copy(agent, remote_host, remote_site, admin_user, host, template_name):
    h3, h3_agent = remote_host
    remote_ready(h3, h3_agent, remote_site, host)
    ct = counting_container(admin_user, host, template_name, 9806, filler_mb=24)
    before = len(counter(LXCPATH / "9806" / "rootfs"))
    task = start_migration_and(remote_site.cut_ssh, ct, admin_user, h3, ".vzpanel-incoming-9806-*")
    assert task.status == "failed", task.log
    assert "rsync to root@198.18.0.2 over SSH failed" in task.error
    assert_back_on_source(ct, host, h3, before, NSENTER)
    # The destination's agent (still there) removed what had arrived.
    assert list(Path(h3.lxcpath).glob(".vzpanel-incoming-*")) == []
    assert "The copy on vzt-h3 was removed" in task.log


def test_destination_agent_killed_mid_way(agent, remote_host, remote_site, admin_user, host, template_name):
    h3, h3_agent = remote_host
    remote_ready(h3, h3_agent, remote_site, host)
    ct = counting_container(admin_user, host, template_name, 9807, filler_mb=24)
    before = len(counter(LXCPATH / "9807" / "rootfs"))
    task = start_migration_and(h3_agent.kill, ct, admin_user, h3, ".vzpanel-incoming-9807-*")
    assert task.status == "failed", task.log
    assert "did not take the ready step" in task.error
    assert_back_on_source(ct, host, h3, before, NSENTER)
    # What it had received stays until its agent runs again, which removes it (and its mount).
    assert list(Path(h3.lxcpath).glob(".vzpanel-incoming-9807-*"))
    h3_agent.start()
    assert list(Path(h3.lxcpath).glob(".vzpanel-incoming-*")) == []
    assert loop_devices_for(Path(h3.lxcpath)) == []
    # And the next attempt works.
    task = wait_task(services.migrate_container(ct, admin_user, h3, online=True), 180)
    assert task.status == "ok", task.log
    assert_intact(counter(Path(h3.lxcpath) / "9807" / "rootfs"))


def assert_interrupted_and_back_on_source(task, ct, host, h2, before) -> None:
    task = wait_task(task, 60)
    assert task.status == "failed" and "interrupted" in task.error
    assert_back_on_source(ct, host, h2, before)
    wait_until(lambda: not list(Path(h2.lxcpath).glob(".vzpanel-incoming-*")), 30,
               message="the destination's copy removed")


def test_source_agent_killed_mid_way(agent, second_host, admin_user, host, template_name):
    """The driving agent dies mid-copy: when it starts again, the container runs at the source and
    the destination's copy is removed."""
    h2, h2_agent = second_host
    h2_agent.start()
    ct = counting_container(admin_user, host, template_name, 9812, filler_mb=24)
    before = len(counter(LXCPATH / "9812" / "rootfs"))
    task = services.migrate_container(ct, admin_user, h2, online=True, bwlimit_kib=6000)
    wait_until(lambda: list(Path(h2.lxcpath).glob(".vzpanel-incoming-9812-*")), 60, interval=0.01)
    time.sleep(0.5)
    agent.kill()
    subprocess.run(["pkill", "-KILL", "-f", "^rsync .*9812/rootfs"])  # its rsync would go on alone
    agent.start()
    assert_interrupted_and_back_on_source(task, ct, host, h2, before)


def test_source_agent_killed_while_the_container_is_frozen(agent, second_host, admin_user, host, template_name):
    """The driving agent dies (SIGKILL, at the moment it froze the container for the last copy): the
    container runs at the source again, not frozen, and the destination's copy is removed."""
    h2, h2_agent = second_host
    h2_agent.start()
    ct = counting_container(admin_user, host, template_name, 9819, filler_mb=4)
    before = len(counter(LXCPATH / "9819" / "rootfs"))
    agent.stop()
    agent.extra_env["VZPANEL_DIE_AT"] = "migrate.frozen"
    agent.start()
    task = services.migrate_container(ct, admin_user, h2, online=True)
    wait_until(lambda: agent.proc.poll() is not None, 120, message="the agent to die while frozen")
    del agent.extra_env["VZPANEL_DIE_AT"]
    agent.start()
    assert_interrupted_and_back_on_source(task, ct, host, h2, before)


def test_keep_dst_reuses_the_copy(agent, second_host, admin_user, host, template_name):
    h2, h2_agent = second_host
    h2_agent.start()
    ct = counting_container(admin_user, host, template_name, 9808, filler_mb=16)
    kill_rsync = lambda: subprocess.run(["pkill", "-KILL", "-f", "^rsync .*9808/rootfs"])  # noqa: E731
    task = services.migrate_container(ct, admin_user, h2, online=True, keep_dst=True, bwlimit_kib=6000)
    wait_until(lambda: list(Path(h2.lxcpath).glob(".vzpanel-incoming-9808-*")), 60, interval=0.01)
    time.sleep(1.0)
    kill_rsync()
    task = wait_task(task, 120)
    assert task.status == "failed", task.log
    assert "kept for the next attempt (--keep-dst)" in task.log
    kept = list(Path(h2.lxcpath).glob(".vzpanel-incoming-9808-*"))
    assert len(kept) == 1 and (kept[0] / ".keep").exists() and loop_devices_for(kept[0]) == []
    h2_agent.restart()  # a restarting agent leaves a kept copy alone
    assert list(Path(h2.lxcpath).glob(".vzpanel-incoming-9808-*")) == kept
    ct.refresh_from_db()
    assert ct.host == host and ct.status == "running"
    task = wait_task(services.migrate_container(ct, admin_user, h2, online=True), 120)
    assert task.status == "ok", task.log
    assert "Reusing the copy kept on vzt-h2 by an earlier attempt (--keep-dst)" in task.log
    assert list(Path(h2.lxcpath).glob(".vzpanel-incoming-*")) == []
    assert_intact(counter(Path(h2.lxcpath) / "9808" / "rootfs"))


def test_evacuate_moves_everything_and_remove_is_refused_until_empty(agent, second_host, admin_user, host,
                                                                      template_name):
    from rest_framework.test import APIClient
    from hosts import services as hosts
    h2, h2_agent = second_host
    h2_agent.start()
    running = counting_container(admin_user, host, template_name, 9809)
    stopped = counting_container(admin_user, host, template_name, 9810, start=False)
    with pytest.raises(TaskError, match=r"still has 2 container\(s\): 9809, 9810"):
        hosts.remove_host(admin_user, host, confirm=host.name)
    api = APIClient()
    api.force_authenticate(admin_user)
    res = api.post(f"/api/hosts/{host.name}/evacuate/", {"online": True}, format="json")
    assert res.status_code == 202
    task = wait_task(Task.objects.get(pk=res.json()["task"]["id"]), 240)
    assert task.status == "ok", task.log
    assert task.progress == 100 and "All 2 container(s) moved" in task.log
    host.refresh_from_db()
    assert host.is_drained
    for ct, state in ((running, "running"), (stopped, "stopped")):
        ct.refresh_from_db()
        assert ct.host == h2 and ct.status == state
        child = ct.tasks.get(type="ct.migrate")
        assert child.status == "ok" and f"task #{child.pk}" in task.log
    assert_intact(counter(Path(h2.lxcpath) / "9809" / "rootfs"))
    # Placement now passes over both: one is drained, the other lacks the template.
    with pytest.raises(TaskError, match=rf"No host can take this container: vzt-h2: has no template {template_name}; "
                                        rf"{host.name}: drained \(evacuation\)"):
        services.create_container(user=admin_user, ctid=9811, ostemplate=template_name, hostname="p.test", host=None)


def test_template_copied_to_another_machine_over_ssh(agent, remote_host, remote_site, admin_user, host,
                                                      template_name):
    """The remote host starts with an empty cache: the template goes there over SSH, is checked
    there, and a container made from it runs there."""
    from containers import ostemplates
    from containers.models import OSTemplate
    h3, h3_agent = remote_host
    remote_ready(h3, h3_agent, remote_site, host)
    tpl = OSTemplate.objects.get(host=host, name=template_name)
    task = wait_task(ostemplates.copy_template(admin_user, tpl, h3), 60)
    assert task.status == "ok", task.log
    assert task.host == host and f"root@{NS_SIDE_IP} over SSH" in task.log
    copied = OSTemplate.objects.get(host=h3, name=template_name)
    assert copied.sha256 == tpl.sha256 and copied.source == f"copied from {host.name}"
    assert list(Path(h3.lxcpath).glob(".vzpanel-incoming-*")) == []
    task = wait_task(services.create_container(user=admin_user, ctid=9813, ostemplate=template_name,
                                               hostname="r.test", host=h3, start=True), 60)
    assert task.status == "ok", task.log
    assert lxc_state(h3.lxcpath, 9813, NSENTER) == "RUNNING"
