"""A running VM lab machine: QEMU on a throwaway overlay of the cached image, driven over SSH.

The machine reaches nothing but this host: QEMU's user-mode network with `restrict=on`, and host
ports on 127.0.0.1 forwarded to its sshd and to the guest ports the caller names. KVM is tried
first; when QEMU cannot use it, or the guest prints nothing or does not bring sshd up in time,
the machine is booted again under TCG (software emulation), and later machines of this run go
straight to TCG. `accel` says which one ran.

Commands run through one SSH connection the machine keeps open (OpenSSH's ControlMaster): under
TCG a new SSH handshake costs the guest seconds. Teardown powers the guest off, kills QEMU if it
does not stop in time, and removes the overlay; QEMU also dies with the process that started it.
"""
from __future__ import annotations

import ctypes
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from .image import Image

MEMORY_MIB = 2048
CPUS = min(2, os.cpu_count() or 1)
KERNEL_ARGS = ["root=/dev/vda", "rootfstype=ext4", "rw", "console=ttyS0", "systemd.unified_cgroup_hierarchy=1",
               "mitigations=off", "fsck.mode=skip", "cryptomgr.notests", "systemd.show_status=error"]
# Under KVM a working guest prints its first console line in well under a second and is up in
# seconds; these bound how long a silent or stuck KVM guest delays the TCG fallback.
KVM_FIRST_OUTPUT_SECONDS = 15
KVM_SSH_SECONDS = 120
TCG_SSH_SECONDS = 900  # a loaded 2-core host has taken 5 minutes for a reboot
SSH_OPTIONS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
               "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=10",
               "-o", "ServerAliveCountMax=6"]
_kvm_unusable: str | None = None  # why KVM did not work, once it did not in this run


class MachineError(Exception):
    pass


class PortTaken(MachineError):
    """Another process took a host port between our choosing it and QEMU binding it."""


class CommandFailed(MachineError):
    def __init__(self, command: str, result: subprocess.CompletedProcess):
        self.result = result
        super().__init__(f"`{command}` in the VM exited {result.returncode}\n--- stdout:\n{result.stdout[-3000:]}"
                         f"\n--- stderr:\n{result.stderr[-3000:]}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """In QEMU's child before exec: the kernel kills QEMU when the test process dies, however it dies."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Machine:
    """One Debian 12 VM. Use as a context manager (or call boot() and close()):

        with Machine(image, workdir, forward=[443]) as vm:
            vm.run("systemctl is-system-running --wait", check=False)
            https_port = vm.forward(443)
    """

    def __init__(self, image: Image, workdir: Path, forward: list[int] | tuple[int, ...] = (),
                 memory_mib: int = MEMORY_MIB, cpus: int = CPUS, accel: str | None = None):
        self.image = image
        self.workdir = Path(workdir)
        self.guest_ports = list(forward)
        self.memory_mib = memory_mib
        self.cpus = cpus
        self.wanted_accel = accel or os.environ.get("VZPANEL_VMLAB_ACCEL")  # "kvm" or "tcg" to force one
        self.accel: str | None = None  # what ran: "kvm" or "tcg"
        self.kvm_failure: str | None = None  # why KVM was not used, when it was tried and failed
        self.console_log = self.workdir / "console.log"
        self.qemu_log = self.workdir / "qemu.log"
        self.overlay = self.workdir / "overlay.qcow2"
        self.control_path: Path | None = None  # the shared SSH connection's socket, in a short /tmp path
        self.ssh_port: int | None = None
        self.host_ports: dict[int, int] = {}
        self.machine_id = uuid.uuid4().hex  # its own machine-id, though every VM shares the image
        self.proc: subprocess.Popen | None = None
        self._qemu_started = 0.0
        self.boot_seconds: float | None = None

    # --- life cycle -------------------------------------------------------------------------

    def boot(self) -> Machine:
        """Start QEMU and wait for sshd; KVM first unless forced or known not to work."""
        global _kvm_unusable
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.control_path = Path(tempfile.mkdtemp(prefix="vmlab-ssh-")) / "control"  # sun_path: 108 bytes at most
        started = time.monotonic()
        if _kvm_unusable is None and Path("/sys/module/kvm_pvm").exists():
            # A host whose /dev/kvm is PVM (paravirtualized, no VT-x/AMD-V: a nested sandbox) runs only
            # PVM-enabled guest kernels; Debian's kernel is not one ("failed to set MSR 0x10a", or a
            # silent hang once that is masked), so trying costs a boot and tells nothing new.
            _kvm_unusable = "this host's KVM is PVM (kvm_pvm), which boots only PVM-enabled guest kernels"
        accels = [self.wanted_accel] if self.wanted_accel else (["tcg"] if _kvm_unusable else ["kvm", "tcg"])
        self.kvm_failure = _kvm_unusable if not self.wanted_accel else None
        for accel in accels:
            try:
                self._start_and_wait(accel)
                break
            except MachineError as exc:
                self._stop_qemu()
                if accel != "kvm" or accel == accels[-1]:
                    raise MachineError(f"{exc}\n--- console (last lines):\n{self.console_tail()}") from None
                self.kvm_failure = _kvm_unusable = str(exc)
                if self.console_log.exists():
                    self.console_log.rename(self.workdir / "console-kvm.log")
        self.accel = accel
        self._start_master()
        self.boot_seconds = time.monotonic() - started
        return self

    def shutdown(self, timeout: float = 60) -> None:
        """Power the guest off; kill QEMU if it is still there after `timeout`."""
        if self.proc and self.proc.poll() is None:
            self._run_ssh(["systemctl", "poweroff"], timeout=15, check=False)
            self._stop_master()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self._stop_qemu()

    def close(self) -> None:
        """shutdown() and remove the overlay; the console log stays for the test's report."""
        try:
            self.shutdown()
        finally:
            self._stop_qemu()
            self.overlay.unlink(missing_ok=True)
            if self.control_path:
                shutil.rmtree(self.control_path.parent, ignore_errors=True)

    def __enter__(self) -> Machine:
        try:
            return self.boot()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc_info) -> None:
        self.close()

    def reboot(self, timeout: float | None = None, cold: bool = True) -> float:
        """Reboot the guest and wait until sshd answers with a new boot id; returns the seconds it took.
        Cold (the default): `systemctl poweroff`, then QEMU starts again on the same disk, kernel
        command line and host ports: to the guest a power cycle. Under TCG a warm `systemctl reboot`
        (cold=False: QEMU resets the machine in place) took 2.5 to 3 times as long as the first boot
        (the guest's kernel crawls after the reset), a cold one as long as the first boot."""
        old_boot = self.boot_id()
        started = time.monotonic()
        deadline = started + (timeout or self._ssh_timeout(self.accel))
        self._run_ssh(["systemctl", "poweroff" if cold else "reboot"], timeout=30, check=False)
        self._stop_master()  # its connection died with the old kernel
        if cold:
            try:
                self.proc.wait(max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise MachineError(f"the VM did not power off\n--- console (last lines):\n{self.console_tail()}") from None
            self._launch_qemu(self.accel)
        while True:
            self._check_alive()
            if self._sshd_greets():
                res = self._run_ssh(["cat", "/proc/sys/kernel/random/boot_id"], timeout=60, check=False, master=False)
                if res.returncode == 0 and res.stdout.strip() != old_boot:
                    break
            if time.monotonic() > deadline:
                raise MachineError(f"the VM did not come back from a reboot in {deadline - started:.0f} s\n"
                                   f"--- console (last lines):\n{self.console_tail()}")
            time.sleep(1)
        self._start_master()
        return time.monotonic() - started

    # --- using it ---------------------------------------------------------------------------

    def run(self, command: str | list[str], check: bool = True, timeout: float = 600,
            input: str | None = None) -> subprocess.CompletedProcess:
        """Run a command as root in the VM: an argv list (quoted for the remote shell) or a shell string."""
        return self._run_ssh(command, timeout=timeout, check=check, input=input)

    def copy_in(self, local_path: str | Path, remote_path: str) -> None:
        """Copy a file or a directory tree (recursively) to `remote_path` in the VM."""
        self._scp(str(local_path), f"root@127.0.0.1:{remote_path}")

    def copy_out(self, remote_path: str, local_path: str | Path) -> None:
        self._scp(f"root@127.0.0.1:{remote_path}", str(local_path))

    def forward(self, guest_port: int) -> int:
        """The port on 127.0.0.1 that reaches `guest_port` in the VM (one named at construction)."""
        if guest_port not in self.host_ports:
            raise MachineError(f"guest port {guest_port} is not forwarded: pass it in Machine(forward=[...])")
        return self.host_ports[guest_port]

    def boot_id(self) -> str:
        return self.run(["cat", "/proc/sys/kernel/random/boot_id"], timeout=60).stdout.strip()

    def console_tail(self, lines: int = 60) -> str:
        try:
            text = self.console_log.read_text(errors="replace")
        except FileNotFoundError:
            return "(no console log)"
        return "\n".join(text.splitlines()[-lines:])

    # --- inside -----------------------------------------------------------------------------

    def _start_qemu(self, accel: str) -> None:
        """A new overlay, new host ports, a new console log, and QEMU on them."""
        self.overlay.unlink(missing_ok=True)
        self.console_log.unlink(missing_ok=True)
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(self.image.base),
                        str(self.overlay)], check=True, capture_output=True)
        self.ssh_port = _free_port()
        self.host_ports = {port: _free_port() for port in self.guest_ports}
        self._launch_qemu(accel)

    def _launch_qemu(self, accel: str) -> None:
        forwards = [f"hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22"]
        forwards += [f"hostfwd=tcp:127.0.0.1:{host}-:{guest}" for guest, host in self.host_ports.items()]
        cpu = "host" if accel == "kvm" else "max"
        argv = ["qemu-system-x86_64", "-name", "vzpanel-vmlab", "-nodefaults", "-no-user-config",
                "-machine", "pc", "-accel", accel, "-cpu", cpu, "-smp", str(self.cpus), "-m", str(self.memory_mib),
                "-display", "none", "-vga", "none", "-serial", "chardev:console",
                "-chardev", f"file,id=console,path={self.console_log},append=on",
                "-kernel", str(self.image.kernel), "-initrd", str(self.image.initrd),
                "-append", " ".join(KERNEL_ARGS + [f"systemd.machine_id={self.machine_id}"]),
                "-drive", f"file={self.overlay},if=virtio,format=qcow2,cache=unsafe,discard=unmap",
                "-netdev", ",".join(["user,id=net0,restrict=on", *forwards]),
                "-device", "virtio-net-pci,netdev=net0", "-device", "virtio-rng-pci"]
        with open(self.qemu_log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         preexec_fn=_die_with_parent)
        self._qemu_started = time.monotonic()

    def _wait_for_ssh(self, accel: str) -> None:
        deadline = self._qemu_started + self._ssh_timeout(accel)
        while True:
            self._check_alive()
            if accel == "kvm" and time.monotonic() - self._qemu_started > KVM_FIRST_OUTPUT_SECONDS \
                    and not self._console_has_output():
                raise MachineError(f"the guest printed nothing on its console in {KVM_FIRST_OUTPUT_SECONDS} s under KVM")
            if self._sshd_greets() and self._run_ssh(["true"], timeout=60, check=False, master=False).returncode == 0:
                return
            if time.monotonic() > deadline:
                raise MachineError(f"sshd did not answer in {self._ssh_timeout(accel)} s under {accel.upper()}")
            time.sleep(0.5)

    def _sshd_greets(self) -> bool:
        """Whether sshd sends its banner: a cheap probe. Until the guest listens, QEMU accepts the
        connection and closes it (or, before the guest has its address, says nothing)."""
        try:
            with socket.create_connection(("127.0.0.1", self.ssh_port), timeout=3) as sock:
                return sock.recv(8).startswith(b"SSH-")
        except OSError:
            return False

    def _start_and_wait(self, accel: str, attempts: int = 3) -> None:
        for attempt in range(attempts):
            self._start_qemu(accel)
            try:
                return self._wait_for_ssh(accel)
            except PortTaken:
                self._stop_qemu()
                if attempt == attempts - 1:
                    raise

    @staticmethod
    def _ssh_timeout(accel: str | None) -> float:
        return KVM_SSH_SECONDS if accel == "kvm" else TCG_SSH_SECONDS

    def _console_has_output(self) -> bool:
        try:
            return self.console_log.stat().st_size > 0
        except FileNotFoundError:
            return False

    def _check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            said = self.qemu_log.read_text(errors="replace").strip()[-2000:]
            raise (PortTaken if "Could not set up host forwarding rule" in said else MachineError)(f"QEMU exited ({code}): {said}")

    def _stop_qemu(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stop_master()

    def _ssh_options(self, master: str | None = "no") -> list[str]:
        """ssh's and scp's options: through the shared connection unless `master` is None."""
        mux = ["-o", f"ControlPath={self.control_path}", "-o", f"ControlMaster={master}"] if master else []
        return [*SSH_OPTIONS, *mux, "-i", str(self.image.ssh_key)]

    def _ssh_argv(self, master: bool = True) -> list[str]:
        return ["ssh", *self._ssh_options("no" if master else None), "-p", str(self.ssh_port), "root@127.0.0.1"]

    def _start_master(self) -> None:
        """One SSH connection that later commands reuse; when it is gone they connect on their own."""
        try:
            subprocess.run(["ssh", *self._ssh_options("yes"), "-o", "ControlPersist=yes", "-f", "-N",
                            "-p", str(self.ssh_port), "root@127.0.0.1"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        except subprocess.TimeoutExpired:
            pass  # commands connect on their own

    def _stop_master(self) -> None:
        if self.control_path and self.control_path.exists():
            subprocess.run(["ssh", "-o", f"ControlPath={self.control_path}", "-O", "exit", "root@127.0.0.1"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
            self.control_path.unlink(missing_ok=True)

    def _run_ssh(self, command: str | list[str], timeout: float, check: bool, input: str | None = None,
                 master: bool = True) -> subprocess.CompletedProcess:
        remote = command if isinstance(command, str) else shlex.join(command)
        argv = [*self._ssh_argv(master), remote]
        try:
            res = subprocess.run(argv, input=input, capture_output=True, text=True, errors="replace",
                                 timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            res = subprocess.CompletedProcess(argv, 124, _text(exc.stdout), _text(exc.stderr) + f"\n(timed out after {timeout} s)")
        if check and res.returncode != 0:
            raise CommandFailed(remote, res)
        return res

    def _scp(self, source: str, target: str) -> None:
        argv = ["scp", "-q", "-r", "-p", *self._ssh_options(), "-P", str(self.ssh_port), source, target]
        res = subprocess.run(argv, capture_output=True, text=True, errors="replace", stdin=subprocess.DEVNULL)
        if res.returncode != 0:
            raise CommandFailed(" ".join(argv[-2:]), res)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")
