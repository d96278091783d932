"""btrfs storage pools on real btrfs filesystems (loop files the tests make and remove): one
subvolume per container, its qgroup limit enforced inside, resized up and down online, snapshots
taken with the container frozen only for the instant, rolled back and deleted; nothing a container
does inside its tree redirects what the agent does to its subvolume."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from containers.engine.lxc import ContainerSpec, Lxc, LxcError
from containers.engine.storage import StorageError

from .btrfs_fixtures import btrfs_pool  # noqa: F401
from .conftest import LXCPATH, RUN_DIR

pytestmark = pytest.mark.integration
MIB = 1 << 20


@pytest.fixture
def lxc(btrfs_pool):  # noqa: F811
    """An Lxc whose containers 9851..9859 are on the test pool (others on the image pool)."""
    ours = range(9851, 9860)
    # A container's root (a mapped uid) must pass through to the lxcpath, as on a host's /var/lib/lxc
    # (the redis fixture of the agent tests does the same to the run directory).
    os.chmod(RUN_DIR, os.stat(RUN_DIR).st_mode | 0o001)
    engine = Lxc(LXCPATH, storage_of=lambda ctid: btrfs_pool if ctid in ours else None)
    try:
        yield engine
    finally:
        for ctid in ours:
            if engine.exists(ctid):
                engine.kill(ctid)
                try:
                    engine.destroy(ctid)
                except Exception:
                    pass


def make(lxc, template, ctid, disk_mb=64, start=True):
    lxc.create(ContainerSpec(ctid=ctid, hostname=f"b{ctid}.test", disk_mb=disk_mb), template)
    if start:
        lxc.start(ctid)


def sh(lxc, ctid, script):
    return lxc.attach(ctid, ["sh", "-c", script], timeout=120)


def mounted(path: Path) -> bool:
    with open("/proc/self/mountinfo") as fh:
        return any(line.split()[4] == str(path) for line in fh)


def test_container_on_btrfs_is_a_subvolume_with_a_hard_quota(lxc, btrfs_pool, busybox_template):  # noqa: F811
    make(lxc, busybox_template, 9851, disk_mb=64)
    subvol = btrfs_pool.subvolume_path(9851)
    assert subprocess.run(["btrfs", "subvolume", "show", str(subvol)], capture_output=True).returncode == 0
    assert mounted(lxc.rootfs(9851))  # the subvolume, bind-mounted where LXC and the panel look
    # A write past the limit fails inside with EDQUOT...
    res = sh(lxc, 9851, "dd if=/dev/zero of=/fill bs=1M count=100; echo rc=$?")
    assert "Disk quota exceeded" in res.stderr + res.stdout, res
    # ...and the pool, the host and the container's other files are unaffected.
    (btrfs_pool.mountpoint / "outside").write_bytes(b"x" * (8 * MIB))
    assert (btrfs_pool.mountpoint / "outside").stat().st_size == 8 * MIB
    subprocess.run(["btrfs", "filesystem", "sync", str(btrfs_pool.mountpoint)], check=True)
    usage = lxc.disk_usage(9851)
    assert usage.total_bytes == 64 * MIB
    assert 56 * MIB <= usage.used_bytes <= 66 * MIB
    assert usage.inodes_total == 0  # btrfs cannot limit inodes: reported as no limit, not invented
    assert sh(lxc, 9851, "rm /fill && echo ok").stdout.strip() == "ok"


def test_disk_limit_changes_up_and_down_while_running(lxc, btrfs_pool, busybox_template):  # noqa: F811
    make(lxc, busybox_template, 9852, disk_mb=64)
    assert lxc.set_disk(9852, 160, None, running=True) == "grown"
    assert sh(lxc, 9852, "dd if=/dev/zero of=/f bs=1M count=100 && sync && echo ok").stdout.strip().endswith("ok")
    with pytest.raises(LxcError, match="below what container 9852 uses"):
        lxc.set_disk(9852, 80, None, running=True)
    assert lxc.disk(9852).size_mb() == 160  # refused: nothing changed
    assert sh(lxc, 9852, "rm /f && sync && echo ok").stdout.strip() == "ok"
    assert lxc.set_disk(9852, 48, None, running=True) == "shrunk"
    assert lxc.disk(9852).size_mb() == 48
    res = sh(lxc, 9852, "dd if=/dev/zero of=/g bs=1M count=60; echo rc=$?")
    assert "Disk quota exceeded" in res.stderr + res.stdout
    assert lxc.state(9852) == "RUNNING"


def test_snapshot_of_a_running_container_then_switch_and_delete(lxc, btrfs_pool, busybox_template):  # noqa: F811
    make(lxc, busybox_template, 9853, disk_mb=64)
    assert sh(lxc, 9853, "echo before > /data && sync && echo ok").stdout.strip() == "ok"
    frozen = lxc.snapshot(9853, "s1", running=True)
    assert frozen is not None and frozen > 0
    assert lxc.state(9853) == "RUNNING"  # thawed again
    assert [s.name for s in btrfs_pool.snapshots(9853)] == ["s1"]
    with pytest.raises(StorageError, match="already"):
        btrfs_pool.snapshot(9853, "s1")
    assert sh(lxc, 9853, "echo after > /data && echo ok").stdout.strip() == "ok"
    with pytest.raises(LxcError, match="stop it"):
        lxc.snapshot_switch(9853, "s1", 64)
    lxc.stop(9853)
    lxc.snapshot_switch(9853, "s1", 64)
    assert (lxc.rootfs(9853) / "data").read_text() == "before\n"
    assert lxc.disk(9853).size_mb() == 64  # the limit goes with the container, not the snapshot
    lxc.start(9853)
    assert sh(lxc, 9853, "cat /data").stdout == "before\n"
    btrfs_pool.snapshot_delete(9853, "s1")
    assert btrfs_pool.snapshots(9853) == []


def test_snapshot_names_are_checked_in_the_engine_too(btrfs_pool):  # noqa: F811
    for bad in ("../x", "a/b", "", ".hidden", "x" * 65, "snap\n"):
        with pytest.raises(StorageError):
            btrfs_pool.snapshot(9854, bad)


def test_destroy_removes_nested_subvolumes_by_id_and_follows_no_link(lxc, btrfs_pool, busybox_template,  # noqa: F811
                                                                  tmp_path):
    make(lxc, busybox_template, 9855, disk_mb=64, start=False)
    lxc.snapshot(9855, "keep", running=False)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("host data\n")
    rootfs = lxc.rootfs(9855)
    # What a tenant could leave: a subvolume of its own, links to the host everywhere.
    subprocess.run(["btrfs", "subvolume", "create", str(rootfs / "mine")], check=True, capture_output=True)
    subprocess.run(["btrfs", "subvolume", "create", str(rootfs / "mine" / "deeper")], check=True,
                   capture_output=True)
    os.symlink(victim, rootfs / "link")
    os.symlink(victim, rootfs / "mine" / "link")
    lxc.destroy(9855)
    assert (victim / "precious").read_text() == "host data\n"
    listing = subprocess.run(["btrfs", "subvolume", "list", str(btrfs_pool.mountpoint)], capture_output=True,
                             text=True, check=True).stdout
    assert listing.strip() == "", listing  # the container's, its tenant's and its snapshots' subvolumes: gone
    assert not mounted(rootfs) and not lxc.path(9855).exists()


def test_failed_create_leaves_no_subvolume(lxc, btrfs_pool, tmp_path):  # noqa: F811
    bad = tmp_path / "bad.tar.gz"
    subprocess.run(["tar", "-czf", str(bad), "-C", str(tmp_path), "--files-from", "/dev/null"], check=True)
    with pytest.raises(LxcError):
        lxc.create(ContainerSpec(ctid=9856, hostname="b.test", disk_mb=64), bad)
    assert not btrfs_pool.subvolume_path(9856).exists()
    assert not lxc.path(9856).exists()


def test_pool_on_a_device_is_refused_when_it_is_not_a_free_block_device(tmp_path):
    from containers.engine.storage import BtrfsPool
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    with pytest.raises(StorageError, match="not a block device"):
        BtrfsPool(tmp_path / "m", device=str(plain)).make()
    root_dev = next(line.split(" - ")[1].split()[1] for line in open("/proc/self/mountinfo")
                    if line.split()[4] == "/" and line.split(" - ")[1].split()[1].startswith("/dev/"))
    if os.path.exists(root_dev):
        with pytest.raises(StorageError, match="mounted"):
            BtrfsPool(tmp_path / "m", device=root_dev).make()


def _copy_host_program(program: str, rootfs: Path) -> str:
    """Put a host program and the libraries it loads into a container's tree (a tenant could install
    btrfs-progs): returns its path inside."""
    import shutil
    path = shutil.which(program)
    libs = [part for line in subprocess.run(["ldd", path], capture_output=True, text=True).stdout.splitlines()
            for part in line.split() if part.startswith("/")]
    for source in [path, *libs]:
        target = rootfs / source.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(source), target)
    return path


def test_a_container_cannot_make_subvolumes_that_escape_its_quota(lxc, btrfs_pool, busybox_template):  # noqa: F811
    make(lxc, busybox_template, 9857, disk_mb=64, start=False)
    btrfs = _copy_host_program("btrfs", lxc.rootfs(9857))
    lxc.start(9857)
    for argv in ([btrfs, "subvolume", "create", "/escape"], [btrfs, "subvolume", "snapshot", "/", "/copy"]):
        res = lxc.attach(9857, argv, timeout=60)
        assert res.returncode != 0 and "Operation not permitted" in res.stderr + res.stdout, res
    assert not (lxc.rootfs(9857) / "escape").exists() and not (lxc.rootfs(9857) / "copy").exists()
    listing = subprocess.run(["btrfs", "subvolume", "list", str(btrfs_pool.mountpoint)], capture_output=True,
                             text=True, check=True).stdout
    assert [line.split()[-1] for line in listing.splitlines()] == ["ct/9857"]
    # Ordinary ioctls still work (the filter matches these four requests only).
    assert sh(lxc, 9857, "echo x > /f && sync /f && echo ok").stdout.strip() == "ok"


IOCTL_SOURCE = Path(__file__).with_name("btrfs_ioctl.c")


def test_the_subvolume_filter_holds_with_high_bits_in_the_ioctl_request(lxc, btrfs_pool, busybox_template,  # noqa: F811
                                                                         tmp_path):
    """The kernel reads ioctl's request as 32 bits; a filter comparing all 64 lets a request with a bit
    above them pass, and the kernel then makes the subvolume the filter was meant to refuse: one outside
    the container's qgroup, so its disk quota would not hold."""
    program = tmp_path / "btrfs_ioctl"
    subprocess.run(["gcc", "-O1", "-static", "-o", str(program), str(IOCTL_SOURCE)], check=True, capture_output=True)
    make(lxc, busybox_template, 9859, disk_mb=64, start=False)
    inside = lxc.rootfs(9859) / "btrfs_ioctl"
    inside.write_bytes(program.read_bytes())
    inside.chmod(0o755)
    lxc.start(9859)
    for how in ("plain", "high"):
        res = lxc.attach(9859, ["/btrfs_ioctl", "/", f"escape-{how}", how], timeout=60)
        assert res.returncode != 0 and "errno=1" in res.stdout, (how, res)
        assert not (lxc.rootfs(9859) / f"escape-{how}").exists(), how
    listing = subprocess.run(["btrfs", "subvolume", "list", str(btrfs_pool.mountpoint)], capture_output=True,
                             text=True, check=True).stdout
    assert [line.split()[-1] for line in listing.splitlines()] == ["ct/9859"]


def test_reset_to_template_builds_a_new_subvolume_and_keeps_the_limit(lxc, btrfs_pool, busybox_template):  # noqa: F811
    make(lxc, busybox_template, 9858, disk_mb=64, start=False)
    (lxc.rootfs(9858) / "marker").write_text("old files\n")
    lxc.reset(ContainerSpec(ctid=9858, hostname="b9858.test", disk_mb=64), busybox_template)
    assert not (lxc.rootfs(9858) / "marker").exists() and (lxc.rootfs(9858) / "bin").is_dir()
    assert mounted(lxc.rootfs(9858)) and lxc.disk(9858).size_mb() == 64
    listing = subprocess.run(["btrfs", "subvolume", "list", str(btrfs_pool.mountpoint)], capture_output=True,
                             text=True, check=True).stdout
    assert [line.split()[-1] for line in listing.splitlines()] == ["ct/9858"]  # the old one and .new- gone
    lxc.start(9858)
    assert lxc.state(9858) == "RUNNING"
