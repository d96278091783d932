"""`image`: each container with a disk quota has its own XFS image in its directory, loop-mounted
at its rootfs (diskimage.py); one without a quota (or made before images) is a plain directory.
This is what every host did before storage pools, and what each host's default pool still does."""
from __future__ import annotations

from pathlib import Path

from ..diskimage import IMAGE_NAME, DiskImage
from .base import Capabilities, Log, Volume, _noop
from .dirpool import DirPool


class ImagePool(DirPool):
    kind = "image"
    capabilities = Capabilities(quota=True, inode_limit=True, shrink_online=False, snapshots=False, clone=False)

    def volume(self, ctdir: Path, ctid: int) -> Volume | None:
        image = DiskImage(Path(ctdir) / IMAGE_NAME, Path(ctdir) / "rootfs")
        return image if image.exists() else None

    def create_volume(self, ctdir: Path, ctid: int, size_mb: int | None, inodes: int | None,
                      log: Log = _noop) -> Volume | None:
        if not size_mb:
            return None
        image = DiskImage(Path(ctdir) / IMAGE_NAME, Path(ctdir) / "rootfs")
        log(f"Making a {size_mb} MiB disk" + (f" with {inodes} inodes" if inodes else ""))
        image.create(size_mb, inodes)
        image.mount()
        return image


Volume.register(DiskImage)  # diskimage.py predates the interface and is imported by it: registered, not derived
