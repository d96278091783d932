"""Moving a container's files between hosts (vzmigrate's data path), and what it needs.

Data goes with rsync: over SSH when the destination has an SSH address, with the
agent's own key and the destination's host key pinned (never "accept new"), or
on the local filesystem when both hosts are this machine. On the destination
side the migration key may only run rsync receiving into an incoming copy below the
host's lxcpath (rsync_gate.py), so a leaked key writes files there and does nothing else.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

from .commands import CommandError, run
from .sshaddress import AddressError, split_address

Log = Callable[[str], None]

MANAGED_BEGIN = "# --- vzpanel migration keys: managed by the host agent, edits are overwritten ---"
MANAGED_END = "# --- end of vzpanel migration keys ---"
# What rsync must keep of a root filesystem: hard links, ACLs, xattrs, owners by number, holes.
# --modify-window=-1 compares mtimes to the nanosecond: a file rewritten within the second of
# the first pass must still be copied again by the second.
RSYNC_BASE = ["rsync", "-aHAX", "--numeric-ids", "--delete", "--one-file-system", "--sparse",
              "--modify-window=-1", "--whole-file"]
_SAFE_ARG = re.compile(r"^[A-Za-z0-9_./:@=+,-]+\Z")  # rsync -e splits on blanks: nothing else passes


class TransferError(Exception):
    """Copying to the destination failed; the text says where and why."""


# -- host facts the agent reports ----------------------------------------------------------------
def machine_id() -> str:
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            value = Path(path).read_text().strip()
        except OSError:
            continue
        if value:
            return value
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def criu_check() -> tuple[bool, str]:
    """Whether lxc-checkpoint can work here: `criu check` must pass. Detected, never assumed."""
    if shutil.which("lxc-checkpoint") is None:
        return False, "lxc-checkpoint is not installed"
    if shutil.which("criu") is None:
        return False, "criu is not installed"
    try:
        res = run(["criu", "check"], check=False, timeout=60)
    except CommandError as exc:
        return False, str(exc)
    text = (res.stdout + res.stderr).strip()
    if res.returncode == 0 and "Error" not in text:
        return True, text.splitlines()[-1] if text else "criu check passed"
    # "Error (criu/vdso.c:613): vdso: Failed to fill self vdso symtable" → what follows the location.
    errors = []
    for line in text.splitlines():
        message = re.sub(r"^Error \([^)]*\):\s*", "", line.strip())
        if line.startswith("Error") and message not in errors and not message.startswith("exited, status"):
            errors.append(message)
    return False, "criu check failed: " + ("; ".join(errors[:2]) or text[-300:])


# -- keys -----------------------------------------------------------------------------------------
def ensure_client_key(directory: Path, comment: str) -> str:
    """The agent's own migration key (made once); returns its public line."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    private = directory / "id_ed25519"
    if not private.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(private)], timeout=60)
    return (directory / "id_ed25519.pub").read_text().strip()


def read_public_key(path: Path) -> str:
    """`type base64` of an OpenSSH public key file, or "" if there is none."""
    try:
        parts = Path(path).read_text().split()
    except OSError:
        return ""
    return " ".join(parts[:2]) if len(parts) >= 2 else ""


GATE = Path(__file__).with_name("rsync_gate.py")


def authorized_line(public_key: str, lxcpath: str, comment: str) -> str:
    """One authorized_keys line: the key may only run rsync receiving into incoming copies under
    `lxcpath` (rsync_gate.py), with no terminal or forwarding."""
    key = " ".join(public_key.split()[:2])
    if not _SAFE_ARG.match(lxcpath) or not _SAFE_ARG.match(str(GATE)) \
            or not re.match(r"^ssh-[a-z0-9-]+ [A-Za-z0-9+/=]+\Z", key):
        raise TransferError(f"refusing to authorize an odd key or path ({lxcpath!r})")
    return (f'command="/usr/bin/python3 -I {GATE} {lxcpath}",restrict {key} '
            f'{re.sub(r"[^A-Za-z0-9_.@-]", "_", comment)}')


def write_authorized_keys(path: Path, lines: list[str]) -> bool:
    """Replace the managed block of an authorized_keys file, keeping every other line.
    Returns True if the file changed."""
    path = Path(path)
    try:
        current = path.read_text()
    except FileNotFoundError:
        current = ""
    kept, inside = [], False
    for line in current.splitlines():
        if line == MANAGED_BEGIN:
            inside = True
        elif line == MANAGED_END:
            inside = False
        elif not inside:
            kept.append(line)
    block = [MANAGED_BEGIN, *sorted(lines), MANAGED_END] if lines else []
    text = "\n".join(kept + block) + "\n" if (kept or block) else ""
    if text == current:
        return False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".authorized_keys.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return True


# -- transports -----------------------------------------------------------------------------------
class Transport:
    """Where rsync writes: `dest_rel` is a path relative to the destination host's lxcpath."""

    description = ""

    def rsync(self, source: Path, dest_rel: str, *, bwlimit_kib: int = 0, live: bool = False,
              log: Log = lambda _m: None) -> float:
        """Copy `source`/ to dest_rel/. `live`: the container runs, so files that vanish or change
        under rsync (exit 24, 23) are tolerated: the pass made while it is frozen copies them."""
        started = time.monotonic()
        argv = [*RSYNC_BASE, *self.rsync_options()]
        if bwlimit_kib:
            argv.append(f"--bwlimit={int(bwlimit_kib)}")
        # A directory's contents go into dest_rel/; a single file goes into the directory dest_rel/.
        argv += [f"{source}/" if Path(source).is_dir() else str(source), self.target(dest_rel) + "/"]
        try:
            res = run(argv, timeout=6 * 3600, check=False)
        except CommandError as exc:
            raise TransferError(f"rsync to {self.description} failed: {exc}") from None
        if res.returncode == 23 and live:
            log("Some files changed while they were read; the next pass copies them")
        elif res.returncode not in (0, 24):  # 24: files vanished while copying
            detail = " ".join(res.stderr.strip().splitlines()[-3:])
            raise TransferError(f"rsync to {self.description} failed (exit {res.returncode}): {detail}")
        return time.monotonic() - started

    def rsync_options(self) -> list[str]:
        return []

    def target(self, dest_rel: str) -> str:
        raise NotImplementedError

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass


class LocalTransport(Transport):
    """Both hosts are this machine: rsync straight into the destination's lxcpath."""

    def __init__(self, dest_lxcpath: str):
        self.dest_lxcpath = Path(dest_lxcpath)
        self.description = f"{dest_lxcpath} (local filesystem)"

    def target(self, dest_rel: str) -> str:
        return str(self.dest_lxcpath / _relative(dest_rel))


class SshTransport(Transport):
    """rsync over SSH as root with the agent's key, the destination's host key pinned.

    One master connection is opened first and shared by every rsync pass, so the
    second pass (inside the downtime window) pays no SSH handshake.
    """

    def __init__(self, address: str, host_key: str, identity: Path, workdir: Path,
                 connect_timeout: int = 10, io_timeout: int = 60):
        try:
            self.host, self.port = split_address(address)
        except AddressError as exc:
            raise TransferError(str(exc)) from None
        key = " ".join((host_key or "").split()[:2])
        if not key:
            raise TransferError(f"no SSH host key is pinned for {address}: the destination's agent reports "
                                "it when it starts (PANEL_SSH_HOST_KEY)")
        for path in (identity, workdir):
            if not _SAFE_ARG.match(str(path)):
                raise TransferError(f"path {path} has characters rsync -e cannot pass")
        self.identity = identity
        self.workdir = workdir
        self.known_hosts = workdir / "known_hosts"
        name = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        self.known_hosts.write_text(f"{name} {key}\n")
        self.control = workdir / "ssh-control"
        self.io_timeout = io_timeout
        self.description = f"root@{address} over SSH"
        self.ssh = ["ssh", "-i", str(identity), "-p", str(self.port), "-l", "root",
                    "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                    "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
                    "-o", "StrictHostKeyChecking=yes", "-o", "CheckHostIP=no",
                    "-o", f"ConnectTimeout={connect_timeout}", "-o", "ServerAliveInterval=5",
                    "-o", "ServerAliveCountMax=3", "-o", f"ControlPath={self.control}"]
        self.master: subprocess.Popen | None = None

    def open(self) -> None:
        """Start the shared master connection; fails here (not mid-copy) on a wrong host key."""
        self.master = subprocess.Popen([*self.ssh, "-o", "ControlMaster=yes", "-N", self.host],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE, text=True, start_new_session=True)
        deadline = time.monotonic() + 30
        while not self.control.exists():
            if self.master.poll() is not None:
                error = (self.master.stderr.read() or "").strip()
                self.master = None
                raise TransferError(f"SSH to {self.host}:{self.port} failed: {error or 'connection closed'}")
            if time.monotonic() > deadline:
                self.close()
                raise TransferError(f"SSH to {self.host}:{self.port} did not connect within 30 s")
            time.sleep(0.02)

    def close(self) -> None:
        if self.master is not None:
            if self.master.poll() is None:
                try:
                    os.killpg(self.master.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    self.master.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(self.master.pid, signal.SIGKILL)
                    self.master.wait()
            self.master = None
        self.control.unlink(missing_ok=True)
        self.known_hosts.unlink(missing_ok=True)
        try:
            self.workdir.rmdir()
        except OSError:
            pass

    def rsync_options(self) -> list[str]:
        # ControlMaster=no: use the master if it is there, never become one mid-copy.
        return ["-e", " ".join([*self.ssh, "-o", "ControlMaster=no"]), f"--timeout={self.io_timeout}"]

    def target(self, dest_rel: str) -> str:
        # rrsync on the destination roots the path at its lxcpath.
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{_relative(dest_rel)}"


def _relative(dest_rel: str) -> str:
    rel = str(dest_rel).strip("/")
    if not rel or ".." in rel.split("/") or not _SAFE_ARG.match(rel):
        raise TransferError(f"bad destination path {dest_rel!r}")
    return rel
