"""What this host's kernel and tools can do for containers, asked so that a host that has never run
a container gets the same answers as one that has run thousands.

Each cgroup answer comes from an empty child cgroup made and removed for the question
(cgroups.child_cgroup_files), never from cgroups that earlier containers or other programs left:
on a fresh host there are none, and an answer read from leftovers once made the first container
on a fresh machine fail to start. `manage.py hostctl capabilities` prints this report; the agent
logs it at start. Plain Python, no Django.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from . import apparmor
from .cgroups import DEFAULT_ROOT, child_cgroup_files, detect_version, enable_for_children
from .transfer import criu_check

V1_CONTROLLERS = ("blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids")


@dataclass(frozen=True)
class Capabilities:
    cgroup_version: int
    controllers: tuple[str, ...]      # what containers' cgroups can use
    freezer: bool                     # suspend backups, migration's freeze
    swap_accounting: bool             # --swap can be limited
    io_weight_file: str | None        # the file --ioprio writes, None: I/O weight not available
    criu: bool
    criu_reason: str
    xfs: bool                         # disk quotas on XFS images
    xfs_reason: str
    apparmor: str                     # whether containers can start under LXC's AppArmor profile

    def as_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        yes = {True: "yes", False: "no"}
        return [
            f"cgroup version:   {self.cgroup_version}",
            f"controllers:      {' '.join(self.controllers) or '-'}",
            f"freezer:          {yes[self.freezer]}",
            f"swap accounting:  {yes[self.swap_accounting]}",
            f"I/O weight:       {self.io_weight_file or 'no'}",
            f"CRIU:             {yes[self.criu]} ({self.criu_reason})",
            f"XFS disk images:  {yes[self.xfs]} ({self.xfs_reason})",
            f"AppArmor:         {self.apparmor}",
        ]


def _files(base: Path) -> frozenset[str]:
    return child_cgroup_files(base) or frozenset()


def cgroup_capabilities(root: str | os.PathLike = DEFAULT_ROOT) -> dict:
    """The cgroup part of the report, for the hierarchy at `root`."""
    root = Path(root)
    version = detect_version(str(root))
    if version == 1:
        controllers = tuple(c for c in V1_CONTROLLERS if (root / c / "cgroup.procs").exists())
        memory, blkio = _files(root / "memory"), _files(root / "blkio")
        weight = next((f"blkio/{name}" for name in ("blkio.bfq.weight", "blkio.weight") if name in blkio), None)
        return dict(cgroup_version=1, controllers=controllers, freezer="freezer" in controllers,
                    swap_accounting="memory.memsw.limit_in_bytes" in memory, io_weight_file=weight)
    for controller in ("memory", "io", "cpu", "pids"):
        enable_for_children(root, controller)
    child = _files(root)
    # What the kernel offers children (cgroup.controllers), not what is switched on for them now
    # (cgroup.subtree_control): LXC and systemd switch more on as containers start, and a probe's
    # answer must not depend on what ran before it.
    controllers = tuple(sorted((root / "cgroup.controllers").read_text().split()))
    weight = next((name for name in ("io.bfq.weight", "io.weight") if name in child), None)
    return dict(cgroup_version=2, controllers=controllers, freezer="cgroup.freeze" in child,
                swap_accounting="memory.swap.max" in child, io_weight_file=weight)


def xfs_support() -> tuple[bool, str]:
    if shutil.which("mkfs.xfs") is None:
        return False, "mkfs.xfs is not installed (Debian package xfsprogs)"
    if "xfs" in Path("/proc/filesystems").read_text().split():
        return True, "xfs in /proc/filesystems"
    release = os.uname().release
    if any(Path(f"/lib/modules/{release}").rglob("xfs.ko*")):
        return True, "xfs kernel module, loaded at first mount"
    return False, f"kernel {release} has no xfs"


def host_capabilities(root: str | os.PathLike = DEFAULT_ROOT) -> Capabilities:
    criu, criu_reason = criu_check()
    xfs, xfs_reason = xfs_support()
    return Capabilities(**cgroup_capabilities(root), criu=criu, criu_reason=criu_reason, xfs=xfs,
                        xfs_reason=xfs_reason, apparmor=apparmor.state().describe())
