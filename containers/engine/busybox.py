"""Build a tiny OS template from busybox-static, offline (like `lxc-create -t busybox`)."""
from __future__ import annotations

import os
import platform
import shutil
import tempfile
from pathlib import Path

from .commands import run

BUSYBOX = "/bin/busybox"

INITTAB = """\
::sysinit:/etc/init.d/rcS
::shutdown:/bin/umount -a -r
"""

RCS = """\
#!/bin/sh
# Container boot: name the system and make the usual mounts.
[ -r /etc/hostname ] && hostname -F /etc/hostname
mkdir -p /run /tmp /var/run
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp 2>/dev/null
"""


def busybox_version() -> str:
    first = run([BUSYBOX], check=False).stdout.splitlines()[:1]
    # "BusyBox v1.35.0 (Debian ...) multi-call binary."
    for word in (first[0].split() if first else []):
        if word.startswith("v") and word[1:2].isdigit():
            return word[1:]
    return "unknown"


def default_template_name() -> str:
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return f"busybox-{busybox_version()}-{arch}"


def build_busybox_template(cache_dir: str | os.PathLike) -> Path:
    """Write <cache_dir>/busybox-VERSION-ARCH.tar.zst unless it is there; return its path."""
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / f"{default_template_name()}.tar.zst"
    if target.exists():
        return target
    with tempfile.TemporaryDirectory(prefix="vzpanel-busybox-") as tmp:
        root = Path(tmp) / "rootfs"
        for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc/init.d", "proc", "sys", "dev",
                  "tmp", "root", "run", "var/log", "var/run", "home"):
            (root / d).mkdir(parents=True, exist_ok=True)
        os.chmod(root / "tmp", 0o1777)
        shutil.copy2(BUSYBOX, root / "bin" / "busybox")
        for applet in run([BUSYBOX, "--list-full"]).stdout.split():
            link = root / applet
            if not link.exists() and not link.is_symlink():
                link.parent.mkdir(parents=True, exist_ok=True)
                os.symlink("/bin/busybox", link)
        (root / "etc/inittab").write_text(INITTAB)
        (root / "etc/init.d/rcS").write_text(RCS)
        os.chmod(root / "etc/init.d/rcS", 0o755)
        (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
        (root / "etc/group").write_text("root:x:0:\n")
        (root / "etc/shadow").write_text("root:*:19000:0:99999:7:::\n")
        os.chmod(root / "etc/shadow", 0o600)
        (root / "etc/hostname").write_text("localhost\n")
        (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n")
        partial = target.with_name(f".{target.name}.partial")
        run(["tar", "--numeric-owner", "--owner=0", "--group=0", "-C", str(root),
             "--zstd", "-cf", str(partial), "."], timeout=600)
        os.replace(partial, target)
    from .templates import write_meta
    write_meta(cache, target.name, distribution="busybox", version=busybox_version(),
               architecture=default_template_name().rsplit("-", 1)[-1], source="built offline from busybox-static")
    return target
