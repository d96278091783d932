"""btrfs pools for tests: real btrfs filesystems in sparse loop files, made by the engine as the agent
makes them, and removed with everything on them afterwards, also when a test fails (no mount, no
loop device, no file left). Run such tests under flock /tmp/vzpanel-lxc-tests.lock."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import LXCPATH, _unmount_under

POOL_MB = 1024


def loop_devices_of(path: Path) -> list[str]:
    """Loop devices backed by `path` (also once it is deleted), from the kernel's own list."""
    found = []
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            name = backing.read_text().strip().removesuffix(" (deleted)")
        except OSError:
            continue
        if name == str(path):
            found.append("/dev/" + backing.parent.parent.name)
    return found


def remove_btrfs_pool(mountpoint: Path, loop_file: Path) -> None:
    """Everything under and of a test pool: bind mounts of its subvolumes first, then the pool."""
    for ct_dir in LXCPATH.iterdir() if LXCPATH.is_dir() else []:
        if (ct_dir / "config").exists():
            subprocess.run(["lxc-stop", "-n", ct_dir.name, "-P", str(LXCPATH), "-k"], capture_output=True)
    with open("/proc/self/mountinfo") as fh:
        device_of_pool = next((line.split(" - ")[1].split()[1] for line in fh
                               if line.split()[4] == str(mountpoint)), None)
    if device_of_pool:  # the containers' bind mounts of this pool's subvolumes, wherever they are
        with open("/proc/self/mountinfo") as fh:
            binds = [line.split()[4] for line in fh
                     if line.split(" - ")[1].split()[1] == device_of_pool and line.split()[4] != str(mountpoint)]
        for point in sorted(binds, key=len, reverse=True):
            subprocess.run(["umount", point], capture_output=True)
            subprocess.run(["umount", "-l", point], capture_output=True)
    _unmount_under(mountpoint)
    subprocess.run(["umount", str(mountpoint)], capture_output=True)
    for _ in range(50):  # a loop mount's device is let go (autoclear) a moment after the unmount
        if not loop_devices_of(loop_file):
            break
        time.sleep(0.1)
    for dev in loop_devices_of(loop_file):
        subprocess.run(["losetup", "-d", dev], capture_output=True)
    loop_file.unlink(missing_ok=True)
    try:
        mountpoint.rmdir()
    except OSError:
        pass


@pytest.fixture
def btrfs_pool(run_dir):
    """An engine BtrfsPool on a fresh 1 GiB loop file in the test lxcpath's .pools, made (mkfs, mount,
    quotas) as the agent's pool task makes it."""
    from containers.engine.storage import BtrfsPool
    name = f"t{os.getpid()}"
    mountpoint, loop_file = LXCPATH / ".pools" / name, LXCPATH / ".pools" / f"{name}.img"
    LXCPATH.mkdir(parents=True, exist_ok=True)
    pool = BtrfsPool(mountpoint, loop_file=loop_file)
    try:
        pool.make(POOL_MB)
        yield pool
    finally:
        remove_btrfs_pool(mountpoint, loop_file)
        assert not loop_devices_of(loop_file), "a loop device was left behind"
        with open("/proc/self/mountinfo") as fh:
            assert str(mountpoint) not in fh.read(), "the pool was left mounted"
