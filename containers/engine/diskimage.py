"""Per-container disk quota: the root filesystem lives in its own ext4 image, loop-mounted.

The image's size is the hard diskspace limit and its inode count the hard
diskinodes limit, so a container that fills its quota gets ENOSPC inside and
nothing outside it is affected. (This kernel has no ext4 quota format and no XFS
quota, so project quotas are not an option here.) The image stays mounted at
<lxcpath>/<CTID>/rootfs while the host runs; the agent mounts it again at start.

Growing works online (the loop device is told the new size, then resize2fs);
shrinking needs the container stopped and is refused below what is in use.
Changing the inode count needs a rebuild (a new filesystem, the files copied).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .commands import CommandError, run

IMAGE_NAME = "root.img"
MIB = 1024 * 1024


class DiskImageError(Exception):
    pass


@dataclass
class DiskUsage:
    used_bytes: int
    total_bytes: int
    inodes_used: int
    inodes_total: int


def mounted_source(mountpoint: Path) -> str | None:
    """The device mounted at `mountpoint`, from /proc/self/mountinfo, or None."""
    target = str(mountpoint)
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            fields = line.split()
            sep = fields.index("-")
            if fields[4].encode().decode("unicode_escape") == target:
                return fields[sep + 2]
    return None


class DiskImage:
    def __init__(self, image: Path, mountpoint: Path):
        self.image = Path(image)
        self.mountpoint = Path(mountpoint)

    def exists(self) -> bool:
        return self.image.is_file()

    def is_mounted(self) -> bool:
        return mounted_source(self.mountpoint) is not None

    def create(self, size_mb: int, inodes: int | None = None) -> None:
        if self.image.exists():
            raise DiskImageError(f"{self.image} exists already")
        with open(self.image, "wb") as fh:
            fh.truncate(size_mb * MIB)  # sparse: only what is written takes space
        argv = ["mkfs.ext4", "-q", "-F", "-m", "0", "-E", "lazy_itable_init=1,lazy_journal_init=1"]
        if inodes:
            argv += ["-N", str(inodes)]
        try:
            run([*argv, str(self.image)], timeout=300)
        except CommandError as exc:
            self.image.unlink(missing_ok=True)
            raise DiskImageError(f"mkfs.ext4 failed: {exc.output}") from exc

    def mount(self) -> None:
        if self.is_mounted():
            return
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        try:
            run(["mount", "-o", "loop,noatime", str(self.image), str(self.mountpoint)], timeout=120)
        except CommandError as exc:
            raise DiskImageError(f"mounting {self.image} failed: {exc.output}") from exc

    def umount(self) -> None:
        if not self.is_mounted():
            return
        try:
            run(["umount", str(self.mountpoint)], timeout=120)
        except CommandError as exc:
            raise DiskImageError(f"unmounting {self.mountpoint} failed: {exc.output}") from exc

    def usage(self) -> DiskUsage:
        st = os.statvfs(self.mountpoint)
        return DiskUsage(used_bytes=(st.f_blocks - st.f_bfree) * st.f_frsize, total_bytes=st.f_blocks * st.f_frsize,
                         inodes_used=st.f_files - st.f_ffree, inodes_total=st.f_files)

    def size_mb(self) -> int:
        return self.image.stat().st_size // MIB

    def grow(self, size_mb: int) -> None:
        """Make the filesystem bigger, online if mounted."""
        if size_mb * MIB <= self.image.stat().st_size:
            return
        with open(self.image, "r+b") as fh:
            fh.truncate(size_mb * MIB)
        device = mounted_source(self.mountpoint)
        try:
            if device and device.startswith("/dev/loop"):
                run(["losetup", "-c", device], timeout=60)
                run(["resize2fs", device], timeout=1800)
            else:
                run(["e2fsck", "-f", "-p", str(self.image)], timeout=1800)
                run(["resize2fs", str(self.image)], timeout=1800)
        except CommandError as exc:
            raise DiskImageError(f"growing the disk to {size_mb} MiB failed: {exc.output}") from exc

    def shrink(self, size_mb: int) -> None:
        """Make the filesystem smaller; needs it unmounted, refused below what is in use."""
        if self.is_mounted():
            raise DiskImageError("the disk can only shrink while the container is stopped and unmounted")
        try:
            run(["e2fsck", "-f", "-p", str(self.image)], timeout=1800)
            run(["resize2fs", str(self.image), f"{size_mb}M"], timeout=1800)
        except CommandError as exc:
            raise DiskImageError(f"shrinking the disk to {size_mb} MiB failed: {exc.output}") from exc
        with open(self.image, "r+b") as fh:
            fh.truncate(size_mb * MIB)

    def rebuild(self, size_mb: int, inodes: int | None) -> None:
        """A new filesystem with another size or inode count, the files copied over."""
        new = DiskImage(self.image.with_name(self.image.name + ".new"), self.mountpoint.with_name(".rootfs-new"))
        new.image.unlink(missing_ok=True)
        new.create(size_mb, inodes)
        try:
            new.mount()
            copy_tree(self.mountpoint, new.mountpoint)
            new.umount()
            self.umount()
            os.replace(new.image, self.image)
        except BaseException:
            new.umount()
            new.image.unlink(missing_ok=True)
            raise
        finally:
            shutil.rmtree(new.mountpoint, ignore_errors=True)
        self.mount()

    def remove(self) -> None:
        self.umount()
        self.image.unlink(missing_ok=True)


def copy_tree(source: Path, target: Path) -> None:
    """Copy a root filesystem with owners, modes, links, xattrs and ACLs (tar to tar)."""
    import subprocess
    pack = subprocess.Popen(["tar", "-C", str(source), "--numeric-owner", "--xattrs", "--xattrs-include=*",
                             "--acls", "-cf", "-", "."], stdout=subprocess.PIPE)
    unpack = subprocess.run(["tar", "-C", str(target), "--numeric-owner", "--xattrs", "--xattrs-include=*",
                             "--acls", "-xpf", "-"], stdin=pack.stdout, capture_output=True, text=True)
    pack.stdout.close()
    pack.wait()
    if pack.returncode != 0 or unpack.returncode != 0:
        raise DiskImageError(f"copying the files failed: {unpack.stderr.strip() or 'tar exited with an error'}")
