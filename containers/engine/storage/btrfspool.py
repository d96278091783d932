"""`btrfs`: one subvolume per container on a btrfs filesystem, its disk quota a qgroup limit.

Layout on the pool's filesystem, mounted at the pool's mountpoint (a path the agent derives from the
pool's row, in root's lxcpath):

    <mountpoint>/ct/<CTID>                  the container's subvolume, bind-mounted at <ctdir>/rootfs
    <mountpoint>/ct/.new-<CTID>             a replacement being built (reset, snapshot-switch)
    <mountpoint>/snap/<CTID>/<NAME>         its read-only snapshots

Every path is the mountpoint, a fixed word, the CTID and a validated snapshot name: never a path
from a tenant or from inside a container, so no process in a container can redirect a subvolume
operation (the container's root sees only what is inside its subvolume, and `ct` and `snap` are
root's alone). Subvolumes a container made inside its own tree are found through the filesystem's
subvolume list and deleted by id, never by walking the container's tree.

Quota: `btrfs qgroup limit` on the subvolume's own qgroup limits what it references: a write past
it fails with EDQUOT inside, and the rest of the pool and the host are unaffected. Snapshots do not
count against the container's limit (they are counted per tenant as snapshots). btrfs allocates
inodes as it needs them: there is no inode limit to enforce, and the panel says so.
"""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from ..commands import CommandError, run
from ..diskimage import MIB, DiskUsage, MountTable, mounted_source, read_mount_table
from .base import Capabilities, Log, SnapshotInfo, StorageError, StoragePool, Volume, _noop

MIN_LOOP_MB = 256          # mkfs.btrfs refuses much smaller devices; a useful pool is far bigger
SNAPSHOT_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
OVERHEAD_MB = 16           # room kept above what a container uses when its limit is lowered


def _run(argv: list[str], what: str, timeout: float = 600) -> str:
    try:
        return run(argv, timeout=timeout).stdout
    except CommandError as exc:
        raise StorageError(f"{what} failed: {' '.join(exc.output.split())}") from None


def check_snapshot_name(name: str) -> str:
    if not isinstance(name, str) or not SNAPSHOT_NAME_RE.fullmatch(name):
        raise StorageError(f"{name!r} is not a snapshot name (letters, digits, '.', '_', '-', at most 64, "
                           "starting with a letter or digit)")
    return name


class BtrfsPool(StoragePool):
    kind = "btrfs"
    capabilities = Capabilities(quota=True, inode_limit=False, shrink_online=True, snapshots=True, clone=True)

    def __init__(self, mountpoint: Path, device: str | None = None, loop_file: Path | None = None):
        if not device and not loop_file:
            raise StorageError("a btrfs pool needs a block device or a loop file")
        self.mountpoint = Path(mountpoint)
        self.device = device or None
        self.loop_file = Path(loop_file) if loop_file else None

    # -- the pool's own filesystem -----------------------------------------------------------------
    def source(self) -> str:
        return self.device or str(self.loop_file)

    def is_mounted(self, mounts: MountTable | None = None) -> bool:
        return mounted_source(self.mountpoint, mounts) is not None

    def make(self, size_mb: int | None = None, log: Log = _noop) -> None:
        """Make the pool's filesystem (mkfs.btrfs, mount, quotas on): on the named block device, which
        must hold no filesystem (mkfs.btrfs is never forced) and be mounted nowhere; or in a new sparse
        loop file of `size_mb`. On failure nothing of it is left (a device is left as it was found)."""
        if self.loop_file is not None:
            if self.loop_file.exists():
                raise StorageError(f"{self.loop_file} exists already")
            if not size_mb or size_mb < MIN_LOOP_MB:
                raise StorageError(f"a loop-backed btrfs pool needs at least {MIN_LOOP_MB} MiB")
            self.loop_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.loop_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                os.ftruncate(fd, size_mb * MIB)  # sparse: only what is written takes space
            finally:
                os.close(fd)
        else:
            st = os.stat(self.device)  # /dev/... names are the kernel's: following its links is fine
            if not stat.S_ISBLK(st.st_mode):
                raise StorageError(f"{self.device} is not a block device")
            real = os.path.realpath(self.device)
            if any(source in (self.device, real) for source in read_mount_table().values()):
                raise StorageError(f"{self.device} is mounted: it is in use")
        try:
            log(f"Making a btrfs filesystem on {self.source()}")
            _run(["mkfs.btrfs", "-q", self.source()], "mkfs.btrfs")
            self.ensure_ready()
            _run(["btrfs", "quota", "enable", str(self.mountpoint)], "enabling quotas")
            log(f"btrfs pool mounted at {self.mountpoint}, quotas on")
        except BaseException:
            self.unmount()
            if self.loop_file is not None:
                self.loop_file.unlink(missing_ok=True)
            raise

    def ensure_ready(self, mounts: MountTable | None = None) -> None:
        if not self.is_mounted(mounts):
            self.mountpoint.mkdir(parents=True, exist_ok=True, mode=0o700)
            options = "loop,noatime" if self.loop_file is not None else "noatime"
            _run(["mount", "-t", "btrfs", "-o", options, self.source(), str(self.mountpoint)],
                 f"mounting the btrfs pool {self.source()}", timeout=120)
        for part in ("ct", "snap"):
            (self.mountpoint / part).mkdir(mode=0o700, exist_ok=True)
            os.chmod(self.mountpoint / part, 0o700)

    def unmount(self) -> None:
        """Unmount the pool's filesystem (its loop device goes with it)."""
        if self.is_mounted():
            _run(["umount", str(self.mountpoint)], f"unmounting {self.mountpoint}", timeout=120)

    def remove(self) -> None:
        """Unmount the pool and delete its loop file (a named device is left as it is)."""
        self.unmount()
        if self.loop_file is not None:
            self.loop_file.unlink(missing_ok=True)
        try:
            self.mountpoint.rmdir()
        except OSError:
            pass

    def space(self) -> DiskUsage | None:
        if not self.is_mounted():
            return None
        st = os.statvfs(self.mountpoint)
        return DiskUsage(used_bytes=(st.f_blocks - st.f_bfree) * st.f_frsize, total_bytes=st.f_blocks * st.f_frsize,
                         inodes_used=0, inodes_total=0)

    # -- subvolumes --------------------------------------------------------------------------------
    def subvolume_path(self, ctid: int, tag: str = "") -> Path:
        return self.mountpoint / "ct" / f"{tag}{int(ctid)}"

    def volume(self, ctdir: Path, ctid: int) -> Volume | None:
        return Subvolume(self, int(ctid), Path(ctdir) / "rootfs")

    def create_volume(self, ctdir: Path, ctid: int, size_mb: int | None, inodes: int | None,
                      log: Log = _noop, tag: str = "") -> Volume | None:
        self.ensure_ready()
        path = self.subvolume_path(ctid, tag)
        if os.path.lexists(path):
            raise StorageError(f"{path} exists already (left by an earlier container {ctid}?)")
        log(f"Making a btrfs subvolume for {ctid}" + (f" limited to {size_mb} MiB" if size_mb else ""))
        _run(["btrfs", "subvolume", "create", str(path)], "making the subvolume")
        volume = Subvolume(self, int(ctid), Path(ctdir) / "rootfs", tag)
        try:
            if size_mb:
                volume.set_limit(size_mb)
            if not tag:
                volume.mount()
        except BaseException:
            volume.remove()
            raise
        return volume

    def discard_volume(self, ctdir: Path, ctid: int) -> None:
        volume = self.volume(ctdir, ctid)
        if volume.exists() or volume.is_mounted():
            volume.remove()

    def delete_subvolume(self, path: Path) -> None:
        """Delete a subvolume and every subvolume made inside it (by id, deepest first: never by a
        path inside it, which its container could have redirected)."""
        rel = path.relative_to(self.mountpoint).as_posix()
        listing = _run(["btrfs", "subvolume", "list", str(self.mountpoint)], "listing subvolumes")
        nested = []
        for line in listing.splitlines():
            m = re.match(r"ID (\d+) gen \d+ top level \d+ path (.*)$", line.strip())
            if m and m.group(2).startswith(rel + "/"):
                nested.append((m.group(2).count("/"), int(m.group(1))))
        for _depth, subvolid in sorted(nested, reverse=True):
            _run(["btrfs", "subvolume", "delete", "--subvolid", str(subvolid), str(self.mountpoint)],
                 f"deleting subvolume {subvolid} made inside {rel}")
        qgroup = self.qgroup_of(path)
        _run(["btrfs", "subvolume", "delete", str(path)], f"deleting the subvolume {rel}")
        if qgroup:  # its qgroup stays behind otherwise, counted in nothing, listed for ever
            run(["btrfs", "qgroup", "destroy", qgroup, str(self.mountpoint)], check=False, timeout=60)

    def qgroup_of(self, path: Path) -> str | None:
        try:
            return f"0/{int(_run(['btrfs', 'inspect-internal', 'rootid', str(path)], 'reading a subvolume id'))}"
        except (StorageError, ValueError):
            return None

    def swap_in(self, ctdir: Path, ctid: int, tag: str) -> None:
        """Make the subvolume built as ct/<tag><CTID> the container's (stopped), the old one deleted.
        A failure before the rename leaves the old one in place."""
        current = Subvolume(self, int(ctid), Path(ctdir) / "rootfs")
        new = self.subvolume_path(ctid, tag)
        old = self.subvolume_path(ctid, ".old-")
        if os.path.lexists(old):
            self.delete_subvolume(old)
        current.umount()
        try:
            os.rename(current.path, old)
        except BaseException:
            current.mount()
            raise
        os.rename(new, current.path)
        current.mount()
        self.delete_subvolume(old)

    # -- snapshots ---------------------------------------------------------------------------------
    def snapshot_path(self, ctid: int, name: str) -> Path:
        return self.mountpoint / "snap" / str(int(ctid)) / check_snapshot_name(name)

    def snapshot(self, ctid: int, name: str) -> None:
        """A read-only snapshot of the container's subvolume: one ioctl, the instant a freeze needs."""
        target = self.snapshot_path(ctid, name)
        if os.path.lexists(target):
            raise StorageError(f"container {ctid} has a snapshot {name} already")
        target.parent.mkdir(mode=0o700, exist_ok=True)
        _run(["btrfs", "subvolume", "snapshot", "-r", str(self.subvolume_path(ctid)), str(target)],
             f"the snapshot {name} of {ctid}")

    def snapshots(self, ctid: int) -> list[SnapshotInfo]:
        folder = self.mountpoint / "snap" / str(int(ctid))
        if not folder.is_dir():
            return []
        return [SnapshotInfo(name=entry.name, size_bytes=None) for entry in sorted(folder.iterdir())
                if SNAPSHOT_NAME_RE.fullmatch(entry.name)]

    def snapshot_delete(self, ctid: int, name: str) -> None:
        target = self.snapshot_path(ctid, name)
        if not os.path.lexists(target):
            raise StorageError(f"container {ctid} has no snapshot {name}")
        self.delete_subvolume(target)

    def snapshot_delete_all(self, ctid: int) -> None:
        folder = self.mountpoint / "snap" / str(int(ctid))
        for info in self.snapshots(ctid):
            self.snapshot_delete(ctid, info.name)
        if folder.is_dir():
            folder.rmdir()

    def snapshot_switch(self, ctdir: Path, ctid: int, name: str, size_mb: int | None) -> None:
        """Roll the (stopped) container back to snapshot `name`: a writable snapshot of it becomes the
        container's subvolume, with the container's disk limit; the snapshot itself stays."""
        source = self.snapshot_path(ctid, name)
        if not os.path.lexists(source):
            raise StorageError(f"container {ctid} has no snapshot {name}")
        new = self.subvolume_path(ctid, ".new-")
        if os.path.lexists(new):
            self.delete_subvolume(new)
        _run(["btrfs", "subvolume", "snapshot", str(source), str(new)], f"restoring the snapshot {name}")
        try:
            if size_mb:
                Subvolume(self, int(ctid), Path(ctdir) / "rootfs", ".new-").set_limit(size_mb)
        except BaseException:
            self.delete_subvolume(new)
            raise
        self.swap_in(ctdir, ctid, ".new-")


class Subvolume(Volume):
    """A container's subvolume, seen through a bind mount at <ctdir>/rootfs."""

    def __init__(self, pool: BtrfsPool, ctid: int, mountpoint: Path, tag: str = ""):
        self.pool = pool
        self.ctid = ctid
        self.tag = tag
        self.path = pool.subvolume_path(ctid, tag)
        self.mountpoint = Path(mountpoint)

    @property
    def describe(self) -> str:
        return f"btrfs subvolume {self.path}"

    def exists(self) -> bool:
        return self.path.is_dir()

    def is_mounted(self, mounts: MountTable | None = None) -> bool:
        return mounted_source(self.mountpoint, mounts) is not None

    def mount(self, mounts: MountTable | None = None) -> None:
        if self.is_mounted(mounts):
            return
        self.pool.ensure_ready(mounts)
        if not self.exists():
            raise StorageError(f"the subvolume of container {self.ctid} ({self.path}) is missing")
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        _run(["mount", "--bind", str(self.path), str(self.mountpoint)], f"mounting {self.path}", timeout=120)

    def umount(self) -> None:
        if self.is_mounted():
            _run(["umount", str(self.mountpoint)], f"unmounting {self.mountpoint}", timeout=120)

    def qgroup(self) -> tuple[int, int | None]:
        """(referenced bytes, limit in bytes or None) of the subvolume's own qgroup."""
        qgroup = self.pool.qgroup_of(self.path)
        out = _run(["btrfs", "qgroup", "show", "-reF", "--raw", str(self.path)], "reading the quota")
        for line in out.splitlines():
            fields = line.split()
            if fields and fields[0] == qgroup:
                limit = None if fields[3] == "none" else int(fields[3])
                return int(fields[1]), limit
        raise StorageError(f"the subvolume {self.path} has no qgroup (are quotas on for the pool?)")

    def usage(self) -> DiskUsage:
        used, limit = self.qgroup()
        if limit is None:
            limit = self.pool.space().total_bytes if self.pool.space() else 0
        return DiskUsage(used_bytes=used, total_bytes=limit, inodes_used=0, inodes_total=0)

    def size_mb(self) -> int:
        _used, limit = self.qgroup()
        return (limit or 0) // MIB

    def set_limit(self, size_mb: int) -> None:
        _run(["btrfs", "qgroup", "limit", f"{int(size_mb) * MIB}", str(self.path)], "setting the disk limit")

    def resize(self, size_mb: int, inodes: int | None, running: bool, log: Log = _noop,
               who: str = "the container") -> str:
        """Up or down, running or not: a qgroup limit changes at once. Not below what it uses."""
        run(["btrfs", "filesystem", "sync", str(self.pool.mountpoint)], check=False, timeout=120)
        used, limit = self.qgroup()
        if size_mb * MIB < used + OVERHEAD_MB * MIB:
            raise StorageError(f"diskspace {size_mb} MiB is below what {who} uses "
                               f"({used // MIB} MiB, plus {OVERHEAD_MB} MiB of room)")
        current = (limit or 0) // MIB
        self.set_limit(size_mb)
        if inodes:
            log("diskinodes is kept for the record only: btrfs allocates inodes as it needs them and "
                "cannot limit their number")
        if size_mb == current:
            return "unchanged"
        log(f"Disk limit of {self.ctid} {'raised' if size_mb > current else 'lowered'} from {current} to "
            f"{size_mb} MiB" + (" online" if running else ""))
        return "grown" if size_mb > current else "shrunk"

    def remove(self) -> None:
        self.umount()
        if self.exists():
            self.pool.delete_subvolume(self.path)
