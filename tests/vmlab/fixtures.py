"""pytest fixtures of the VM lab. A test module imports them:

    from tests.vmlab.fixtures import vm, vm_image  # noqa: F401  (pytest finds fixtures by name)

    pytestmark = [pytest.mark.integration, pytest.mark.vm(forward=[443])]

`vm` is a booted machine for one test, with the guest ports named in the `vm` marker forwarded to
127.0.0.1 (`vm.forward(443)`); a test that needs a machine for a whole module builds its own with
`Machine(vm_image, workdir, forward=...)` in a module fixture.
"""
from __future__ import annotations

import shutil

import pytest

from .image import Image, build_image
from .machine import Machine

# What the lab runs on the host (the Makefile's TEST_DEBS installs them).
HOST_PROGRAMS = {"qemu-system-x86_64": "qemu-system-x86", "qemu-img": "qemu-utils", "debootstrap": "debootstrap",
                 "mkfs.ext4": "e2fsprogs", "ssh": "openssh-client"}


@pytest.fixture(scope="session")
def vm_image() -> Image:
    """The cached Debian 12 image with the panel's packages (built on first use: minutes)."""
    missing = sorted({deb for program, deb in HOST_PROGRAMS.items() if not shutil.which(program)})
    if missing:
        pytest.fail(f"the VM lab needs the Debian packages {' '.join(missing)}: `make test` installs them")
    return build_image()


@pytest.fixture
def vm(request, vm_image, tmp_path):
    """A running VM for this test; powered off (or killed) and its overlay removed afterwards. The
    console's last lines are printed at teardown: pytest shows them when the test failed."""
    if not (request.node.get_closest_marker("integration") and request.node.get_closest_marker("vm")):
        pytest.fail("the vm fixture is only for tests marked both integration and vm")
    forward = request.node.get_closest_marker("vm").kwargs.get("forward", ())
    machine = Machine(vm_image, tmp_path / "vm", forward=forward)
    try:
        with machine:
            yield machine
    finally:
        print(f"--- VM console ({machine.console_log}), last lines:\n{machine.console_tail()}")
