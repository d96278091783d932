"""Building OS templates: debootstrap a Debian or Ubuntu root filesystem, prepare it for
containers, and pack a root filesystem (a fresh build or a stopped container) as a template.

A template made from a container is packed from a read-only view of the container's files
(safefs.readonly_view: no symlink is followed there) with tar excludes and replacement files,
so the panel never writes into (or follows links in) a tree a tenant controls: its identity
(hostname, machine-id, SSH host keys, logs, shell history) is left out rather than deleted.
Whatever is read there (os-release, what /sbin/init is) goes through safefs.
"""
from __future__ import annotations

import os
import re
import stat
import subprocess
import tempfile
from pathlib import Path

from .safefs import SafeFsError, Tree, resolved_name

DEBIAN_INCLUDE = ["systemd-sysv", "ifupdown", "iproute2", "iputils-ping", "openssh-server", "ca-certificates",
                  "less", "procps", "netbase"]
FIRST_BOOT_KEYGEN = """\
[Unit]
Description=Generate SSH host keys on first boot (vzpanel)
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
"""
KEYGEN_UNIT = "etc/systemd/system/vzpanel-ssh-keygen.service"
KEYGEN_WANTS = "etc/systemd/system/multi-user.target.wants/vzpanel-ssh-keygen.service"
# Units that make no sense in a container: hardware ttys and udev.
MASKED_UNITS = ["systemd-udevd.service", "systemd-udevd-control.socket", "systemd-udevd-kernel.socket",
                "getty@tty1.service", "getty@tty2.service", "getty@tty3.service", "getty@tty4.service",
                "getty@tty5.service", "getty@tty6.service", "systemd-modules-load.service", "sys-kernel-config.mount",
                "sys-kernel-debug.mount", "systemd-remount-fs.service"]
FSTAB = "# vzpanel: a container's mounts are set up by LXC; nothing to mount here.\n"
IDENTITY_EXCLUDES = ["./etc/hostname", "./etc/machine-id", "./var/lib/dbus/machine-id", "./etc/ssh/ssh_host_*",
                     "./var/log/*", "./root/.bash_history", "./root/.ssh/authorized_keys",
                     "./home/*/.bash_history", "./etc/vzdump", "./tmp/*", "./var/tmp/*", "./var/cache/apt/archives/*.deb",
                     "./var/lib/apt/lists/*"]
OS_RELEASE_LIMIT = 64 << 10  # a real os-release is under 1 KiB
RELEASE_RE = re.compile(r"^[a-z][a-z0-9-]{1,30}\Z")
ARCH_RE = re.compile(r"^[a-z0-9_]{2,16}\Z")


class BuildError(Exception):
    pass


def host_debian_mirror(sources_dir: str = "/etc/apt") -> str:
    """The Debian mirror this host's apt uses (deb822 .sources or a sources.list line)."""
    candidates = sorted(Path(sources_dir, "sources.list.d").glob("*.sources")) if Path(sources_dir, "sources.list.d").is_dir() else []
    for path in candidates:
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("URIs:"):
                for uri in line.split()[1:]:
                    if "security" not in uri:
                        return uri.rstrip("/")
    lst = Path(sources_dir, "sources.list")
    if lst.is_file():
        for line in lst.read_text(errors="replace").splitlines():
            parts = line.split()
            if parts[:1] == ["deb"] and len(parts) > 1:
                uri = next((p for p in parts[1:] if p.startswith(("http://", "https://"))), None)
                if uri and "security" not in uri:
                    return uri.rstrip("/")
    return "http://deb.debian.org/debian"


def debootstrap(target: Path, release: str, mirror: str, arch: str | None = None,
                include: list[str] | None = None, log=lambda _m: None) -> None:
    """A minimal base system with systemd and SSH, from `mirror`."""
    if not RELEASE_RE.match(release):
        raise BuildError(f"{release!r} is not a release name")
    if arch and not ARCH_RE.match(arch):
        raise BuildError(f"{arch!r} is not an architecture name")
    argv = ["debootstrap", "--variant=minbase", f"--include={','.join(include or DEBIAN_INCLUDE)}"]
    if arch:
        argv.append(f"--arch={arch}")
    argv += [release, str(target), mirror]
    log("Running " + " ".join(argv))
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    last = []
    for line in proc.stdout:
        line = line.rstrip()
        last = (last + [line])[-20:]
        if line.startswith(("I: Retrieving", "I: Validating")):
            continue  # hundreds of these: the log keeps the milestones
        log(line)
    if proc.wait() != 0:
        raise BuildError("debootstrap failed: " + " / ".join(last[-5:]))


def prepare_for_container(rootfs: Path, log=lambda _m: None) -> None:
    """Make a fresh build suit a container. Only for trees the panel built itself, and even
    there through safefs: the packages' files decide what is a link in that tree."""
    with Tree(rootfs, "the new root filesystem") as tree:
        systemd_dir = "etc/systemd/system"
        tree.makedirs(systemd_dir, 0o755)
        for unit in MASKED_UNITS:
            tree.symlink(f"{systemd_dir}/{unit}", "/dev/null")
        tree.write("etc/fstab", FSTAB)
        tree.write("etc/hostname", "localhost\n")
        tree.write("etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
        tree.write("etc/resolv.conf", "# vzpanel writes the nameservers here (vzctl set --nameserver)\n")
        tree.write("etc/machine-id", "")  # systemd makes one at first boot
        tree.unlink("var/lib/dbus/machine-id")
        for name in tree.listdir("etc/ssh"):
            if name.startswith("ssh_host_"):
                tree.unlink(f"etc/ssh/{name}")
        if _is_dir(tree, "etc/ssh"):
            tree.write(KEYGEN_UNIT, FIRST_BOOT_KEYGEN)
            tree.makedirs(KEYGEN_WANTS.rsplit("/", 1)[0], 0o755)
            tree.symlink(KEYGEN_WANTS, "/etc/systemd/system/vzpanel-ssh-keygen.service")
        if _is_dir(tree, "etc/network"):
            tree.write("etc/network/interfaces", "# The panel configures venet0 and veth interfaces from the host.\n"
                       "auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n")
        for name in tree.listdir("var/cache/apt/archives"):
            if name.endswith(".deb"):
                tree.unlink(f"var/cache/apt/archives/{name}")
        for name in tree.listdir("var/lib/apt/lists"):
            found = tree.lstat(f"var/lib/apt/lists/{name}")
            if found is not None and stat.S_ISREG(found.st_mode):
                tree.unlink(f"var/lib/apt/lists/{name}")
    log("Prepared for containers: udev and hardware gettys masked, fstab, hosts, resolv.conf, "
        "machine-id emptied, SSH host keys made at first boot")


def _is_dir(tree: Tree, path: str) -> bool:
    found = tree.lstat(path)
    return found is not None and stat.S_ISDIR(found.st_mode)


def uses_systemd(rootfs: Path) -> bool:
    return resolved_name(rootfs, "sbin/init") == "systemd"


def pack_rootfs(rootfs: Path, target: Path, *, strip_identity: bool = False, log=lambda _m: None) -> Path:
    """tar | zstd the tree into `target` (.tar.zst), written as .partial and renamed when complete.

    With strip_identity (a template from a container) the identity files are excluded and
    neutral ones put in their place from a scratch directory, so the tree is only read."""
    partial = target.with_name(target.name + ".partial")
    argv = ["tar", "-c", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls", "--sparse", "-f", "-"]
    with tempfile.TemporaryDirectory(prefix="vzpanel-tpl-") as scratch:
        # Replacements live under ./vzpanel-replace/ so the identity excludes do not catch them,
        # and --transform stores them at their real place.
        extra = Path(scratch, "vzpanel-replace")
        added = []
        if strip_identity:
            argv += [f"--exclude={p}" for p in IDENTITY_EXCLUDES]
            argv.append(r"--transform=s,^\./vzpanel-replace/,./,")
            (extra / "etc").mkdir(parents=True)
            (extra / "etc" / "hostname").write_text("localhost\n")
            (extra / "etc" / "machine-id").write_text("")
            added = ["./vzpanel-replace/etc/hostname", "./vzpanel-replace/etc/machine-id"]
            if uses_systemd(rootfs) and resolved_name(rootfs, "usr/bin/ssh-keygen"):
                unit = extra / KEYGEN_UNIT
                unit.parent.mkdir(parents=True)
                unit.write_text(FIRST_BOOT_KEYGEN)
                wants = extra / KEYGEN_WANTS
                wants.parent.mkdir(parents=True)
                os.symlink("/etc/systemd/system/vzpanel-ssh-keygen.service", wants)
                added += [f"./vzpanel-replace/{KEYGEN_UNIT}", f"./vzpanel-replace/{KEYGEN_WANTS}"]
        argv += ["-C", str(rootfs), "."]
        if added:
            argv += ["-C", scratch, *added]
        log(f"Packing {target.name}")
        try:
            with open(partial, "wb") as out:
                tar = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                zstd = subprocess.Popen(["zstd", "-q", "-c", "-T0", "-6"], stdin=tar.stdout, stdout=out,
                                        stderr=subprocess.PIPE)
                tar.stdout.close()
                zstd.wait()
                tar.wait()
            if tar.returncode not in (0, 1) or zstd.returncode != 0:
                raise BuildError(f"packing failed: {tar.stderr.read().decode(errors='replace').strip()} "
                                 f"{zstd.stderr.read().decode(errors='replace').strip()}".strip())
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    os.replace(partial, target)
    log(f"Template {target.name}: {target.stat().st_size} bytes")
    return target


def os_release(rootfs: Path, log=lambda _m: None) -> dict:
    """ID, VERSION_ID and friends from the tree's os-release, read without leaving the tree and
    with a size cap; {} (and a log line saying why) when it cannot be read."""
    try:
        with Tree(rootfs) as tree:
            data = tree.read_resolved("etc/os-release", OS_RELEASE_LIMIT)
            if data is None:
                data = tree.read_resolved("usr/lib/os-release", OS_RELEASE_LIMIT)
    except SafeFsError as exc:
        log(f"The distribution is not recorded: {exc}")
        return {}
    out = {}
    for line in (data or b"").decode("utf-8", "replace").splitlines():
        key, _, value = line.partition("=")
        out[key.strip()] = value.strip().strip('"')
    return out
