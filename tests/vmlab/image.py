"""The VM lab's disk image: Debian 12 from Debian packages only, built once and cached.

debootstrap (the host's own mirror, as the template builder reads it) makes a tree with the
kernel, systemd as PID 1, sshd and the packages a caller asks for; `mkfs.ext4 -d` turns the tree
into a raw ext4 filesystem (no loop device, no mount) that becomes the cached qcow2 base. The
kernel and initrd are copied out beside it: QEMU boots them directly, so the image has no
partition table and no bootloader. Root's SSH key pair is made for each build and lives beside
the image.

The cache is keyed by a hash of the package list and of this file (the recipe): a change to
either builds a new image. A build happens in a temporary directory that is renamed into place
only when complete, under a lock, so a half-built image is never used and two test runs at once
build it once.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from containers.engine.osbuild import debootstrap, host_debian_mirror

CACHE_DIR = Path(os.environ.get("VZPANEL_VMLAB_CACHE", "/var/cache/vzpanel-vmlab"))
RELEASE = "bookworm"
# A bootable Debian with systemd, sshd and its network address set by systemd-networkd.
BASE_DEBS = ["linux-image-amd64", "systemd-sysv", "udev", "dbus", "kmod", "openssh-server", "iproute2",
             "procps", "iputils-ping", "ca-certificates", "curl", "less"]
# What a production install needs (the Makefile's PRODUCTION_DEBS, the one list), and make to run
# it: the VM has no network, so everything `make install-production` would install is in the image.
PANEL_DEBS = [*subprocess.run(["make", "-s", "-C", str(Path(__file__).resolve().parents[2]), "print-production-debs"],
                              capture_output=True, text=True, check=True).stdout.split(), "make", "sqlite3"]
DISK_SIZE = "16G"  # the ext4 filesystem's size; sparse in the qcow2, so only what is written costs space
HOSTNAME = "vmlab"
# QEMU's user-mode network is always 10.0.2.0/24 with the host side at .2: a static address is
# configured at once, where DHCP kept systemd-networkd-wait-online (and so boot) waiting seconds.
GUEST_ADDRESS = "10.0.2.15"
NETWORK_UNIT = f"""\
[Match]
Type=ether

[Network]
Address={GUEST_ADDRESS}/24
Gateway=10.0.2.2
LinkLocalAddressing=no
IPv6AcceptRA=no
"""
SSHD_CONFIG = "PermitRootLogin prohibit-password\nUseDNS no\nPasswordAuthentication no\n"
# Timers that would reach for the network or churn the disk during a test, and modules of no use in
# this VM (each module costs seconds under TCG).
MASKED_UNITS = ["apt-daily.timer", "apt-daily-upgrade.timer", "man-db.timer", "e2scrub_all.timer",
                "fstrim.timer", "e2scrub_reap.service", "modprobe@drm.service", "modprobe@efi_pstore.service"]
UNUSED_MODULES = ["floppy", "pcspkr", "kvm", "kvm_amd", "kvm_intel", "ccp", "cfg80211", "rfkill", "drm", "psmouse",
                  "serio_raw", "ata_piix", "ata_generic", "i2c_piix4"]
# The initrd only has to find /dev/vda (virtio) and mount ext4: a small one unpacks faster.
INITRD_MODULES = ["virtio_pci", "virtio_blk", "ext4", "crc32c_generic"]
ENABLED_UNITS = ["systemd-networkd.service"]
KEEP_UNUSED_DAYS = 14


class ImageBuildError(Exception):
    pass


@dataclass(frozen=True)
class Image:
    """A cached, complete build: boot `kernel` and `initrd` with `base` (qcow2) as /dev/vda and log in
    as root with `ssh_key`. `built_in` is the build's duration when this run built it, else None."""
    directory: Path
    key: str
    built_in: float | None = None

    @property
    def base(self) -> Path:
        return self.directory / "base.qcow2"

    @property
    def kernel(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.img"

    @property
    def ssh_key(self) -> Path:
        return self.directory / "id_ed25519"


def image_key(packages: list[str]) -> str:
    """What decides the image's contents: the package list and this recipe."""
    recipe = Path(__file__).read_bytes()
    digest = hashlib.sha256(json.dumps(sorted(set(packages))).encode() + b"\0" + recipe)
    return digest.hexdigest()[:16]


def build_image(extra_debs: list[str] | None = None, log=print) -> Image:
    """The cached image with BASE_DEBS plus `extra_debs` (PANEL_DEBS unless given); built if missing."""
    packages = sorted(set(BASE_DEBS + (PANEL_DEBS if extra_debs is None else list(extra_debs))))
    key = image_key(packages)
    CACHE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    final = CACHE_DIR / key
    with open(CACHE_DIR / f".lock-{key}", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second run waits for the first one's build and uses it
        if not (final / "image.json").is_file():
            started = time.monotonic()
            _build(final, packages, log)
            built_in = time.monotonic() - started
            log(f"vmlab: built image {key} in {built_in:.0f} s ({len(packages)} packages asked for)")
            _prune_unused(keep=final)
            os.utime(final)
            return Image(final, key, built_in)
    os.utime(final)  # when it was last used: what pruning goes by
    return Image(final, key)


def _build(final: Path, packages: list[str], log) -> None:
    work = CACHE_DIR / f".build-{final.name}-{os.getpid()}"
    _remove_tree(work)
    work.mkdir(mode=0o700)
    tree = work / "tree"
    try:
        mirror = host_debian_mirror()
        log(f"vmlab: debootstrap {RELEASE} from {mirror}")
        debootstrap(tree, RELEASE, mirror, include=packages, log=lambda _line: None)
        _unmount_under(tree)  # debootstrap unmounts its /proc and /sys; be sure before anything else
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vzpanel-vmlab", "-f", str(work / "id_ed25519")])
        _configure(tree, (work / "id_ed25519.pub").read_text())
        _copy_boot_files(tree, work)
        raw = work / "root.raw"
        _run(["mkfs.ext4", "-q", "-F", "-L", "vmlab-root", "-d", str(tree), str(raw), DISK_SIZE])
        _remove_tree(tree)
        _run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(work / "base.qcow2")])
        raw.unlink()
        (work / "image.json").write_text(json.dumps({"release": RELEASE, "mirror": mirror, "packages": packages,
                                                     "built": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=1))
        os.rename(work, final)
    except BaseException:
        _remove_tree(work)
        raise


def _configure(tree: Path, public_key: str) -> None:
    """A test machine: root logs in with the lab's key, the NIC gets QEMU's DHCP lease, no fsck, no
    timers that reach for the network."""
    (tree / "etc/hostname").write_text(HOSTNAME + "\n")
    (tree / "etc/hosts").write_text(f"127.0.0.1\tlocalhost\n127.0.1.1\t{HOSTNAME}\n::1\tlocalhost ip6-localhost\n")
    (tree / "etc/fstab").write_text("/dev/vda\t/\text4\trw,noatime\t0\t0\n")
    (tree / "etc/resolv.conf").unlink(missing_ok=True)
    (tree / "etc/resolv.conf").write_text("# vmlab: no network beyond the host\n")
    (tree / "etc/systemd/network/10-vmlab.network").write_text(NETWORK_UNIT)
    (tree / "etc/ssh/sshd_config.d/vmlab.conf").write_text(SSHD_CONFIG)
    ssh_dir = tree / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(public_key)
    (ssh_dir / "authorized_keys").chmod(0o600)
    _run(["chroot", str(tree), "systemctl", "enable", "--quiet", *ENABLED_UNITS])
    _run(["chroot", str(tree), "systemctl", "mask", "--quiet", *MASKED_UNITS])
    (tree / "etc/modprobe.d/vmlab.conf").write_text("".join(f"blacklist {name}\n" for name in UNUSED_MODULES))
    (tree / "etc/initramfs-tools/conf.d/vmlab.conf").write_text("MODULES=list\n")
    (tree / "etc/initramfs-tools/modules").write_text("".join(f"{name}\n" for name in INITRD_MODULES))
    _run(["chroot", str(tree), "update-initramfs", "-u", "-k", "all"])
    for deb in (tree / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()


def _copy_boot_files(tree: Path, work: Path) -> None:
    """The newest kernel and its initrd, for QEMU's direct kernel boot."""
    kernels = sorted((tree / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise ImageBuildError("debootstrap installed no kernel in /boot")
    version = kernels[-1].name.removeprefix("vmlinuz-")
    initrd = tree / "boot" / f"initrd.img-{version}"
    if not initrd.is_file():
        raise ImageBuildError(f"no initrd for kernel {version} in /boot")
    shutil.copyfile(kernels[-1], work / "vmlinuz")
    shutil.copyfile(initrd, work / "initrd.img")


def _prune_unused(keep: Path) -> None:
    """Images of other recipes not used for KEEP_UNUSED_DAYS (another branch may still use a recent one)."""
    cutoff = time.time() - KEEP_UNUSED_DAYS * 86400
    for entry in CACHE_DIR.iterdir():
        if entry != keep and not entry.name.startswith(".") and entry.is_dir() and entry.stat().st_mtime < cutoff:
            _remove_tree(entry)
            (CACHE_DIR / f".lock-{entry.name}").unlink(missing_ok=True)


def _unmount_under(path: Path) -> None:
    with open("/proc/self/mountinfo") as fh:
        points = [line.split()[4] for line in fh]
    for point in sorted((p for p in points if p == str(path) or p.startswith(f"{path}/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def _remove_tree(path: Path) -> None:
    """rm -rf that stays on one filesystem: whatever debootstrap may have left mounted is unmounted
    first, and never descended into."""
    if path.exists():
        _unmount_under(path)
        _run(["rm", "-rf", "--one-file-system", str(path)])


def _run(argv: list[str]) -> None:
    res = subprocess.run(argv, capture_output=True, text=True)
    if res.returncode != 0:
        raise ImageBuildError(f"{argv[0]} failed ({res.returncode}): {(res.stderr or res.stdout).strip()[-2000:]}")
