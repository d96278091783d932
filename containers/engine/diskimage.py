"""Per-container disk quota: the root filesystem lives in its own XFS image, loop-mounted.

The image's size is the hard diskspace limit, so a container that fills its
quota gets ENOSPC inside and nothing outside it is affected. Inodes are limited
by XFS's imaxpct (the share of the space inodes may take), set so that the
filesystem allows about the hard diskinodes limit; statvfs reports the exact
number the kernel enforces, and the panel shows that one.

Why XFS: this kernel has neither ext4 nor XFS quota support (no project quotas),
and ext4's online resize needs CAP_SYS_RESOURCE, which an agent in a restricted
environment may not have; xfs_growfs grows a mounted filesystem with
CAP_SYS_ADMIN and changes imaxpct online. XFS needs at least 300 MiB.

The image stays mounted at <lxcpath>/<CTID>/rootfs while the host runs (also while
the container is stopped); the agent mounts it again when it starts, except after
vzctl umount, which it leaves unmounted until vzctl mount or start. Growing and changing the inode limit work
online; shrinking (XFS cannot shrink in place) rebuilds the filesystem with the
files copied, so it needs the container stopped and is refused below what is in use.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .commands import CommandError, run
from .units import MIN_DISK_MB, XFS_LOG_MB, disk_too_small

IMAGE_NAME = "root.img"
MIB = 1024 * 1024
MIN_SIZE_MB = MIN_DISK_MB  # mkfs.xfs refuses smaller filesystems (units.py says what each one costs)
LOG_MB = XFS_LOG_MB        # XFS's internal log (at least 64 MiB): added to the image so the usable space is the limit
INODE_BYTES = 512      # XFS v5 inode size
DEFAULT_MAXPCT = 25


class DiskImageError(Exception):
    pass


@dataclass
class DiskUsage:
    used_bytes: int
    total_bytes: int
    inodes_used: int
    inodes_total: int


MountTable = dict[str, str]  # mount point -> mounted source, as read_mount_table returns it


def read_mount_table() -> MountTable:
    """Every mount point of this process's mount namespace with its source, from /proc/self/mountinfo.
    Callers that check many containers read it once and pass it down: one read per container
    made a pass over N image containers read N tables of N lines."""
    table = {}
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            fields = line.split()
            sep = fields.index("-")
            table[fields[4].encode().decode("unicode_escape")] = fields[sep + 2]
    return table


def mounted_source(mountpoint: Path, mounts: MountTable | None = None) -> str | None:
    """The device mounted at `mountpoint` (from `mounts`, read now if not given), or None."""
    return (read_mount_table() if mounts is None else mounts).get(str(mountpoint))


class DiskImage:
    def __init__(self, image: Path, mountpoint: Path):
        self.image = Path(image)
        self.mountpoint = Path(mountpoint)

    def exists(self) -> bool:
        return self.image.is_file()

    def is_mounted(self, mounts: MountTable | None = None) -> bool:
        return mounted_source(self.mountpoint, mounts) is not None

    def create(self, size_mb: int, inodes: int | None = None) -> None:
        if self.image.exists():
            raise DiskImageError(f"{self.image} exists already")
        if size_mb < MIN_SIZE_MB:
            raise DiskImageError(disk_too_small("a container's disk"))
        with open(self.image, "wb") as fh:
            fh.truncate((size_mb + LOG_MB) * MIB)  # sparse: only what is written takes space
        try:
            run(["mkfs.xfs", "-q", "-f", "-K", "-i", f"maxpct={maxpct_for(size_mb, inodes)}", str(self.image)],
                timeout=300)
        except CommandError as exc:
            self.image.unlink(missing_ok=True)
            raise DiskImageError(f"mkfs.xfs failed: {exc.output}") from exc

    def mount(self, mounts: MountTable | None = None) -> None:
        """Mount the image unless it is; `mounts`: the mount table, if the caller has just read it."""
        if self.is_mounted(mounts):
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
        """The usable size: the image less the log."""
        return self.image.stat().st_size // MIB - LOG_MB

    def grow(self, size_mb: int, inodes: int | None = None) -> None:
        """Make the filesystem bigger while mounted (xfs_growfs), keeping the inode limit."""
        if size_mb <= self.size_mb():
            return
        self.mount()
        with open(self.image, "r+b") as fh:
            fh.truncate((size_mb + LOG_MB) * MIB)
        device = mounted_source(self.mountpoint)
        try:
            run(["losetup", "-c", device], timeout=60)
            run(["xfs_growfs", "-d", str(self.mountpoint)], timeout=1800)
        except CommandError as exc:
            raise DiskImageError(f"growing the disk to {size_mb} MiB failed: {exc.output}") from exc
        self.set_inodes(size_mb, inodes or self.usage().inodes_total)

    def set_inodes(self, size_mb: int, inodes: int) -> None:
        """Let inodes take the share of the space that allows about `inodes` of them (online)."""
        self.mount()
        try:
            run(["xfs_growfs", "-m", str(maxpct_for(size_mb, inodes)), str(self.mountpoint)], timeout=300)
        except CommandError as exc:
            raise DiskImageError(f"setting the inode limit failed: {exc.output}") from exc

    def rebuild(self, size_mb: int, inodes: int | None) -> None:
        """A new filesystem with another size or inode count, the files copied over."""
        new = DiskImage(self.image.with_name(self.image.name + ".new"), self.mountpoint.with_name(".rootfs-new"))
        self.mount()
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

    def resize(self, size_mb: int, inodes: int | None, running: bool, log=lambda _msg: None,
               who: str = "the container") -> str:
        """vzctl set --diskspace/--diskinodes: grow and change inodes online; shrink only when stopped."""
        self.mount()
        usage = self.usage()
        if size_mb * MIB < usage.used_bytes + 16 * MIB:
            raise DiskImageError(f"diskspace {size_mb} MiB is below what {who} uses "
                                 f"({usage.used_bytes // MIB} MiB, plus 16 MiB for the filesystem itself)")
        if inodes and inodes < usage.inodes_used + 16:
            raise DiskImageError(f"diskinodes {inodes} is below the {usage.inodes_used} inodes {who} uses")
        current_mb = self.size_mb()
        if size_mb < current_mb:
            if running:
                raise DiskImageError("the disk can only shrink while the container is stopped "
                                     "(its filesystem is rebuilt smaller and the files copied)")
            log(f"Rebuilding the disk of {who} at {size_mb} MiB (was {current_mb} MiB)")
            self.rebuild(size_mb, inodes or usage.inodes_total)
            return "shrunk"
        if size_mb > current_mb:
            log(f"Growing the disk of {who} from {current_mb} to {size_mb} MiB" + (" online" if running else ""))
            self.grow(size_mb, inodes)
            return "grown"
        if inodes:
            self.set_inodes(size_mb, inodes)
            return "inodes set"
        return "unchanged"

    @property
    def describe(self) -> str:
        return self.image.name


def maxpct_for(size_mb: int, inodes: int | None) -> int:
    """imaxpct that lets about `inodes` inodes fit on a filesystem of `size_mb`."""
    if not inodes:
        return DEFAULT_MAXPCT
    return max(1, min(100, -(-inodes * INODE_BYTES * 100 // (size_mb * MIB))))


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
