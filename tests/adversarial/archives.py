"""Builders of hostile archives for the adversarial tests: tar headers made by hand (GNU, ustar,
pax, sparse), the busybox tree a harmless archive restores, and real compressors.

Everything here is bytes or a file the test owns; nothing is unpacked.
"""
from __future__ import annotations

import io
import subprocess
import tarfile
import threading
from pathlib import Path
from typing import Iterable

BLOCK = 512
GNU_MAGIC = b"ustar  \0"
USTAR_MAGIC = b"ustar\x0000"


def padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % BLOCK)


def header(name: str, kind: bytes = b"0", size: int = 0, linkname: str = "", magic: bytes = GNU_MAGIC,
           mode: int = 0o644, size_field: bytes | None = None, fields: dict[int, bytes] | None = None) -> bytes:
    """One tar header block with a correct checksum. `size_field` puts raw bytes in the size field;
    `fields` puts raw bytes at other offsets (a sparse file's map and real size)."""
    block = bytearray(BLOCK)

    def put(offset: int, width: int, value: bytes) -> None:
        block[offset:offset + width] = value[:width].ljust(width, b"\0")

    put(0, 100, name.encode("utf-8", "surrogateescape"))
    put(100, 8, b"%07o" % mode)
    put(108, 8, b"%07o" % 0)
    put(116, 8, b"%07o" % 0)
    put(124, 12, size_field if size_field is not None else b"%011o" % size)
    put(136, 12, b"%011o" % 1_700_000_000)
    block[156:157] = kind
    put(157, 100, linkname.encode("utf-8", "surrogateescape"))
    block[257:257 + len(magic)] = magic
    for offset, value in (fields or {}).items():
        block[offset:offset + len(value)] = value
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def member(name: str, data: bytes = b"", kind: bytes = b"0", **kw) -> bytes:
    """A member: its header and (for files) its data, padded."""
    return header(name, kind, len(data) if kind in (b"0", b"\0", b"7") else 0, **kw) + padded(data)


def directory(name: str) -> bytes:
    return header(name, b"5", mode=0o755)


def symlink(name: str, target: str) -> bytes:
    return header(name, b"2", linkname=target, mode=0o777)


def hardlink(name: str, target: str) -> bytes:
    return header(name, b"1", linkname=target)


def device(name: str, kind: bytes = b"3") -> bytes:
    """A character device (b"3"), block device (b"4") or FIFO (b"6")."""
    return header(name, kind, fields={329: b"0000001\0", 337: b"0000003\0"})


def pax_records(records: Iterable[tuple[str, str | bytes]]) -> bytes:
    out = b""
    for key, value in records:
        body = b" " + key.encode() + b"=" + (value if isinstance(value, bytes) else value.encode()) + b"\n"
        length = len(body) + 1
        while len(str(length)) + len(body) != length:
            length += 1
        out += str(length).encode() + body
    return out


def pax(records: Iterable[tuple[str, str | bytes]] | dict = (), kind: bytes = b"x", raw: bytes | None = None) -> bytes:
    """A pax extended header ('x': the next member's, 'g': global) from records, or `raw` data."""
    data = raw if raw is not None else pax_records(records.items() if isinstance(records, dict) else records)
    return header("./PaxHeaders/x", kind, len(data), magic=USTAR_MAGIC) + padded(data)


def long_name(name: str | bytes, kind: bytes = b"L") -> bytes:
    """A GNU long name ('L') or long link target ('K') for the next member."""
    data = (name if isinstance(name, bytes) else name.encode()) + b"\0"
    return header("././@LongLink", kind, len(data)) + padded(data)


def gnu_sparse(name: str, realsize: int, data: bytes = b"x" * BLOCK) -> bytes:
    """An old GNU sparse member ('S'): `data` at the end of a file of `realsize` bytes."""
    fields = {386: b"%011o\0" % (realsize - len(data)), 398: b"%011o\0" % len(data), 483: b"%011o\0" % realsize}
    return header(name, b"S", len(data), fields=fields) + padded(data)


def pax_sparse(name: str, realsize: int, data: bytes = b"x" * BLOCK,
               regions: list[tuple[int, int]] | None = None) -> bytes:
    """GNU tar's pax sparse format 1.0: the map starts the data of a '0' member."""
    regions = regions if regions is not None else [(realsize - len(data), len(data))]
    body = padded(("\n".join([str(len(regions))] + [f"{o}\n{n}" for o, n in regions]) + "\n").encode()) + data
    records = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": name,
               "GNU.sparse.realsize": str(realsize)}
    return pax(records) + header("./GNUSparseFile.0/" + name.rsplit("/", 1)[-1], b"0", len(body),
                                 magic=USTAR_MAGIC) + padded(body)


def end(trailer: bytes = b"") -> bytes:
    """The end marker (two zero blocks), padded to a whole 10 KiB record as tar does, then `trailer`."""
    return bytes(2 * BLOCK) + bytes(8 * BLOCK) + trailer


def base_members(template: Path, leave_out: tuple[str, ...] = ()) -> bytes:
    """The busybox template's members (no end marker), so that a harmless archive would restore:
    a real tree around the one hostile member. `leave_out`: top-level names to drop (./dev)."""
    buf = io.BytesIO()
    out = tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT)
    with subprocess.Popen(["zstd", "-dc", str(template)], stdout=subprocess.PIPE) as dec:
        with tarfile.open(fileobj=dec.stdout, mode="r|") as tar:
            for info in tar:
                top = info.name.removeprefix("./").split("/", 1)[0]
                if top in leave_out:
                    continue
                out.addfile(info, tar.extractfile(info) if info.isfile() else None)
    return buf.getvalue()  # not closed: no end marker


COMPRESSORS = {"zst": ["zstd", "-q", "-c", "-T0"], "gz": ["gzip", "-c", "-1"], "none": None}


def compress(chunks: bytes | Iterable[bytes], tool: str = "zst") -> bytes:
    """The chunks through a real compressor, streamed (a 256 MiB member never sits in memory)."""
    chunks = [chunks] if isinstance(chunks, bytes) else chunks
    argv = COMPRESSORS[tool]
    if argv is None:
        return b"".join(chunks)
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def feed():
        try:
            for chunk in chunks:
                proc.stdin.write(chunk)
        finally:
            proc.stdin.close()
    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    out = proc.stdout.read()
    feeder.join()
    assert proc.wait() == 0
    return out


def big_member(name: str, size: int, byte: bytes = b"\n", kind: bytes = b"0", **kw) -> Iterable[bytes]:
    """A member (or extended header, by `kind`) of `size` bytes of `byte`, as chunks."""
    yield header(name, kind, size, **kw)
    chunk = byte * (1 << 20)
    left = size
    while left:
        yield chunk[:min(left, len(chunk))]
        left -= min(left, len(chunk))
    yield bytes(-size % BLOCK)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def archive_name(ctid: int, compress_tool: str = "zst", kind: str = "lxc") -> str:
    suffix = {"zst": ".tar.zst", "gz": ".tar.gz", "none": ".tar"}[compress_tool]
    return f"vzdump-{kind}-{ctid}-2026_01_02-03_04_05{suffix}"


def children_named(pid: int, names: tuple[str, ...] = ("zstd", "gzip", "xz", "tar", "cat", "setpriv")) -> list[str]:
    """The processes below `pid` running one of `names`, zombies included ('name (zombie)')."""
    import psutil
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if child.name() in names:
                found.append(child.name() + (" (zombie)" if child.status() == psutil.STATUS_ZOMBIE else ""))
        except psutil.NoSuchProcess:
            pass
    return found


class PeakRss:
    """Samples a process's resident memory in a thread; `peak` is the most seen (bytes)."""

    def __init__(self, pid: int, every: float = 0.005):
        import psutil
        self.process, self.every, self.peak = psutil.Process(pid), every, 0
        self.first = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import psutil
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.NoSuchProcess:
                return
            self._stop.wait(self.every)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()
