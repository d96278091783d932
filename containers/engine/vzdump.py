"""vzdump-style archives: write them, check them, and unpack them safely.

Writing: tar (numeric owners, xattrs, ACLs) of the root filesystem plus the
container's configuration at ./etc/vzdump/pct.conf, piped through zstd or gzip,
hashed as it is written, under a temporary name renamed only when complete, with
a .sha256 and (by the caller) a .log beside it. A crash never leaves something
that looks like a good backup.

Reading (restore, import, verify, template checks) treats every archive as hostile.
One pass: the decompressed stream goes through TarWalker, which reads every header
exactly as GNU tar will and checks it, and passes on to GNU tar only the members
that passed. A member with an absolute path or "..", a hardlink that leaves the
tree or points at nothing before it, a member written through a symlink, a /dev,
/proc, /sys or /etc that is not a directory, a type or header tar would read
differently, more than the container's disk (sparse files at their apparent size),
or an archive that ends early, does not add up or has data after its end, stops
everything, and the restore fails. Device nodes and FIFOs never reach tar (they
are counted); the archive's own configuration is read from the stream with a size
limit and never written into the tree. The agent's memory stays bounded whatever
an archive declares, and every process started is reaped on every path.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import stat
import subprocess
import tempfile
import threading
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path

from .commands import run
from .transfer import RSYNC_BASE

COMPRESSORS = {"zst": ".tar.zst", "gz": ".tar.gz", "none": ".tar"}
STD_EXCLUDES = ["./tmp/?*", "./var/tmp/?*", "./var/run/?*.pid", "./run/?*.pid"]  # vzdump --stdexcludes
CHUNK = 1 << 20
READ_AHEAD = 1 << 17   # what the archive walker reads at once
WRITE_BATCH = 1 << 17  # what it gathers before writing to tar
F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ, named here for Pythons that lack it


@dataclass
class Archive:
    path: Path
    size: int
    sha256: str
    seconds: float = 0.0
    frozen_seconds: float | None = None


@dataclass
class ArchiveOptions:
    compress: str = "zst"
    level: int | None = None
    threads: int | None = None       # zstd -T; 0 = all cores
    excludes: list[str] = field(default_factory=list)  # tar globs, "./tmp/?*" style or plain names
    bwlimit_kbps: int | None = None
    gid: int | None = None  # the group that may read the archive besides root (the panel's web user)


# A backup holds a tenant's whole filesystem: root and the panel's group read it, nobody else.
ARCHIVE_MODE = 0o640
DUMP_DIR_MODE = 0o750


def _private_opener(path, flags):
    """A new file, never one reached through a link planted at its name (a storage directory may be
    writable by others): whatever is there is removed, and the file is made O_EXCL|O_NOFOLLOW."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    return os.open(path, flags | os.O_EXCL | os.O_NOFOLLOW, ARCHIVE_MODE)


def keep_private(path: Path, gid: int | None) -> None:
    """Mode 0640 and, when given, the panel's group: for archives, their .sha256 and .log."""
    os.chmod(path, ARCHIVE_MODE, follow_symlinks=False)
    if gid is not None:
        os.chown(path, -1, gid, follow_symlinks=False)


def write_private(path: Path, text: str, gid: int | None = None) -> None:
    """Write a file beside an archive (its .sha256 or .log) readable by root and `gid` only."""
    with open(path, "w", opener=_private_opener) as fh:
        fh.write(text)
    keep_private(path, gid)


def prepare_dump_dir(dump_dir: Path, gid: int | None) -> None:
    """The dump directory, made if missing: 0750 and the panel's group, so other local users cannot
    list tenants' backups. An existing directory is left as its administrator made it (a storage
    may be any directory: the agent never changes the mode or group of one it did not make)."""
    if dump_dir.is_dir():
        return
    dump_dir.mkdir(parents=True, exist_ok=True, mode=DUMP_DIR_MODE)
    os.chmod(dump_dir, DUMP_DIR_MODE)
    if gid is not None:
        os.chown(dump_dir, -1, gid)


class ArchiveError(Exception):
    pass


def archive_name(ctid: int, compress: str, when: float | None = None, kind: str = "lxc") -> str:
    stamp = time.strftime("%Y_%m_%d-%H_%M_%S", time.localtime(when or time.time()))
    return f"vzdump-{kind}-{int(ctid)}-{stamp}{COMPRESSORS[compress]}"


def log_path_for(archive: Path) -> Path:
    return archive.with_name(archive.name.split(".tar")[0] + ".log")


def _bigger_pipe(fd: int) -> None:
    try:
        fcntl.fcntl(fd, F_SETPIPE_SZ, 1 << 20)
    except OSError:
        pass  # a pipe of the default size is only slower


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def exclude_args(patterns: list[str]) -> list[str]:
    """vzdump/Proxmox semantics: a path starting with / is anchored at the container's root,
    others match anywhere below it."""
    out = []
    for pattern in patterns:
        if pattern.startswith("/"):
            out.append(f"--exclude=.{pattern}")
        else:
            out.append(f"--exclude={pattern}")
    return out


def _compressor(opts: ArchiveOptions) -> list[str] | None:
    if opts.compress == "zst":
        return ["zstd", "-q", "-c", f"-T{opts.threads if opts.threads is not None else 0}",
                f"-{opts.level or 3}"]
    if opts.compress == "gz":
        return ["gzip", "-c", f"-{opts.level or 6}"]
    if opts.compress == "none":
        return None
    raise ArchiveError(f"unknown compression {opts.compress!r}")


def _pump(src, dst, rate_bytes: int | None = None, digest=None) -> int:
    """Copy src to dst in chunks, at most `rate_bytes` a second; returns bytes copied."""
    total, started = 0, time.monotonic()
    while True:
        chunk = src.read(CHUNK)
        if not chunk:
            return total
        if digest is not None:
            digest.update(chunk)
        dst.write(chunk)
        total += len(chunk)
        if rate_bytes:
            ahead = total / rate_bytes - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)


def create_archive(rootfs: Path, config_text: str, dump_dir: Path, ctid: int,
                   opts: ArchiveOptions | None = None, log=lambda _m: None, kind: str = "lxc") -> Archive:
    opts = opts or ArchiveOptions()
    compressor = _compressor(opts)
    prepare_dump_dir(dump_dir, opts.gid)
    final = dump_dir / archive_name(ctid, opts.compress, kind=kind)
    partial = final.with_name(final.name + ".partial")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vzpanel-dump-") as extra:
        conf = Path(extra) / "etc" / "vzdump"
        conf.mkdir(parents=True)
        (conf / "pct.conf").write_text(config_text)
        tar_argv = ["tar", "-c", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls", "--sparse",
                    *exclude_args(opts.excludes), "-f", "-", "-C", str(rootfs), ".",
                    "-C", extra, "./etc/vzdump/pct.conf"]
        log(f"Writing {final.name}" + (f" at most {opts.bwlimit_kbps} KiB/s" if opts.bwlimit_kbps else ""))
        procs: list[subprocess.Popen] = []
        threads: list[threading.Thread] = []
        hasher = None
        try:
            # Read and write: the hasher reads what the tools write through this same open file.
            with open(partial, "w+b", opener=_private_opener) as out:
                # The tools write the file themselves: no Python in the data path unless throttling.
                # The archive is hashed as it grows, from the page cache, never read again after.
                hasher = FileHasher(out.fileno(), growing=True)
                hasher.start()
                tar = subprocess.Popen(tar_argv, stdout=subprocess.PIPE if (compressor or opts.bwlimit_kbps) else out,
                                       stderr=subprocess.PIPE)
                procs.append(tar)
                source = tar.stdout
                if opts.bwlimit_kbps:
                    # tar -> (throttled copy) -> compressor: the limit applies to what is read from the disk.
                    reader, writer = os.pipe()
                    throttled = os.fdopen(writer, "wb")
                    feeder = threading.Thread(target=lambda: (_pump(tar.stdout, throttled, opts.bwlimit_kbps * 1024),
                                                              throttled.close()), daemon=True)
                    feeder.start()
                    threads.append(feeder)
                    source = os.fdopen(reader, "rb")
                if compressor:
                    _bigger_pipe(source.fileno())  # fewer stalls between tar and zstd
                    comp = subprocess.Popen(compressor, stdin=source, stdout=out, stderr=subprocess.PIPE)
                    procs.append(comp)
                    source.close()
                elif source is not None:
                    _pump(source, out)
                for thread in threads:
                    thread.join()
                errors = []
                for proc in procs:
                    proc.wait()
                    err = proc.stderr.read().decode(errors="replace").strip()
                    # tar says "file changed as we read it" (exit 1) for live copies: not a failure.
                    if proc.returncode not in (0, 1) or (proc.returncode == 1 and proc is not tar):
                        errors.append(f"{proc.args[0]} exited with {proc.returncode}: {err}")
                out.flush()
                hexdigest = hasher.finish()
            if errors:
                raise ArchiveError("archiving failed: " + "; ".join(errors))
            if hasher.error is not None:
                raise ArchiveError(f"reading {partial} back to hash it failed: {hasher.error.strerror}")
        except BaseException:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            if hasher is not None:
                hasher.finish()
            partial.unlink(missing_ok=True)
            raise
    keep_private(partial, opts.gid)
    os.replace(partial, final)
    write_private(final.with_name(final.name + ".sha256"), f"{hexdigest}  {final.name}\n", opts.gid)
    size = final.stat().st_size
    seconds = time.monotonic() - started
    log(f"Archive {final.name}: {size} bytes in {seconds:.1f} s, sha256 {hexdigest}")
    return Archive(final, size, hexdigest, seconds)


def remove_archive(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".sha256"), log_path_for(path), path.with_name(path.name + ".partial")):
        p.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# Reading archives. Restores, imports, verifies and template checks all read through TarWalker.

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)
REGULAR_TYPES = (b"0", b"\0", b"7")  # what GNU tar writes as a plain file ("7": contiguous file)
DATA_TYPES = (*REGULAR_TYPES, b"S")  # members whose data follows their header ("S": old GNU sparse file)
TREE_TYPES = {b"0": "a file", b"\0": "a file", b"7": "a file", b"S": "a sparse file", b"1": "a hardlink",
              b"2": "a symlink", b"5": "a directory"}
# Never passed on to tar; counted in the report. A container's /dev is made by LXC at start.
DROPPED_TYPES = {b"3": "character device", b"4": "block device", b"6": "FIFO"}
REFUSED_TYPES = {b"D": "a GNU dumpdir member (the directory listing of an incremental archive)",
                 b"M": "a member continued from another volume (a multi-volume archive)",
                 b"V": "a volume label", b"N": "an old GNU rename list", b"X": "a Solaris extended header"}
CONFIG_NAMES = ("etc/vzdump/pct.conf", "etc/vzdump/vps.conf")  # the archive's own configuration
CONFIG_DIR = "etc/vzdump"
CONFIG_LIMIT = 64 * 1024
SYSTEM_DIRS = ("dev", "proc", "sys", "etc")  # directories in a container's root, or absent
LONG_NAME_LIMIT = 64 * 1024  # a GNU long name or link target (PATH_MAX is 4096)
PAX_LIMIT = 1 << 20          # one pax header: names, xattrs, ACLs
TRAILER_LIMIT = 1 << 20      # zero padding after the end marker (tar pads to whole records)
MEMBER_LIMIT = 2_000_000     # what the checks remember of the members stays within ~50 MiB
OFF_MAX = (1 << 63) - 1
GNU_MAGIC = b"ustar  \0"
USTAR_MAGIC = b"ustar\0"
# pax keywords a restore takes: those the checks read, and those that change nothing they look at
# (times, owners, xattrs, ACLs). Anything else, GNU.dumpdir and GNU.volume.* among them, is refused.
PAX_CHECKED = frozenset({"path", "linkpath", "size"})
PAX_SPARSE = frozenset({"GNU.sparse.major", "GNU.sparse.minor", "GNU.sparse.name", "GNU.sparse.realsize"})
PAX_HARMLESS = frozenset({"atime", "mtime", "ctime", "uid", "gid", "uname", "gname", "comment", "charset",
                          "hdrcharset", "SCHILY.acl.access", "SCHILY.acl.default", "SCHILY.acl.ace",
                          "RHT.security.selinux", "SCHILY.dev", "SCHILY.ino", "SCHILY.nlink", "SCHILY.fflags",
                          "SCHILY.devmajor", "SCHILY.devminor", "LIBARCHIVE.creationtime",
                          "LIBARCHIVE.symlinktype"})
PAX_HARMLESS_PREFIXES = ("SCHILY.xattr.", "LIBARCHIVE.xattr.")
# A global header changes how tar reads every member after it, which the walker would have to
# follow in lock-step. Only a comment (git archive writes one) is taken, and never passed on.
PAX_GLOBAL_HARMLESS = frozenset({"comment"})
_PAX_LENGTH = re.compile(rb"([1-9][0-9]{0,8}) ")
_SPACES = b" \t\n\v\f\r"
_OCTAL = re.compile(rb"[0-7]+(?=[\0 ])")  # at the start of a field: tar reads it the same way (from_header)
KEEP, DROP, CONFIG = "keep", "drop", "config"


def open_archive(path: Path) -> int:
    """A read-only fd of the archive file itself (never of a link planted at its name), checked to
    be a regular file. Everything done with an archive (hash, walk) reads this one fd."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ArchiveError(f"cannot open {path}: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ArchiveError(f"{path} is not a regular file")
    os.set_blocking(fd, True)  # O_NONBLOCK only kept the open from hanging on a FIFO
    return fd


def is_file_of(path: Path, fd: int) -> bool:
    """Does `path` itself (not a link there) name the open file `fd`?"""
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (opened.st_dev, opened.st_ino)


def unlink_if_same(path: Path, fd: int) -> None:
    if is_file_of(path, fd):
        path.unlink(missing_ok=True)


def place_open_file(fd: int, target: Path) -> None:
    """Give the open file the name `target`: a hard link on the same filesystem, else a copy made
    under a temporary name and renamed when complete."""
    try:
        os.link(f"/proc/self/fd/{fd}", target)  # follows the fd's magic link to the file itself
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        with open(partial, "xb") as out:
            offset = 0
            while block := os.pread(fd, 1 << 20, offset):
                out.write(block)
                offset += len(block)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def entry_of(directory: str | os.PathLike, path: str | os.PathLike) -> Path:
    """`path` if it names an entry directly inside `directory` (the directory by its real path;
    the entry itself is opened later without following a link). Refuses anything else, so a task
    row cannot point the agent at another file of the host."""
    path = Path(path)
    if path.name in ("", ".", "..") or os.path.realpath(path.parent) != os.path.realpath(directory):
        raise ArchiveError(f"{path} is not in {directory}")
    return Path(os.path.realpath(directory)) / path.name


def _reader_argv(magic: bytes) -> list[str]:
    """What turns the archive on standard input into a tar stream on standard output."""
    if magic[:4] == b"\x28\xb5\x2f\xfd":
        return ["zstd", "-q", "-d", "-c"]
    if magic[:2] == b"\x1f\x8b":
        return ["gzip", "-d", "-c"]
    if magic[:6] == b"\xfd7zXZ\x00":  # OS templates (LXC images) come as .tar.xz
        return ["xz", "-d", "-c"]
    return ["cat"]  # a plain tar, through a pipe all the same: the walker splices from a pipe


class UnsafeArchive(ArchiveError):
    """The archive tries to write outside the new root, or does not add up."""


class _EndOfStream(UnsafeArchive):
    """The stream stopped early: the decompressor may say why."""


@dataclass
class Member:
    """What the checks need to know of one archive member, as GNU tar will see it."""

    name: str            # as the archive spells it, after long names and pax records
    type: bytes
    size: int = 0        # what it takes in the tree: a sparse file's apparent size
    linkname: str = ""
    sparse: bool = False

    def islnk(self) -> bool:
        return self.type == b"1"

    def issym(self) -> bool:
        return self.type == b"2"

    def isdir(self) -> bool:
        # GNU tar, like BSD tar, takes a file whose name ends in '/' for a directory.
        return self.type == b"5" or (self.type in REGULAR_TYPES and self.name.endswith("/"))

    def kind(self) -> str:
        if self.isdir():
            return "a directory"
        return TREE_TYPES.get(self.type) or f"a {DROPPED_TYPES.get(self.type, 'member of an unknown type')}"


class PathSet:
    """A set of member paths kept as 64-bit keyed hashes in one flat array (11 to 21 bytes a
    path, however long the names), so that the checks' memory stays bounded whatever an archive
    holds. The key is random, so an archive cannot aim for a collision; one by chance (about one
    in ten million at two million paths) can only make a check refuse, or leave tar to report a
    hardlink without a target."""

    _FREE, _REMOVED = 0, 1

    def __init__(self):
        self._key = os.urandom(16)
        self._slots = array("Q", bytes(8 * 1024))
        self._filled = 0  # slots not free, removed ones included

    def _hash(self, path: str) -> int:
        h = int.from_bytes(hashlib.blake2b(path.encode("utf-8", "surrogateescape"), digest_size=8,
                                           key=self._key).digest(), "little")
        return h if h > self._REMOVED else h + 2

    def _slot(self, h: int) -> int:
        """Where h is, or else the slot it would go in (linear probing)."""
        mask, reuse = len(self._slots) - 1, -1
        i = h & mask
        while True:
            value = self._slots[i]
            if value == h:
                return i
            if value == self._FREE:
                return reuse if reuse >= 0 else i
            if value == self._REMOVED and reuse < 0:
                reuse = i
            i = (i + 1) & mask

    def __contains__(self, path: str) -> bool:
        h = self._hash(path)
        return self._slots[self._slot(h)] == h

    def add(self, path: str) -> None:
        h = self._hash(path)
        i = self._slot(h)
        if self._slots[i] == self._FREE:
            self._filled += 1
        self._slots[i] = h
        if self._filled * 4 > len(self._slots) * 3:
            old, self._slots, self._filled = self._slots, array("Q", bytes(16 * len(self._slots))), 0
            for value in old:
                if value > self._REMOVED:
                    self._slots[self._slot(value)] = value
                    self._filled += 1

    def discard(self, path: str) -> None:
        h = self._hash(path)
        i = self._slot(h)
        if self._slots[i] == h:
            self._slots[i] = self._REMOVED


def _tree_path(raw: str, refuse_absolute: str, refuse_dotdot: str) -> str:
    """The path a member name stands for inside the tree, as the kernel will resolve it ('./a//b/.'
    is 'a/b'); '' is the root."""
    if raw.startswith("/"):
        raise UnsafeArchive(refuse_absolute)
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive(refuse_dotdot)
    return "/".join(parts)


class MemberCheck:
    """The rules every member must pass before tar may see it, and what becomes of it.

    check() returns KEEP (tar writes it), DROP (never passed on: a device node or FIFO, or a
    hardlink to one, counted in `dropped`; the directory made for the configuration) or CONFIG
    (the archive's own configuration: taken from the stream by the walker, never written).
    """

    def __init__(self, max_bytes: int | None = None, watch: tuple[str, ...] = (), max_members: int = MEMBER_LIMIT):
        self.max_bytes, self.max_members = max_bytes, max_members
        # What the tree will hold: symlinks, everything else, and what was left out (each path in one).
        self.symlinks, self.kept, self.left_out = PathSet(), PathSet(), PathSet()
        self._clear_parent: str | None = None  # a directory none of whose leading paths is a symlink
        self.total = 0      # bytes the kept members take in the tree
        self.members = 0    # every member checked
        self.dropped: dict[str, int] = {}
        self.configs: set[str] = set()
        self.watch = frozenset(watch)
        self.watched: set[str] = set()  # the watched paths the tree will hold (not as directories)

    def check(self, member: Member) -> str:
        raw = member.name
        if not raw:
            raise UnsafeArchive("a member has no name")
        name = _tree_path(raw, f"member {raw!r} has an absolute path",
                          f"member {raw!r} climbs out of the root with '..'")
        self.members += 1
        if self.members > self.max_members:
            raise UnsafeArchive(f"the archive has more than {self.max_members:,} members")
        self._not_through_symlink(name, f"member {raw!r} would be written through the symlink")
        if name in SYSTEM_DIRS and not member.isdir():
            raise UnsafeArchive(f"the archive's /{name} is {member.kind()}: /dev, /proc, /sys and /etc of a "
                                "container must be directories")
        if name in CONFIG_NAMES:
            return self._config(name, member)
        if name == CONFIG_DIR and member.isdir():
            return DROP  # made only to hold the configuration, which is never written
        if member.type in DROPPED_TYPES:
            return self._drop(name, DROPPED_TYPES[member.type])
        if member.islnk():
            if not member.linkname:
                raise UnsafeArchive(f"hardlink {raw!r} has no target")
            target = _tree_path(member.linkname, f"hardlink {raw!r} points outside the root ({member.linkname!r})",
                                f"hardlink {raw!r} points outside the root ({member.linkname!r})")
            self._not_through_symlink(target, f"hardlink {raw!r} points through the symlink")
            if target not in self.kept and target not in self.symlinks:
                if target and target in self.left_out:
                    return self._drop(name, "hardlink to a member left out")
                raise UnsafeArchive(f"hardlink {raw!r} points at {member.linkname!r}, which is not in the "
                                    "archive before it")
        self.total += member.size
        if self.max_bytes is not None and self.total > self.max_bytes:
            raise UnsafeArchive(f"the archive unpacks to more than {self.max_bytes // (1024 * 1024)} MiB, "
                                "more than the container's disk" + (" (sparse files count at their apparent "
                                                                    "size)" if member.sparse else ""))
        if member.issym():
            self.symlinks.add(name)
            self._clear_parent = None  # the new symlink may lie on that directory's path
        else:
            # GNU tar replaces a symlink with a file or link, but keeps a symlink that leads to a
            # directory when a directory of that name follows: then it stays a symlink here too.
            if not member.isdir():
                self.symlinks.discard(name)
            self.kept.add(name)
        if name in self.watch:
            (self.watched.discard if member.isdir() else self.watched.add)(name)
        return KEEP

    def _not_through_symlink(self, name: str, message: str) -> None:
        parent = name.rpartition("/")[0]
        if parent == self._clear_parent:
            return  # members come directory by directory: this one was checked for the member before
        parts = name.split("/")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            if prefix in self.symlinks:
                raise UnsafeArchive(f"{message} {prefix!r}")
        self._clear_parent = parent

    def _config(self, name: str, member: Member) -> str:
        if member.type not in REGULAR_TYPES or member.isdir() or member.sparse:
            raise UnsafeArchive(f"the archive's configuration ./{name} is {member.kind()}, not a plain file")
        if member.size > CONFIG_LIMIT:
            raise UnsafeArchive(f"the archive's configuration ./{name} has {member.size:,} bytes, more than the "
                                f"{CONFIG_LIMIT // 1024} KiB a configuration may have; it was not read")
        if name in self.configs:
            raise UnsafeArchive(f"the archive holds its configuration ./{name} twice")
        self.configs.add(name)
        return CONFIG

    def _drop(self, name: str, what: str) -> str:
        self.left_out.add(name)
        self.dropped[what] = self.dropped.get(what, 0) + 1
        return DROP


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def _c_string(field: bytes) -> str:
    """A name as GNU tar reads it: up to the first NUL."""
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _number(field: bytes, what: str, octal_only: bool = False) -> int:
    """A numeric header field, read exactly as GNU tar reads it (from_header in its list.c), or
    refused: a value tar would read differently, or reject and then skip ahead looking for the
    next header, would let it see members the walker never checked."""
    if plain := _OCTAL.match(field):  # what GNU tar writes: octal digits, then a NUL or a blank
        return int(plain.group(), 8)
    if field[:1] == b"\x80" and not octal_only:  # GNU base-256, positive
        value = int.from_bytes(field[1:], "big")
    else:
        start = 1 if field[:1] == b"\0" else 0  # tar skips one leading NUL, then blanks
        while start < len(field) and field[start] in _SPACES:
            start += 1
        end = start
        while end < len(field) and 0x30 <= field[end] <= 0x37:
            end += 1
        if start == len(field) or (end < len(field) and field[end] not in b"\0" + _SPACES):
            raise UnsafeArchive(f"the archive does not add up: a header's {what} is not a number tar reads the "
                                "same way")
        value = int(field[start:end], 8) if end > start else 0
    if value > OFF_MAX:
        raise UnsafeArchive(f"the archive does not add up: a header's {what} is out of range")
    return value


def _decimal(value: str, what: str) -> int:
    if not value.isascii() or not value.isdigit() or len(value) > 19 or int(value) > OFF_MAX:
        raise UnsafeArchive(f"the archive does not add up: a pax header's {what} is not a number ({value[:40]!r})")
    return int(value)


def _pax_records(data: bytes) -> dict[str, str]:
    """The records of a pax header ("LEN KEY=VALUE\\n"), strictly: a record GNU tar would read
    differently (blanks before the length or key, a NUL in a key) refuses the archive."""
    out, pos = {}, 0
    while pos < len(data):
        if data[pos] == 0:  # tar stops at a NUL; only padding may follow
            if data[pos:].strip(b"\0"):
                raise UnsafeArchive("the archive does not add up: a pax header has data after a NUL")
            break
        match = _PAX_LENGTH.match(data, pos)
        end = pos + int(match.group(1)) if match else 0
        if not match or end > len(data) or data[end - 1] != 0x0A:
            raise UnsafeArchive("the archive does not add up: a pax header record is malformed")
        key, equals, value = data[match.end():end - 1].partition(b"=")
        if not equals or not key or b"\0" in key:
            raise UnsafeArchive("the archive does not add up: a pax header record is malformed")
        out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos = end
    return out


def _check_pax_keys(records: dict[str, str]) -> None:
    for key in records:
        if not (key in PAX_CHECKED or key in PAX_SPARSE or key in PAX_HARMLESS
                or key.startswith(PAX_HARMLESS_PREFIXES)):
            raise UnsafeArchive(f"the archive's pax header keyword {key!r} is not one a restore takes")
        if key in PAX_CHECKED | {"GNU.sparse.name"} and "\0" in records[key]:
            raise UnsafeArchive(f"the archive's pax {key} holds a NUL byte")


def _check_global(records: dict[str, str]) -> None:
    for key in records:
        if key not in PAX_GLOBAL_HARMLESS:
            raise UnsafeArchive(f"the archive has a global pax header that sets {key!r}: refused (a global header "
                                "would apply to every member after it; only a comment is taken)")


def _check_header(header: bytes) -> None:
    stored = _number(header[148:156], "checksum", octal_only=True)
    if stored != sum(header) - sum(header[148:156]) + 8 * 32:
        raise UnsafeArchive("the archive does not add up: a header's checksum is wrong")
    if (header[257:263] == USTAR_MAGIC and header[475] == 0 and 0x30 <= header[476] <= 0x37
            and header[487] == 0x20 and 0x30 <= header[488] <= 0x37 and header[499] == 0x20):
        raise UnsafeArchive("the archive has a star-format header, which a restore does not take")


def _member_of(header: bytes, kind: bytes, size: int, long_name: str | None, long_link: str | None,
               pax: dict[str, str] | None) -> Member:
    """The member a header (with the long names and pax records before it) stands for in GNU tar."""
    if kind in REFUSED_TYPES:
        raise UnsafeArchive(f"the archive holds {REFUSED_TYPES[kind]}, which a restore does not take")
    if kind not in TREE_TYPES and kind not in DROPPED_TYPES:
        raise UnsafeArchive(f"the archive holds a member of unknown type {kind.decode('latin-1')!r}")
    ustar = header[257:263] == USTAR_MAGIC
    name = _c_string(header[0:100])
    prefix = _c_string(header[345:500]) if ustar else ""
    if prefix:  # POSIX ustar: the prefix field extends the name
        name = f"{prefix}/{name}"
    linkname = _c_string(header[157:257])
    name = long_name if long_name is not None else name
    linkname = long_link if long_link is not None else linkname
    realsize = None
    if pax is not None:
        _check_pax_keys(pax)
        name = pax.get("GNU.sparse.name", pax.get("path", name))  # GNU tar: the sparse name wins
        linkname = pax.get("linkpath", linkname)
        if "size" in pax:
            size = _decimal(pax["size"], "size")
        if PAX_SPARSE & pax.keys():
            # GNU tar's pax sparse format 1.0 (what it writes): the map starts the member's data.
            if kind not in REGULAR_TYPES or not ustar:
                raise UnsafeArchive(f"member {name!r} has sparse-file records but is not a file with a POSIX header")
            if (pax.get("GNU.sparse.major"), pax.get("GNU.sparse.minor")) != ("1", "0") or \
                    "GNU.sparse.realsize" not in pax:
                raise UnsafeArchive(f"member {name!r} is a sparse file in a format other than GNU tar's 1.0")
            realsize = _decimal(pax["GNU.sparse.realsize"], "sparse file size")
    if kind == b"S":
        if header[257:265] != GNU_MAGIC or pax is not None:
            raise UnsafeArchive(f"member {name!r} is a GNU sparse file without a GNU header")
        realsize = _number(header[483:495], "sparse file size")
    if kind not in DATA_TYPES and size:
        raise UnsafeArchive(f"member {name!r} is {TREE_TYPES.get(kind) or 'a device or FIFO'} with "
                            f"{size:,} bytes of data")
    member = Member(name, kind, max(size, realsize or 0) if kind in DATA_TYPES else 0, linkname,
                    sparse=realsize is not None)
    if member.isdir() and size:
        raise UnsafeArchive(f"member {name!r} is a directory to tar (its name ends in '/') with {size:,} bytes of data")
    return member


class TarWalker:
    """Reads a tar stream from `src`, checks every member's headers, and passes on to `dst` only
    the members that passed, then an end marker of its own.

    The walker must read the stream exactly as GNU tar will, or a member it checked could be
    something else to tar. So it takes only what both read the same way and refuses the rest:
    unknown member types, global headers, header fields or pax records tar would parse
    differently, data after the end. What is not for the tree never reaches tar: device nodes
    and FIFOs are left out (counted), the archive's configuration is read from the stream
    (`config`) and never written. Headers, names and the configuration are read into Python,
    each with a size limit; the stream is read ahead and written on in batches of at most
    READ_AHEAD and WRITE_BATCH bytes, and file data larger than that goes from pipe to pipe with
    os.splice, never through Python.
    """

    def __init__(self, src: int, dst: int, check: MemberCheck):
        self.src, self.dst, self.check = src, dst, check
        self.members = 0  # members passed on
        self.config: tuple[str, bytes] | None = None
        # Read ahead and write in batches: most members are a header or two and a small file, and a
        # system call for each block cost more than the checks. Both buffers stay small (what one
        # read brings, one batch, or one extended header at most); nothing reaches tar before the
        # member it belongs to passed the checks, and large file data still goes by splice.
        self._in = bytearray()
        self._at = 0  # self._in[self._at:] is read from the stream but not yet walked
        self._out: list[bytes] = []
        self._out_size = 0

    def _buffered(self) -> int:
        return len(self._in) - self._at

    def _fill(self, n: int) -> bool:
        """At least `n` bytes buffered, reading ahead; False if the stream ends first."""
        if self._at:
            del self._in[:self._at]
            self._at = 0
        while len(self._in) < n:
            data = os.read(self.src, max(READ_AHEAD, n - len(self._in)))
            if not data:
                return False
            self._in += data
        return True

    def _take(self, n: int) -> bytes:
        data = bytes(self._in[self._at:self._at + n])
        self._at += n
        return data

    def _read(self, n: int, boundary: bool = False) -> bytes:
        if self._buffered() < n and not self._fill(n):
            raise _EndOfStream("the archive does not add up: it ends " + (
                "without an end marker" if boundary and not self._buffered() else "in the middle of a member"))
        return self._take(n)

    def _write(self, data: bytes) -> None:
        self._out.append(data)
        self._out_size += len(data)
        if self._out_size >= WRITE_BATCH:
            self._flush()

    def _flush(self) -> None:
        view = memoryview(b"".join(self._out))
        self._out, self._out_size = [], 0
        while view:
            view = view[os.write(self.dst, view):]

    def _forward(self, n: int) -> None:
        """Pass on `n` bytes of a member's data: what is buffered, then a small rest read (with the
        headers after it), a large one spliced from pipe to pipe."""
        if took := min(n, self._buffered()):
            self._write(self._take(took))
            n -= took
        if not n:
            return
        if n <= READ_AHEAD:
            if not self._fill(n):
                raise _EndOfStream("the archive does not add up: a member's data is shorter than its header says")
            self._write(self._take(n))
            return
        self._flush()
        while n:
            moved = os.splice(self.src, self.dst, min(n, CHUNK))
            if moved == 0:
                raise _EndOfStream("the archive does not add up: a member's data is shorter than its header says")
            n -= moved

    def walk(self) -> int:
        """Walk to the end marker and past it; returns the number of members passed on."""
        pending: list[bytes] = []  # the raw extension headers of the next member
        long_name = long_link = pax = None
        while True:
            header = self._read(BLOCK, boundary=not pending)
            if header == ZERO_BLOCK:
                if pending:
                    raise UnsafeArchive("the archive does not add up: an extended header has no member after it")
                self._trailer()
                self._write(ZERO_BLOCK * 2)
                self._flush()
                return self.members
            _check_header(header)
            kind = header[156:157]
            size = _number(header[124:136], "size")
            if kind in (b"L", b"K", b"x", b"g"):
                if size > (PAX_LIMIT if kind in (b"x", b"g") else LONG_NAME_LIMIT):
                    raise UnsafeArchive(f"the archive has an extended header of {size:,} bytes: refused")
                raw = header + self._read(_padded(size))
                data = raw[BLOCK:BLOCK + size]
                if kind == b"g":
                    _check_global(_pax_records(data))
                    continue  # never passed on
                if (kind == b"L" and long_name is not None) or (kind == b"K" and long_link is not None) \
                        or (kind == b"x" and pax is not None):
                    # GNU tar would use only the last of them: one of each is all a member may have.
                    raise UnsafeArchive("the archive does not add up: a member has two extended headers of one kind")
                if kind == b"L":
                    long_name = _c_string(data)
                elif kind == b"K":
                    long_link = _c_string(data)
                else:
                    pax = _pax_records(data)
                pending.append(raw)
                continue
            member = _member_of(header, kind, size, long_name, long_link, pax)
            if pax is not None and "size" in pax:
                size = int(pax["size"])
            verdict = self.check.check(member)
            if verdict == CONFIG:
                name = _tree_path(member.name, "", "")
                data = self._read(_padded(size))[:size]
                if self.config is None or name == CONFIG_NAMES[0]:  # pct.conf before vps.conf
                    self.config = (name, data)
            elif verdict == KEEP:
                self._write(b"".join(pending) + header)
                data_left = _padded(size) if kind in DATA_TYPES else 0
                if kind == b"S":
                    extended = header[482]  # the old GNU sparse map continues in extension blocks
                    while extended:
                        block = self._read(BLOCK)
                        self._write(block)
                        extended = block[504]
                elif member.sparse:
                    data_left -= self._sparse_map(size, member.size)
                self._forward(data_left)
                self.members += 1
            pending, long_name, long_link, pax = [], None, None, None

    def _sparse_map(self, stored: int, realsize: int) -> int:
        """Pass on the map that starts a pax sparse member's data ("COUNT\\nOFFSET\\nLENGTH\\n..."),
        checking that every region lies inside the file's size; returns the bytes it took."""
        regions = left = offset = None
        digits, used = b"", 0
        while True:
            if used + BLOCK > _padded(stored):
                raise UnsafeArchive("the archive does not add up: a sparse file's map is longer than its data")
            block = self._read(BLOCK)
            self._write(block)
            used += BLOCK
            *complete, rest = block.split(b"\n")
            for piece in complete:
                number, digits = digits + piece, b""
                if not number.isdigit() or len(number) > 19:
                    raise UnsafeArchive("the archive does not add up: a sparse file's map is malformed")
                if regions is None:
                    regions, left = int(number), 2 * int(number)
                elif offset is None:
                    offset, left = int(number), left - 1
                else:
                    if offset + int(number) > realsize:
                        raise UnsafeArchive("the archive does not add up: a sparse file's map reaches past its size")
                    offset, left = None, left - 1
                if left == 0:
                    return used  # the rest of this block is padding
            digits += rest
            if len(digits) > 19:
                raise UnsafeArchive("the archive does not add up: a sparse file's map is malformed")

    def _trailer(self) -> None:
        """After the end marker: zero padding, a little of it, and nothing else."""
        data, seen = self._take(self._buffered()), 0  # what was read ahead, then the rest of the stream
        while data:
            seen += len(data)
            if data.count(0) != len(data):
                raise UnsafeArchive("the archive has data after its end marker: refused (only zero padding may "
                                    "follow it)")
            if seen > TRAILER_LIMIT:
                raise UnsafeArchive(f"the archive has more than {TRAILER_LIMIT // 1024} KiB after its end marker: "
                                    "refused")
            data = os.read(self.src, 1 << 16)


@dataclass
class ArchiveReport:
    """What reading an archive through the checks found (and, for safe_extract, unpacked)."""

    members: int                     # members passed on to tar (or that would be)
    checked: int                     # every member read
    bytes: int                       # what they take on disk, sparse files at their apparent size
    dropped: dict[str, int]          # members left out, by kind ("character device": 3)
    config: tuple[str, bytes] | None  # the archive's own configuration: ("etc/vzdump/pct.conf", its bytes)
    watched: set[str]
    seconds: float
    sha256: str | None = None         # of the archive file, read in the same pass (when asked for)

    def dropped_text(self) -> str:
        return ", ".join(f"{what}: {n}" for what, n in sorted(self.dropped.items()))


TAR_EXTRACT = ["tar", "-x", "-p", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls", "-f", "-"]


def _finish(proc: subprocess.Popen, timeout: float | None = None) -> int:
    """Wait for a process (killing it after `timeout` seconds) and return its exit status."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def _said(errors) -> str:
    """The first lines a tool wrote into its error file, on one line."""
    errors.seek(0)
    lines = errors.read(8192).decode(errors="replace").splitlines()
    return "; ".join(line.strip() for line in lines[:5] if line.strip() and "Exiting with failure status" not in line)


def _stop_all(procs: list[subprocess.Popen], hasher: FileHasher | None) -> None:
    """Kill what still runs and reap it, and let the hasher finish (it reads a file, never blocks)."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    if hasher is not None:
        hasher.finish()


class FileHasher(threading.Thread):
    """SHA-256 of an open file, computed beside whatever else reads or writes it: the restore's
    decompressor reads the archive, the backup's compressor writes it, and this thread reads the
    same bytes from the page cache as they come (pread: the file offset the tools share is never
    moved), so the checksum costs no pass of its own and no Python stage between the tools.

    `growing`: the file is being written; at its end it waits for more until finish() says the
    writer is done."""

    def __init__(self, fd: int, growing: bool = False):
        super().__init__(name="archive-hash", daemon=True)
        self.fd, self.growing = fd, growing
        self.digest = hashlib.sha256()
        self.offset = 0
        self.error: OSError | None = None
        self.hexdigest: str | None = None
        self._writer_done = threading.Event()

    def run(self) -> None:
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        done = False
        try:
            while True:
                n = os.preadv(self.fd, [buffer], self.offset)
                if n:
                    self.digest.update(view[:n])
                    self.offset += n
                elif not self.growing or done:
                    break
                else:
                    # At the end of what was written so far: once the writer is done, one more read
                    # takes what it wrote last.
                    done = self._writer_done.wait(0.02)
        except OSError as exc:
            self.error = exc
            return
        self.hexdigest = self.digest.hexdigest()

    def finish(self) -> str | None:
        """The writer (if any) is done: wait for the digest of the whole file (None on a read error)."""
        self._writer_done.set()
        self.join()
        return self.hexdigest


def _walk(archive: Path | int, check: MemberCheck, dest: Path | None, log, hashed: bool = False,
          expected_sha256: str | None = None) -> ArchiveReport:
    """Read `archive` (a path, or an fd from open_archive) through `check`; with `dest`, GNU tar
    unpacks what passes into it, otherwise nothing is written anywhere. With `hashed` (or an
    `expected_sha256`) the archive file is hashed in the same pass; a digest other than the one
    expected fails the walk before tar is let finish. Every process and thread started here is
    stopped before this returns or raises."""
    started = time.monotonic()
    fd = archive if isinstance(archive, int) else open_archive(archive)
    procs: list[subprocess.Popen] = []
    pipes: list = []
    null = -1
    hasher = None
    sha256 = None
    with tempfile.TemporaryFile() as reader_errors, tempfile.TemporaryFile() as tar_errors:
        try:
            argv = _reader_argv(os.pread(fd, 6, 0))
            os.lseek(fd, 0, os.SEEK_SET)
            reader = subprocess.Popen(argv, stdin=fd, stdout=subprocess.PIPE, stderr=reader_errors)
            procs.append(reader)
            pipes.append(reader.stdout)
            if hashed or expected_sha256:
                hasher = FileHasher(fd)  # beside the decompressor, from the pages it reads
                hasher.start()
            tar = None
            if dest is None:
                null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
                sink = null
            else:
                # No CAP_MKNOD in its bounding set: tar could not make a device node even if one reached it.
                tar = subprocess.Popen(["setpriv", "--bounding-set=-mknod", "--inh-caps=-mknod", "--", *TAR_EXTRACT,
                                        "-C", str(dest)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                       stderr=tar_errors)
                procs.append(tar)
                pipes.append(tar.stdin)
                sink = tar.stdin.fileno()
            for pipe_fd in [reader.stdout.fileno()] + ([sink] if tar else []):
                try:  # bigger pipes: fewer stalls while the walker and tar hand data over
                    fcntl.fcntl(pipe_fd, F_SETPIPE_SZ, 1 << 20)
                except OSError:
                    pass
            walker = TarWalker(reader.stdout.fileno(), sink, check)
            try:
                walker.walk()
            except BrokenPipeError:
                raise ArchiveError("unpacking failed: " + (_said(tar_errors) if tar and _finish(tar, 60) != 0
                                                           else "tar stopped reading before the end")) from None
            except _EndOfStream:
                if _finish(reader, 10) != 0:  # the decompressor's own complaint says more
                    raise UnsafeArchive(f"the archive does not add up: {argv[0]} could not read it to the end"
                                        + (f": {said}" if (said := _said(reader_errors)) else "")) from None
                raise
            if _finish(reader, 60) != 0:
                said = _said(reader_errors)
                raise UnsafeArchive(f"the archive does not add up: {argv[0]} could not read it to the end"
                                    + (f": {said}" if said else ""))
            if hasher is not None:
                sha256 = hasher.finish()
                if sha256 is None:
                    raise ArchiveError(f"reading the archive to hash it failed: {hasher.error.strerror}")
                if expected_sha256 and sha256 != expected_sha256:
                    # Found before tar may finish: the caller removes what it wrote so far.
                    raise ArchiveError(f"checksum mismatch: the archive has {sha256}, the backup was {expected_sha256}")
            if tar is not None:
                tar.stdin.close()
                if tar.wait() != 0:
                    raise ArchiveError("unpacking failed: "
                                       + (_said(tar_errors) or f"tar exited with {tar.returncode}"))
                if said := _said(tar_errors):
                    log(f"tar: {said}")
        except ArchiveError as exc:
            if hasher is None or not expected_sha256 or sha256 is not None:
                raise
            # A damaged archive: say that it is not the one backed up, if so, with what reading it found.
            _stop_all(procs, hasher)
            actual = hasher.hexdigest
            if actual is not None and actual != expected_sha256:
                raise ArchiveError(f"checksum mismatch: the archive has {actual}, the backup was {expected_sha256} "
                                   f"(reading it: {exc})") from None
            raise
        finally:
            _stop_all(procs, hasher)
            for pipe in pipes:
                try:
                    pipe.close()
                except OSError:
                    pass  # BrokenPipeError flushing what tar no longer reads
            if null >= 0:
                os.close(null)
            if not isinstance(archive, int):
                os.close(fd)
    return ArchiveReport(walker.members, check.members, check.total, check.dropped, walker.config, check.watched,
                         time.monotonic() - started, sha256)


def safe_extract(archive: Path | int, dest: Path, log=lambda _m: None, max_bytes: int | None = None,
                 watch: tuple[str, ...] = (), expected_sha256: str | None = None) -> ArchiveReport:
    """Unpack `archive` into `dest` (which must exist and be empty), checking every member first.
    The configuration (./etc/vzdump/pct.conf or vps.conf) comes back in the report, not in `dest`.
    With `expected_sha256` the file is hashed in the same pass and a mismatch fails the unpacking
    (what tar wrote by then stays in `dest`, for the caller to remove with it)."""
    report = _walk(archive, MemberCheck(max_bytes, watch), dest, log, expected_sha256=expected_sha256)
    if report.members == 0:
        raise UnsafeArchive("the archive is empty")
    if report.dropped:
        log(f"Device nodes not created (the container's /dev is made at start); left out: {report.dropped_text()}")
    return report


def scan_archive(archive: Path | int, max_bytes: int | None = None, watch: tuple[str, ...] = (),
                 hashed: bool = False, expected_sha256: str | None = None) -> ArchiveReport:
    """Read the whole archive through the same checks as safe_extract, writing nothing; with
    `hashed` or `expected_sha256`, hashing the file in the same pass (report.sha256)."""
    return _walk(archive, MemberCheck(max_bytes, watch), None, lambda _m: None, hashed, expected_sha256)


def config_of(report: ArchiveReport) -> tuple[str, str] | None:
    """(name, text) of the archive's configuration, pct.conf before vps.conf; None if it has none."""
    if report.config is None:
        return None
    name, data = report.config
    return name, data.decode("utf-8", "replace")


def verify_archive(archive: Path, expected_sha256: str | None, log=lambda _m: None) -> int:
    """Check the checksum and read the whole archive through the restore's checks; returns the
    number of members."""
    fd = open_archive(archive)
    try:
        report = scan_archive(fd, expected_sha256=expected_sha256)  # hashed in the same pass
    finally:
        os.close(fd)
    if expected_sha256:
        log("Checksum matches")
    log(f"Read {report.checked} members to the end"
        + (f"; a restore leaves out {report.dropped_text()}" if report.dropped else ""))
    return report.checked


def rsync_copy(source: Path, target: Path, excludes: list[str], log=lambda _m: None, live: bool = False) -> float:
    """rsync a root filesystem (hard links, ACLs, xattrs, numeric ids); returns the seconds it took.
    `live`: the container runs, so files it changes under rsync (exit 23: a directory swapped
    for a link cannot be read through on a nosymfollow view) are left to the frozen pass."""
    started = time.monotonic()
    argv = list(RSYNC_BASE)  # the options migrations use too, nanosecond mtimes among them
    argv += [f"--exclude={p[1:] if p.startswith('./') else p}" for p in excludes]
    res = run([*argv, f"{source}/", f"{target}/"], timeout=6 * 3600, check=False)
    if res.returncode == 23 and live:
        log("Some files changed while they were read; the copy made while frozen takes them")
    elif res.returncode not in (0, 24):  # 24: files vanished while copying a live system
        raise ArchiveError(f"rsync failed ({res.returncode}): {res.stderr.strip()}")
    return time.monotonic() - started
