"""Getting OS templates: download them, verify them, and check that they are root filesystems.

Everything fetched from the network is treated as untrusted until proven otherwise:

* downloads go to a ".partial" file next to their destination, are hashed while they
  stream, and are renamed into place only when complete and (if a checksum was
  given) correct, so an interrupted or tampered download never looks like a file;
* from an LXC image server (the "lxc-download" layout) the index and the image can
  be checked against a GnuPG keyring with gpgv, and the image against SHA256SUMS;
  the image lands under its template name only after every check passed;
* a tarball can be read to its end through the same member checks as a restore
  (vzdump.scan_archive) without extracting anything, and must contain an init.

Plain Python, no Django: the host agent calls these.
"""
from __future__ import annotations

import fcntl
import hashlib
import http.client
import os
import re
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from .commands import CommandError, run
from .templates import NAME_RE
from .vzdump import scan_archive

CHUNK = 1 << 20
SMALL_FILE = 16 << 20          # index, SHA256SUMS, signatures: anything bigger is not what we asked for
PROGRESS_EVERY = 0.5           # seconds between progress() calls
LOG_EVERY = 10.0               # seconds between progress lines in the task log
INDEX_PATH = "/meta/1.0/index-system"
ROOTFS = "rootfs.tar.xz"
USER_AGENT = "vzpanel-template-fetch/1"
# Where a container's init can live; any one of them (file, hardlink or symlink) will do.
INIT_CANDIDATES = ("sbin/init", "usr/sbin/init", "lib/systemd/systemd", "usr/lib/systemd/systemd", "bin/busybox")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}\Z")
# An image directory from the index: an absolute path on the same server, nothing that could
# change the host ("@", "//"), add a query, or climb out of the server's tree ("..").
_IMAGE_PATH_RE = re.compile(r"^/(?:[A-Za-z0-9_:+~-][A-Za-z0-9._:+~-]*/)*\Z")


class FetchError(Exception):
    """A download or a check failed; the message is meant for the user.

    Whatever the failing call had written (a .partial file, a half-fetched image) is gone
    by the time this is raised. `status` is the HTTP status when the server answered with one.
    """

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------------------------------------
# Downloads


def _check_scheme(url: str) -> None:
    """Only http and https: urllib would happily read file:// or ftp:// URLs, which a user must
    not be able to point the host at."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise FetchError(f"only http:// and https:// URLs can be downloaded, not {url!r}")


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to http(s), and never from https down to plain http."""

    def http_error_302(self, req, fp, code, msg, headers):
        # Checked here, before urllib's own handling, so every refusal reads the same.
        location = headers.get("Location") or headers.get("URI")
        if location:
            newurl = urllib.parse.urljoin(req.full_url, location)
            old = urllib.parse.urlsplit(req.full_url).scheme.lower()
            new = urllib.parse.urlsplit(newurl).scheme.lower()
            if new not in ("http", "https"):
                raise FetchError(f"{req.full_url} redirects to {newurl!r}: only http(s) is allowed")
            if old == "https" and new == "http":
                raise FetchError(f"{req.full_url} redirects to the unencrypted {newurl!r}: refused")
        return super().http_error_302(req, fp, code, msg, headers)

    # The base class binds these to its own http_error_302: rebind them to the checking one.
    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def _open_partial(partial: Path):
    """Open (creating) `partial` for writing, locked, so that two downloads to the same
    destination cannot interleave their bytes. Returns the open file, truncated.

    The lock is taken on the inode; if another download renamed that inode into place between
    our open() and our lock, the name now belongs to a new file and we try again.
    """
    for _attempt in range(3):
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise FetchError(f"cannot write {partial}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            # Not ours: leave the file alone, the other download removes or renames it.
            raise FetchError(f"another download to {partial.name[:-len('.partial')]} is in progress") from None
        try:
            same = os.stat(partial).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)  # a crashed earlier download may have left bytes behind
            return os.fdopen(fd, "wb")
        os.close(fd)
    raise FetchError(f"cannot lock {partial}: it keeps being replaced")


def download(url: str, dest: Path, *, expected_sha256: str | None = None, max_bytes: int = 8 << 30,
             timeout: float = 60, progress: Callable[[int, int | None], None] | None = None) -> str:
    """Download `url` to `dest` and return the file's sha256 (hex).

    The data streams into "<dest>.partial" in 1 MiB chunks and is hashed on the way; only a
    complete download (as long as the server's Content-Length said, no longer than
    `max_bytes`, matching `expected_sha256` if given) is renamed to `dest`, replacing any
    file there. On any failure the .partial file is removed and FetchError raised.

    `timeout` applies to each network operation (connect, each read), not to the whole
    download, so that big templates on slow links still work while a dead server is noticed.
    `progress(bytes_done, bytes_total_or_None)` is called at the start, about twice a second,
    and at the end; an exception raised by it aborts the download (a way to cancel).
    Proxies from the usual environment variables (https_proxy, no_proxy...) are honoured.
    """
    _check_scheme(url)
    expected = None
    if expected_sha256 is not None:
        expected = expected_sha256.strip().lower()
        if not _SHA256_RE.match(expected):
            raise FetchError(f"{expected_sha256!r} is not a sha256 checksum (64 hex digits)")
    dest = Path(dest)
    partial = dest.with_name(dest.name + ".partial")
    out = _open_partial(partial)
    try:
        try:
            digest = _stream(url, out, max_bytes, timeout, progress)
            out.flush()
            os.fsync(out.fileno())  # on disk before the rename makes it look complete
        except FetchError:
            raise
        except urllib.error.HTTPError as exc:
            raise FetchError(f"{url}: the server answered {exc.code} {exc.reason}", status=exc.code) from None
        except urllib.error.URLError as exc:
            raise FetchError(f"cannot download {url}: {exc.reason}") from None
        except TimeoutError:
            raise FetchError(f"cannot download {url}: no answer for {timeout:g} s") from None
        except http.client.HTTPException as exc:
            raise FetchError(f"cannot download {url}: the connection broke ({type(exc).__name__})") from None
        except OSError as exc:
            raise FetchError(f"cannot download {url}: {exc.strerror or exc}") from None
        actual = digest.hexdigest()
        if expected is not None and actual != expected:
            raise FetchError(f"checksum mismatch: expected {expected}, got {actual}")
        os.replace(partial, dest)
    except BaseException:
        # Still holding the lock, so the file is ours to remove.
        partial.unlink(missing_ok=True)
        raise
    finally:
        out.close()
    return actual


def _stream(url: str, out, max_bytes: int, timeout: float,
            progress: Callable[[int, int | None], None] | None) -> "hashlib._Hash":
    """Copy the body of `url` into `out`; returns the sha256 object of what was written."""
    opener = urllib.request.build_opener(_RedirectHandler)
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
    digest = hashlib.sha256()
    done = 0
    with opener.open(request, timeout=timeout) as resp:
        length_header = resp.headers.get("Content-Length")
        length: int | None = None
        if length_header is not None:
            try:
                length = int(length_header)
            except ValueError:
                raise FetchError(f"{url}: the server sent a nonsensical Content-Length {length_header!r}") from None
            if length > max_bytes:
                raise FetchError(f"{url} is {length} bytes, more than the limit of {max_bytes} bytes")
        if progress is not None:
            progress(0, length)
        last = time.monotonic()
        while True:
            # Ask for at most one byte more than allowed: enough to notice, no more.
            chunk = resp.read(min(CHUNK, max_bytes - done + 1))
            if not chunk:
                break
            done += len(chunk)
            if done > max_bytes:
                raise FetchError(f"{url} is bigger than the limit of {max_bytes} bytes")
            digest.update(chunk)
            out.write(chunk)
            if progress is not None and time.monotonic() - last >= PROGRESS_EVERY:
                progress(done, length)
                last = time.monotonic()
    # http.client quietly returns less than Content-Length when the connection drops: check.
    if length is not None and done != length:
        raise FetchError(f"{url}: the download ended after {done} of {length} bytes")
    if progress is not None:
        progress(done, length)
    return digest


# ---------------------------------------------------------------------------------------------
# Signatures


def verify_signature(data: Path, signature: Path, keyring: Path) -> str:
    """Check the detached signature `signature` of `data` with gpgv against `keyring` only.

    `keyring` is a binary OpenPGP keyring (what `gpg --export` writes) or a keybox; gpgv
    trusts every key in it and nothing else. Returns the fingerprint of the key that made the
    signature (from gpgv's VALIDSIG status line). A bad signature, one by a key not in the
    keyring or a revoked one, or a "signature" file that carries signed data of its own (which
    gpgv could verify instead of `data`) raises FetchError with gpgv's words.
    """
    data, signature, keyring = Path(data), Path(signature), Path(keyring)
    for path, what in ((keyring, "keyring"), (signature, "signature"), (data, "signed file")):
        if not path.is_file():
            raise FetchError(f"cannot check the signature of {data.name}: the {what} {path} is missing")
    # Absolute paths: gpgv reads a --keyring without a slash from its home directory, and
    # file names starting with "-" would be taken for options.
    argv = ["gpgv", "--keyring", str(keyring.resolve()), "--status-fd", "1",
            str(signature.resolve()), str(data.resolve())]
    try:
        res = run(argv, timeout=1800, check=False)
    except CommandError as exc:  # gpgv missing or hung
        raise FetchError(f"cannot check the signature of {data.name}: {exc}") from None
    status = [line.split()[1:] for line in res.stdout.splitlines() if line.startswith("[GNUPG:] ")]
    kinds = {fields[0] for fields in status if fields}
    valid = [fields[1] for fields in status if len(fields) > 1 and fields[0] == "VALIDSIG"]
    said = " ".join(line.strip() for line in res.stderr.splitlines() if line.strip())
    if res.returncode != 0 or not valid:
        raise FetchError(f"bad signature on {data.name}: {said or 'gpgv found no valid signature'}")
    if "PLAINTEXT" in kinds:
        raise FetchError(f"{signature.name} is not a detached signature: it carries signed data of its own")
    if "REVKEYSIG" in kinds:
        raise FetchError(f"{data.name} is signed by a revoked key: {said}")
    return valid[0]


# ---------------------------------------------------------------------------------------------
# LXC image server


@dataclass
class ImageEntry:
    """One line of an LXC image server's index."""

    distribution: str
    release: str
    architecture: str
    variant: str
    serial: str
    path: str


def parse_lxc_index(text: str) -> list[ImageEntry]:
    """The entries of an LXC "index-system" file ("dist;release;arch;variant;serial;path" lines).

    Blank lines and lines that do not have exactly six non-empty fields are skipped: an
    index with some odd lines is still usable for the images it describes properly.
    """
    entries = []
    for line in text.splitlines():
        fields = [field.strip() for field in line.strip().split(";")]
        if len(fields) != 6 or not all(fields):
            continue
        entries.append(ImageEntry(*fields))
    return entries


def _available(values: Iterable[str]) -> str:
    return ", ".join(sorted(set(values))) or "nothing"


def choose_image(entries: list[ImageEntry], distribution: str, release: str, architecture: str,
                 variant: str = "default") -> ImageEntry:
    """The newest build (highest serial) of the image asked for.

    If there is none, FetchError says which part of the request did not match and what the
    index offers there instead, e.g. "no release 'trixy' of debian in the index; it has:
    bookworm, bullseye".
    """
    asked = f"{distribution} {release} {architecture} ({variant})"
    matches = [e for e in entries if e.distribution == distribution]
    if not matches:
        raise FetchError(f"no image for {asked}: the index has no distribution {distribution!r}; "
                         f"it has: {_available(e.distribution for e in entries)}")
    narrowed = [e for e in matches if e.release == release]
    if not narrowed:
        raise FetchError(f"no image for {asked}: the index has no release {release!r} of {distribution}; "
                         f"it has: {_available(e.release for e in matches)}")
    matches = narrowed
    narrowed = [e for e in matches if e.architecture == architecture]
    if not narrowed:
        raise FetchError(f"no image for {asked}: {distribution} {release} is not built for {architecture!r}; "
                         f"it is for: {_available(e.architecture for e in matches)}")
    matches = narrowed
    narrowed = [e for e in matches if e.variant == variant]
    if not narrowed:
        raise FetchError(f"no image for {asked}: {distribution} {release} {architecture} has no variant "
                         f"{variant!r}; it has: {_available(e.variant for e in matches)}")
    # Serials are "YYYYMMDD_HH:MM": fixed width, so the greatest string is the newest build.
    return max(narrowed, key=lambda e: e.serial)


def _image_dir_url(base: str, entry: ImageEntry) -> str:
    path = entry.path if entry.path.endswith("/") else entry.path + "/"
    if not _IMAGE_PATH_RE.match(path) or any(part in (".", "..") for part in path.split("/")):
        raise FetchError(f"the index gives the image {entry.distribution} {entry.release} an unusable path "
                         f"{entry.path!r}")
    return base + path


def _sha256_from_sums(sums: Path, filename: str) -> str:
    """The checksum SHA256SUMS gives for `filename` ("<hex>  name" or "<hex> *name" lines)."""
    found = set()
    for line in sums.read_text(errors="replace").splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) != 2:
            continue
        digest, name = parts[0].lower(), parts[1].lstrip("*")
        if name in (filename, "./" + filename) and _SHA256_RE.match(digest):
            found.add(digest)
    if not found:
        raise FetchError(f"SHA256SUMS has no checksum for {filename}")
    if len(found) > 1:
        raise FetchError(f"SHA256SUMS gives {filename} {len(found)} different checksums")
    return found.pop()


def _download_signature(url: str, dest: Path) -> None:
    """Fetch a detached signature; a missing one is a refusal, since a keyring was given."""
    try:
        download(url, dest, max_bytes=SMALL_FILE)
    except FetchError as exc:
        if exc.status == 404:
            raise FetchError(f"{url} does not exist: the file is not signed, and a keyring was given, "
                             "so it is refused", status=404) from None
        raise


def fetch_from_index(base_url: str, dest_dir: Path, name: str, distribution: str, release: str,
                     architecture: str, variant: str = "default", keyring: Path | None = None,
                     log: Callable[[str], None] = lambda m: None) -> tuple[Path, str]:
    """Fetch the newest matching image from an LXC image server into `dest_dir/<name>.tar.xz`.

    Layout (as images.linuxcontainers.org): the index at {base}/meta/1.0/index-system with a
    detached signature beside it (".asc"); each image directory {base}{entry.path} holds
    rootfs.tar.xz, rootfs.tar.xz.asc and SHA256SUMS.

    With a `keyring`, the index and the image must both carry a good signature by a key in
    it (a missing .asc is a refusal). Without one, only the checksum from SHA256SUMS is
    checked, which catches corruption but not a hostile server. The image is downloaded under
    a hidden temporary name in `dest_dir` (never a template name, so it never shows up in
    list_templates half-checked) and renamed to <name>.tar.xz, replacing an older one, only
    when every check passed. On any failure everything this call wrote is removed and
    FetchError raised. Returns (path, sha256).

    The rootfs is not inspected here: call check_rootfs_tarball() on the result.
    """
    if not NAME_RE.match(name or ""):
        raise FetchError(f"{name!r} is not a valid template name (letters, digits, '.', '_', '+', '-'; "
                         "at most 128 characters, starting with a letter or digit)")
    _check_scheme(base_url)
    dest_dir = Path(dest_dir)
    if not dest_dir.is_dir():
        raise FetchError(f"the template directory {dest_dir} does not exist")
    if keyring is not None and not Path(keyring).is_file():
        raise FetchError(f"the keyring {keyring} does not exist")
    base = base_url.rstrip("/")
    final = dest_dir / f"{name}.tar.xz"
    # Unique per call, so two fetches of the same name cannot remove each other's files.
    fd, staging_name = tempfile.mkstemp(dir=dest_dir, prefix=f".{name}.", suffix=".fetching")
    os.close(fd)
    staging = Path(staging_name)
    try:
        with tempfile.TemporaryDirectory(prefix="vzpanel-fetch-") as tmp:
            work = Path(tmp)
            index_url = base + INDEX_PATH
            log(f"Reading the image index {index_url}")
            download(index_url, work / "index-system", max_bytes=SMALL_FILE)
            if keyring is not None:
                _download_signature(index_url + ".asc", work / "index-system.asc")
                fingerprint = verify_signature(work / "index-system", work / "index-system.asc", keyring)
                log(f"The index is signed by {fingerprint}")
            entries = parse_lxc_index((work / "index-system").read_text(errors="replace"))
            entry = choose_image(entries, distribution, release, architecture, variant)
            image_url = _image_dir_url(base, entry)
            log(f"Image {entry.distribution} {entry.release} {entry.architecture} ({entry.variant}), "
                f"build {entry.serial}")
            download(image_url + "SHA256SUMS", work / "SHA256SUMS", max_bytes=SMALL_FILE)
            expected = _sha256_from_sums(work / "SHA256SUMS", ROOTFS)
            if keyring is not None:
                # Before the big download: an unsigned image is refused without fetching gigabytes.
                _download_signature(image_url + ROOTFS + ".asc", work / (ROOTFS + ".asc"))
            log(f"Downloading {image_url}{ROOTFS}")
            sha256 = download(image_url + ROOTFS, staging, expected_sha256=expected,
                              progress=_progress_logger(log))
            log(f"Checksum matches SHA256SUMS: {sha256}")
            if keyring is not None:
                fingerprint = verify_signature(staging, work / (ROOTFS + ".asc"), keyring)
                log(f"The image is signed by {fingerprint}")
            if final.exists():
                log(f"Replacing the existing template {final.name}")
            os.replace(staging, final)
    except BaseException:
        staging.unlink(missing_ok=True)
        staging.with_name(staging.name + ".partial").unlink(missing_ok=True)
        raise
    log(f"Template {final.name} is ready")
    return final, sha256


def _progress_logger(log: Callable[[str], None]) -> Callable[[int, int | None], None]:
    """A progress() for download() that writes a line to the task log every few seconds."""
    last = [time.monotonic()]

    def progress(done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - last[0] < LOG_EVERY:
            return
        last[0] = now
        mib = done / (1 << 20)
        log(f"  {mib:.0f} of {total / (1 << 20):.0f} MiB" if total else f"  {mib:.0f} MiB")

    return progress


# ---------------------------------------------------------------------------------------------
# Checking a tarball


@dataclass
class TemplateCheck:
    """What reading a template through the checks found."""

    members: int
    bytes: int        # the sum of the members' sizes: what unpacking it would write
    init: str         # the init found, as a path in the container ("/sbin/init")


def check_rootfs_tarball(path: Path | int, max_bytes: int | None = None) -> TemplateCheck:
    """Read the whole template (plain tar, gzip, zstd or xz) through the restore's member
    checks (vzdump.scan_archive), without extracting anything, and make sure it holds an init.

    Raises UnsafeArchive for what a restore refuses (a member that would land outside the root,
    a /dev, /proc, /sys or /etc that is not a directory, a header tar would read differently, an
    archive that is truncated, lies about sizes, does not decompress to its end or has data after
    it, or that unpacks to more than `max_bytes`); FetchError when it is not a root filesystem
    (none of /sbin/init, /usr/sbin/init, /lib/systemd/systemd, /usr/lib/systemd/systemd, /bin/busybox).
    """
    if not isinstance(path, int):  # an open fd (an upload) or a path (a file of the agent's own)
        path = Path(path)
        if not path.is_file():
            raise FetchError(f"{path} does not exist")
    report = scan_archive(path, max_bytes, watch=INIT_CANDIDATES)
    found = [name for name in INIT_CANDIDATES if name in report.watched]
    if not found:
        raise FetchError(f"{'the tarball' if isinstance(path, int) else path.name} is not a root filesystem: no /sbin/init, /usr/sbin/init, "
                         "/lib/systemd/systemd, /usr/lib/systemd/systemd or /bin/busybox in it")
    return TemplateCheck(members=report.members, bytes=report.bytes, init="/" + found[0])
