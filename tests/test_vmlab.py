"""The VM lab itself: a real Debian 12 machine with systemd as PID 1 and only cgroup v2 boots, runs
commands as root, takes files, serves a forwarded port to the host, and comes back from a reboot.
Prints what ran it (KVM or TCG) and how long each step took."""
from __future__ import annotations

import time
import urllib.request
from contextlib import contextmanager

import pytest

from tests.vmlab.fixtures import vm, vm_image  # noqa: F401  (fixtures)

GUEST_HTTP_PORT = 8080
pytestmark = [pytest.mark.integration, pytest.mark.vm(forward=[GUEST_HTTP_PORT])]


@contextmanager
def step(name: str):
    started = time.monotonic()
    yield
    print(f"vmlab: {name}: {time.monotonic() - started:.1f} s", flush=True)


def fetch_through_forwarded_port(vm) -> bytes:
    """What busybox httpd in the VM serves from /srv/www, read from the host's forwarded port."""
    vm.run(["busybox", "httpd", "-p", str(GUEST_HTTP_PORT), "-h", "/srv/www"])
    with urllib.request.urlopen(f"http://127.0.0.1:{vm.forward(GUEST_HTTP_PORT)}/index.html", timeout=30) as resp:
        return resp.read()


def test_vm_boots_systemd_on_cgroup2_only_and_comes_back_from_a_reboot(vm, tmp_path):
    if vm.image.built_in is not None:
        print(f"vmlab: image built in {vm.image.built_in:.0f} s")
    print(f"vmlab: booted under {vm.accel.upper()} to SSH in {vm.boot_seconds:.1f} s"
          + (f" (KVM did not work: {vm.kvm_failure})" if vm.kvm_failure else ""), flush=True)

    assert vm.run("cat /proc/1/comm").stdout.strip() == "systemd"
    assert vm.run(["stat", "-f", "-c", "%T", "/sys/fs/cgroup"]).stdout.strip() == "cgroup2fs"
    controllers = vm.run("cat /sys/fs/cgroup/cgroup.controllers").stdout.split()
    assert {"memory", "pids", "cpu", "io"} <= set(controllers), controllers
    cgroup_mounts = vm.run("awk '$3 ~ /^cgroup/ {print $3}' /proc/mounts").stdout.split()
    assert cgroup_mounts == ["cgroup2"], f"only the unified hierarchy is mounted: {cgroup_mounts}"

    with step("systemctl is-system-running --wait"):
        state = vm.run("systemctl is-system-running --wait", check=False).stdout.strip()
    if state == "degraded":
        print("vmlab: degraded, failed units:\n" + vm.run("systemctl --failed --no-legend").stdout)
    assert state in ("running", "degraded")

    payload = tmp_path / "www"
    payload.mkdir()
    (payload / "index.html").write_text("served from the VM\n")
    with step("copy_in and a forwarded port"):
        vm.copy_in(payload, "/srv/www")
        assert fetch_through_forwarded_port(vm) == b"served from the VM\n"

    failed = vm.run(["sh", "-c", "echo out; echo err >&2; exit 3"], check=False)
    assert (failed.returncode, failed.stdout, failed.stderr) == (3, "out\n", "err\n")

    old_boot = vm.boot_id()
    with step("reboot to SSH"):
        vm.reboot()
    assert vm.boot_id() != old_boot
    assert vm.run("systemctl is-active ssh").stdout.strip() == "active"
    assert vm.run(["stat", "-f", "-c", "%T", "/sys/fs/cgroup"]).stdout.strip() == "cgroup2fs"
    assert fetch_through_forwarded_port(vm) == b"served from the VM\n", "the disk and the host ports survive"
