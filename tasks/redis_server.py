"""The redis-server that `make run` (and the tests) start: as the `redis` system user, on a unix socket
that only root, redis and the web user's group reach, where every client must log in.

Layout under the var directory:
  redis-admin.pass  root 0600           the administrator's password (tasks/redis_acl.py)
  redis-web.pass    root:WEBGROUP 0640  the web side's password
  redis/            redis 0700          redis.conf (password hashes only) and the dump
  run/              redis:WEBGROUP 2750 redis.sock (0770; the setgid directory gives it WEBGROUP)
The var directory itself gets o+x (enter, not list) so that redis reaches its two directories.
The web user cannot read the configuration or the dump, and has no ACL, CONFIG or DEBUG command:
it cannot become the administrator. The web user may write into the var directory (SQLite makes
files next to the database) and redis into its own two: so every path there is opened without
following links, and checked, before root writes, chowns or trusts it.
Not root: everything runs as the caller, with the same ACLs.
"""
from __future__ import annotations

import grp
import os
import pwd
import secrets
import shutil
import stat
from pathlib import Path

from .redis_acl import server_users

REDIS_SYSTEM_USER = "redis"  # made by Debian's redis-server package
_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


class RedisSetupError(Exception):
    """redis-server cannot be set up as it must be; the message says why."""


def _trusted(info: os.stat_result) -> bool:
    """A single regular file, root's when we are root."""
    return stat.S_ISREG(info.st_mode) and info.st_nlink == 1 and (os.geteuid() != 0 or info.st_uid == 0)


def _secret_file(var_fd: int, name: str, gid: int, mode: int) -> str:
    """The password in var/NAME, made unless a regular file of root's (as root) is there already."""
    try:
        if not _trusted(os.lstat(name, dir_fd=var_fd)):
            os.unlink(name, dir_fd=var_fd)  # someone else's, or a link: never ours to use
    except FileNotFoundError:
        pass
    try:
        fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600, dir_fd=var_fd)
        os.write(fd, secrets.token_urlsafe(32).encode())
        os.lseek(fd, 0, os.SEEK_SET)
    except FileExistsError:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW, dir_fd=var_fd)
    try:
        if not _trusted(os.fstat(fd)):
            raise RedisSetupError(f"{name} in the var directory was replaced while it was being set up")
        if os.geteuid() == 0:
            os.fchown(fd, 0, gid)
        os.fchmod(fd, mode)
        return os.read(fd, 4096).decode().strip()
    finally:
        os.close(fd)


def _own_directory(var_fd: int, name: str, uid: int, gid: int, mode: int, entries_gid: int) -> int:
    """var/NAME as a directory of uid:gid with `mode` (and what is in it uid's): returns an open fd.
    Made if missing; a link or file there is removed; refused if it is swapped while being set up."""
    try:
        if not stat.S_ISDIR(os.lstat(name, dir_fd=var_fd).st_mode):
            os.unlink(name, dir_fd=var_fd)
    except FileNotFoundError:
        pass
    try:
        os.mkdir(name, 0o700, dir_fd=var_fd)
    except FileExistsError:
        pass
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW, dir_fd=var_fd)
    if os.geteuid() == 0:
        os.fchown(fd, uid, gid)
        for entry in os.listdir(fd):  # an earlier version ran redis as the web user
            os.chown(entry, uid, entries_gid, dir_fd=fd, follow_symlinks=False)
    os.fchmod(fd, mode)
    opened, there = os.fstat(fd), os.lstat(name, dir_fd=var_fd)
    if (opened.st_dev, opened.st_ino) != (there.st_dev, there.st_ino):
        os.close(fd)
        raise RedisSetupError(f"{name} in the var directory was replaced while it was being set up")
    return fd


def prepare(var_dir: Path, *, web_group: str | None, persist: bool = True) -> tuple[list[str], Path]:
    """Write the password files and redis.conf; return (the argv that starts redis-server, its socket)."""
    as_root = os.geteuid() == 0
    if as_root:
        try:
            redis_user = pwd.getpwnam(REDIS_SYSTEM_USER)
        except KeyError:
            raise RedisSetupError(f"there is no '{REDIS_SYSTEM_USER}' user to run redis-server as "
                                  "(install Debian's redis-server package)") from None
        uid, gid = redis_user.pw_uid, redis_user.pw_gid
        web_gid = grp.getgrnam(web_group).gr_gid if web_group else 0
    else:
        uid, gid, web_gid = os.geteuid(), os.getegid(), os.getegid()
    var_dir = Path(var_dir)
    var_fd = os.open(var_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if as_root:
            os.fchmod(var_fd, stat.S_IMODE(os.fstat(var_fd).st_mode) | 0o001)
        admin_password = _secret_file(var_fd, "redis-admin.pass", 0, 0o600)
        web_password = _secret_file(var_fd, "redis-web.pass", web_gid, 0o640)
        os.close(_own_directory(var_fd, "run", uid, web_gid, 0o2750, gid))
        data_fd = _own_directory(var_fd, "redis", uid, gid, 0o700, gid)
    finally:
        os.close(var_fd)
    sock, data = var_dir / "run" / "redis.sock", var_dir / "redis"
    sock.unlink(missing_ok=True)  # so that the caller can wait for the new one
    config = "\n".join([
        "port 0", f"unixsocket {sock}", "unixsocketperm 770", f"dir {data}",
        "save 60 1" if persist else 'save ""', "appendonly no", "daemonize no", 'logfile ""',
        *server_users(admin_password, web_password)]) + "\n"
    try:  # redis owns the directory: what is there may be a link it planted, so make a new file
        try:
            os.unlink("redis.conf", dir_fd=data_fd)
        except FileNotFoundError:
            pass
        fd = os.open("redis.conf", os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600, dir_fd=data_fd)
        with os.fdopen(fd, "w") as fh:
            fh.write(config)
            if as_root:
                os.fchown(fd, uid, gid)
    finally:
        os.close(data_fd)
    drop = [shutil.which("setpriv") or "setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"]
    return [*(drop if as_root else []), "redis-server", str(data / "redis.conf")], sock
