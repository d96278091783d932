"""Browser uploads (backup archives, OS templates) streamed straight into the uploads directory.

The directory is on the backup storage (PANEL_UPLOAD_DIR, by default `uploads` in the dump
directory), never next to the database, and belongs to the web user; the agent takes files
from it without trusting their names (backups/jobs.py import_archive). Each file arrives under
a temporary name, chunk by chunk, and stops as soon as it passes what the uploader may store:
the partial file is removed at once, and whatever the view does not keep is removed when the
request ends (a refused quota, a bad name, an error).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload

MAX_UPLOAD_BYTES = 64 << 30


class UploadRefused(Exception):
    """The upload was not kept; the message says why."""


def upload_dir() -> Path:
    """Where the web server leaves uploads for the agent to check and take."""
    return Path(settings.UPLOAD_DIR)


class StagedUpload(UploadedFile):
    """A file already written into the uploads directory under a temporary name."""

    def __init__(self, path: Path, name: str, size: int, content_type: str | None):
        super().__init__(open(path, "rb"), name, content_type, size)
        self.path = path

    def temporary_file_path(self) -> str:
        return str(self.path)

    def close(self):
        # Django closes every uploaded file when the request ends: what was not kept goes then.
        try:
            super().close()
        finally:
            self.path.unlink(missing_ok=True)


class StreamingUploadHandler(FileUploadHandler):
    """Writes uploaded files into upload_dir() as they arrive, at most `max_bytes` each.
    Over that, the upload stops, the partial file is deleted and `request.upload_refused` says why."""

    def __init__(self, request, max_bytes: int, what: str = "The upload"):
        super().__init__(request)
        self.max_bytes, self.what = max_bytes, what
        self.fd = self.path = None
        self.written = 0

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        directory = upload_dir()
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.fd, name = tempfile.mkstemp(dir=directory, prefix=".upload-", suffix=".part")
        self.path, self.written = Path(name), 0

    def receive_data_chunk(self, raw_data, start):
        self.written += len(raw_data)
        if self.written > self.max_bytes:
            self._discard()
            self.request.upload_refused = (f"{self.what} is larger than the {_size(self.max_bytes)} you may "
                                           "upload (your tenant's backup space left, or the 64 GiB limit).")
            raise StopUpload(connection_reset=False)
        view = memoryview(raw_data)
        while view:
            view = view[os.write(self.fd, view):]
        return None

    def file_complete(self, file_size):
        os.close(self.fd)
        self.fd = None
        return StagedUpload(self.path, self.file_name, file_size, self.content_type)

    def upload_interrupted(self):
        self._discard()

    def _discard(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def _size(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.1f} MiB"


def stream_uploads_to_disk(request, max_bytes: int, what: str) -> None:
    """Call before touching request.POST or request.FILES (so views using it are csrf_exempt and
    check CSRF themselves with csrf_protect inside)."""
    request.upload_handlers = [StreamingUploadHandler(request, max_bytes, what)]


def save_upload(upload, dest: Path, what: str, max_bytes: int = MAX_UPLOAD_BYTES) -> Path:
    """Give a streamed upload its name `dest` in the uploads directory, never over an existing file.
    (A file that did not come through StreamingUploadHandler is written there chunk by chunk.)"""
    if upload.size is not None and upload.size > max_bytes:
        raise UploadRefused(f"{what} is larger than {_size(max_bytes)}.")
    dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if isinstance(upload, StagedUpload) and upload.path.parent == dest.parent:
        try:
            os.link(upload.path, dest)  # the temporary name goes when the request ends
        except FileExistsError:
            raise UploadRefused(f"{what} is already waiting in the uploads.") from None
        return dest
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".upload-", suffix=".part")
    try:
        written = 0
        with os.fdopen(fd, "wb") as out:
            for chunk in upload.chunks():
                written += len(chunk)
                if written > max_bytes:
                    raise UploadRefused(f"{what} is larger than {_size(max_bytes)}.")
                out.write(chunk)
        try:
            os.link(tmp, dest)  # never over an existing file, even one that appeared meanwhile
        except FileExistsError:
            raise UploadRefused(f"{what} is already waiting in the uploads.") from None
    finally:
        os.unlink(tmp)
    return dest
