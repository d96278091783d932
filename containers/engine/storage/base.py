"""The one interface every storage pool type implements.

A container's files are always seen at <lxcpath>/<CTID>/rootfs (LXC's rootfs path, and every
other part of the panel, use that path); the pool decides what is behind it: a plain directory,
a loop-mounted XFS image, a btrfs subvolume bind-mounted there. A pool's volume is the thing
behind the rootfs of one container.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..diskimage import DiskUsage, MountTable

Log = Callable[[str], None]


def _noop(_msg: str) -> None:
    pass


class StorageError(Exception):
    """A storage operation failed; the message says what and why, in one line where possible."""


@dataclass(frozen=True)
class Capabilities:
    """What a pool type can do; the panel offers only what the pool of a container can."""

    quota: bool           # a hard disk space limit per container
    inode_limit: bool     # a hard limit on the number of files
    shrink_online: bool   # the disk made smaller while the container runs
    snapshots: bool       # vzctl snapshot and friends
    clone: bool           # a new container from a snapshot, without copying


@dataclass(frozen=True)
class SnapshotInfo:
    name: str
    size_bytes: int | None  # what only this snapshot holds (exclusive), when the pool can tell


class Volume(ABC):
    """One container's root filesystem on a pool, seen at `mountpoint` (<ctdir>/rootfs)."""

    mountpoint: Path

    @abstractmethod
    def exists(self) -> bool: ...

    @abstractmethod
    def is_mounted(self, mounts: MountTable | None = None) -> bool: ...

    @abstractmethod
    def mount(self, mounts: MountTable | None = None) -> None:
        """Make the volume visible at its mountpoint unless it is (idempotent)."""

    @abstractmethod
    def umount(self) -> None: ...

    @abstractmethod
    def usage(self) -> DiskUsage:
        """What the container uses and may use; inodes_total 0 where the pool cannot limit them."""

    @abstractmethod
    def size_mb(self) -> int:
        """The hard disk limit in MiB as the pool enforces it now."""

    @abstractmethod
    def resize(self, size_mb: int, inodes: int | None, running: bool, log: Log = _noop,
               who: str = "the container") -> str:
        """vzctl set --diskspace/--diskinodes; returns what was done (grown, shrunk, ...). `who` names
        the container in refusals."""

    @abstractmethod
    def remove(self) -> None:
        """Unmount and delete the volume and everything in it."""

    @property
    def describe(self) -> str:
        return str(self.mountpoint)


class StoragePool(ABC):
    """A place containers' volumes are made in. Every path comes from the pool's own row and the
    CTID, never from a tenant or from inside a container."""

    kind: str = ""
    capabilities: Capabilities

    @abstractmethod
    def volume(self, ctdir: Path, ctid: int) -> Volume | None:
        """The existing volume of the container whose directory is `ctdir`; None when its rootfs is a
        plain directory with nothing to mount."""

    @abstractmethod
    def create_volume(self, ctdir: Path, ctid: int, size_mb: int | None, inodes: int | None,
                      log: Log = _noop) -> Volume | None:
        """Make and mount a new, empty volume at <ctdir>/rootfs (the directory exists and is empty)."""

    def discard_volume(self, ctdir: Path, ctid: int) -> None:
        """Remove what create_volume made, after a failed build (nothing when nothing is left)."""
        volume = self.volume(ctdir, ctid)
        if volume is not None:
            volume.remove()

    def ensure_ready(self) -> None:
        """Mount the pool itself if it has to be (after a reboot); nothing for most types."""

    def space(self) -> DiskUsage | None:
        """The pool's size and what is used of it, None when the pool cannot tell."""
        return None

    # -- snapshots (only where capabilities.snapshots) ---------------------------------------------
    def _no_snapshots(self):
        raise StorageError(f"a {self.kind} storage pool cannot take snapshots; create the container on a "
                           "btrfs pool for that")

    def snapshot(self, ctid: int, name: str) -> None:
        self._no_snapshots()

    def snapshot_delete(self, ctid: int, name: str) -> None:
        self._no_snapshots()

    def snapshot_switch(self, ctdir: Path, ctid: int, name: str, size_mb: int | None) -> None:
        self._no_snapshots()

    def snapshots(self, ctid: int) -> list[SnapshotInfo]:
        return []

    def snapshot_delete_all(self, ctid: int) -> None:
        """Remove every snapshot of a destroyed container (nothing on pools without snapshots)."""
