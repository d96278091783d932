"""`dir`: the root filesystem is a plain directory in the container's directory; no disk quota."""
from __future__ import annotations

import os
from pathlib import Path

from ..diskimage import DiskUsage
from .base import Capabilities, Log, StoragePool, Volume, _noop


class DirPool(StoragePool):
    kind = "dir"
    capabilities = Capabilities(quota=False, inode_limit=False, shrink_online=False, snapshots=False, clone=False)

    def volume(self, ctdir: Path, ctid: int) -> Volume | None:
        return None

    def create_volume(self, ctdir: Path, ctid: int, size_mb: int | None, inodes: int | None,
                      log: Log = _noop) -> Volume | None:
        return None  # the rootfs directory itself is the container's storage

    def __init__(self, lxcpath: Path | None = None):
        self.lxcpath = lxcpath

    def space(self) -> DiskUsage | None:
        if self.lxcpath is None or not Path(self.lxcpath).is_dir():
            return None
        st = os.statvfs(self.lxcpath)
        return DiskUsage(used_bytes=(st.f_blocks - st.f_bfree) * st.f_frsize, total_bytes=st.f_blocks * st.f_frsize,
                         inodes_used=st.f_files - st.f_ffree, inodes_total=st.f_files)
