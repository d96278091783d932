"""A real host: a fresh Debian 12 machine with systemd as PID 1 and cgroup v2 only (a VM booted by
tests/vmlab), installed for production as docs/operations.md says, used as an administrator would,
and rebooted. Prints whether KVM or TCG ran and how long each step took.

The VM reaches nothing but this machine: the checkout and a wheelhouse of the panel's Python
packages are copied in (the image holds the Debian packages), and HTTPS is reached through a port
forwarded to 127.0.0.1.
"""
from __future__ import annotations

import contextlib
import hashlib
import http.cookiejar
import json
import re
import ssl
import subprocess
import tarfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from .conftest import BASE_DIR, wait_until
from .vmlab.fixtures import vm, vm_image  # noqa: F401  (fixtures, found by name)
from .vmlab.image import CACHE_DIR

pytestmark = [pytest.mark.integration, pytest.mark.vm(forward=[443])]

CTID, RESTORED = 101, 102
ADDRESS = "10.77.0.101"
PROBE = ("import json; from containers.engine.probes import cgroup_capabilities as c; "
         "print(json.dumps(c()))")


class Steps:
    """Named steps with their durations, printed as they end (pytest shows them with -s or on failure)."""

    def __init__(self):
        self.times: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def __call__(self, name: str):
        started = time.monotonic()
        yield
        self.times.append((name, time.monotonic() - started))
        print(f"[real host] {name}: {self.times[-1][1]:.1f} s", flush=True)


def checkout_tarball(target: Path) -> Path:
    """What git tracks, plus the front-end files `make assets` built (the VM has no npm)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=BASE_DIR, capture_output=True, check=True).stdout
    names = [n for n in files.decode().split("\0") if n and (BASE_DIR / n).is_file()]
    names += [str(p.relative_to(BASE_DIR)) for p in (BASE_DIR / "static" / "vendor").iterdir()]
    with tarfile.open(target, "w") as tar:
        for name in names:
            tar.add(BASE_DIR / name, arcname=name, recursive=False)
    return target


def wheelhouse() -> Path:
    """The panel's Python packages as wheels, built once per pyproject.toml (from PyPI) and cached."""
    key = hashlib.sha256((BASE_DIR / "pyproject.toml").read_bytes()).hexdigest()[:16]
    path = CACHE_DIR / f"wheels-{key}"
    if not (path / ".complete").exists():
        subprocess.run(["make", "-s", "wheelhouse", f"WHEELHOUSE={path}"], cwd=BASE_DIR, check=True, timeout=1200)
        (path / ".complete").touch()
    return path


class Browser:
    """HTTPS to the VM's nginx as a browser would: the installed certificate, cookies, CSRF."""

    def __init__(self, port: int, cafile: Path):
        self.base = f"https://localhost:{port}"
        context = ssl.create_default_context(cafile=str(cafile))
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context),
                                                  urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str):
        # Generous: under software emulation the first request starts gunicorn (socket activation),
        # and importing Django there takes minutes on a busy machine.
        return self.opener.open(self.base + path, timeout=600)

    def login(self, username: str, password: str) -> None:
        page = self.get("/accounts/login/").read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        data = urllib.parse.urlencode({"csrfmiddlewaretoken": token, "username": username,
                                       "password": password}).encode()
        request = urllib.request.Request(self.base + "/accounts/login/", data=data,
                                         headers={"Referer": self.base + "/accounts/login/"})
        with self.opener.open(request, timeout=600) as resp:
            assert resp.url.rstrip("/") == self.base, f"login did not lead to the dashboard: {resp.url}"


def test_a_fresh_debian_host_installed_for_production_survives_a_reboot(vm, tmp_path):
    steps = Steps()
    if vm.image.built_in is not None:
        print(f"[real host] VM image built in {vm.image.built_in:.0f} s", flush=True)
    print(f"[real host] QEMU ran with {vm.accel.upper()}, booted to SSH in {vm.boot_seconds:.0f} s"
          + (f" (KVM did not work: {vm.kvm_failure})" if vm.kvm_failure else ""), flush=True)
    manage = "vzpanel-manage"

    def sh(command: str, timeout: float = 600) -> str:
        return vm.run(command, timeout=timeout).stdout

    with steps("copy the checkout and the wheelhouse in"):
        vm.copy_in(checkout_tarball(tmp_path / "vzpanel.tar"), "/root/vzpanel.tar")
        vm.copy_in(wheelhouse(), "/root/wheels")
        sh("mkdir -p /root/vzpanel && tar -xf /root/vzpanel.tar -C /root/vzpanel")
    with steps("a real host: systemd as PID 1, only the unified cgroup hierarchy"):
        assert sh("cat /proc/1/comm").strip() == "systemd"
        assert sh("awk '$3 ~ /^cgroup/ {print $3}' /proc/mounts").split() == ["cgroup2"]
        state = vm.run("systemctl is-system-running --wait", check=False).stdout.strip()
        assert state == "running", state + sh("systemctl --failed --no-legend")
        failed = vm.run(["sh", "-c", "echo out; echo err >&2; exit 3"], check=False)  # the lab reports failures
        assert (failed.returncode, failed.stdout, failed.stderr) == (3, "out\n", "err\n")
    with steps("probe the capabilities of a machine that never ran a container"):
        fresh = json.loads(sh(f"cd /root/vzpanel && python3 -c '{PROBE}'"))
        assert fresh["cgroup_version"] == 2 and fresh["freezer"] and fresh["swap_accounting"], fresh
        assert {"cpu", "io", "memory", "pids"} <= set(fresh["controllers"]), fresh
    with steps("make install-production"):
        sh("cd /root/vzpanel && make install-production WHEELHOUSE=/root/wheels SERVER_NAMES=localhost "
           "> /root/install.log 2>&1 || { tail -50 /root/install.log; exit 1; }", timeout=1800)
        print("[real host] install steps:\n" + "\n".join(line for line in sh("cat /root/install.log").splitlines()
                                                          if line.startswith("[vzpanel ")), flush=True)
    with steps("the services run and the settings pass Django's deploy check"):
        sh("systemctl is-active vzpanel.target vzpanel-redis vzpanel-agent vzpanel-scheduler vzpanel-web.socket "
           "vzpanel-consoles.socket nginx")
        assert "enabled" in sh("systemctl is-enabled vzpanel.target")
        sh(f"{manage} check --deploy --fail-level WARNING")
        assert sh("stat -c '%a %U %G' /etc/vzpanel/vzpanel.env").split() == ["640", "root", "vzpanel"]
        assert "PANEL_HOST_TOKEN" not in sh("cat /etc/vzpanel/vzpanel.env")
        # Debian's kernel enforces AppArmor: LXC's container profile must be loaded for any start.
        assert "lxc-container-default-cgns (enforce)" in sh("cat /sys/kernel/security/apparmor/profiles")
    with steps("HTTPS from this machine: redirect, HSTS, login"):
        vm.copy_out("/etc/vzpanel/tls/cert.pem", tmp_path / "cert.pem")
        browser = Browser(vm.forward(443), tmp_path / "cert.pem")
        with browser.get("/accounts/login/") as resp:
            assert resp.status == 200 and "max-age=" in resp.headers["Strict-Transport-Security"]
        browser.login("admin", sh("cat /var/lib/vzpanel/panel/admin-password").strip())
    with steps("create and start a container"):
        template = sh(f"{manage} shell --no-imports -c 'from containers.models import OSTemplate; "
                      f"print(OSTemplate.objects.order_by(\"name\").first().name)'").strip().splitlines()[-1]
        sh(f"{manage} vzctl create {CTID} --ostemplate {template} --hostname ct{CTID}.test")
        sh(f"{manage} vzctl start {CTID}")
        assert sh(f"lxc-info -n {CTID} -sH").strip() == "RUNNING"
        assert json.loads(sh(f"cd /root/vzpanel && python3 -c '{PROBE}'")) == fresh, \
            "the probes answer differently once a container ran"
    with steps("set limits on the running container and read them back from cgroup v2"):
        sh(f"{manage} vzctl set {CTID} --ram 256M --swap 128M --cpus 1 --cpulimit 50 --cpuunits 500 "
           f"--numproc 200 --ioprio 6 --diskspace 3G:3200M")  # grown online (XFS shrinks only offline)
        cgroup = f"/sys/fs/cgroup/lxc.payload.{CTID}"
        read = {name: sh(f"cat {cgroup}/{name}").strip()
                for name in ("memory.max", "memory.swap.max", "cpu.max", "cpu.weight", "pids.max",
                             fresh["io_weight_file"])}
        assert read["memory.max"] == str(256 << 20) and read["memory.swap.max"] == str(128 << 20), read
        assert read["cpu.max"] == "50000 100000" and read["cpu.weight"] == "50" and read["pids.max"] == "200", read
        assert read[fresh["io_weight_file"]].split()[-1] != "100", read  # ioprio 6 is not the default weight
        size_mb = int(sh(f"{manage} vzctl exec {CTID} -- df -m / | tail -1").split()[1])
        assert 3000 <= size_mb <= 3300, size_mb
    with steps("beancounters and a sample over HTTPS"):
        counters = browser.get(f"/containers/{CTID}/user_beancounters").read().decode()
        assert "numproc" in counters and "physpages" in counters, counters[:500]
        wait_until(lambda: json.loads(browser.get(f"/containers/{CTID}/series.json").read())["points"], 300,
                   interval=2, message="a sample of the container")
    with steps("a venet address, pinged from the host"):
        sh(f"{manage} vzctl set {CTID} --ipadd {ADDRESS}")
        sh(f"ping -c 1 -W 5 {ADDRESS}")
    with steps("suspend backup and restore to a new CTID"):
        sh(f"{manage} vzdump {CTID} --mode suspend", timeout=900)
        archive = sh(f"ls /var/lib/vz/dump/ | grep 'vzdump-lxc-{CTID}-.*\\.tar\\.zst$'").split()[-1]
        sh(f"{manage} vzrestore {archive} {RESTORED}", timeout=900)
        assert sh(f"lxc-info -n {RESTORED} -sH").strip() == "STOPPED"
    with steps("restarting the agent leaves containers running"):
        sh(f"{manage} vzctl set {CTID} --onboot yes")
        sh("systemctl restart vzpanel-agent")
        assert sh(f"lxc-info -n {CTID} -sH").strip() == "RUNNING"
    with steps("a killed agent is started again by systemd and named on the dashboard"):
        killed = sh("systemctl show -p MainPID --value vzpanel-agent").strip()
        sh(f"kill -KILL {killed}")
        wait_until(lambda: vm.run("systemctl show -p MainPID --value vzpanel-agent", check=False).stdout.strip()
                   not in ("0", killed, ""), 180, interval=2, message="systemd to start the agent again")
        assert "<strong>agent</strong> process died 1 time" in browser.get("/").read().decode()
        assert sh(f"lxc-info -n {CTID} -sH").strip() == "RUNNING"
    with steps("a killed redis is started again by systemd; the queue works again"):
        killed = sh("systemctl show -p MainPID --value vzpanel-redis").strip()
        sh(f"kill -KILL {killed}")
        wait_until(lambda: vm.run("systemctl show -p MainPID --value vzpanel-redis", check=False).stdout.strip()
                   not in ("0", killed, ""), 180, interval=2, message="systemd to start redis again")
        wait_until(lambda: vm.run("systemctl is-active vzpanel-agent vzpanel-redis", check=False).returncode == 0,
                   300, interval=3, message="the agent and redis to be active")
        assert sh(f"{manage} vzctl exec {CTID} -- echo through-the-queue", timeout=900).strip().endswith("through-the-queue")
        assert "<strong>redis</strong> process died 1 time" in browser.get("/").read().decode()
    with steps("make upgrade-production: migrations, static files, restarts; containers keep running"):
        sh("cd /root/vzpanel && make upgrade-production WHEELHOUSE=/root/wheels > /root/upgrade.log 2>&1 "
           "|| { tail -50 /root/upgrade.log; exit 1; }", timeout=1800)
        wait_until(lambda: vm.run("systemctl is-active vzpanel.target vzpanel-agent vzpanel-redis vzpanel-web.socket",
                                  check=False).returncode == 0, 300, interval=3, message="the services after the upgrade")
        assert sh(f"lxc-info -n {CTID} -sH").strip() == "RUNNING"
        assert sh(f"{manage} vzctl status {CTID}").strip() == f"CTID {CTID} exist mounted running"
        with browser.get("/") as resp:  # the session survived the upgrade: same secret key and database
            assert resp.status == 200 and resp.url.rstrip("/") == browser.base
    with steps("reboot"):
        booted = vm.boot_id()
        vm.reboot()
        assert vm.boot_id() != booted
    with steps("after the reboot: services back, the onboot container running again"):
        wait_until(lambda: vm.run("systemctl is-active vzpanel.target vzpanel-agent vzpanel-web.socket nginx",
                                  check=False).returncode == 0, 300, interval=3, message="the services")
        wait_until(lambda: vm.run(f"lxc-info -n {CTID} -sH", check=False).stdout.strip() == "RUNNING", 300,
                   interval=3, message="the onboot container to run")
        assert sh(f"lxc-info -n {RESTORED} -sH").strip() == "STOPPED"  # not onboot: left as it was
        # LXC says RUNNING before the start task has given the container its venet address: the
        # task's end is what counts, so the address is waited for, with what the host says if not.
        try:
            wait_until(lambda: vm.run(f"ping -c 1 -W 2 {ADDRESS}", check=False).returncode == 0, 300,
                       interval=3, message=f"{ADDRESS} to answer after the reboot")
        except AssertionError:
            print(vm.run(f"ip addr show venet{CTID}; ip route; lxc-attach -n {CTID} -- ip addr; "
                         f"{manage} vzctl status {CTID}; journalctl -b -u vzpanel-agent --no-pager | tail -40",
                         check=False).stdout)
            raise
        with browser.get("/accounts/login/") as resp:
            assert resp.status == 200
    print("[real host] " + ", ".join(f"{name}: {seconds:.0f} s" for name, seconds in steps.times), flush=True)
