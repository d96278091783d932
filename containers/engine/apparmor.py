"""AppArmor and LXC: whether a container can start under the profile LXC puts it in.

Debian's kernels have AppArmor on. With it on, lxc-start confines each container with the profile
`lxc-container-default-cgns` (LXC's default when no `lxc.apparmor.profile` is set) and refuses to
start it when that profile is not loaded; lxc.service loads it at boot (lxc-apparmor-load) with
apparmor_parser, from Debian's `apparmor` package, which lxc only recommends. A host without that
package started no container, and said so only as "Failed to change AppArmor profile" deep in
LXC's log. Plain Python, no Django.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .commands import run

LXC_PROFILE = "lxc-container-default-cgns"
LXC_LOADER = Path("/usr/libexec/lxc/lxc-apparmor-load")  # what lxc.service runs before it starts
ENABLED_FILE = Path("/sys/module/apparmor/parameters/enabled")
PROFILES_FILE = Path("/sys/kernel/security/apparmor/profiles")


@dataclass(frozen=True)
class AppArmorState:
    enabled: bool        # the kernel enforces AppArmor
    lxc_profile: bool    # LXC's default container profile is loaded

    @property
    def blocks_containers(self) -> bool:
        return self.enabled and not self.lxc_profile

    def describe(self) -> str:
        if not self.enabled:
            return "not enabled in this kernel"
        if self.lxc_profile:
            return f"enabled; LXC's profile {LXC_PROFILE} is loaded"
        return f"enabled, but LXC's profile {LXC_PROFILE} is not loaded: containers cannot start"


def state(enabled_file: Path | None = None, profiles_file: Path | None = None) -> AppArmorState:
    try:
        enabled = (enabled_file or ENABLED_FILE).read_text().strip() == "Y"
    except OSError:
        enabled = False
    if not enabled:
        return AppArmorState(False, False)
    try:
        # One line per profile: "NAME (enforce)".
        names = {line.rsplit(" (", 1)[0] for line in (profiles_file or PROFILES_FILE).read_text().splitlines()}
    except OSError:  # securityfs not mounted: nothing can be told, and lxc-start will say
        names = set()
    return AppArmorState(True, LXC_PROFILE in names)


REMEDY = (f"AppArmor is enabled in this kernel but LXC's container profile {LXC_PROFILE} is not loaded, so "
          "no container can start. Install Debian's apparmor package (apt-get install apparmor; lxc recommends "
          "it) and run `systemctl restart apparmor lxc`, or load it with /usr/libexec/lxc/lxc-apparmor-load.")


def ensure_lxc_profile() -> AppArmorState:
    """Load LXC's profiles as lxc.service does, when AppArmor is on and they are missing (the agent
    does this at start: lxc.service may have run before the apparmor package was installed)."""
    found = state()
    if found.blocks_containers and LXC_LOADER.exists():
        run([str(LXC_LOADER)], check=False, timeout=120)
        found = state()
    return found
