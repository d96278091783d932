"""File operations inside a tree the agent does not own: a container's root filesystem, an
unpacked archive. The only module that opens, reads, writes, chowns or deletes paths there.

A process in the container can swap any directory for a symlink at any moment, so a path that
was checked and then used may not be the path used. Here:

- every path is resolved one component at a time from a directory fd held open (openat with
  O_NOFOLLOW|O_DIRECTORY); '..' is refused, a leading '/' means the tree's root;
- only directories and regular files are ever opened: a file is first opened O_PATH (which opens
  nothing) and checked, so a planted FIFO, device node or symlink is refused before it is used;
- files are read with a size cap, written atomically (a new file made O_EXCL|O_NOFOLLOW in the
  held directory, then renamed over the old), and owners and modes are set through the fd;
- `Tree.resolve` is the one place that follows links, as the container would: inside the tree,
  absolute links restarting at its root, with a bounded number of hops.

External tools that walk a live tree by path (rsync, tar) get `readonly_view`: a read-only bind
mount with nosymfollow, on which a link swapped in mid-copy is read as a link, never followed.
"""
from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import tempfile
from pathlib import Path
from typing import Iterator

from .commands import CommandError, run

MAX_HOPS = 40  # symlinks followed by one resolve(), as the kernel's own limit
ST_NOSYMFOLLOW = 0x2000  # statvfs f_flag of a nosymfollow mount (linux/statfs.h)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_REASONS = {
    errno.ELOOP: "it is a symbolic link",
    errno.ENOTDIR: "a part of the path is not a directory",
    errno.ENOENT: "it does not exist",
    errno.EISDIR: "it is a directory",
    errno.ENOSPC: "no space left on the disk",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EROFS: "the filesystem is read-only",
    errno.ENAMETOOLONG: "the name is too long",
    errno.ENOTEMPTY: "it is a directory that is not empty",
    errno.EEXIST: "something else is in its place",
}


class SafeFsError(Exception):
    """A file operation inside a tree the agent does not own was refused or failed (one line).
    `errno` is the system's error number when there was one (ENOENT: nothing there)."""

    def __init__(self, message: str, errno_: int | None = None):
        super().__init__(message)
        self.errno = errno_


def _split(path: str) -> list[str]:
    """The components of a path inside the tree; '/' and '' are its root."""
    if "\0" in path:
        raise SafeFsError(f"refusing the path {path!r}: it contains a NUL byte")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise SafeFsError(f"refusing the path {path!r}: it climbs with '..'")
    return parts


class Tree:
    """A directory the agent does not own, held open; every path given is inside it.

    `label` names the tree in error messages ("the container", "the archive")."""

    def __init__(self, root: str | os.PathLike | int, label: str = "the container", _prefix: str = ""):
        self.label, self.prefix = label, _prefix
        if isinstance(root, int):
            self.fd = root
            return
        try:
            self.fd = os.open(root, _DIR_FLAGS)
        except OSError as exc:
            raise SafeFsError(f"cannot open the root of {label} ({root}): {_reason(exc)}", exc.errno) from None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "Tree":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    # -- walking ---------------------------------------------------------------------------
    def _shown(self, parts: list[str]) -> str:
        return "/" + "/".join([*([self.prefix] if self.prefix else []), *parts])

    def _fail(self, doing: str, parts: list[str], exc: OSError, at: list[str] | None = None) -> SafeFsError:
        where = f"{self._shown(at)}: " if at is not None and at != parts else ""
        return SafeFsError(f"cannot {doing} {self._shown(parts)} in {self.label}: {where}{_reason(exc)}", exc.errno)

    def _walk(self, parts: list[str], doing: str, target: list[str], create: int | None = None,
              owner: tuple[int, int] | None = None) -> int:
        """A new fd of the directory `parts`, entered one component at a time, never through a
        link; missing directories are made with mode `create` (and `owner`) when it is given."""
        fd = os.dup(self.fd)
        try:
            for i, part in enumerate(parts):
                try:
                    nfd = self._enter(fd, part, create, owner)
                except OSError as exc:
                    if exc.errno in (errno.ENOTDIR, errno.ELOOP):
                        exc = _what_is_there(fd, part) or exc  # "a symbolic link" says more
                    raise self._fail(doing, target, exc, at=parts[:i + 1]) from None
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd

    @staticmethod
    def _enter(fd: int, name: str, create: int | None, owner: tuple[int, int] | None) -> int:
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            if create is None:
                raise
        try:
            os.mkdir(name, create, dir_fd=fd)
        except FileExistsError:
            return os.open(name, _DIR_FLAGS, dir_fd=fd)  # made meanwhile: not ours to chown
        nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
        os.fchmod(nfd, create)  # exactly the mode asked for, whatever the umask
        if owner:
            os.fchown(nfd, *owner)
        return nfd

    @contextlib.contextmanager
    def _parent(self, path: str, doing: str, create: int | None = None) -> Iterator[tuple[int, str, list[str]]]:
        """(fd of the directory holding `path`, its last component, all its components)."""
        parts = _split(path)
        if not parts:
            raise SafeFsError(f"cannot {doing} the root of {self.label} as a file")
        fd = self._walk(parts[:-1], doing, parts, create)
        try:
            yield fd, parts[-1], parts
        finally:
            os.close(fd)

    def subtree(self, path: str, create: int | None = None, owner: tuple[int, int] | None = None) -> "Tree":
        """The directory `path` as a Tree of its own, held open: whatever is renamed or swapped
        meanwhile, every later operation on it goes to this same directory."""
        parts = _split(path)
        prefix = "/".join([*([self.prefix] if self.prefix else []), *parts])
        return Tree(self._walk(parts, "open", parts, create, owner), self.label, prefix)

    def _open_file(self, dir_fd: int, name: str, flags: int, parts: list[str], doing: str) -> int:
        """Open a regular file, having checked what it is before opening it for real (opening a
        device node or a FIFO can act on the host, or block)."""
        try:
            pfd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError as exc:
            raise self._fail(doing, parts, exc) from None
        try:
            kind = stat.S_IFMT(os.fstat(pfd).st_mode)
            if kind != stat.S_IFREG:
                raise SafeFsError(f"cannot {doing} {self._shown(parts)} in {self.label}: it is "
                                  f"{_KINDS.get(kind, 'not a regular file')}")
            # The same inode, reopened: nothing is looked up by name again.
            return os.open(f"/proc/self/fd/{pfd}", flags | os.O_CLOEXEC)
        except OSError as exc:
            raise self._fail(doing, parts, exc) from None
        finally:
            os.close(pfd)

    # -- reading ---------------------------------------------------------------------------
    def read(self, path: str, limit: int, missing_ok: bool = False) -> bytes | None:
        """The bytes of a regular file; refused if it holds more than `limit` (a sparse file's
        size is looked at first, so it is never read). None if missing and `missing_ok`."""
        try:
            with self._parent(path, "read") as (dir_fd, name, parts):
                fd = self._open_file(dir_fd, name, os.O_RDONLY, parts, "read")
        except SafeFsError as exc:
            if missing_ok and exc.errno == errno.ENOENT:
                return None
            raise
        with os.fdopen(fd, "rb") as fh:
            size = os.fstat(fd).st_size
            data = fh.read(limit + 1) if size <= limit else b""
            if size > limit or len(data) > limit:
                raise SafeFsError(f"cannot read {self._shown(parts)} in {self.label}: it is larger than "
                                  f"{_size_text(limit)} ({_size_text(max(size, len(data)))}), so it was not read")
            return data

    def read_text(self, path: str, limit: int, missing_ok: bool = False) -> str | None:
        data = self.read(path, limit, missing_ok)
        return None if data is None else data.decode("utf-8", "replace")

    def lstat(self, path: str) -> os.stat_result | None:
        """The entry itself (a link is not followed), or None if nothing is there."""
        try:
            with self._parent(path, "look at") as (dir_fd, name, parts):
                try:
                    return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                except OSError as exc:
                    raise self._fail("look at", parts, exc) from None
        except SafeFsError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise

    def readlink(self, path: str) -> str | None:
        """The target of the symlink at `path`, or None if nothing or something else is there."""
        try:
            with self._parent(path, "read the link") as (dir_fd, name, _parts):
                return os.readlink(name, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.ENOENT):
                return None
            raise self._fail("read the link", _split(path), exc) from None
        except SafeFsError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise

    def listdir(self, path: str = "") -> list[str]:
        """Names in a directory of the tree ([] if it is not there)."""
        parts = _split(path)
        try:
            fd = self._walk(parts, "list", parts)
        except SafeFsError as exc:
            if exc.errno == errno.ENOENT:
                return []
            raise
        try:
            return os.listdir(fd)
        finally:
            os.close(fd)

    def resolve(self, path: str, hops: int = MAX_HOPS) -> str | None:
        """Where `path` leads inside the tree, following symlinks as the container would: an
        absolute link starts again at the tree's root and '..' never climbs above it. Returns the
        path without links ('' for the root), or None if it leads nowhere or loops. Use the result
        with the other methods: they never follow a link, so a later swap makes them fail."""
        if "\0" in path:
            return None
        pending = [p for p in path.split("/") if p not in ("", ".")]
        walked: list[tuple[str, int]] = []  # the directories entered, with their fds
        try:
            while pending:
                part = pending.pop(0)
                if part == "..":
                    if walked:
                        os.close(walked.pop()[1])
                    continue
                here = walked[-1][1] if walked else self.fd
                try:
                    st = os.stat(part, dir_fd=here, follow_symlinks=False)
                    if stat.S_ISLNK(st.st_mode):
                        hops -= 1
                        if hops < 0:
                            return None
                        target = os.readlink(part, dir_fd=here)
                        if target.startswith("/"):
                            while walked:
                                os.close(walked.pop()[1])
                        pending = [p for p in target.split("/") if p not in ("", ".")] + pending
                        continue
                    if not pending:
                        return "/".join([name for name, _fd in walked] + [part])
                    walked.append((part, os.open(part, _DIR_FLAGS, dir_fd=here)))
                except OSError:
                    return None  # missing, not a directory, or swapped meanwhile
            return "/".join(name for name, _fd in walked)
        finally:
            for _name, fd in walked:
                os.close(fd)

    def read_resolved(self, path: str, limit: int) -> bytes | None:
        """The file `path` leads to inside the tree (see resolve), or None if it leads nowhere."""
        found = self.resolve(path)
        return None if found is None else self.read(found, limit, missing_ok=True)

    # -- writing ---------------------------------------------------------------------------
    def write(self, path: str, data: bytes | str, mode: int = 0o644, owner: tuple[int, int] | None = None,
              make_dirs: int | None = None, fsync: bool = False) -> None:
        """Replace `path` atomically with `data`: a new file (never an existing one, never through a
        link) written in the held directory, then renamed over whatever was there."""
        if isinstance(data, str):
            data = data.encode()
        with self._parent(path, "write", make_dirs) as (dir_fd, name, parts):
            tmp = _temporary_name(name)
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                             dir_fd=dir_fd)
            except OSError as exc:
                raise self._fail("write", parts, exc) from None
            try:
                with os.fdopen(fd, "wb") as fh:
                    if owner:
                        os.fchown(fd, *owner)
                    os.fchmod(fd, mode)
                    fh.write(data)
                    fh.flush()
                    if fsync:
                        os.fsync(fd)
                os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except BaseException as exc:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=dir_fd)
                if isinstance(exc, OSError):
                    raise self._fail("write", parts, exc) from None
                raise

    def symlink(self, path: str, target: str, make_dirs: int | None = None) -> None:
        """Make `path` a symlink to `target`, replacing what is there atomically. The link is only
        written, never followed by the agent."""
        with self._parent(path, "make the link", make_dirs) as (dir_fd, name, parts):
            tmp = _temporary_name(name)
            try:
                os.symlink(target, tmp, dir_fd=dir_fd)
                os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=dir_fd)
                raise self._fail("make the link", parts, exc) from None

    def makedirs(self, path: str, mode: int = 0o755, owner: tuple[int, int] | None = None) -> None:
        """mkdir -p inside the tree; the directories it makes get `mode` (and `owner`)."""
        parts = _split(path)
        os.close(self._walk(parts, "make", parts, mode, owner))

    def unlink(self, path: str, missing_ok: bool = True) -> None:
        """Remove a file or link (never what a link points to)."""
        try:
            with self._parent(path, "remove") as (dir_fd, name, parts):
                try:
                    os.unlink(name, dir_fd=dir_fd)
                except OSError as exc:
                    raise self._fail("remove", parts, exc) from None
        except SafeFsError as exc:
            if not (missing_ok and exc.errno == errno.ENOENT):
                raise

    def set_owner(self, path: str, owner: tuple[int, int] | None = None, mode: int | None = None) -> None:
        """chown and chmod a directory or regular file of the tree through its fd ('' is the tree)."""
        parts = _split(path)
        st = self.lstat(path) if parts else None
        if not parts or (st is not None and stat.S_ISDIR(st.st_mode)):
            fd = self._walk(parts, "change the owner of", parts)
        else:
            with self._parent(path, "change the owner of") as (dir_fd, name, _parts):
                fd = self._open_file(dir_fd, name, os.O_RDONLY, parts, "change the owner of")
        try:
            if owner:
                os.fchown(fd, *owner)
            if mode is not None:
                os.fchmod(fd, mode)
        except OSError as exc:
            raise self._fail("change the owner of", parts, exc) from None
        finally:
            os.close(fd)


_KINDS = {stat.S_IFREG: "a regular file", stat.S_IFLNK: "a symbolic link", stat.S_IFDIR: "a directory", stat.S_IFIFO: "a FIFO",
          stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}


def _what_is_there(dir_fd: int, name: str) -> OSError | None:
    """An error naming what stands where a directory was expected (a symbolic link, a FIFO...)."""
    try:
        kind = stat.S_IFMT(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return None
    return OSError(0, f"it is {_KINDS[kind]}, not a directory") if kind in _KINDS else None


def _temporary_name(name: str) -> str:
    """A fresh name beside `name`: made with O_EXCL, so nothing planted there is ever used."""
    return f".{name[:200]}.vzpanel-{secrets.token_hex(6)}"


def _reason(exc: OSError) -> str:
    text = _REASONS.get(exc.errno) or exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


def _size_text(n: int) -> str:
    return f"{n / (1 << 20):.0f} MiB" if n >= 1 << 20 else f"{n / 1024:.0f} KiB" if n >= 1024 else f"{n} bytes"


# -- a read-only, nosymfollow view for external tools ----------------------------------------------
VIEW_PREFIX = "view-"


@contextlib.contextmanager
def readonly_view(tree: str | os.PathLike, private_dir: str | os.PathLike, name: str = "tree") -> Iterator[Path]:
    """A read-only bind mount of `tree` on which no symlink is ever followed (nosymfollow), at
    `private_dir`/view-XXXX/`name` (the agent's own directory, mode 0700), unmounted when the block
    ends. `name` (e.g. "CTID/rootfs") only makes the path say what it is, in ps and in logs.

    For rsync and tar reading a container's files: they see links with lstat and copy them with
    readlink, which nosymfollow leaves alone; when the container swaps a directory for a link
    mid-copy, opening a path through that link fails instead of reaching the host."""
    private = Path(private_dir)
    private.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(private, 0o700)
    base = Path(tempfile.mkdtemp(prefix=VIEW_PREFIX, dir=private))
    mountpoint = base / name
    mounted = False
    try:
        mountpoint.mkdir(parents=True)
        try:
            run(["mount", "--bind", "--make-private", str(tree), str(mountpoint)], timeout=60)
            mounted = True
            run(["mount", "-o", "remount,bind,ro,nosymfollow", str(mountpoint)], timeout=60)
        except CommandError as exc:
            raise SafeFsError(f"cannot make a read-only view of {tree}: {exc.output}") from None
        flags = os.statvfs(mountpoint).f_flag
        if not (flags & os.ST_RDONLY and flags & ST_NOSYMFOLLOW):
            raise SafeFsError(f"the view of {tree} is not read-only with nosymfollow (kernel 5.10 or later needed)")
        yield mountpoint
    finally:
        if mounted:
            _unmount(mountpoint)
        _remove_empty_dirs(base)


def _unmount(mountpoint: Path) -> None:
    if run(["umount", str(mountpoint)], check=False, timeout=120).returncode != 0:
        run(["umount", "-l", str(mountpoint)], check=False, timeout=120)


def _remove_empty_dirs(base: Path) -> None:
    """rmdir `base` and the directories below it, deepest first: never a recursive delete, which
    could reach into a view that failed to unmount."""
    for dirpath, _dirs, _files in sorted(os.walk(base), key=lambda entry: -len(entry[0])):
        with contextlib.suppress(OSError):
            os.rmdir(dirpath)


def release_views(private_dir: str | os.PathLike) -> list[Path]:
    """Unmount and remove the views an interrupted agent left in `private_dir`; returns them."""
    private = Path(private_dir)
    if not private.is_dir():
        return []
    with open("/proc/self/mountinfo") as fh:
        points = [line.split()[4] for line in fh]
    released = []
    for base in sorted(private.glob(f"{VIEW_PREFIX}*")):
        for point in sorted((p for p in points if p.startswith(f"{base}/")), key=len, reverse=True):
            _unmount(Path(point))
        _remove_empty_dirs(base)
        released.append(base)
    return released


def resolved_name(root: str | os.PathLike, path: str) -> str | None:
    """The name of what `path` leads to inside `root`, as the container would resolve it (e.g.
    "systemd" or "busybox" for sbin/init); None if it leads nowhere."""
    try:
        with Tree(root) as tree:
            found = tree.resolve(path)
    except SafeFsError:
        return None
    return None if found is None else found.rsplit("/", 1)[-1]


def root_only_dir(path: str | os.PathLike, what: str = "directory") -> Path:
    """`path` (absolute) if root alone can change it and every directory above it: owned by root and
    not writable by group or others (a world-writable directory with the sticky bit, like /tmp, is
    fine above it: nobody else can rename or replace root's entries there). The part of it that does
    not exist yet is checked at its nearest existing parent. Where the agent keeps containers,
    templates and archives comes from database rows, which the web user can write: this keeps such a
    row from pointing root at a directory that user prepared (with an LXC hook in a config, say)."""
    path = Path(path)
    if not path.is_absolute() or ".." in path.parts:
        raise SafeFsError(f"the {what} {path} is not an absolute path without '..'")
    current = Path("/")
    for part in ("/", *path.parts[1:]):
        current = current / part if part != "/" else current
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            break  # the agent makes the rest itself, as root
        if stat.S_ISLNK(st.st_mode):
            raise SafeFsError(f"the {what} {path} goes through the symbolic link {current}")
        sticky = st.st_mode & stat.S_ISVTX and current != path
        if st.st_uid != 0 or (st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not sticky):
            raise SafeFsError(f"the {what} {path} is not root's alone ({current} is owned by uid {st.st_uid}, "
                              f"mode {stat.S_IMODE(st.st_mode):o}): the agent works only in directories "
                              "that no other user can change")
    return path
