"""Streaming browser uploads to disk: chunk by chunk, under a temporary name, never over a file."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from django.conf import settings

MAX_UPLOAD_BYTES = 64 << 30


class UploadRefused(Exception):
    """The upload was not kept; the message says why."""


def upload_dir() -> Path:
    """Where the web server leaves uploads for the agent to check and take."""
    return Path(settings.VAR_DIR) / "uploads"


def save_upload(upload, dest: Path, what: str, max_bytes: int = MAX_UPLOAD_BYTES) -> Path:
    """Write `upload` (a Django UploadedFile) to `dest` without holding it in memory.

    It goes to a temporary file first and is linked to `dest` only when complete, so a
    half-written upload is never mistaken for a whole one and an existing file is never replaced."""
    if upload.size is not None and upload.size > max_bytes:
        raise UploadRefused(f"{what} is larger than {max_bytes >> 30} GiB.")
    if dest.exists():
        raise UploadRefused(f"{what} is already waiting in the uploads.")
    dest.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".upload-", suffix=".part")
    try:
        written = 0
        with os.fdopen(fd, "wb") as out:
            for chunk in upload.chunks():
                written += len(chunk)
                if written > max_bytes:
                    raise UploadRefused(f"{what} is larger than {max_bytes >> 30} GiB.")
                out.write(chunk)
        try:
            os.link(tmp, dest)  # never over an existing file, even one that appeared meanwhile
        except FileExistsError:
            raise UploadRefused(f"{what} is already waiting in the uploads.") from None
    finally:
        os.unlink(tmp)
    return dest
