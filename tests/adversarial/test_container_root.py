"""Root inside a container is not root on the host.

A student's container used to be a privileged LXC container: its root held CAP_SYS_ADMIN over the
host's kernel. From the shell the panel gives them (`vzctl exec`, the exec box, the API) a student
remounted /proc/sys read-write and wrote /proc/sys/kernel/core_pattern ('|/proc/%P/root/pwn'):
the next crash anywhere on the host ran their program as host root. Each test here is that
student's move, made through the panel's own exec path, against a real container. Writes put back
the value that is already there, so the old code proved the power without changing the host.
"""
from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from containers import services
from containers.engine.lxc import ID_RANGE, container_id_ranges, _subid_ranges

from ..conftest import LXCPATH, wait_task
from .test_outside_root import student_container

integration = pytest.mark.integration
CTID = 77101


@pytest.fixture
def student_ct(agent, people, acme, plan, host, template_name):
    ct = student_container(people, acme, plan, host, template_name, CTID)
    yield ct
    ct.refresh_from_db()
    if ct.status == "running":
        wait_task(services.stop_container(ct, people["tadmin"]), 60)
    wait_task(services.destroy_container(ct, people["tadmin"], str(CTID)), 60)


def as_student(ct, people, script: str) -> dict:
    """Run a shell script in the container as the student can (the exec box, the API, vzctl exec)."""
    task = wait_task(services.exec_in_container(ct, people["student"], ["sh", "-c", script]), 60)
    assert task.status == "ok", task.log
    return task.result


@integration
def test_container_root_cannot_set_the_hosts_core_pattern(student_ct, people):
    """The escape itself: with /proc/sys remounted read-write, writing core_pattern must fail."""
    current = Path("/proc/sys/kernel/core_pattern").read_text()
    result = as_student(student_ct, people, "mount -o remount,rw /proc/sys 2>/dev/null; "
                                            "cat /proc/sys/kernel/core_pattern > /tmp/cp && "
                                            "cat /tmp/cp > /proc/sys/kernel/core_pattern; echo write=$?")
    assert Path("/proc/sys/kernel/core_pattern").read_text() == current
    assert "write=1" in result["stdout"], f"container root wrote the host's core_pattern: {result}"


@integration
def test_container_root_cannot_tune_the_hosts_kernel(student_ct, people):
    """The same way out through the other programs the kernel runs as host root, the module loader
    (/proc/sys/kernel/modprobe, run for an unknown binary format) and the hotplug helper
    (/sys/kernel/uevent_helper, with /sys remounted read-write) where the kernel has them, and
    host-wide settings every kernel has (a tenant must not make the host panic or overcommit)."""
    knobs = [k for k in ("/proc/sys/kernel/modprobe", "/sys/kernel/uevent_helper", "/proc/sys/kernel/panic_on_oops",
                         "/proc/sys/vm/overcommit_memory") if Path(k).exists()]
    assert knobs
    before = {k: Path(k).read_text() for k in knobs}
    script = "mount -o remount,rw /proc/sys 2>/dev/null; mount -o remount,rw /sys 2>/dev/null; " + "; ".join(
        f"cat {k} > /tmp/v && cat /tmp/v > {k}; echo {k}=$?" for k in knobs)
    result = as_student(student_ct, people, script)
    assert {k: Path(k).read_text() for k in knobs} == before
    for knob in knobs:
        assert f"{knob}=0" not in result["stdout"], f"container root wrote {knob}: {result}"


@integration
def test_container_root_cannot_make_device_nodes(student_ct, people):
    """The devices the container may use come from LXC; root inside makes none of its own (the old
    containers could mknod the host's disks)."""
    result = as_student(student_ct, people, "mknod /tmp/disk b 7 0; echo mknod=$?")
    assert "mknod=0" not in result["stdout"], result


@integration
def test_container_root_is_an_unprivileged_host_user(student_ct, people, host):
    """Seen from the host, every process of the container runs as root's subordinate ids; files the
    container makes keep the ids it sees (0 is 0 on disk), so backups and migrations carry them."""
    from containers.jobs import lxc_for
    ranges, slot = container_id_ranges(), lxc_for(host).id_slot(CTID)
    uid_start, gid_start = ranges.uid_start + slot * ID_RANGE, ranges.gid_start + slot * ID_RANGE
    result = as_student(student_ct, people, "cat /proc/self/uid_map; touch /root/made-inside; "
                                            "chown 1000:1000 /root/made-inside; id -u")
    assert result["stdout"].split()[:3] == ["0", str(uid_start), str(ID_RANGE)]
    assert result["stdout"].split()[-1] == "0"  # root inside
    init_pid = lxc_for(host).init_pid(CTID)
    uids = psutil.Process(init_pid).uids()
    assert uids.real == uids.effective == uid_start, uids
    assert not lxc_for(host).runs_privileged(CTID)
    assert psutil.Process(init_pid).gids().real == gid_start
    made = (LXCPATH / str(CTID) / "rootfs" / "root" / "made-inside").lstat()
    assert (made.st_uid, made.st_gid) == (1000, 1000)


def test_containers_ids_come_from_roots_subordinate_range():
    """newuidmap takes only ranges /etc/subuid and /etc/subgid give root."""
    ranges = container_id_ranges()
    for name, start in zip(("/etc/subuid", "/etc/subgid"), (ranges.uid_start, ranges.gid_start)):
        assert any(owner == "root" and s <= start and start + ranges.slots * ID_RANGE <= s + c
                   for owner, s, c in _subid_ranges(Path(name))), name


def test_each_container_of_a_host_gets_ids_of_its_own(tmp_path):
    """Its CTID's slot when free, else the lowest free one; kept across config rewrites."""
    from containers.engine.lxc import ContainerSpec, Lxc
    lxc, slots = Lxc(tmp_path), container_id_ranges().slots
    seen = []
    for ctid in (101, 101 + slots, 102):
        (tmp_path / str(ctid)).mkdir()
        (tmp_path / str(ctid) / "config").write_text(lxc.render_config(ContainerSpec(ctid, "x"), tmp_path))
        seen.append(lxc.id_slot(ctid))
    assert seen[0] == 101 % slots and seen[2] == 102 % slots and len(set(seen)) == 3
    assert lxc.id_slot(101 + slots) == seen[1]  # its config's, not the CTID's


@pytest.mark.integration
@pytest.mark.alone  # rewrites /etc/subuid for a moment: never beside tests that start containers
@pytest.mark.parametrize("before", ["alice:100000:65536\nbob:165536:65536\n", "", None])
def test_a_host_without_a_range_for_root_gets_one_past_everyone_elses(before):
    """A fresh Debian host gives its first user 100000:65536 and root nothing: root's range goes
    far past it, so that user's rootless containers never share ids with the panel's. A host with
    empty or missing files gets the same range."""
    saved = {name: Path(name).read_text() if Path(name).exists() else None for name in ("/etc/subuid", "/etc/subgid")}
    try:
        for name in saved:
            if before is None:  # a host whose /etc/subuid and /etc/subgid were never made
                Path(name).unlink(missing_ok=True)
            else:
                Path(name).write_text(before)
        container_id_ranges.cache_clear()
        ranges = container_id_ranges()
        assert ranges.uid_start == ranges.gid_start == 1 << 31 and ranges.slots == 32767
        for name in saved:
            assert f"root:{1 << 31}:{32767 * ID_RANGE}" in Path(name).read_text()
    finally:
        for name, text in saved.items():
            if text is None:
                Path(name).unlink(missing_ok=True)
            else:
                Path(name).write_text(text)
        container_id_ranges.cache_clear()
