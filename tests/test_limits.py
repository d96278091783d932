"""Limits and beancounters on real containers: the kernel enforces what the panel sets."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from containers import services
from containers.models import Container
from metrics.models import Beancounters, ContainerEvent, Sample

from .conftest import BASE_DIR, LXCPATH, wait_task, wait_until

pytestmark = pytest.mark.integration
CG = Path("/sys/fs/cgroup")


def cgroup_file(ctid, controller, name):
    return (CG / controller / f"lxc.payload.{ctid}" / name).read_text().strip()


def make(admin, host, template_name, ctid, **limits):
    task = services.create_container(user=admin, ctid=ctid, ostemplate=template_name, hostname=f"l{ctid}.test",
                                     host=host, start=True, limits=limits)
    assert wait_task(task).status == "ok", task.log
    return Container.objects.get(ctid=ctid)


def run_in(ct, user, argv, timeout=60):
    task = wait_task(services.exec_in_container(ct, user, argv, timeout=timeout), timeout=timeout + 30)
    assert task.status == "ok", task.log
    return task.result


def counters(ct):
    return {c["resource"]: c for c in Beancounters.objects.get(container=ct).counters}


def test_memory_hog_hits_its_limit_and_nothing_else(agent, admin_user, host, template_name):
    hog = make(admin_user, host, template_name, 9401, ram_mb=32, swap_mb=0)
    calm = make(admin_user, host, template_name, 9402, ram_mb=64)
    limit = int(cgroup_file(9401, "memory", "memory.limit_in_bytes"))
    assert limit == 32 * 1024 * 1024, (limit, (LXCPATH / "9401" / "config").read_text())
    wait_until(lambda: Beancounters.objects.filter(container=hog).exists(), 10, message="a first sample")
    run_in(hog, admin_user, ["sh", "-c", "timeout 20 tail /dev/zero; echo done"], timeout=40)
    oom = cgroup_file(9401, "memory", "memory.oom_control")
    failcnt = int(cgroup_file(9401, "memory", "memory.failcnt"))
    assert failcnt > 0 or "oom_kill 0" not in oom
    assert int(cgroup_file(9402, "memory", "memory.failcnt")) == 0
    assert "oom_kill 0" in cgroup_file(9402, "memory", "memory.oom_control")
    # The sampler sees it: physpages' failcnt (or the oom counter) rose, and an event says so.
    wait_until(lambda: (counters(hog)["physpages"]["failcnt"] or 0) > 0
               or (counters(hog)["oomguarpages"]["failcnt"] or 0) > 0, 20, message="beancounters to show the hog")
    wait_until(lambda: ContainerEvent.objects.filter(ctid=9401).exists(), 10, message="a resource event")
    assert run_in(calm, admin_user, ["true"])["exit_code"] == 0


def test_fork_loop_stops_at_numproc(agent, admin_user, host, template_name):
    ct = make(admin_user, host, template_name, 9403)
    wait_until(lambda: Beancounters.objects.filter(container=ct).exists(), 10, message="a first sample")
    assert wait_task(services.update_container(ct, admin_user, numproc=20)).status == "ok"
    assert cgroup_file(9403, "pids", "pids.max") == "20"  # changed on the running container at once
    result = run_in(ct, admin_user, ["sh", "-c", "for i in $(seq 1 60); do sleep 5 & done 2>&1; wait; echo end"],
                    timeout=40)
    assert "can't fork" in result["stdout"] + result["stderr"] or "Resource temporarily" in result["stdout"] + result["stderr"]
    assert int(cgroup_file(9403, "pids", "pids.events").split()[1]) > 0
    wait_until(lambda: (counters(ct)["numproc"]["failcnt"] or 0) > 0, 20, message="numproc failcnt")
    assert ContainerEvent.objects.filter(ctid=9403, resource="numproc").exists()


def test_diskspace_is_enforced_inside_and_grows_online(agent, admin_user, host, template_name):
    ct = make(admin_user, host, template_name, 9404, disk_mb=300)
    df_before = subprocess.run(["df", "--output=avail", "/"], capture_output=True, text=True).stdout
    result = run_in(ct, admin_user, ["sh", "-c", "dd if=/dev/zero of=/fill bs=1M count=400 2>&1; echo rc=$?"])
    assert "No space left on device" in result["stdout"]
    assert df_before  # the host's own filesystem was never the one that filled
    # Growing works while it runs; the space is there at once.
    assert wait_task(services.update_container(ct, admin_user, disk_mb=600)).status == "ok"
    size = run_in(ct, admin_user, ["df", "-m", "/"])["stdout"].splitlines()[1].split()[1]
    assert 580 < int(size) <= 600
    run_in(ct, admin_user, ["dd", "if=/dev/zero", "of=/more", "bs=1M", "count=100"])
    # Shrinking below what is used is refused, and the row keeps what the disk really has.
    task = wait_task(services.update_container(ct, admin_user, disk_mb=300))
    assert task.status == "failed" and "below what container 9404 uses" in task.error
    ct.refresh_from_db()
    assert ct.disk_mb == 600
    # Shrinking a running container is refused; stopped, the filesystem is rebuilt smaller with the files kept.
    run_in(ct, admin_user, ["rm", "/fill"])
    task = wait_task(services.update_container(ct, admin_user, disk_mb=400))
    assert task.status == "failed" and "only shrink while the container is stopped" in task.error
    ct.refresh_from_db()
    assert wait_task(services.stop_container(ct, admin_user)).status == "ok"
    ct.refresh_from_db()
    assert wait_task(services.update_container(ct, admin_user, disk_mb=400)).status == "ok"
    assert (LXCPATH / "9404" / "rootfs" / "more").stat().st_size == 100 * 1024 * 1024
    assert 380 < os.statvfs(LXCPATH / "9404" / "rootfs").f_blocks * 4096 // (1024 * 1024) <= 400


def test_limits_change_live_and_persist(agent, admin_user, host, template_name):
    ct = make(admin_user, host, template_name, 9405)
    env = agent.env()
    res = subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), "vzctl", "set", "9405", "--ram", "512M", "--swap", "256M",
         "--cpuunits", "2000", "--cpulimit", "25", "--cpus", "2", "--numproc", "200", "--diskspace", "2G:2200M",
         "--diskinodes", "200000:220000", "--ioprio", "4", "--save"],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr + res.stdout
    assert int(cgroup_file(9405, "memory", "memory.limit_in_bytes")) == 512 * 1024 * 1024
    assert int(cgroup_file(9405, "memory", "memory.memsw.limit_in_bytes")) == 768 * 1024 * 1024
    assert cgroup_file(9405, "cpu", "cpu.shares") == str(2000 * 1024 // 1000)
    assert cgroup_file(9405, "cpu", "cpu.cfs_quota_us") == "25000"
    assert cgroup_file(9405, "pids", "pids.max") == "200"
    ct.refresh_from_db()
    assert (ct.ram_mb, ct.swap_mb, ct.cpuunits, ct.cpulimit, ct.cpus, ct.numproc, ct.disk_soft_mb, ct.disk_mb,
            ct.diskinodes_soft, ct.diskinodes, ct.ioprio) == (512, 256, 2000, 25, 2, 200, 2048, 2200, 200000, 220000, 4)
    config = (LXCPATH / "9405" / "config").read_text()
    assert "lxc.cgroup.pids.max = 200" in config  # kept for the next start
    # Counters with no mainline limit are refused with the reason, nothing changed.
    res = subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), "vzctl", "set", "9405", "--kmemsize",
                          "1000000:2000000", "--save"], cwd=BASE_DIR, env=env, capture_output=True, text=True)
    assert res.returncode != 0 and "kmemsize" in res.stderr and "Nothing was changed" in res.stderr
    # After a restart the limits are still there.
    assert wait_task(services.restart_container(ct, admin_user)).status == "ok"
    assert cgroup_file(9405, "pids", "pids.max") == "200"
    assert cgroup_file(9405, "cpu", "cpu.cfs_quota_us") == "25000"


def test_sampler_records_samples_and_beancounters(agent, admin_user, host, template_name):
    ct = make(admin_user, host, template_name, 9406)
    wait_until(lambda: Sample.objects.filter(container=ct, tier=0).count() >= 3, 20, message="samples")
    sample = Sample.objects.filter(container=ct, tier=0).latest("at")
    assert sample.mem_bytes > 0 and sample.nproc >= 1 and sample.disk_used > 0 and sample.cpu_pct is not None
    rows = counters(ct)
    assert rows["numproc"]["held"] >= 1 and rows["physpages"]["limit"] == 512 * 1024 // 4
    assert rows["kmemsize"]["limit"] is None and "not enforced" in rows["kmemsize"]["note"]
    assert rows["numfile"]["measured"] is False
    assert rows["diskspace"]["limit"] > 0 and rows["diskinodes"]["held"] > 0

