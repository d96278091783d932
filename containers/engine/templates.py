"""OS templates: root filesystem tarballs in a host's template cache directory."""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

SUFFIXES = (".tar.gz", ".tar.xz", ".tar.zst", ".tgz", ".tar")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}\Z")

# sha256 is costly for big templates: remember it per (path, size, mtime).
_checksum_cache: dict[tuple[str, int, int], str] = {}


@dataclass
class TemplateInfo:
    name: str
    filename: str
    size: int
    sha256: str
    mtime: float
    meta: dict | None = None


def meta_path(cache_dir: str | os.PathLike, filename: str) -> Path:
    return Path(cache_dir) / f".{filename}.meta.json"


def write_meta(cache_dir: str | os.PathLike, filename: str, **meta) -> None:
    """What the agent knows of a template it made or fetched: distribution, version, arch, source."""
    import json
    path = meta_path(cache_dir, filename)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({k: v for k, v in meta.items() if v}))
    os.replace(tmp, path)


def read_meta(cache_dir: str | os.PathLike, filename: str) -> dict:
    import json
    path = meta_path(cache_dir, filename)
    try:
        return json.loads(path.read_text()) if path.is_file() and not path.is_symlink() else {}
    except ValueError:
        return {}


def remove_template(cache_dir: str | os.PathLike, filename: str) -> None:
    (Path(cache_dir) / filename).unlink(missing_ok=True)
    meta_path(cache_dir, filename).unlink(missing_ok=True)


def template_name(filename: str) -> str | None:
    """The template's name (file name without the tar suffix), or None if not a template."""
    for suffix in SUFFIXES:
        if filename.endswith(suffix):
            name = filename[: -len(suffix)]
            return name if NAME_RE.match(name) else None
    return None


def sha256_of(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _checksum_cache:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _checksum_cache[key] = digest.hexdigest()
    return _checksum_cache[key]


def list_templates(cache_dir: str | os.PathLike) -> list[TemplateInfo]:
    cache = Path(cache_dir)
    if not cache.is_dir():
        return []
    found = []
    for entry in sorted(cache.iterdir()):
        name = template_name(entry.name)
        if name is None or not entry.is_file() or entry.is_symlink():
            continue
        st = entry.stat()
        found.append(TemplateInfo(name, entry.name, st.st_size, sha256_of(entry), st.st_mtime,
                                  read_meta(cache, entry.name)))
    return found


def find_template(cache_dir: str | os.PathLike, name: str) -> Path | None:
    if not NAME_RE.match(name):
        return None
    for info in list_templates(cache_dir):
        if info.name == name:
            return Path(cache_dir) / info.filename
    return None
