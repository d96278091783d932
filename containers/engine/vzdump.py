"""vzdump-style archives: the root filesystem plus the container's config at ./etc/vzdump/pct.conf.

Written under a temporary name and renamed only when complete, with a .log and a
.sha256 beside it, so a crash never leaves something that looks like a good backup.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .commands import CommandError, run

COMPRESSORS = {"zst": ("--zstd", ".tar.zst"), "gz": ("--gzip", ".tar.gz"), "none": (None, ".tar")}


@dataclass
class Archive:
    path: Path
    size: int
    sha256: str


class ArchiveError(Exception):
    pass


def archive_name(ctid: int, compress: str, when: float | None = None) -> str:
    stamp = time.strftime("%Y_%m_%d-%H_%M_%S", time.localtime(when or time.time()))
    return f"vzdump-lxc-{int(ctid)}-{stamp}{COMPRESSORS[compress][1]}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def create_archive(rootfs: Path, config_text: str, dump_dir: Path, ctid: int, compress: str = "zst",
                   log=lambda _m: None) -> Archive:
    if compress not in COMPRESSORS:
        raise ArchiveError(f"unknown compression {compress!r}")
    dump_dir.mkdir(parents=True, exist_ok=True)
    final = dump_dir / archive_name(ctid, compress)
    partial = final.with_name(final.name + ".partial")
    flag, _ = COMPRESSORS[compress]
    with tempfile.TemporaryDirectory(prefix="vzpanel-dump-") as extra:
        conf = Path(extra) / "etc" / "vzdump"
        conf.mkdir(parents=True)
        (conf / "pct.conf").write_text(config_text)
        argv = ["tar", "-c", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls", "--sparse",
                "-f", str(partial)]
        if flag:
            argv.insert(2, flag)
        argv += ["-C", str(rootfs), ".", "-C", extra, "./etc/vzdump/pct.conf"]
        log(f"Writing {final.name}")
        started = time.monotonic()
        try:
            run(argv, timeout=6 * 3600)
        except CommandError as exc:
            partial.unlink(missing_ok=True)
            raise ArchiveError(f"archiving failed: {exc.output}") from exc
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    digest = sha256_file(partial)
    os.replace(partial, final)
    (final.with_name(final.name + ".sha256")).write_text(f"{digest}  {final.name}\n")
    size = final.stat().st_size
    log(f"Archive {final.name}: {size} bytes in {time.monotonic() - started:.1f} s, sha256 {digest}")
    return Archive(final, size, digest)


def remove_archive(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".sha256"), path.with_name(path.name.rsplit(".tar", 1)[0] + ".log")):
        p.unlink(missing_ok=True)
