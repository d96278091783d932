"""vzdump-style archives: write them, check them, and unpack them safely.

Writing: tar (numeric owners, xattrs, ACLs) of the root filesystem plus the
container's configuration at ./etc/vzdump/pct.conf, piped through zstd or gzip,
hashed as it is written, under a temporary name renamed only when complete, with
a .sha256 and (by the caller) a .log beside it. A crash never leaves something
that looks like a good backup.

Unpacking (restore) treats every archive as hostile. One pass: the decompressed
stream is read by Python's tarfile, which checks every member as it goes by, and
every byte read is passed on to GNU tar, which does the extracting. A member with
an absolute path or "..", a hardlink that leaves the tree or points at nothing
before it, a member written through a symlink, or an archive that ends early or
does not add up, stops both and the restore fails. GNU tar runs without
CAP_MKNOD, so device nodes are never created (the container's /dev is made at
start); they are reported as skipped.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .commands import CommandError, run
from .transfer import RSYNC_BASE

COMPRESSORS = {"zst": ".tar.zst", "gz": ".tar.gz", "none": ".tar"}
STD_EXCLUDES = ["./tmp/?*", "./var/tmp/?*", "./var/run/?*.pid", "./run/?*.pid"]  # vzdump --stdexcludes
CONFIG_MEMBERS = ("./etc/vzdump/pct.conf", "./etc/vzdump/vps.conf")
CHUNK = 1 << 20
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


class ArchiveError(Exception):
    pass


def archive_name(ctid: int, compress: str, when: float | None = None, kind: str = "lxc") -> str:
    stamp = time.strftime("%Y_%m_%d-%H_%M_%S", time.localtime(when or time.time()))
    return f"vzdump-{kind}-{int(ctid)}-{stamp}{COMPRESSORS[compress]}"


def log_path_for(archive: Path) -> Path:
    return archive.with_name(archive.name.split(".tar")[0] + ".log")


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
    dump_dir.mkdir(parents=True, exist_ok=True)
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
        try:
            with open(partial, "wb") as out:
                # The tools write the file themselves: no Python in the data path unless throttling.
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
                    try:
                        fcntl.fcntl(source.fileno(), F_SETPIPE_SZ, 1 << 20)  # fewer stalls between tar and zstd
                    except OSError:
                        pass
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
            if errors:
                raise ArchiveError("archiving failed: " + "; ".join(errors))
            hexdigest = sha256_file(partial)
        except BaseException:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            partial.unlink(missing_ok=True)
            raise
    os.replace(partial, final)
    final.with_name(final.name + ".sha256").write_text(f"{hexdigest}  {final.name}\n")
    size = final.stat().st_size
    seconds = time.monotonic() - started
    log(f"Archive {final.name}: {size} bytes in {seconds:.1f} s, sha256 {hexdigest}")
    return Archive(final, size, hexdigest, seconds)


def remove_archive(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".sha256"), log_path_for(path), path.with_name(path.name + ".partial")):
        p.unlink(missing_ok=True)


def _decompressor(path: Path) -> list[str] | None:
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic[:4] == b"\x28\xb5\x2f\xfd":
        return ["zstd", "-q", "-d", "-c", str(path)]
    if magic[:2] == b"\x1f\x8b":
        return ["gzip", "-d", "-c", str(path)]
    if magic == b"\xfd7zXZ\x00":  # OS templates (LXC images) come as .tar.xz
        return ["xz", "-d", "-c", str(path)]
    return None


class UnsafeArchive(ArchiveError):
    """The archive tries to write outside the new root, or does not add up."""


@dataclass
class Member:
    """What the checks need to know of one archive member."""

    name: str
    type: bytes
    size: int
    linkname: str = ""

    def islnk(self) -> bool:
        return self.type == b"1"

    def issym(self) -> bool:
        return self.type == b"2"

    def ischr(self) -> bool:
        return self.type == b"3"

    def isblk(self) -> bool:
        return self.type == b"4"


def _clean(name: str) -> str:
    name = name[2:] if name.startswith("./") else name
    return name.rstrip("/")


class MemberCheck:
    """The rules every member must pass before tar may write it."""

    def __init__(self, max_bytes: int | None = None):
        self.symlinks: set[str] = set()
        self.seen: set[str] = set()
        self.total = 0
        self.max_bytes = max_bytes
        self.devices: list[str] = []

    def check(self, member: Member) -> None:
        raw = member.name
        name = _clean(raw)
        if raw.startswith("/") or name.startswith("/"):
            raise UnsafeArchive(f"member {raw!r} has an absolute path")
        parts = name.split("/") if name not in ("", ".") else []
        if ".." in parts:
            raise UnsafeArchive(f"member {raw!r} climbs out of the root with '..'")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            if prefix in self.symlinks:
                raise UnsafeArchive(f"member {raw!r} would be written through the symlink {prefix!r}")
        if member.islnk():
            target = _clean(member.linkname)
            if member.linkname.startswith("/") or ".." in target.split("/"):
                raise UnsafeArchive(f"hardlink {raw!r} points outside the root ({member.linkname!r})")
            if target not in self.seen:
                raise UnsafeArchive(f"hardlink {raw!r} points at {member.linkname!r}, which is not in the archive before it")
        if member.issym():
            self.symlinks.add(name)
        elif name in self.symlinks:
            self.symlinks.discard(name)
        if member.ischr() or member.isblk():
            self.devices.append(name)
        if member.size < 0:
            raise UnsafeArchive(f"member {raw!r} has a negative size")
        self.total += member.size
        if self.max_bytes is not None and self.total > self.max_bytes:
            raise UnsafeArchive(f"the archive unpacks to more than {self.max_bytes // (1024 * 1024)} MiB, "
                                "more than the container's disk")
        self.seen.add(name)


BLOCK = 512
DATA_TYPES = (b"0", b"\0", b"7", b"S")


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def _octal(field: bytes) -> int:
    if field[:1] and field[0] & 0x80:  # GNU base-256 for big numbers
        return int.from_bytes(field, "big") & ~(0x80 << (8 * (len(field) - 1)))
    text = field.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


class TarWalker:
    """Reads a tar stream from `src`, checks each member's header, and passes every byte on to `dst`.

    Headers are read into Python to be checked; file data goes from pipe to pipe with
    os.splice and is never copied through Python, so checking costs little more than
    the extraction itself. Understands ustar, GNU (long names, sparse) and pax headers.
    """

    def __init__(self, src: int, dst: int, check: MemberCheck):
        self.src, self.dst, self.check = src, dst, check
        self.members = 0

    def _read(self, n: int) -> bytes:
        chunks, left = [], n
        while left:
            data = os.read(self.src, left)
            if not data:
                raise UnsafeArchive("the archive does not add up: it ends in the middle of a member")
            chunks.append(data)
            left -= len(data)
        data = b"".join(chunks)
        self._write(data)
        return data

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.dst, view):]

    def _forward(self, n: int) -> None:
        while n:
            moved = os.splice(self.src, self.dst, min(n, CHUNK))
            if moved == 0:
                raise UnsafeArchive("the archive does not add up: a member's data is shorter than its header says")
            n -= moved

    def drain(self) -> None:
        while os.splice(self.src, self.dst, CHUNK):
            pass

    def walk(self) -> int:
        long_name = long_link = None
        pax: dict[str, str] = {}
        while True:
            header = self._read(BLOCK)
            if header == b"\0" * BLOCK:
                self.drain()  # the end marker and padding: tar reads them too
                return self.members
            stored = _octal(header[148:156])
            computed = sum(header[:148]) + 8 * 32 + sum(header[156:])
            if stored != computed:
                raise UnsafeArchive("the archive does not add up: a header's checksum is wrong")
            kind = header[156:157]
            size = _octal(header[124:136])
            if kind in (b"L", b"K", b"x", b"g"):
                data = self._read(_padded(size))[:size]
                if kind == b"L":
                    long_name = data.rstrip(b"\0").decode("utf-8", "surrogateescape")
                elif kind == b"K":
                    long_link = data.rstrip(b"\0").decode("utf-8", "surrogateescape")
                elif kind == b"x":
                    pax.update(_pax_records(data))
                continue
            name = header[0:100].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            if header[257:263] == b"ustar\x00":  # POSIX ustar: the prefix field extends the name
                prefix = header[345:500].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                if prefix:
                    name = f"{prefix}/{name}"
            linkname = header[157:257].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            name = pax.pop("path", None) or long_name or name
            linkname = pax.pop("linkpath", None) or long_link or linkname
            if "size" in pax:
                size = int(pax.pop("size"))
            pax.clear()
            long_name = long_link = None
            if kind == b"S" and header[482]:  # GNU sparse map continues in extension blocks
                while self._read(BLOCK)[504]:
                    pass
            self.check.check(Member(name, kind, size if kind in DATA_TYPES else 0, linkname))
            self.members += 1
            if kind in DATA_TYPES:
                self._forward(_padded(size))


def _pax_records(data: bytes) -> dict[str, str]:
    out, pos = {}, 0
    while pos < len(data) and data[pos:pos + 1] not in (b"", b"\0"):
        space = data.index(b" ", pos)
        length = int(data[pos:space])
        record = data[space + 1:pos + length - 1].decode("utf-8", "surrogateescape")
        key, _, value = record.partition("=")
        out[key] = value
        pos += length
    return out


@dataclass
class ExtractReport:
    members: int
    bytes: int
    skipped_devices: list[str]
    seconds: float


def safe_extract(archive: Path, dest: Path, log=lambda _m: None, max_bytes: int | None = None) -> ExtractReport:
    """Unpack `archive` into `dest` (which must exist and be empty), checking every member first."""
    started = time.monotonic()
    decompress = _decompressor(archive)
    procs: list[subprocess.Popen] = []
    src_file = None
    try:
        if decompress:
            dec = subprocess.Popen(decompress, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            procs.append(dec)
            src = dec.stdout.fileno()
        else:
            src_file = open(archive, "rb")
            src = src_file.fileno()
        # No CAP_MKNOD in its bounding set: tar cannot create device nodes, whatever the archive says.
        tar = subprocess.Popen(
            ["setpriv", "--bounding-set=-mknod", "--inh-caps=-mknod", "--",
             "tar", "-x", "-p", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls",
             "-C", str(dest), "-f", "-"],
            stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        procs.append(tar)
        check = MemberCheck(max_bytes)
        # Bigger pipes: fewer stalls while the walker and tar hand data over (64 KiB by default).
        for fd in (src, tar.stdin.fileno()):
            try:
                fcntl.fcntl(fd, F_SETPIPE_SZ, 1 << 20)
            except OSError:
                pass  # not a pipe (a plain archive file), or above the system's limit
        walker = TarWalker(src, tar.stdin.fileno(), check)
        try:
            count = walker.walk()
        except BrokenPipeError:
            count = walker.members  # tar stopped early: its own error below says why
        except ValueError as exc:
            raise UnsafeArchive(f"the archive does not add up: {exc}") from None
        try:
            tar.stdin.close()
        except BrokenPipeError:
            pass
        tar.wait()
        errors = [line for line in tar.stderr.read().decode(errors="replace").splitlines()
                  if line.strip() and "Cannot mknod" not in line and "Exiting with failure status" not in line]
        if decompress:
            dec.wait()
            if dec.returncode != 0:
                raise ArchiveError(f"{decompress[0]} could not read the archive: "
                                   f"{dec.stderr.read().decode(errors='replace').strip()}")
        if tar.returncode != 0 and errors:
            raise ArchiveError("unpacking failed: " + "; ".join(errors[:5]))
        if count == 0:
            raise UnsafeArchive("the archive is empty")
    except BaseException:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        raise
    finally:
        if src_file is not None:
            src_file.close()
    if check.devices:
        log(f"Device nodes not created (the container's /dev is made at start): {len(check.devices)}")
    return ExtractReport(count, check.total, check.devices, time.monotonic() - started)


def read_member(archive: Path, names=CONFIG_MEMBERS) -> tuple[str, str] | None:
    """(name, text) of the first of `names` found in the archive (the configuration), or None."""
    for name in names:
        try:
            res = run(["tar", "-x", "-O", "-f", str(archive), name], timeout=3600, check=True)
            return name, res.stdout
        except CommandError:
            continue
    return None


def verify_archive(archive: Path, expected_sha256: str | None, log=lambda _m: None) -> int:
    """Check the checksum and read the whole archive; returns the number of members."""
    if expected_sha256:
        actual = sha256_file(archive)
        if actual != expected_sha256:
            raise ArchiveError(f"checksum mismatch: expected {expected_sha256}, the file has {actual}")
        log("Checksum matches")
    res = run(["tar", "-t", "-f", str(archive)], timeout=6 * 3600, check=False)
    if res.returncode != 0:
        raise ArchiveError(f"the archive cannot be read to its end: {res.stderr.strip()}")
    count = len(res.stdout.splitlines())
    log(f"Read {count} members to the end")
    return count


def rsync_copy(source: Path, target: Path, excludes: list[str], log=lambda _m: None) -> float:
    """rsync a root filesystem (hard links, ACLs, xattrs, numeric ids); returns the seconds it took."""
    started = time.monotonic()
    argv = list(RSYNC_BASE)  # the options migrations use too, nanosecond mtimes among them
    argv += [f"--exclude={p[1:] if p.startswith('./') else p}" for p in excludes]
    res = run([*argv, f"{source}/", f"{target}/"], timeout=6 * 3600, check=False)
    if res.returncode not in (0, 24):  # 24: files vanished while copying a live system
        raise ArchiveError(f"rsync failed ({res.returncode}): {res.stderr.strip()}")
    return time.monotonic() - started
