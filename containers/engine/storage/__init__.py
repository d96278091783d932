"""Where containers' root filesystems live: storage pools of a type, one module per type.

Each type implements `base.StoragePool` (make, remove, mount, measure and resize a container's
volume; snapshots where it can). Adding ZFS or LVM-thin is one new module and one entry in
`POOL_TYPES`. No Django here: the agent builds a pool object from its own database row.
"""
from __future__ import annotations

from .base import Capabilities, SnapshotInfo, StorageError, StoragePool, Volume
from .btrfspool import BtrfsPool
from .dirpool import DirPool
from .imagepool import ImagePool

POOL_TYPES: dict[str, type[StoragePool]] = {"dir": DirPool, "image": ImagePool, "btrfs": BtrfsPool}

__all__ = ["POOL_TYPES", "BtrfsPool", "Capabilities", "DirPool", "ImagePool", "SnapshotInfo", "StorageError",
           "StoragePool", "Volume"]
