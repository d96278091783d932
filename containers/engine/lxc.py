"""LXC containers named by CTID in one lxcpath, driven through LXC's own tools.

Containers stay ordinary LXC containers, so `lxc-ls`, `lxc-info -n CTID` and
`lxc-attach -n CTID` work at the shell next to the panel.
"""
from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from . import apparmor
from .commands import CommandError, CommandResult, OutputCallback, run
from .cgroups import Cgroup, CgroupError, Limits
from .faults import fault_point
from .diskimage import IMAGE_NAME, MIB, DiskImage, DiskImageError, DiskUsage, MountTable, mounted_source
from .storage import ImagePool, StorageError, StoragePool, Volume
from .storage.btrfspool import BtrfsPool, Subvolume
from .safefs import Tree, resolved_name
from .vzdump import SYSTEM_DIRS, ArchiveError, safe_extract

Log = Callable[[str], None]
PARTIAL_PREFIX = ".vzpanel-partial-"
OLD_ROOTFS = ".rootfs-old"  # a container's root filesystem while replace_rootfs swaps in a new one
# A container arriving by migration: .vzpanel-incoming-<CTID>-<migration task id>. A ".keep"
# file inside (vzmigrate --keep-dst) keeps it after a failure for the next attempt to reuse.
INCOMING_PREFIX = ".vzpanel-incoming-"
KEEP_MARKER = ".keep"

# What LXC's common.conf sets, minus its include of common.conf.d: with lxcfs
# installed that adds a post-stop hook that sleeps 0.5 s on every stop.
ALLOWED_DEVICES = [
    "c *:* m", "b *:* m",  # mknod anything, use only what follows
    "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",  # null zero full random urandom
    "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm",  # tty console ptmx
    "c 136:* rwm", "c 10:229 rwm",  # pts, fuse
]
BASE_CONFIG = "\n".join([
    "lxc.arch = linux64",
    "lxc.tty.max = 0",
    "lxc.pty.max = 1024",
    "lxc.autodev = 1",
    "lxc.cap.drop = mac_admin mac_override sys_time sys_module sys_rawio",
    "lxc.mount.auto = cgroup:mixed proc:mixed sys:mixed",
    *(f"{key}.devices.deny = a" if dev is None else f"{key}.devices.allow = {dev}"
      for key in ("lxc.cgroup", "lxc.cgroup2") for dev in (None, *ALLOWED_DEVICES)),
]) + "\n"

# Every container runs in its own user namespace: its root is an unprivileged user of the host,
# so root inside (a tenant) holds no capability over the host's kernel (core_pattern, sysrq,
# cgroup release agents, mounts, devices). The root filesystem keeps the ids a container sees
# (0..65535) on disk and is shown to it through an idmapped mount, so archives, templates,
# migrations and the agent's own file writes need no id shifting.
# Each container of a host gets ids of its own (a "slot" of root's subordinate range): the
# kernel counts keys, inotify instances and processes per host uid, so containers sharing ids
# could read each other's keys or use up each other's allowances.
ID_RANGE = 65536           # ids a container can use, as many as a 16-bit system has
ID_RANGE_START = 1 << 31   # where root's range goes when the host has none: far above the
ID_RANGE_END = 4294901760  # 100000.. that adduser hands users, below uid 4294967295 (-1)
MIN_SLOTS = 1024           # a range of root's smaller than this many containers is not used
SUBID_FILES = ("/etc/subuid", "/etc/subgid")
# Syscalls refused inside containers on top of LXC's common profile: the kernel keyring is not
# namespaced (a key is found by its owner's host uid), so containers get none, as under Docker.
# btrfs lets any user make a subvolume or snapshot in a directory they may write; one made inside a
# container's subvolume has a qgroup of its own, outside the container's limit (its disk quota would
# not hold): the four ioctls that make them (BTRFS_IOC_SNAP_CREATE, SUBVOL_CREATE, SNAP_CREATE_V2,
# SUBVOL_CREATE_V2) are refused with EPERM. The kernel reads an ioctl's request as 32 bits while the
# filter sees the whole 64-bit register: the request is compared under the mask 0xffffffff, else the same
# request with any bit above 31 set would pass the filter and still make the subvolume.
SECCOMP_PROFILE = """2
denylist
reject_force_umount
[all]
kexec_load errno 1
open_by_handle_at errno 1
init_module errno 1
finit_module errno 1
delete_module errno 1
keyctl errno 38
add_key errno 38
request_key errno 38
ioctl errno 1 [1,0x50009401,SCMP_CMP_MASKED_EQ,0xffffffff]
ioctl errno 1 [1,0x5000940e,SCMP_CMP_MASKED_EQ,0xffffffff]
ioctl errno 1 [1,0x50009417,SCMP_CMP_MASKED_EQ,0xffffffff]
ioctl errno 1 [1,0x50009418,SCMP_CMP_MASKED_EQ,0xffffffff]
"""
SECCOMP_NAME = ".vzpanel.seccomp"  # in the lxcpath, which is root's alone

# LXC states as lxc-info prints them; ABSENT is ours for "no such container".
ABSENT = "ABSENT"


class LxcError(Exception):
    """An LXC operation failed; the message is LXC's own error text where it has one."""


@dataclass
class ContainerSpec:
    """What the agent renders into an LXC config: the desired state of one container."""

    ctid: int
    hostname: str
    onboot: bool = False
    limits: Limits | None = None
    net_lines: list[str] | None = None  # lxc.net.* keys (engine/network.lxc_net_lines); None: no network
    addresses: tuple[str, ...] = ()     # venet addresses, for /etc/hosts
    nameservers: tuple[str, ...] = ()
    searchdomain: str = ""
    disk_mb: int | None = None      # hard diskspace: the size of the container's disk image
    diskinodes: int | None = None   # hard diskinodes: the image's inode count


def _noop(_msg: str) -> None:
    pass


class Lxc:
    """The containers of one lxcpath (default /var/lib/lxc)."""

    def __init__(self, lxcpath: str | os.PathLike, storage_of: Callable[[int], StoragePool | None] | None = None):
        """`storage_of(ctid)`: the storage pool a container is on, from the agent's own rows; without it
        (or where it answers None) a container is on the host's image pool, as before storage pools."""
        self.lxcpath = Path(lxcpath)
        self.storage_of = storage_of

    # -- paths and state -------------------------------------------------
    def path(self, ctid: int) -> Path:
        return self.lxcpath / str(int(ctid))

    def rootfs(self, ctid: int) -> Path:
        return self.path(ctid) / "rootfs"

    def exists(self, ctid: int) -> bool:
        return (self.path(ctid) / "config").is_file()

    def storage(self, ctid: int) -> StoragePool:
        """The pool the container's root filesystem is on."""
        pool = self.storage_of(int(ctid)) if self.storage_of else None
        return pool if pool is not None else ImagePool(self.lxcpath)

    def disk(self, ctid: int) -> Volume | None:
        """The container's volume (a disk image, a subvolume), or None for a plain-directory container."""
        return self.storage(ctid).volume(self.path(ctid), ctid)

    def ensure_mounted(self, ctid: int, mounts: MountTable | None = None) -> None:
        """Mount the container's disk image if it has one that is not mounted. A pass over many
        containers reads the mount table once (read_mount_table) and passes it as `mounts`."""
        disk = self.disk(ctid)
        if disk:
            disk.mount(mounts)

    def disk_usage(self, ctid: int, mounts: MountTable | None = None) -> DiskUsage | None:
        """statvfs of the container's mounted disk image; None for a plain directory or an unmounted image."""
        disk = self.disk(ctid)
        return disk.usage() if disk and disk.is_mounted(mounts) else None

    def set_disk(self, ctid: int, disk_mb: int, diskinodes: int | None, running: bool, log: Log = _noop) -> str:
        """vzctl set --diskspace/--diskinodes, as the container's pool can: an image grows and changes
        inodes online and shrinks only when stopped; a btrfs subvolume's quota changes either way online."""
        disk = self.disk(ctid)
        if disk is None:
            raise LxcError(f"container {ctid} has no disk image: its disk space is not limited")
        try:
            return disk.resize(disk_mb, diskinodes, running, log, who=f"container {ctid}")
        except (DiskImageError, StorageError) as exc:
            raise LxcError(str(exc)) from None

    def _base(self, ctid: int) -> list[str]:
        return ["-n", str(int(ctid)), "-P", str(self.lxcpath)]

    def state(self, ctid: int) -> str:
        """LXC's state (RUNNING, STOPPED, FROZEN, ...) or ABSENT."""
        if not self.exists(ctid):
            return ABSENT
        res = run(["lxc-info", *self._base(ctid), "-sH"], check=False, timeout=30)
        if res.returncode != 0:
            raise LxcError(res.stderr.strip() or f"lxc-info failed for {ctid}")
        return res.stdout.strip()

    def is_running(self, ctid: int) -> bool:
        """Whether LXC says RUNNING: from the container's cgroup when that shows it running (a
        few file reads, where lxc-info is a process of its own: exec waited for it each time),
        else from lxc-info."""
        try:
            if self.exists(ctid) and Cgroup(str(int(ctid))).run_state() == "RUNNING":
                return True
        except CgroupError:
            pass
        return self.state(ctid) == "RUNNING"

    def list_all(self) -> dict[str, str]:
        """Every container in the lxcpath (by name) with its state, as lxc-ls sees them."""
        if not self.lxcpath.is_dir():
            return {}
        res = run(["lxc-ls", "-P", str(self.lxcpath), "--fancy", "-F", "NAME,STATE"], timeout=60)
        found = {}
        for line in res.stdout.splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 2 and not parts[0].startswith(PARTIAL_PREFIX):
                found[parts[0]] = parts[1]
        return found

    def nproc(self, ctid: int) -> int | None:
        """Number of tasks in the container's cgroup (vzlist NPROC), None if unknown.
        Read straight from the cgroup file: a tool call would cost ~5 ms per container."""
        cgroup = Cgroup(str(ctid))
        return cgroup._int("pids/pids.current" if cgroup.version == 1 else "pids.current")

    def init_pid(self, ctid: int) -> int | None:
        res = run(["lxc-info", *self._base(ctid), "-pH"], check=False, timeout=30)
        try:
            return int(res.stdout.strip())
        except ValueError:
            return None

    def runs_privileged(self, ctid: int) -> bool:
        """True when the running container's root is the host's root: it was started by a panel
        from before containers had their own user namespace, and keeps that until it restarts."""
        pid = self.init_pid(ctid)
        if pid is None:
            return False
        try:
            first = Path(f"/proc/{pid}/uid_map").read_text().split()[:2]
        except OSError:
            return False
        return first == ["0", "0"]

    # -- configuration ---------------------------------------------------
    def render_config(self, spec: ContainerSpec, rootfs: Path | None = None) -> str:
        rootfs = rootfs or self.rootfs(spec.ctid)
        lines = [
            "# Written by vzpanel's host agent from the panel's database; edits here are overwritten.",
            f"lxc.uts.name = {spec.hostname}",
            f"lxc.rootfs.path = dir:{self.rootfs(spec.ctid)}",
            *id_map_lines(self.id_slot(spec.ctid)),
            f"lxc.seccomp.profile = {self.seccomp_profile()}",
            *(spec.net_lines or ["lxc.net.0.type = empty"]),
            f"lxc.start.auto = {1 if spec.onboot else 0}",
        ]
        if spec.limits:
            lines += Cgroup(str(spec.ctid)).lxc_config_lines(spec.limits)
        # busybox init halts on SIGUSR1; systemd and sysvinit on LXC's default SIGPWR.
        if _is_busybox_init(rootfs):
            lines.append("lxc.signal.halt = SIGUSR1")
        return "\n".join(lines) + "\n" + BASE_CONFIG

    def id_slot(self, ctid: int) -> int:
        """The container's own ids on this host: the slot its config has, else the one its CTID
        points at if free, else the lowest free one. The agent runs one task at a time, so two
        containers never pick at once; a migrated container gets a slot at its new host (the
        idmapped root filesystem makes that free)."""
        ranges = container_id_ranges()
        own = _slot_of_config(self.path(ctid) / "config")
        if own is not None:
            return own
        used = {slot for config in self.lxcpath.glob("*/config")
                if config.parent.name != str(int(ctid)) and (slot := _slot_of_config(config)) is not None}
        preferred = int(ctid) % ranges.slots
        if preferred not in used:
            return preferred
        free = next((slot for slot in range(ranges.slots) if slot not in used), None)
        if free is None:
            raise LxcError(f"all {ranges.slots} id ranges of this host are in use")
        return free

    def seccomp_profile(self) -> Path:
        """The syscall filter every container starts with, written where only root writes."""
        path = self.lxcpath / SECCOMP_NAME
        try:
            if path.read_text() == SECCOMP_PROFILE:
                return path
        except OSError:
            pass
        self.lxcpath.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, SECCOMP_PROFILE)
        return path

    def write_config(self, spec: ContainerSpec) -> None:
        _atomic_write(self.path(spec.ctid) / "config", self.render_config(spec))

    # -- operations ------------------------------------------------------
    def create(self, spec: ContainerSpec, template: Path, log: Log = _noop,
               customize: Callable[[Path], None] | None = None) -> None:
        """Unpack a template into a new container; on any failure nothing is left behind.
        `customize(rootfs)`, if given, runs on the unpacked root filesystem before the container
        is moved into place (a root password, SSH keys): never started, and removed whole if it fails."""
        if not template.is_file():
            raise LxcError(f"OS template {template} not found")

        def unpack(rootfs: Path) -> None:
            log(f"Unpacking {template.name} into {self.path(spec.ctid)}/rootfs")
            _unpack(template, rootfs, log, spec.disk_mb)
            if customize is not None:
                customize(rootfs)
        self.build(spec, unpack, log)
        log(f"Container {spec.ctid} created")

    def build(self, spec: ContainerSpec, populate: Callable[[Path], ContainerSpec | None], log: Log = _noop) -> None:
        """Make a new container whose root filesystem `populate(rootfs)` fills (a template, a backup).
        `populate` may return the spec to finish with (a restore learns addresses and DNS from
        its archive).

        It is built in a hidden sibling directory and renamed into place only when
        complete, so a crash never leaves a half container under the CTID (the agent
        removes stale partial directories at start); on any failure nothing is left.
        """
        target = self.path(spec.ctid)
        if target.exists():
            raise LxcError(f"{target} already exists: a container {spec.ctid} is already known to LXC")
        self.lxcpath.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f"{PARTIAL_PREFIX}{spec.ctid}-", dir=self.lxcpath))
        pool, volume = self.storage(spec.ctid), None
        try:
            os.chmod(partial, 0o770)
            rootfs = partial / "rootfs"
            rootfs.mkdir()
            volume = pool.create_volume(partial, spec.ctid, spec.disk_mb, spec.diskinodes, log)
            spec = populate(rootfs) or spec
            fault_point("build.populated")
            _make_system_dirs(rootfs)
            write_identity(rootfs, spec)
            _atomic_write(partial / "config", self.render_config(spec, rootfs))
            os.rename(partial, target)  # the image's mount moves with its directory
        except BaseException:
            if volume is not None:
                volume.remove()  # a subvolume lives outside the directory: removed by itself
            _discard(partial)
            raise
        try:
            self.ensure_mounted(spec.ctid)
        except BaseException:
            pool.discard_volume(target, spec.ctid)
            _discard(target)
            raise

    def start(self, ctid: int, timeout: int = 30) -> None:
        if apparmor.state().blocks_containers:  # lxc-start would fail with a line no admin could act on
            raise LxcError(apparmor.REMEDY)
        self.ensure_mounted(ctid)
        logfile = self.path(ctid) / "lxc.log"
        # No lxc-wait after it: lxc-start -d exits 0 only once the container's monitor has reported
        # RUNNING (LXC 3 and later: wait_on_daemonized_start), so a wait would be a process for nothing.
        res = run(["lxc-start", *self._base(ctid), "-d", "-o", str(logfile), "-l", "ERROR"],
                  check=False, timeout=timeout + 10)
        if res.returncode != 0:
            raise LxcError(_lxc_error_text(res, logfile))

    def stop(self, ctid: int, timeout: int = 30) -> None:
        """Clean shutdown, killed after `timeout` seconds (vzctl stop). A process inside that froze
        itself in a cgroup of its own ignores SIGKILL until thawed: then every cgroup of the
        container is thawed and every process killed."""
        try:
            res = run(["lxc-stop", *self._base(ctid), "-t", str(timeout)], check=False, timeout=timeout + 30)
            stopped = res.returncode == 0
        except CommandError:  # lxc-stop itself waits for ever on a process that cannot die
            stopped = False
        if not stopped and self.state(ctid) != "STOPPED":
            self.kill_frozen(ctid, timeout)

    def freeze(self, ctid: int) -> None:
        res = run(["lxc-freeze", *self._base(ctid)], check=False, timeout=60)
        if res.returncode != 0:
            raise LxcError(_lxc_error_text(res, None))

    def unfreeze(self, ctid: int) -> None:
        res = run(["lxc-unfreeze", *self._base(ctid)], check=False, timeout=60)
        if res.returncode != 0:
            raise LxcError(_lxc_error_text(res, None))

    @contextlib.contextmanager
    def frozen(self, ctid: int, deadline: float, window: dict | None = None):
        """Freeze the container for the block, with a watchdog outside this process that thaws it
        if this process dies or the block takes longer than `deadline` seconds. A block that
        outlived its deadline fails: what it copied while frozen is not consistent any more.
        `window`, if given, gets "seconds": from just before the freeze to just after the thaw (an
        upper bound on how long any process of the container stood still)."""
        watch = subprocess.Popen([sys.executable, str(Path(__file__).with_name("freezewatch.py")),
                                  str(self.lxcpath), str(int(ctid)), str(deadline)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 start_new_session=True)  # not killed with this process group
        try:
            if watch.stdout.readline() != b"watching\n":
                raise LxcError(f"the freeze watchdog for {ctid} did not start: "
                               f"{watch.stderr.read().decode(errors='replace').strip()}")
            began = time.monotonic()
            self.freeze(ctid)
            try:
                yield
            finally:
                try:
                    watch.stdin.write(b"done\n")
                    watch.stdin.close()
                except BrokenPipeError:
                    pass  # it has thawed already
                thawed_by_watchdog = watch.wait(timeout=90) == 3
                if not thawed_by_watchdog:
                    self.unfreeze(ctid)
                if window is not None:
                    window["seconds"] = time.monotonic() - began
            if thawed_by_watchdog:
                raise LxcError(f"container {ctid} stayed frozen longer than {deadline:g} s and was thawed "
                               "by the watchdog; this copy is not consistent and is discarded")
        finally:
            if watch.poll() is None:
                watch.kill()
                watch.wait()
            for pipe in (watch.stdin, watch.stdout, watch.stderr):
                if not pipe.closed:
                    pipe.close()

    def snapshot(self, ctid: int, name: str, running: bool, deadline: float = 30) -> float | None:
        """vzctl snapshot: a read-only snapshot of the container's volume, on a pool that can take them.
        A running container is frozen for the snapshot alone (one ioctl), so its files are consistent
        as of one instant; returns that frozen window in seconds (None when it was not running)."""
        pool = self.storage(ctid)
        if not pool.capabilities.snapshots or not running:
            pool.snapshot(ctid, name)  # refuses on a pool without snapshots
            return None
        window: dict = {}
        with self.frozen(ctid, deadline, window):
            pool.snapshot(ctid, name)
        return window["seconds"]

    def snapshot_switch(self, ctid: int, name: str, disk_mb: int | None) -> None:
        """vzctl snapshot-switch of a stopped container: its volume replaced by a copy of the snapshot."""
        if self.state(ctid) not in ("STOPPED", ABSENT):
            raise LxcError(f"container {ctid} is running; stop it before switching to a snapshot")
        self.storage(ctid).snapshot_switch(self.path(ctid), ctid, name, disk_mb)

    def kill(self, ctid: int) -> None:
        run(["lxc-stop", *self._base(ctid), "-k"], check=False, timeout=60)

    def kill_frozen(self, ctid: int, timeout: int = 30) -> None:
        """Stop a frozen container without letting any of its processes run again.

        Every process gets SIGKILL while frozen, then the cgroup is thawed: a pending
        SIGKILL is acted on before a thawed process returns to user space, so nothing
        writes to the disk after the last copy was taken (lxc-stop -k would kill init
        only, and the others would run on for a moment after the thaw). The thaw is
        written to the cgroup itself: lxc-unfreeze asks LXC's monitor, which may be
        exiting already because init has died.
        """
        cgroup = Cgroup(str(ctid))
        top = cgroup.path("freezer/cgroup.procs").parent if cgroup.version == 1 else cgroup.root / cgroup.dirname
        for procs in sorted(top.rglob("cgroup.procs")) if top.is_dir() else []:
            try:
                pids = [int(p) for p in procs.read_text().split()]
            except OSError:
                continue
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        # Thawed from the top down, every cgroup below too: one the container froze itself would
        # keep its processes (SIGKILL pending) alive, and the container running, for ever.
        thaw_file, thawed = ("freezer.state", "THAWED") if cgroup.version == 1 else ("cgroup.freeze", "0")
        for state in sorted(top.rglob(thaw_file), key=lambda p: len(p.parts)) if top.is_dir() else []:
            try:
                state.write_text(thawed)
            except OSError:
                pass  # gone already: it has stopped
        res = run(["lxc-wait", *self._base(ctid), "-s", "STOPPED", "-t", str(timeout)], check=False,
                  timeout=timeout + 10)
        if res.returncode != 0:
            self.kill(ctid)
            if self.state(ctid) != "STOPPED":
                raise LxcError(f"container {ctid} did not stop after it was killed")

    # -- migration: a container arriving, and one that has left ----------
    def incoming(self, ctid: int, tag: int) -> Path:
        return self.lxcpath / f"{INCOMING_PREFIX}{int(ctid)}-{int(tag)}"

    def prepare_incoming(self, ctid: int, tag: int, disk_mb: int | None, diskinodes: int | None,
                         log: Log = _noop) -> Path:
        """The directory a migrating container's files are copied into, with its own disk image
        mounted at rootfs. A copy kept by an earlier failed attempt (--keep-dst) is reused."""
        if self.path(ctid).exists():
            raise LxcError(f"{self.path(ctid)} already exists: this host already has a container {ctid}")
        self.lxcpath.mkdir(parents=True, exist_ok=True)
        target = self.incoming(ctid, tag)
        for kept in self.lxcpath.glob(f"{INCOMING_PREFIX}{int(ctid)}-*"):
            if kept != target and (kept / KEEP_MARKER).exists():
                os.rename(kept, target)
                (target / KEEP_MARKER).unlink()
                log(f"Reusing the copy kept by an earlier attempt ({kept.name})")
                break
        try:
            (target / "rootfs").mkdir(parents=True, exist_ok=True)
            os.chmod(target, 0o770)
            if disk_mb:
                image = DiskImage(target / IMAGE_NAME, target / "rootfs")
                if not image.exists():
                    log(f"Making a {disk_mb} MiB disk" + (f" with {diskinodes} inodes" if diskinodes else ""))
                    image.create(disk_mb, diskinodes)
                image.mount()
        except BaseException:
            _discard(target)
            raise
        return target

    def finish_incoming(self, spec: ContainerSpec, tag: int) -> None:
        """Make the copied files the container `spec.ctid` on this host (config written, renamed)."""
        incoming = self.incoming(spec.ctid, tag)
        if not (incoming / "rootfs").is_dir():
            raise LxcError(f"{incoming} is missing: nothing was copied here for container {spec.ctid}")
        if self.path(spec.ctid).exists():
            raise LxcError(f"{self.path(spec.ctid)} already exists")
        write_identity(incoming / "rootfs", spec)
        _atomic_write(incoming / "config", self.render_config(spec, incoming / "rootfs"))
        os.rename(incoming, self.path(spec.ctid))  # the image's mount moves with its directory
        self.ensure_mounted(spec.ctid)

    def return_to_incoming(self, ctid: int, tag: int) -> None:
        """Undo finish_incoming (the destination could not run it): back to an incoming copy."""
        if self.path(ctid).exists():
            (self.path(ctid) / "config").unlink(missing_ok=True)
            os.rename(self.path(ctid), self.incoming(ctid, tag))

    def discard_incoming(self, ctid: int, tag: int, keep: bool = False) -> bool:
        """Remove an incoming copy; with keep, unmount it and mark it for the next attempt.
        Returns True if something was there."""
        incoming = self.incoming(ctid, tag)
        if not incoming.exists():
            return False
        if keep:
            image = DiskImage(incoming / IMAGE_NAME, incoming / "rootfs")
            if image.exists():
                image.umount()
            (incoming / KEEP_MARKER).write_text(f"kept after migration task {tag} failed\n")
        else:
            _discard(incoming)
        return True

    def incoming_copies(self) -> list[tuple[int, int, bool]]:
        """(ctid, tag, kept) of every incoming copy in this lxcpath."""
        found = []
        if self.lxcpath.is_dir():
            for entry in self.lxcpath.glob(f"{INCOMING_PREFIX}*"):
                m = re.fullmatch(rf"{re.escape(INCOMING_PREFIX)}(\d+)-(\d+)", entry.name)
                if m and entry.is_dir():
                    found.append((int(m.group(1)), int(m.group(2)), (entry / KEEP_MARKER).exists()))
        return found

    def set_aside(self, ctid: int) -> Path:
        """vzmigrate -r no: keep the source's files, unmounted, as <CTID>.migrated (never started:
        LXC lists it, the panel shows it as unmanaged)."""
        disk = self.disk(ctid)
        if disk:
            disk.umount()
        target = self.lxcpath / f"{int(ctid)}.migrated"
        n = 1
        while target.exists():
            n += 1
            target = self.lxcpath / f"{int(ctid)}.migrated{n}"
        config = self.path(ctid) / "config"
        if config.exists():
            text = re.sub(r"(?m)^lxc\.start\.auto = .*$", "lxc.start.auto = 0", config.read_text())
            text = text.replace(f"dir:{self.rootfs(ctid)}", f"dir:{target}/rootfs")
            _atomic_write(config, text)
        os.rename(self.path(ctid), target)
        return target

    def destroy(self, ctid: int) -> None:
        if not self.exists(ctid):
            return
        pool = self.storage(ctid)
        pool.ensure_ready()  # a btrfs pool not mounted yet (after a reboot): its subvolume must go too
        disk = pool.volume(self.path(ctid), ctid)
        if disk:
            disk.umount()  # never let a recursive delete walk into a mounted filesystem
        res = run(["lxc-destroy", *self._base(ctid)], check=False, timeout=600)
        if res.returncode != 0:
            raise LxcError(_lxc_error_text(res, None))
        if disk is not None and disk.exists():
            disk.remove()  # a subvolume outlives its container's directory: removed, and its snapshots
        pool.snapshot_delete_all(ctid)

    def attach(self, ctid: int, argv: Sequence[str], timeout: float = 60,
               input_text: str | None = None, keep_last: int | None = None,
               on_output: OutputCallback | None = None) -> CommandResult:
        """Run argv inside the container; returns its output (the last `keep_last` bytes of each,
        when given) and exit status. `on_output` sees the output as it comes (with `keep_last`)."""
        env = ["--clear-env", "--set-var", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
        return run(["lxc-attach", *self._base(ctid), *env, "--", *argv], check=False, timeout=timeout,
                   input_text=input_text, keep_last=keep_last, on_output=on_output)

    def set_password(self, ctid: int, user: str, password: str, running: bool) -> str:
        """Set `user`'s password: with the container's own chpasswd when it has one, otherwise by
        writing a SHA-512 crypt hash (made by openssl on the host) into its /etc/shadow.
        The password only ever travels on standard input, never in an argv."""
        if running:
            res = self.attach(ctid, ["chpasswd"], timeout=60, input_text=f"{user}:{password}\n")
            if res.returncode == 0:
                return "chpasswd"
            if "Failed to exec" not in res.stderr and res.returncode != 127:
                raise LxcError(f"chpasswd failed inside {ctid}: {(res.stderr or res.stdout).strip()}")
        hashed = run(["openssl", "passwd", "-6", "-stdin"], input_text=password + "\n", timeout=30).stdout.strip()
        with Tree(self.rootfs(ctid)) as tree:
            set_shadow_hash(tree, user, hashed, f"container {ctid}")
        return "shadow"

    def apply_limits(self, ctid: int, new: Limits, old: Limits | None = None) -> list[str]:
        """Change the limits of a running container at once (vzctl set without a restart)."""
        return Cgroup(str(ctid)).apply(new, old)

    def reset(self, spec: ContainerSpec, template: Path, log: Log = _noop) -> None:
        """Replace the root filesystem with a fresh copy of `template`; on failure the old one stays."""
        self.replace_rootfs(spec, lambda rootfs: _unpack(template, rootfs, log, spec.disk_mb), log)

    def replace_rootfs(self, spec: ContainerSpec, populate: Callable[[Path], None], log: Log = _noop) -> None:
        """Give a stopped container a new root filesystem that `populate(rootfs)` fills, built aside
        and swapped in only when complete; on any failure the old one stays as it was."""
        path = self.path(spec.ctid)
        pool = self.storage(spec.ctid)
        if isinstance(pool, BtrfsPool):
            self._replace_subvolume(pool, spec, populate)
            return
        partial = Path(tempfile.mkdtemp(prefix=f"{PARTIAL_PREFIX}{spec.ctid}-swap-", dir=self.lxcpath))
        old_disk = self.disk(spec.ctid)
        try:
            (partial / "rootfs").mkdir()
            if old_disk:
                new_disk = DiskImage(partial / IMAGE_NAME, partial / "rootfs")
                new_disk.create(spec.disk_mb or old_disk.size_mb(), spec.diskinodes)
                new_disk.mount()
            populate(partial / "rootfs")
            _make_system_dirs(partial / "rootfs")
            write_identity(partial / "rootfs", spec)
            fault_point("replace.populated")
            if old_disk:
                new_disk.umount()
                old_disk.umount()
                os.replace(new_disk.image, old_disk.image)
                old_disk.mount()
            else:
                # A crash between these two renames leaves no rootfs: finish_swaps() puts the old back.
                os.rename(path / "rootfs", path / OLD_ROOTFS)
                fault_point("replace.swapping")
                os.rename(partial / "rootfs", path / "rootfs")
        finally:
            _discard(partial)
            if old_disk:
                old_disk.mount()
        shutil.rmtree(path / OLD_ROOTFS, ignore_errors=True)
        self.write_config(spec)

    def _replace_subvolume(self, pool: BtrfsPool, spec: ContainerSpec, populate: Callable[[Path], None]) -> None:
        """replace_rootfs on btrfs: a new subvolume (ct/.new-CTID) filled through a bind mount in a
        hidden directory, then swapped for the old one; on failure the new one is deleted."""
        partial = Path(tempfile.mkdtemp(prefix=f"{PARTIAL_PREFIX}{spec.ctid}-swap-", dir=self.lxcpath))
        stale = pool.subvolume_path(spec.ctid, ".new-")
        if stale.exists():
            pool.delete_subvolume(stale)
        new = pool.create_volume(partial, spec.ctid, spec.disk_mb, spec.diskinodes, tag=".new-")
        view = Subvolume(pool, spec.ctid, partial / "rootfs", ".new-")
        try:
            (partial / "rootfs").mkdir()
            _run_mount(["mount", "--bind", str(view.path), str(view.mountpoint)])
            populate(partial / "rootfs")
            _make_system_dirs(partial / "rootfs")
            write_identity(partial / "rootfs", spec)
            fault_point("replace.populated")
            view.umount()
            pool.swap_in(self.path(spec.ctid), spec.ctid, ".new-")
        except BaseException:
            view.umount()
            if new.exists():
                pool.delete_subvolume(new.path)
            raise
        finally:
            _discard(partial)
        self.write_config(spec)

    def finish_swaps(self) -> list[str]:
        """After a crash in replace_rootfs: a container whose old root filesystem was moved aside
        and no new one moved in gets the old one back; a left-over old one is removed. Returns
        what was done, one line per container."""
        done = []
        for entry in self.lxcpath.iterdir() if self.lxcpath.is_dir() else []:
            old = entry / OLD_ROOTFS
            if not entry.name.isascii() or not entry.name.isdigit() or not old.is_dir() or old.is_symlink():
                continue
            if (entry / "rootfs").exists():
                shutil.rmtree(old, ignore_errors=True)
                done.append(f"removed the old root filesystem of {entry.name} left by an interrupted swap")
            else:
                os.rename(old, entry / "rootfs")
                done.append(f"container {entry.name} got its old root filesystem back (a swap was interrupted)")
        return done

    def write_identity(self, spec: ContainerSpec) -> None:
        write_identity(self.rootfs(spec.ctid), spec)

    def set_hostname(self, spec: ContainerSpec, running: bool) -> None:
        """Write the hostname into the container, and into the live UTS namespace if running."""
        write_identity(self.rootfs(spec.ctid), spec)
        if running:
            res = self.attach(spec.ctid, ["hostname", spec.hostname], timeout=30)
            if res.returncode != 0:
                raise LxcError(f"setting hostname inside {spec.ctid} failed: {res.stderr.strip() or res.stdout.strip()}")

    def remove_partials(self) -> list[Path]:
        """Remove what interrupted creates left behind; returns what was removed."""
        removed = []
        if self.lxcpath.is_dir():
            for entry in self.lxcpath.iterdir():
                if entry.name.startswith(PARTIAL_PREFIX) and entry.is_dir():
                    _discard(entry)
                    removed.append(entry)
        return removed


@dataclass(frozen=True)
class IdRanges:
    """Root's subordinate ids that containers map to: slot N is uid_start + N * ID_RANGE."""
    uid_start: int
    gid_start: int
    slots: int


@functools.cache
def container_id_ranges() -> IdRanges:
    """Root's subordinate uid and gid ranges in /etc/subuid and /etc/subgid. LXC gives the maps to
    newuidmap, which accepts only ranges listed there; when root has none big enough, one is
    added (as Proxmox's installer does) past every range other users hold, so no one's rootless
    containers share ids with the panel's."""
    (uid_start, uid_count), (gid_start, gid_count) = (_root_range(Path(name)) for name in SUBID_FILES)
    return IdRanges(uid_start, gid_start, min(uid_count, gid_count) // ID_RANGE)


def id_map_lines(slot: int) -> list[str]:
    ranges = container_id_ranges()
    return [f"lxc.idmap = u 0 {ranges.uid_start + slot * ID_RANGE} {ID_RANGE}",
            f"lxc.idmap = g 0 {ranges.gid_start + slot * ID_RANGE} {ID_RANGE}",
            "lxc.rootfs.options = idmap=container"]


_IDMAP_U_RE = re.compile(rb"^lxc\.idmap = u 0 ([0-9]{1,10}) %d$" % ID_RANGE, re.M)


def _slot_of_config(config: Path) -> int | None:
    """The slot an LXC config of the panel's maps its container to, or None."""
    try:
        with open(config, "rb") as fh:
            found = _IDMAP_U_RE.search(fh.read(64 << 10))
    except OSError:
        return None
    if not found:
        return None
    ranges = container_id_ranges()
    offset = int(found.group(1)) - ranges.uid_start
    if offset < 0 or offset % ID_RANGE or offset // ID_RANGE >= ranges.slots:
        return None
    return offset // ID_RANGE


def _subid_ranges(path: Path) -> list[tuple[str, int, int]]:
    """(owner, start, count) of each line of /etc/subuid or /etc/subgid."""
    ranges = []
    try:
        text = path.read_text()
    except FileNotFoundError:
        return ranges
    for line in text.splitlines():
        fields = line.strip().split(":")
        if len(fields) == 3 and fields[1].isascii() and fields[1].isdigit() and fields[2].isascii() \
                and fields[2].isdigit():
            ranges.append((fields[0], int(fields[1]), int(fields[2])))
    return ranges


def _root_range(path: Path) -> tuple[int, int]:
    ranges = _subid_ranges(path)
    for owner, start, count in ranges:
        if owner in ("root", "0") and count >= MIN_SLOTS * ID_RANGE and start > 0:
            return start, count
    start = max([ID_RANGE_START, *(s + c for _owner, s, c in ranges)])
    start = -(-start // ID_RANGE) * ID_RANGE  # a round number past the rest
    count = (ID_RANGE_END - start) // ID_RANGE * ID_RANGE
    if count < MIN_SLOTS * ID_RANGE:
        raise LxcError(f"{path} leaves no room for root's range of container ids above {ID_RANGE_START}")
    option = "--add-subuids" if path.name == "subuid" else "--add-subgids"
    if not path.exists():  # usermod refuses to add to a file that is not there
        path.touch(mode=0o644)
    run(["usermod", option, f"{start}-{start + count - 1}", "root"], timeout=60)
    return start, count


def _run_mount(argv: list[str]) -> None:
    try:
        run(argv, timeout=120)
    except CommandError as exc:
        raise LxcError(f"{' '.join(argv[:2])} failed: {exc.output.strip()}") from None


def _discard(directory: Path) -> None:
    """Remove a container directory, unmounting its disk image first if it is mounted."""
    if mounted_source(directory / "rootfs"):
        try:
            run(["umount", str(directory / "rootfs")], timeout=120)
        except CommandError:
            run(["umount", "-l", str(directory / "rootfs")], check=False, timeout=120)
    shutil.rmtree(directory, ignore_errors=True)


def _unpack(template: Path, rootfs: Path, log: Log, disk_mb: int | None = None) -> None:
    """Unpack a template through the same checks as a restore (it is an archive like any other),
    at most `disk_mb` of it."""
    rootfs.mkdir(exist_ok=True)
    try:
        safe_extract(template, rootfs, log, max_bytes=disk_mb * MIB if disk_mb else None)
    except ArchiveError as exc:
        raise LxcError(f"unpacking {template.name} failed: {exc}") from None
    with Tree(rootfs, "the template") as tree:
        sbin = tree.resolve("sbin")  # a link to usr/sbin on merged-/usr systems
        has_init = sbin is not None and tree.lstat(f"{sbin}/init") is not None
    if not has_init:
        raise LxcError(f"{template.name} is not a root filesystem: it has no /sbin/init")


def _make_system_dirs(rootfs: Path) -> None:
    """/dev, /proc, /sys and /etc as directories LXC can mount on and identity files go in. The
    archive checks refused anything else there (SYSTEM_DIRS); the missing ones are made."""
    with Tree(rootfs, "the new root filesystem") as tree:
        for name in SYSTEM_DIRS:
            tree.makedirs(name, 0o755)


def _is_busybox_init(rootfs: Path) -> bool:
    return resolved_name(rootfs, "sbin/init") == "busybox"


HOSTS_MARK = "# vzpanel"
HOSTS_LIMIT = 8 << 20  # big ad-blocking hosts files are a few MiB; more is not read
SHADOW_LIMIT = 8 << 20


def set_shadow_hash(tree: Tree, user: str, hashed: str, where: str, *, lastchg: int | None = None) -> None:
    """Put the crypt hash `hashed` as `user`'s password in /etc/shadow of the root filesystem `tree`,
    without following a link (safefs). `lastchg` (days since 1970), when given, is written as the
    date of the last change, as chpasswd does. The file keeps its owner and mode."""
    if any(c in hashed for c in ":\r\n\x00"):  # a field of its own, never more
        raise LxcError("refusing a password hash with ':' or a line break in it")
    with tree.subtree("etc") as etc:
        lines = etc.read_text("shadow", SHADOW_LIMIT).splitlines()
        found = False
        for i, line in enumerate(lines):
            fields = line.split(":")
            if fields[0] == user and len(fields) >= 2:
                fields[1] = hashed
                if lastchg is not None and len(fields) >= 3:
                    fields[2] = str(int(lastchg))
                lines[i] = ":".join(fields)
                found = True
        if not found:
            raise LxcError(f"there is no user {user} in /etc/shadow of {where}")
        # Keep the file's owner and mode (root:shadow 0640 on Debian), minus any special bits.
        st = etc.lstat("shadow")
        mode, owner = (stat.S_IMODE(st.st_mode) & 0o660, (st.st_uid, st.st_gid)) if st else (0o600, None)
        etc.write("shadow", "\n".join(lines) + "\n", mode=mode, owner=owner)


def write_identity(rootfs: Path, spec: ContainerSpec) -> None:
    """/etc/hostname, the container's own lines of /etc/hosts and, when the panel manages DNS,
    /etc/resolv.conf: what vzctl writes at start and at every --hostname/--nameserver change.

    The container's /etc is opened once without following links and held: every file is read
    and written through it, so swapping /etc (or a file in it) for a link leads nowhere else."""
    with Tree(rootfs) as tree, tree.subtree("etc") as etc:
        hostname = spec.hostname
        lines = []
        found = etc.lstat("hosts")
        if found is not None and stat.S_ISREG(found.st_mode):
            lines = [l for l in etc.read_text("hosts", HOSTS_LIMIT).splitlines()
                     if not l.startswith("127.0.1.1") and not l.endswith(HOSTS_MARK)]
        if not any(l.split()[:1] == ["127.0.0.1"] for l in lines):
            lines.insert(0, "127.0.0.1\tlocalhost")
        short = hostname.split(".")[0]
        names = f"{hostname} {short}" if short != hostname else hostname
        if spec.addresses:
            lines += [f"{addr}\t{names}\t{HOSTS_MARK}" for addr in spec.addresses]
        else:
            lines.append(f"127.0.1.1\t{names}")
        etc.write("hostname", hostname + "\n")  # only now: a refused /etc/hosts changes nothing
        etc.write("hosts", "\n".join(lines) + "\n")
        if spec.nameservers or spec.searchdomain:
            resolv = ["# written by vzpanel (vzctl set --nameserver/--searchdomain)"]
            if spec.searchdomain:
                resolv.append(f"search {spec.searchdomain}")
            resolv += [f"nameserver {ns}" for ns in spec.nameservers]
            etc.write("resolv.conf", "\n".join(resolv) + "\n")


def _atomic_write(path: Path, text: str) -> None:
    """Replace one of the agent's own files (a container's LXC config), never a container's."""
    tmp = path.with_name(f".{path.name}.vzpanel-tmp")
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    # O_EXCL|O_NOFOLLOW: never follow a link someone placed at the temporary name.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _lxc_error_text(res: CommandResult, logfile: Path | None) -> str:
    text = (res.stderr or res.stdout).strip()
    if logfile and logfile.is_file():
        tail = logfile.read_text(errors="replace").strip().splitlines()[-8:]
        if tail:
            text = (text + "\n" if text else "") + "\n".join(tail)
    return text or f"{res.argv[0]} exited with status {res.returncode}"
