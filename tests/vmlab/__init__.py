"""The VM lab: real Debian 12 machines (systemd as PID 1, cgroup v2 only) booted under QEMU for
end-to-end tests. `image.build_image` makes and caches the disk image, `machine.Machine` boots one
and runs commands in it over SSH, `fixtures.vm` gives a test a running machine."""
