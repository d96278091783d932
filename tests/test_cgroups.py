"""containers.engine.cgroups against recorded cgroup v1 and v2 trees (no root needed)."""
from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from containers.engine.cgroups import (
    LONG_MAX, Cgroup, CgroupError, Counter, Limits, Usage, detect_version, format_user_beancounters,
)

MB = 1024 * 1024
V1_UNLIMITED = "9223372036854771712"
CT = "lxc.payload.101"


def write_tree(base: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text if text.endswith("\n") else text + "\n")


V1_ROOT_FILES = {
    "memory/memory.limit_in_bytes": V1_UNLIMITED,
    "memory/memory.usage_in_bytes": "4000000000",
    "pids/pids.current": "300",
    "cpu/cpu.shares": "1024",
    "cpuacct/cpuacct.usage": "999999999999",
    "cpuset/cpuset.cpus": "0-7",
    "blkio/blkio.throttle.io_service_bytes": "Total 0",
    # a hybrid host also has an empty v2 hierarchy here: it must not make it "v2"
    "unified/cgroup.controllers": "",
}

V1_CT_FILES = {
    "memory/memory.usage_in_bytes": str(100 * 4096),
    "memory/memory.max_usage_in_bytes": str(150 * 4096),
    "memory/memory.limit_in_bytes": str(512 * MB),
    "memory/memory.soft_limit_in_bytes": V1_UNLIMITED,
    "memory/memory.failcnt": "7",
    "memory/memory.memsw.usage_in_bytes": str(130 * 4096),
    "memory/memory.memsw.max_usage_in_bytes": str(170 * 4096),
    "memory/memory.memsw.limit_in_bytes": str(768 * MB),
    "memory/memory.memsw.failcnt": "2",
    "memory/memory.kmem.usage_in_bytes": "2451456",
    "memory/memory.kmem.max_usage_in_bytes": "2707456",
    "memory/memory.kmem.limit_in_bytes": V1_UNLIMITED,
    "memory/memory.kmem.failcnt": "0",
    "memory/memory.kmem.tcp.usage_in_bytes": "8192",
    "memory/memory.kmem.tcp.max_usage_in_bytes": "16384",
    "memory/memory.kmem.tcp.limit_in_bytes": V1_UNLIMITED,
    "memory/memory.kmem.tcp.failcnt": "0",
    "memory/memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 3",
    "memory/memory.stat": "cache 0\nrss 409600",
    "pids/pids.current": "5",
    "pids/pids.max": "max",
    "pids/pids.peak": "12",
    "pids/pids.events": "max 4",
    "cpu/cpu.shares": "1024",
    "cpu/cpu.cfs_period_us": "100000",
    "cpu/cpu.cfs_quota_us": "-1",
    "cpu/cpu.stat": "nr_periods 0\nnr_throttled 0\nthrottled_time 0\nnr_bursts 0\nburst_time 0",
    "cpuacct/cpuacct.usage": "123456789",
    "cpuset/cpuset.cpus": "0-7",
    "blkio/blkio.bfq.weight": "100",
    "blkio/blkio.throttle.io_service_bytes": (
        "8:0 Read 4096\n8:0 Write 0\n8:0 Sync 4096\n8:0 Async 0\n8:0 Discard 0\n8:0 Total 4096\n"
        "8:16 Read 1000\n8:16 Write 2000\n8:16 Sync 3000\n8:16 Async 0\n8:16 Discard 0\n8:16 Total 3000\n"
        "Total 7096"),
}

V2_ROOT_FILES = {
    "cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma misc",
    "cgroup.subtree_control": "cpuset cpu io memory pids",
    "cpu.stat": "usage_usec 99999999",
}

V2_CT_FILES = {
    "cgroup.controllers": "cpuset cpu io memory pids",
    "memory.current": str(200 * 4096),
    "memory.peak": str(300 * 4096),
    "memory.high": "max",
    "memory.max": str(256 * MB),
    "memory.events": "low 0\nhigh 0\nmax 9\noom 2\noom_kill 1",
    "memory.stat": "anon 409600\nfile 0\nkernel 1654784\nkernel_stack 65536",
    "memory.swap.current": str(10 * 4096),
    "memory.swap.max": str(128 * MB),
    "memory.swap.events": "high 0\nmax 6\nfail 0",
    "pids.current": "4",
    "pids.peak": "9",
    "pids.max": "64",
    "pids.events": "max 1",
    "cpu.weight": "100",
    "cpu.max": "max 100000",
    "cpu.stat": "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000",
    "cpuset.cpus": "",
    "io.weight": "default 100",
    "io.stat": ("8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n"
                "8:16 rbytes=100 wbytes=200 rios=1 wios=1 dbytes=0 dios=0"),
}


@pytest.fixture
def v1(tmp_path) -> Path:
    root = tmp_path / "v1"
    write_tree(root, V1_ROOT_FILES)
    write_tree(root, {rel.replace("/", f"/{CT}/", 1): text for rel, text in V1_CT_FILES.items()})
    return root


@pytest.fixture
def v2(tmp_path) -> Path:
    root = tmp_path / "v2"
    write_tree(root, V2_ROOT_FILES)
    write_tree(root, {f"{CT}/{rel}": text for rel, text in V2_CT_FILES.items()})
    return root


def by_name(counters: list[Counter]) -> dict[str, Counter]:
    return {c.resource: c for c in counters}


# -- detection ---------------------------------------------------------------
def test_detect_version_v1_despite_unified(v1):
    assert detect_version(str(v1)) == 1
    assert Cgroup("101", str(v1)).version == 1


def test_detect_version_v2(v2):
    assert detect_version(str(v2)) == 2
    assert Cgroup("101", str(v2)).version == 2


def test_detect_version_neither(tmp_path):
    with pytest.raises(CgroupError):
        detect_version(str(tmp_path))


@pytest.mark.skipif(not os.path.exists("/sys/fs/cgroup/memory"), reason="no v1 memory controller on this host")
def test_detect_version_real_machine():
    assert detect_version() == 1


def test_exists_and_names(v1, v2):
    assert Cgroup("101", str(v1)).exists()
    assert Cgroup("lxc.payload.101", str(v1)).exists()
    assert not Cgroup("102", str(v1)).exists()
    assert Cgroup("101", str(v2)).exists()
    assert not Cgroup("102", str(v2)).exists()
    with pytest.raises(ValueError):
        Cgroup("../etc", str(v1))


# -- beancounters ------------------------------------------------------------
def test_beancounters_v1(v1):
    counters = Cgroup("101", str(v1)).beancounters()
    names = [c.resource for c in counters]
    assert names == ["kmemsize", "lockedpages", "privvmpages", "shmpages", "numproc", "physpages",
                     "vmguarpages", "oomguarpages", "numtcpsock", "numflock", "numpty", "numsiginfo",
                     "tcpsndbuf", "tcprcvbuf", "othersockbuf", "dgramrcvbuf", "numothersock",
                     "dcachesize", "numfile", "numiptent", "swappages"]
    c = by_name(counters)
    assert c["physpages"] == Counter("physpages", 100, 150, None, 512 * MB // 4096, 7, True)
    kmem = c["kmemsize"]
    assert (kmem.held, kmem.maxheld, kmem.barrier, kmem.limit, kmem.failcnt) == (2451456, 2707456, None, None, 0)
    assert kmem.measured and "not enforced" in kmem.note
    numproc = c["numproc"]
    assert (numproc.held, numproc.maxheld, numproc.limit, numproc.failcnt) == (5, 12, None, 4)
    oom = c["oomguarpages"]
    assert (oom.held, oom.barrier, oom.limit, oom.failcnt) == (100, None, None, 3)
    assert "oom kills" in oom.note
    swap = c["swappages"]
    assert (swap.held, swap.maxheld, swap.limit, swap.failcnt) == (30, None, 256 * MB // 4096, 2)
    tcp = c["tcpsndbuf"]
    assert (tcp.held, tcp.maxheld, tcp.limit, tcp.failcnt) == (8192, 16384, None, 0)
    for name in ("lockedpages", "privvmpages", "shmpages", "vmguarpages", "numtcpsock", "numflock",
                 "numpty", "numsiginfo", "tcprcvbuf", "othersockbuf", "dgramrcvbuf", "numothersock",
                 "dcachesize", "numfile", "numiptent"):
        assert not c[name].measured
        assert (c[name].held, c[name].maxheld, c[name].barrier, c[name].limit, c[name].failcnt) == (None,) * 5


def test_beancounters_v1_swap_clamped_and_barrier(v1):
    ct = v1 / "memory" / CT
    (ct / "memory.memsw.usage_in_bytes").write_text(str(90 * 4096))  # below usage: racy reads
    (ct / "memory.soft_limit_in_bytes").write_text(str(256 * MB))
    c = by_name(Cgroup("101", str(v1)).beancounters())
    assert c["swappages"].held == 0
    assert c["physpages"].barrier == 256 * MB // 4096


def test_beancounters_v1_without_swap_accounting(v1):
    for f in (v1 / "memory" / CT).glob("memory.memsw.*"):
        f.unlink()
    c = by_name(Cgroup("101", str(v1)).beancounters())
    assert not c["swappages"].measured and c["swappages"].held is None


def test_beancounters_v2(v2):
    c = by_name(Cgroup("101", str(v2)).beancounters())
    assert c["physpages"] == Counter("physpages", 200, 300, None, 256 * MB // 4096, 9, True)
    assert c["swappages"] == Counter("swappages", 10, None, None, 128 * MB // 4096, 6, True)
    numproc = c["numproc"]
    assert (numproc.held, numproc.maxheld, numproc.limit, numproc.failcnt) == (4, 9, 64, 1)
    kmem = c["kmemsize"]
    assert kmem.measured and (kmem.held, kmem.maxheld, kmem.limit, kmem.failcnt) == (1654784, None, None, None)
    oom = c["oomguarpages"]
    assert (oom.held, oom.failcnt) == (200, 1)
    assert not c["tcpsndbuf"].measured and c["tcpsndbuf"].held is None


def test_beancounters_v2_unlimited_and_no_kernel_stat(v2):
    ct = v2 / CT
    (ct / "memory.max").write_text("max\n")
    (ct / "memory.high").write_text(str(128 * MB))
    (ct / "memory.stat").write_text("anon 409600\nfile 0\n")
    (ct / "pids.max").write_text("max\n")
    c = by_name(Cgroup("101", str(v2)).beancounters())
    assert c["physpages"].limit is None and c["physpages"].barrier == 128 * MB // 4096
    assert c["numproc"].limit is None
    assert not c["kmemsize"].measured


def test_beancounters_notes_mismatch_with_panel(v1):
    c = by_name(Cgroup("101", str(v1)).beancounters(Limits(ram_mb=1024, swap_mb=256, numproc=100)))
    assert "panel limit" in c["physpages"].note
    assert c["swappages"].note.count("panel") == 0  # 256 MB swap matches 768-512
    assert "unlimited" in c["numproc"].note


def test_beancounters_not_running(v1):
    with pytest.raises(CgroupError, match="running"):
        Cgroup("102", str(v1)).beancounters()


# -- usage -------------------------------------------------------------------
def test_usage_v1(v1):
    assert Cgroup("101", str(v1)).usage() == Usage(cpu_ns=123456789, io_read_bytes=5096, io_write_bytes=2000,
                                                   oom_kills=3, nproc=5)


def test_usage_v1_prefers_recursive_blkio(v1):
    (v1 / "blkio" / CT / "blkio.throttle.io_service_bytes_recursive").write_text(
        "8:0 Read 10\n8:0 Write 20\n8:0 Total 30\nTotal 30\n")
    u = Cgroup("101", str(v1)).usage()
    assert (u.io_read_bytes, u.io_write_bytes) == (10, 20)


def test_usage_v2(v2):
    assert Cgroup("101", str(v2)).usage() == Usage(cpu_ns=2_500_000_000, io_read_bytes=4196, io_write_bytes=8392,
                                                   oom_kills=1, nproc=4)


# -- limit writes ------------------------------------------------------------
def test_limit_writes_v1_raising_memory_puts_memsw_first(v1):
    cg = Cgroup("101", str(v1))
    writes = cg.limit_writes(Limits(ram_mb=1024, swap_mb=512), old=Limits(ram_mb=512, swap_mb=256))
    assert writes == [("memory/memory.memsw.limit_in_bytes", str(1536 * MB)),
                      ("memory/memory.limit_in_bytes", str(1024 * MB))]


def test_limit_writes_v1_lowering_memory_puts_memory_first(v1):
    cg = Cgroup("101", str(v1))
    writes = cg.limit_writes(Limits(ram_mb=256, swap_mb=0), old=Limits(ram_mb=512, swap_mb=256))
    assert writes == [("memory/memory.limit_in_bytes", str(256 * MB)),
                      ("memory/memory.memsw.limit_in_bytes", str(256 * MB))]


def test_limit_writes_v1_without_old_uses_live_memsw(v1):
    cg = Cgroup("101", str(v1))  # live memsw limit is 768 MB
    assert cg.limit_writes(Limits(ram_mb=1024))[0][0] == "memory/memory.memsw.limit_in_bytes"
    assert cg.limit_writes(Limits(ram_mb=256))[0][0] == "memory/memory.limit_in_bytes"
    # from unlimited every new limit is a shrink: memory first
    assert cg.limit_writes(Limits(ram_mb=4096), old=Limits())[0][0] == "memory/memory.limit_in_bytes"


def test_limit_writes_skip_none(v1, v2):
    assert Cgroup("101", str(v1)).limit_writes(Limits()) == []
    assert Cgroup("101", str(v2)).limit_writes(Limits()) == []
    assert Cgroup("101", str(v1)).limit_writes(Limits(numproc=64)) == [("pids/pids.max", "64")]


def test_limit_writes_v2_memory(v2):
    writes = Cgroup("101", str(v2)).limit_writes(Limits(ram_mb=512, ram_barrier_mb=384, swap_mb=128))
    assert writes == [("memory.max", str(512 * MB)), ("memory.swap.max", str(128 * MB)),
                      ("memory.high", str(384 * MB))]


def test_limit_writes_v1_barrier(v1):
    writes = Cgroup("101", str(v1)).limit_writes(Limits(ram_barrier_mb=384))
    assert writes == [("memory/memory.soft_limit_in_bytes", str(384 * MB))]


@pytest.mark.parametrize("limits, quota", [
    (Limits(cpulimit=50), 50_000),
    (Limits(cpus=2), 200_000),
    (Limits(cpulimit=300, cpus=2), 200_000),
    (Limits(cpulimit=150, cpus=2), 150_000),
    (Limits(cpulimit=0, cpus=1), 100_000),
])
def test_cpu_quota_both_versions(v1, v2, limits, quota):
    assert Cgroup("101", str(v1)).limit_writes(limits) == [("cpu/cpu.cfs_period_us", "100000"),
                                                          ("cpu/cpu.cfs_quota_us", str(quota))]
    assert Cgroup("101", str(v2)).limit_writes(limits) == [("cpu.max", f"{quota} 100000")]


def test_cpulimit_zero_removes_quota(v1, v2):
    assert Cgroup("101", str(v1)).limit_writes(Limits(cpulimit=0))[-1] == ("cpu/cpu.cfs_quota_us", "-1")
    assert Cgroup("101", str(v2)).limit_writes(Limits(cpulimit=0)) == [("cpu.max", "max 100000")]


@pytest.mark.parametrize("units, shares, weight", [
    (1000, 1024, 100), (500, 512, 50), (1, 2, 1), (8, 8, 1), (250000, 256000, 10000), (16, 16, 2),
])
def test_cpuunits_mapping(v1, v2, units, shares, weight):
    assert Cgroup("101", str(v1)).limit_writes(Limits(cpuunits=units)) == [("cpu/cpu.shares", str(shares))]
    assert Cgroup("101", str(v2)).limit_writes(Limits(cpuunits=units)) == [("cpu.weight", str(weight))]


def test_ioprio_bfq_weight_when_present(v1, v2):
    assert Cgroup("101", str(v1)).limit_writes(Limits(ioprio=4)) == [("blkio/blkio.bfq.weight", "500")]
    assert Cgroup("101", str(v2)).limit_writes(Limits(ioprio=0)) == [("io.weight", "default 100")]
    with pytest.raises(ValueError):
        Cgroup("101", str(v1)).limit_writes(Limits(ioprio=8))


def test_ioprio_blkio_weight_when_no_bfq(v1):
    (v1 / "blkio" / CT / "blkio.bfq.weight").unlink()
    (v1 / "blkio" / CT / "blkio.weight").write_text("500\n")  # CFQ's, on kernels before 5.0
    assert Cgroup("101", str(v1)).limit_writes(Limits(ioprio=7)) == [("blkio/blkio.weight", "800")]


def test_ioprio_is_written_nowhere_on_a_kernel_without_an_io_weight(v1, v2):
    """No BFQ, no CFQ (gone since Linux 5.0), no iocost: no weight file exists, and writing one made
    every start fail ("Failed to set blkio.weight") on such a machine, this sandbox among them."""
    for path in [*(v1 / "blkio").rglob("blkio*weight"), *v2.rglob("io*weight")]:
        path.unlink()
    assert Cgroup("101", str(v1)).limit_writes(Limits(ioprio=4)) == []
    assert Cgroup("101", str(v2)).limit_writes(Limits(ioprio=4)) == []
    assert not [line for line in Cgroup("101", str(v1)).lxc_config_lines(Limits(ioprio=4)) if "weight" in line]


def test_ioprio_container_not_running_looks_at_blkio_root(v1):
    (v1 / "blkio" / CT / "blkio.bfq.weight").unlink()
    (v1 / "blkio" / "blkio.weight").write_text("500\n")
    cg = Cgroup("102", str(v1))
    assert cg.limit_writes(Limits(ioprio=4)) == [("blkio/blkio.weight", "500")]
    (v1 / "blkio" / "blkio.bfq.weight").write_text("100\n")
    assert cg.limit_writes(Limits(ioprio=4)) == [("blkio/blkio.bfq.weight", "500")]


def test_ioprio_root_without_weight_uses_a_sibling(v1):
    # Real v1 hosts have no weight file in the blkio root, only in child cgroups.
    write_tree(v1, {"blkio/lxc.pivot/blkio.bfq.weight": "100"})
    assert Cgroup("102", str(v1)).limit_writes(Limits(ioprio=2)) == [("blkio/blkio.bfq.weight", "300")]


# -- apply -------------------------------------------------------------------
def test_apply_writes_files_v1(v1):
    cg = Cgroup("101", str(v1))
    applied = cg.apply(Limits(ram_mb=1024, swap_mb=256, cpuunits=2000, cpulimit=50, numproc=99, ioprio=3),
                       old=Limits(ram_mb=512, swap_mb=256))
    assert applied[:2] == [f"memory/memory.memsw.limit_in_bytes={1280 * MB}",
                           f"memory/memory.limit_in_bytes={1024 * MB}"]
    ct = lambda c, f: (v1 / c / CT / f).read_text()  # noqa: E731
    assert ct("memory", "memory.limit_in_bytes") == str(1024 * MB)
    assert ct("memory", "memory.memsw.limit_in_bytes") == str(1280 * MB)
    assert ct("cpu", "cpu.shares") == "2048"
    assert ct("cpu", "cpu.cfs_quota_us") == "50000"
    assert ct("pids", "pids.max") == "99"
    assert ct("blkio", "blkio.bfq.weight") == "400"


def test_apply_writes_files_v2(v2):
    applied = Cgroup("101", str(v2)).apply(Limits(ram_mb=128, swap_mb=0, cpus=1, ioprio=4))
    assert applied == [f"memory.max={128 * MB}", "memory.swap.max=0", "cpu.max=100000 100000",
                       "io.weight=default 500"]
    assert (v2 / CT / "memory.max").read_text() == str(128 * MB)
    assert (v2 / CT / "io.weight").read_text() == "default 500"


def test_apply_missing_file_raises_and_creates_nothing(v1):
    (v1 / "pids" / CT / "pids.max").unlink()
    with pytest.raises(CgroupError) as err:
        Cgroup("101", str(v1)).apply(Limits(numproc=10))
    assert "pids.max" in str(err.value) and "No such file" in str(err.value)
    assert not (v1 / "pids" / CT / "pids.max").exists()


def test_apply_reports_kernel_error_text(v1, monkeypatch):
    real_write = os.write

    def kernel_write(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").endswith("memory.limit_in_bytes"):
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", kernel_write)
    with pytest.raises(CgroupError) as err:
        Cgroup("101", str(v1)).apply(Limits(ram_mb=1), old=Limits(ram_mb=512))
    assert "memory.limit_in_bytes" in str(err.value) and "Device or resource busy" in str(err.value)


def test_apply_directory_as_file_raises(v2):
    (v2 / CT / "pids.max").unlink()
    (v2 / CT / "pids.max").mkdir()
    with pytest.raises(CgroupError, match="pids.max"):
        Cgroup("101", str(v2)).apply(Limits(numproc=10))


# -- LXC config --------------------------------------------------------------
def test_lxc_config_lines_v1(v1):
    lines = Cgroup("101", str(v1)).lxc_config_lines(
        Limits(ram_mb=512, swap_mb=256, cpuunits=1000, cpus=2, numproc=200, ioprio=4))
    assert lines == [
        f"lxc.cgroup.memory.limit_in_bytes = {512 * MB}",
        f"lxc.cgroup.memory.memsw.limit_in_bytes = {768 * MB}",
        "lxc.cgroup.cpu.shares = 1024",
        "lxc.cgroup.cpu.cfs_period_us = 100000",
        "lxc.cgroup.cpu.cfs_quota_us = 200000",
        "lxc.cgroup.pids.max = 200",
        "lxc.cgroup.blkio.bfq.weight = 500",
    ]


def test_lxc_config_lines_v2(v2):
    lines = Cgroup("102", str(v2)).lxc_config_lines(Limits(ram_mb=512, ram_barrier_mb=400, swap_mb=256,
                                                           cpuunits=1000, cpulimit=25, numproc=200, ioprio=4))
    assert lines == [
        f"lxc.cgroup2.memory.max = {512 * MB}",
        f"lxc.cgroup2.memory.swap.max = {256 * MB}",
        f"lxc.cgroup2.memory.high = {400 * MB}",
        "lxc.cgroup2.cpu.weight = 100",
        "lxc.cgroup2.cpu.max = 25000 100000",
        "lxc.cgroup2.pids.max = 200",
        "lxc.cgroup2.io.weight = default 500",
    ]


# -- /proc/user_beancounters layout ------------------------------------------
HEADER = ("       uid  resource                     held              maxheld              barrier"
          "                limit              failcnt")


def test_format_user_beancounters_layout(v1, v2):
    text = format_user_beancounters([("101", Cgroup("101", str(v1)).beancounters()),
                                     ("102", Cgroup("101", str(v2)).beancounters())])
    lines = text.splitlines()
    assert text.endswith("\n")
    assert lines[0] == "Version: 2.5"
    assert lines[1] == HEADER
    assert lines[2].startswith("      101:  kmemsize ")
    assert lines[2].split() == ["101:", "kmemsize", "2451456", "2707456", str(LONG_MAX), str(LONG_MAX), "0"]
    assert lines[3].startswith("            lockedpages ")
    assert lines[3].split() == ["lockedpages", "-", "-", "-", "-", "-"]
    assert len(lines) == 2 + 21 * 2
    assert lines[2 + 21].startswith("      102:  kmemsize ")
    assert sum(1 for l in lines if ":" in l.split()[0] and l.split()[0] != "Version:") == 2
    # every row as wide as the header, every column right-aligned under its title
    ends = [HEADER.index(t) + len(t) for t in ("held", "maxheld", "barrier", "limit", "failcnt")]
    for line in lines[2:]:
        assert len(line) == len(HEADER)
        for end in ends:
            assert line[end - 1] != " " and (end == len(line) or line[end] == " ")
    physpages = next(l for l in lines if l.split()[0] == "physpages")
    assert physpages.split() == ["physpages", "100", "150", str(LONG_MAX), str(512 * MB // 4096), "7"]
    swap = next(l for l in lines if l.split()[0] == "swappages")
    assert swap.split() == ["swappages", "30", "-", str(LONG_MAX), str(256 * MB // 4096), "2"]


def test_format_user_beancounters_version_and_empty():
    assert format_user_beancounters([], version="2.6") == "Version: 2.6\n" + HEADER + "\n"
    one = [Counter("numproc", 1, 2, None, 10, 0, True)]
    assert format_user_beancounters([(7, one)]).splitlines()[2] == (
        "        7:  numproc                         1                    2  9223372036854775807"
        "                   10                    0")


def test_the_probes_answer_on_a_fresh_empty_hierarchy_as_on_this_used_one(tmp_path):
    """A fresh host has no child cgroups: its first container did not start when the blkio weight
    file was looked up in leftovers ("Failed to set blkio.weight"). The probes are asked of a freshly
    made, empty hierarchy (an empty subtree of each controller, linked into a root of its own) and
    must answer as they do here, where earlier containers left cgroups; they leave nothing behind.
    (Real cgroup v2 hosts: tests/test_real_host.py asks the same before a VM's first container.)"""
    from containers.engine import cgroups
    from containers.engine.probes import V1_CONTROLLERS, cgroup_capabilities
    real = Path(cgroups.DEFAULT_ROOT)
    if cgroups.detect_version(str(real)) != 1:
        pytest.skip("this machine's cgroups are v2: the VM test covers them")
    fresh_root, made = tmp_path / "root", []
    fresh_root.mkdir()
    try:
        for controller in V1_CONTROLLERS:
            if (real / controller / "cgroup.procs").exists():
                subtree = real / controller / f"vzpanel-fresh-{os.getpid()}"
                subtree.mkdir()
                made.append(subtree)
                (fresh_root / controller).symlink_to(subtree)
        cgroups._probed.clear()
        on_fresh = cgroup_capabilities(fresh_root)
        cgroups._probed.clear()
        assert on_fresh == cgroup_capabilities(real)
        assert on_fresh["freezer"]  # I/O weight only with the BFQ scheduler: not every kernel has it
        for subtree in made:
            assert [p.name for p in subtree.iterdir() if p.is_dir()] == []  # the probe child is gone
    finally:
        for subtree in made:
            subtree.rmdir()


def test_apparmor_on_without_lxcs_profile_is_named_and_stops_a_start_before_lxc_start(tmp_path, monkeypatch):
    """Debian's kernels enforce AppArmor; without the apparmor package (lxc only recommends it) LXC's
    container profile is not loaded and every lxc-start failed with "Failed to change AppArmor
    profile". The probe says what is missing and a start is refused with what to do, running nothing."""
    from containers.engine import apparmor, lxc as lxc_engine
    enabled, profiles = tmp_path / "enabled", tmp_path / "profiles"
    enabled.write_text("N\n")
    assert apparmor.state(enabled, profiles) == apparmor.AppArmorState(False, False)
    enabled.write_text("Y\n")
    profiles.write_text("/usr/bin/man (enforce)\nlsb_release (enforce)\n")
    found = apparmor.state(enabled, profiles)
    assert found.blocks_containers and "not loaded" in found.describe()
    profiles.write_text("lxc-container-default-cgns (enforce)\nlxc-container-default (enforce)\n")
    assert not apparmor.state(enabled, profiles).blocks_containers

    monkeypatch.setattr(apparmor, "ENABLED_FILE", enabled)
    monkeypatch.setattr(apparmor, "PROFILES_FILE", profiles)
    profiles.write_text("")
    ran = []
    monkeypatch.setattr(lxc_engine, "run", lambda argv, **kw: ran.append(argv))
    with pytest.raises(lxc_engine.LxcError, match="apt-get install apparmor"):
        lxc_engine.Lxc(tmp_path / "lxc").start(101)
    assert ran == []
