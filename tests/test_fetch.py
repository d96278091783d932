"""Template fetching and checking: a real HTTP server on 127.0.0.1, real gpg/gpgv, real xz/zstd/gzip.

No network beyond 127.0.0.1 and no Django: containers.engine.fetch is plain Python.
"""
from __future__ import annotations

import fcntl
import hashlib
import http.server
import io
import os
import socket
import subprocess
import tarfile
import threading
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import pytest

from containers.engine.fetch import (FetchError, ImageEntry, TemplateCheck, check_rootfs_tarball, choose_image,
                                     download, fetch_from_index, parse_lxc_index, verify_signature)
from containers.engine.vzdump import UnsafeArchive


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """urllib honours proxy variables: make sure 127.0.0.1 is talked to directly."""
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


# ---------------------------------------------------------------------------------------------
# A real HTTP server


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a directory, plus a few misbehaving URLs."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/lying":  # says 100000 bytes, sends 10 and hangs up
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            self.close_connection = True
        elif self.path.startswith("/endless"):  # no Content-Length, more than any limit in the tests
            self.protocol_version = "HTTP/1.0"
            self.send_response(200)
            self.end_headers()
            for _ in range(8):
                self.wfile.write(b"y" * (1 << 20))
            self.close_connection = True
        elif self.path in ("/to-ftp", "/to-file"):
            self.send_response(302)
            self.send_header("Location", "ftp://127.0.0.1/x" if self.path == "/to-ftp" else "file:///etc/passwd")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            super().do_GET()


@pytest.fixture
def server(tmp_path, request):
    root = tmp_path / "www"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()

    def stop():
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)

    request.addfinalizer(stop)
    return SimpleNamespace(root=root, url=f"http://127.0.0.1:{httpd.server_port}")


# ---------------------------------------------------------------------------------------------
# Real gpg: two throwaway keys, only the first in the keyring


def _gpg(home: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["gpg", "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", "", *args],
                          env={**os.environ, "GNUPGHOME": str(home)}, capture_output=True, check=True, **kwargs)


@pytest.fixture(scope="session")
def gpg(tmp_path_factory):
    base = tmp_path_factory.mktemp("gpg")
    homes = {}
    try:
        for who in ("good", "wrong"):
            home = base / who
            home.mkdir(mode=0o700)
            homes[who] = home
            _gpg(home, "--quick-gen-key", f"vzpanel {who} <{who}@example.test>", "ed25519", "sign", "never")
        keyring = base / "keyring.gpg"
        keyring.write_bytes(_gpg(homes["good"], "--export").stdout)
        listing = _gpg(homes["good"], "--with-colons", "--list-keys").stdout.decode()
        fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))

        def sign(path: Path, who: str = "good", detached: bool = True) -> Path:
            asc = path.with_name(path.name + ".asc")
            _gpg(homes[who], "--yes", "--armor", "--detach-sign" if detached else "--sign",
                 "-o", str(asc), str(path))
            return asc

        yield SimpleNamespace(keyring=keyring, fingerprint=fingerprint, sign=sign)
    finally:
        for home in homes.values():  # the gpg-agents these homes started
            subprocess.run(["gpgconf", "--kill", "all"], env={**os.environ, "GNUPGHOME": str(home)},
                           capture_output=True)


# ---------------------------------------------------------------------------------------------
# Root filesystem tarballs


def _member(name, kind=tarfile.REGTYPE, data=b"", linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.linkname = linkname
    info.mode = 0o755 if kind in (tarfile.DIRTYPE, tarfile.SYMTYPE) else 0o644
    return info, (data if kind == tarfile.REGTYPE else None)


def _tar(members, end=True) -> bytes:
    buf = io.BytesIO()
    tar = tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT)
    for info, data in members:
        tar.addfile(info, io.BytesIO(data) if data is not None else None)
    if end:
        tar.close()
    return buf.getvalue()


def _base(init=True, hostname=b"template\n"):
    members = [_member("./", tarfile.DIRTYPE), _member("./etc", tarfile.DIRTYPE),
               _member("./etc/hostname", data=hostname), _member("./sbin", tarfile.DIRTYPE),
               _member("./usr", tarfile.DIRTYPE), _member("./usr/share", tarfile.DIRTYPE),
               _member("./usr/share/blob", data=os.urandom(300_000))]
    if init:
        members.append(_member("./sbin/init", data=b"\x7fELF not really\n"))
    return members


COMPRESSORS = {"xz": ["xz", "-c", "-0", "-T1"], "zst": ["zstd", "-q", "-c"], "gz": ["gzip", "-c"], "none": None}


def _write(path: Path, tar_bytes: bytes, compress: str = "xz") -> Path:
    argv = COMPRESSORS[compress]
    path.write_bytes(tar_bytes if argv is None else subprocess.run(argv, input=tar_bytes, capture_output=True,
                                                                   check=True).stdout)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------
# download()


def test_download_with_good_checksum(server, tmp_path):
    blob = os.urandom(3 * (1 << 20) + 123)
    (server.root / "blob.bin").write_bytes(blob)
    dest = tmp_path / "out" / "blob.bin"
    dest.parent.mkdir()
    calls = []
    sha = download(f"{server.url}/blob.bin", dest, expected_sha256=hashlib.sha256(blob).hexdigest().upper(),
                   progress=lambda done, total: calls.append((done, total)))
    assert sha == hashlib.sha256(blob).hexdigest()
    assert dest.read_bytes() == blob
    assert [p.name for p in dest.parent.iterdir()] == ["blob.bin"]
    assert calls[0] == (0, len(blob)) and calls[-1] == (len(blob), len(blob))


def test_download_without_checksum_returns_it(server, tmp_path):
    (server.root / "a.txt").write_bytes(b"hello\n")
    assert download(f"{server.url}/a.txt", tmp_path / "a.txt") == hashlib.sha256(b"hello\n").hexdigest()


def test_wrong_checksum_leaves_nothing_and_keeps_an_older_file(server, tmp_path):
    (server.root / "blob.bin").write_bytes(b"new content")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(FetchError, match=r"checksum mismatch: expected 0{64}, got [0-9a-f]{64}"):
        download(f"{server.url}/blob.bin", out / "blob.bin", expected_sha256="0" * 64)
    assert list(out.iterdir()) == []
    (out / "blob.bin").write_bytes(b"old content")
    with pytest.raises(FetchError, match="checksum mismatch"):
        download(f"{server.url}/blob.bin", out / "blob.bin", expected_sha256="0" * 64)
    assert [p.name for p in out.iterdir()] == ["blob.bin"]
    assert (out / "blob.bin").read_bytes() == b"old content"


def test_a_malformed_expected_checksum_is_refused_before_downloading(server, tmp_path):
    with pytest.raises(FetchError, match="not a sha256"):
        download(f"{server.url}/x", tmp_path / "x", expected_sha256="abc")
    assert list(tmp_path.iterdir()) == [server.root]


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "127.0.0.1/x", "gopher://127.0.0.1/",
                                 "http:///nohost"])
def test_other_schemes_are_refused(tmp_path, url):
    with pytest.raises(FetchError, match="only http:// and https://"):
        download(url, tmp_path / "x")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path", ["/to-ftp", "/to-file"])
def test_redirects_to_other_schemes_are_refused(server, tmp_path, path):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(FetchError, match="redirect"):
        download(server.url + path, out / "x")
    assert list(out.iterdir()) == []


def test_max_bytes_by_content_length(server, tmp_path):
    (server.root / "big.bin").write_bytes(b"z" * (3 << 20))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(FetchError, match="more than the limit"):
        download(f"{server.url}/big.bin", out / "big.bin", max_bytes=1 << 20)
    assert list(out.iterdir()) == []


def test_max_bytes_while_streaming_without_content_length(server, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(FetchError, match="bigger than the limit"):
        download(f"{server.url}/endless", out / "e.bin", max_bytes=(2 << 20) + 5)
    assert list(out.iterdir()) == []


def test_short_body_against_content_length(server, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(FetchError, match="100000"):
        download(f"{server.url}/lying", out / "l.bin")
    assert list(out.iterdir()) == []


def test_http_404(server, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(FetchError, match="404") as caught:
        download(f"{server.url}/nothing-here.tar.xz", out / "t.tar.xz")
    assert caught.value.status == 404
    assert list(out.iterdir()) == []


def test_nobody_listening(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(FetchError, match="cannot download"):
        download(f"http://127.0.0.1:{port}/x", tmp_path / "x", timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_progress_can_cancel(server, tmp_path):
    (server.root / "blob.bin").write_bytes(b"q" * 1000)

    def cancel(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        download(f"{server.url}/blob.bin", tmp_path / "blob.bin", progress=cancel)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["www"]


def test_a_download_in_progress_is_neither_joined_nor_removed(server, tmp_path):
    (server.root / "blob.bin").write_bytes(b"data")
    partial_file = tmp_path / "blob.bin.partial"
    with open(partial_file, "wb") as held:  # another download holds it
        held.write(b"theirs")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(FetchError, match="in progress"):
            download(f"{server.url}/blob.bin", tmp_path / "blob.bin")
        assert partial_file.read_bytes() == b"theirs"
    # A stale .partial (its download died) is simply taken over.
    assert download(f"{server.url}/blob.bin", tmp_path / "blob.bin") == hashlib.sha256(b"data").hexdigest()
    assert not partial_file.exists() and (tmp_path / "blob.bin").read_bytes() == b"data"


# ---------------------------------------------------------------------------------------------
# verify_signature()


def test_signature_good_wrong_key_tampered(gpg, tmp_path):
    data = tmp_path / "data.txt"
    data.write_text("signed content\n")
    asc = gpg.sign(data)
    assert verify_signature(data, asc, gpg.keyring) == gpg.fingerprint

    data.write_text("signed content, changed\n")
    with pytest.raises(FetchError, match="bad signature on data.txt: .*BAD signature"):
        verify_signature(data, asc, gpg.keyring)

    data.write_text("signed content\n")
    wrong = gpg.sign(data, who="wrong")
    with pytest.raises(FetchError, match="bad signature on data.txt: .*[Nn]o public key"):
        verify_signature(data, wrong, gpg.keyring)


def test_signature_file_missing_or_not_detached(gpg, tmp_path):
    data = tmp_path / "data.txt"
    data.write_text("content\n")
    with pytest.raises(FetchError, match="missing"):
        verify_signature(data, tmp_path / "nothing.asc", gpg.keyring)
    # A signed message (not a detached signature) of other content: gpgv must not accept it for data.txt.
    other = tmp_path / "other.txt"
    other.write_text("something else entirely\n")
    inline = gpg.sign(other, detached=False)
    with pytest.raises(FetchError):
        verify_signature(data, inline, gpg.keyring)
    (tmp_path / "garbage.asc").write_text("not a signature\n")
    with pytest.raises(FetchError, match="bad signature"):
        verify_signature(data, tmp_path / "garbage.asc", gpg.keyring)


# ---------------------------------------------------------------------------------------------
# The index


INDEX = """\
debian;bookworm;amd64;default;20261101_05:24;/images/debian/bookworm/amd64/default/20261101_05:24/
debian;bookworm;amd64;default;20261120_05:24;/images/debian/bookworm/amd64/default/20261120_05:24/
debian;bookworm;amd64;default;20261115_05:24;/images/debian/bookworm/amd64/default/20261115_05:24/
debian;bookworm;arm64;default;20261120_05:24;/images/debian/bookworm/arm64/default/20261120_05:24/
debian;bookworm;amd64;cloud;20261120_05:24;/images/debian/bookworm/amd64/cloud/20261120_05:24/
debian;bullseye;amd64;default;20261120_05:24;/images/debian/bullseye/amd64/default/20261120_05:24/

this line is not an image
alpine;3.20;amd64;default;20261120_13:00
alpine;3.20;amd64;default;20261120_13:00;/images/alpine/3.20/amd64/default/20261120_13:00/
ubuntu;;amd64;default;20261120_13:00;/images/ubuntu/x/amd64/default/20261120_13:00/
"""


def test_parse_index_skips_blank_and_malformed_lines():
    entries = parse_lxc_index(INDEX)
    assert len(entries) == 7
    assert entries[0] == ImageEntry("debian", "bookworm", "amd64", "default", "20261101_05:24",
                                    "/images/debian/bookworm/amd64/default/20261101_05:24/")
    assert entries[-1].distribution == "alpine"
    assert parse_lxc_index("") == []


def test_choose_newest_serial():
    entries = parse_lxc_index(INDEX)
    chosen = choose_image(entries, "debian", "bookworm", "amd64")
    assert chosen.serial == "20261120_05:24" and chosen.variant == "default" and chosen.architecture == "amd64"
    assert choose_image(entries, "debian", "bookworm", "amd64", "cloud").variant == "cloud"


@pytest.mark.parametrize("ask, words", [
    (("gentoo", "current", "amd64"), ["'gentoo'", "alpine, debian"]),
    (("debian", "trixie", "amd64"), ["'trixie'", "bookworm, bullseye"]),
    (("debian", "bullseye", "arm64"), ["'arm64'", "amd64"]),
    (("debian", "bookworm", "arm64", "cloud"), ["'cloud'", "default"]),
])
def test_choose_unknown_names_what_was_asked_and_what_exists(ask, words):
    with pytest.raises(FetchError) as caught:
        choose_image(parse_lxc_index(INDEX), *ask)
    message = str(caught.value)
    assert " ".join(ask[:3]) in message
    for word in words:
        assert word in message, message


# ---------------------------------------------------------------------------------------------
# fetch_from_index()

NEW = "20261120_05:24"
OLD = "20261101_05:24"


def _publish(server, gpg, *, rootfs_key="good", index_key="good", tamper=False, rootfs_asc=True) -> Path:
    """An LXC image server tree: two builds of debian bookworm amd64 and one alpine. Returns the new rootfs."""
    lines = []
    newest = None
    for dist, release, serial, hostname in (("debian", "bookworm", OLD, b"old\n"), ("debian", "bookworm", NEW, b"new\n"),
                                            ("alpine", "3.20", NEW, b"alpine\n")):
        rel = f"/images/{dist}/{release}/amd64/default/{serial}/"
        lines.append(f"{dist};{release};amd64;default;{serial};{rel}")
        image_dir = server.root / rel.strip("/")
        image_dir.mkdir(parents=True)
        rootfs = _write(image_dir / "rootfs.tar.xz", _tar(_base(hostname=hostname)))
        (image_dir / "SHA256SUMS").write_text(f"{_sha(rootfs)}  rootfs.tar.xz\n{'1' * 64}  meta.tar.xz\n")
        if rootfs_asc:
            gpg.sign(rootfs, who=rootfs_key)
        if dist == "debian" and serial == NEW:
            newest = rootfs
    if tamper:
        _write(newest, _tar(_base(hostname=b"evil\n")))
    meta = server.root / "meta" / "1.0"
    meta.mkdir(parents=True)
    index = meta / "index-system"
    index.write_text("\n".join(lines) + "\n")
    if index_key:
        gpg.sign(index, who=index_key)
    return newest


@pytest.fixture
def cache(tmp_path):
    path = tmp_path / "cache"
    path.mkdir()
    return path


def test_fetch_signed_image(server, gpg, cache):
    newest = _publish(server, gpg)
    logs = []
    path, sha = fetch_from_index(server.url + "/", cache, "debian-12", "debian", "bookworm", "amd64",
                                 keyring=gpg.keyring, log=logs.append)
    assert path == cache / "debian-12.tar.xz"
    assert sha == _sha(newest) == _sha(path)
    assert [p.name for p in cache.iterdir()] == ["debian-12.tar.xz"]
    assert any(gpg.fingerprint in line for line in logs), logs
    assert any(NEW in line for line in logs), logs
    report = check_rootfs_tarball(path)
    assert report.init == "/sbin/init" and report.members == 8
    # Newest build chosen: its hostname is "new".
    out = subprocess.run(["tar", "-xOJf", str(path), "./etc/hostname"], capture_output=True, check=True).stdout
    assert out == b"new\n"


def test_fetch_replaces_an_older_template_only_when_good(server, gpg, cache):
    _publish(server, gpg, rootfs_key="wrong")
    (cache / "debian-12.tar.xz").write_bytes(b"the template we had")
    with pytest.raises(FetchError, match="bad signature"):
        fetch_from_index(server.url, cache, "debian-12", "debian", "bookworm", "amd64", keyring=gpg.keyring)
    assert [p.name for p in cache.iterdir()] == ["debian-12.tar.xz"]
    assert (cache / "debian-12.tar.xz").read_bytes() == b"the template we had"


def test_fetch_tampered_rootfs_is_refused(server, gpg, cache):
    _publish(server, gpg, tamper=True)
    with pytest.raises(FetchError, match="checksum mismatch"):
        fetch_from_index(server.url, cache, "debian-12", "debian", "bookworm", "amd64", keyring=gpg.keyring)
    assert list(cache.iterdir()) == []


def test_fetch_rootfs_signed_by_the_wrong_key_is_refused(server, gpg, cache):
    _publish(server, gpg, rootfs_key="wrong")
    with pytest.raises(FetchError, match="bad signature on .*[Nn]o public key"):
        fetch_from_index(server.url, cache, "debian-12", "debian", "bookworm", "amd64", keyring=gpg.keyring)
    assert list(cache.iterdir()) == []


def test_fetch_index_signed_by_the_wrong_key_is_refused(server, gpg, cache):
    _publish(server, gpg, index_key="wrong")
    with pytest.raises(FetchError, match="bad signature on index-system"):
        fetch_from_index(server.url, cache, "debian-12", "debian", "bookworm", "amd64", keyring=gpg.keyring)
    assert list(cache.iterdir()) == []


def test_fetch_missing_signature_with_keyring_is_refused(server, gpg, cache):
    _publish(server, gpg, rootfs_asc=False)
    with pytest.raises(FetchError, match="not signed"):
        fetch_from_index(server.url, cache, "debian-12", "debian", "bookworm", "amd64", keyring=gpg.keyring)
    assert list(cache.iterdir()) == []


def test_fetch_unsigned_index_with_keyring_is_refused(server, gpg, cache):
    _publish(server, gpg, index_key=None)
    with pytest.raises(FetchError, match="not signed"):
        fetch_from_index(server.url, cache, "debian-12", "debian", "bookworm", "amd64", keyring=gpg.keyring)
    assert list(cache.iterdir()) == []


def test_fetch_without_keyring_checks_the_checksum_only(server, gpg, cache):
    newest = _publish(server, gpg, rootfs_asc=False, index_key=None)
    path, sha = fetch_from_index(server.url, cache, "deb", "debian", "bookworm", "amd64")
    assert path == cache / "deb.tar.xz" and sha == _sha(newest)
    assert [p.name for p in cache.iterdir()] == ["deb.tar.xz"]


def test_fetch_without_keyring_still_refuses_a_tampered_rootfs(server, gpg, cache):
    _publish(server, gpg, tamper=True)
    with pytest.raises(FetchError, match="checksum mismatch"):
        fetch_from_index(server.url, cache, "deb", "debian", "bookworm", "amd64")
    assert list(cache.iterdir()) == []


def test_fetch_unknown_image_lists_what_exists(server, gpg, cache):
    _publish(server, gpg)
    with pytest.raises(FetchError, match="'fedora'.*alpine, debian"):
        fetch_from_index(server.url, cache, "f", "fedora", "40", "amd64", keyring=gpg.keyring)
    assert list(cache.iterdir()) == []


@pytest.mark.parametrize("name", ["../evil", "", ".hidden", "a/b", "x" * 200])
def test_fetch_refuses_bad_names(server, gpg, cache, name):
    _publish(server, gpg)
    with pytest.raises(FetchError, match="not a valid template name"):
        fetch_from_index(server.url, cache, name, "debian", "bookworm", "amd64")
    assert list(cache.iterdir()) == []


def test_fetch_refuses_other_schemes_and_odd_index_paths(server, gpg, cache):
    with pytest.raises(FetchError, match="only http"):
        fetch_from_index("file:///srv/images", cache, "d", "debian", "bookworm", "amd64")
    meta = server.root / "meta" / "1.0"
    meta.mkdir(parents=True)
    for bad in ("/images/../../etc/", "@evil.example/x/", "images/relative/", "/a b/"):
        (meta / "index-system").write_text(f"debian;bookworm;amd64;default;1;{bad}\n")
        with pytest.raises(FetchError, match="unusable path"):
            fetch_from_index(server.url, cache, "d", "debian", "bookworm", "amd64")
    assert list(cache.iterdir()) == []


def test_fetch_sums_without_the_rootfs_line(server, gpg, cache):
    newest = _publish(server, gpg)
    (newest.parent / "SHA256SUMS").write_text(f"{'2' * 64}  meta.tar.xz\n")
    with pytest.raises(FetchError, match="no checksum for rootfs.tar.xz"):
        fetch_from_index(server.url, cache, "d", "debian", "bookworm", "amd64", keyring=gpg.keyring)
    assert list(cache.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# check_rootfs_tarball()


@pytest.mark.parametrize("compress", ["zst", "gz", "xz", "none"])
def test_good_rootfs_in_every_compression(tmp_path, compress):
    path = _write(tmp_path / f"t.tar.{compress}", _tar(_base()), compress)
    report = check_rootfs_tarball(path)
    assert isinstance(report, TemplateCheck)
    assert report.init == "/sbin/init"
    assert report.members == 8
    assert report.bytes == len(b"template\n") + 300_000 + len(b"\x7fELF not really\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # nothing extracted


@pytest.mark.parametrize("extra, init", [
    ([_member("./bin", tarfile.DIRTYPE), _member("./bin/busybox", data=b"bb"),
      _member("./sbin/init", tarfile.SYMTYPE, linkname="/bin/busybox")], "/sbin/init"),
    ([_member("./usr/lib", tarfile.DIRTYPE), _member("./usr/lib/systemd", tarfile.DIRTYPE),
      _member("./usr/lib/systemd/systemd", data=b"sd")], "/usr/lib/systemd/systemd"),
    ([_member("./bin", tarfile.DIRTYPE), _member("./bin/busybox", data=b"bb")], "/bin/busybox"),
    ([_member("./lib", tarfile.DIRTYPE), _member("./lib/systemd", tarfile.DIRTYPE),
      _member("./lib/systemd/systemd", data=b"sd"),
      _member("./sbin/init", tarfile.LNKTYPE, linkname="./lib/systemd/systemd")], "/sbin/init"),
])
def test_other_inits_are_found(tmp_path, extra, init):
    path = _write(tmp_path / "t.tar.xz", _tar(_base(init=False) + extra))
    assert check_rootfs_tarball(path).init == init


def test_no_init_is_not_a_root_filesystem(tmp_path):
    path = _write(tmp_path / "t.tar.xz", _tar(_base(init=False) + [_member("./sbin/init", tarfile.DIRTYPE)]))
    with pytest.raises(FetchError, match=r"t.tar.xz is not a root filesystem: no /sbin/init"):
        check_rootfs_tarball(path)
    nested = _write(tmp_path / "n.tar.gz", _tar([_member("./rootfs", tarfile.DIRTYPE),
                                                 _member("./rootfs/sbin", tarfile.DIRTYPE),
                                                 _member("./rootfs/sbin/init", data=b"x")]), "gz")
    with pytest.raises(FetchError, match="not a root filesystem"):
        check_rootfs_tarball(nested)
    with pytest.raises(FetchError, match="not a root filesystem"):
        check_rootfs_tarball(_write(tmp_path / "empty.tar", _tar([]), "none"))


HOSTILE = {
    "absolute path": [_member("/etc/vzpanel-pwned", data=b"x")],
    "dot-dot": [_member("./../../vzpanel-pwned", data=b"x")],
    "symlink escape": [_member("./escape", tarfile.SYMTYPE, linkname="/tmp"),
                       _member("./escape/vzpanel-pwned", data=b"x")],
    "hardlink outside": [_member("./passwd-link", tarfile.LNKTYPE, linkname="/etc/passwd")],
    "hardlink to nothing": [_member("./orphan", tarfile.LNKTYPE, linkname="./not/there")],
}


def _hostile(case: str) -> bytes:
    members = _base()
    if case in HOSTILE:
        return _tar(members + HOSTILE[case])
    if case == "truncated":
        return _tar(members + [_member("./srv", tarfile.DIRTYPE), _member("./srv/big", data=os.urandom(200_000))],
                    end=False)[:-150_000]
    # "size lies": a header that says more bytes follow than the archive holds
    info, payload = _member("./srv-short", data=b"x" * 100)
    info.size = 10_000_000
    return _tar(members, end=False) + info.tobuf(tarfile.GNU_FORMAT) + payload.ljust(512, b"\0")


@pytest.mark.parametrize("compress", ["xz", "none"])
@pytest.mark.parametrize("case", list(HOSTILE) + ["truncated", "size lies"])
def test_hostile_members_are_unsafe(tmp_path, case, compress):
    path = _write(tmp_path / "t.tar", _hostile(case), compress)
    with pytest.raises(UnsafeArchive, match=r"absolute|'\.\.'|symlink|hardlink|does not add up"):
        check_rootfs_tarball(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.tar"]
    assert not Path("/tmp/vzpanel-pwned").exists()


def test_broken_compression_and_garbage_are_unsafe(tmp_path):
    good = _write(tmp_path / "good.tar.xz", _tar(_base()))
    cut = tmp_path / "cut.tar.xz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(UnsafeArchive, match="does not add up"):
        check_rootfs_tarball(cut)
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(os.urandom(4096))
    with pytest.raises(UnsafeArchive, match="does not add up"):
        check_rootfs_tarball(garbage)


def test_max_bytes(tmp_path):
    path = _write(tmp_path / "t.tar.zst", _tar(_base()), "zst")
    with pytest.raises(UnsafeArchive, match="more than"):
        check_rootfs_tarball(path, max_bytes=100_000)
    assert check_rootfs_tarball(path, max_bytes=1 << 20).members == 8


def test_missing_file(tmp_path):
    with pytest.raises(FetchError, match="does not exist"):
        check_rootfs_tarball(tmp_path / "nope.tar.xz")
