"""More hosts on this machine, for multi-host and migration tests.

- `second_host`: another host in this network namespace, with its own lxcpath,
  template and dump directories and its own agent; copies to it go on the local
  filesystem (same machine).
- `remote_host`: a host in a network namespace of its own (vzpt-h3), joined to this one by a
  veth pair in 198.18.0.0/24 (RFC 2544 test range, kept inside this machine). It runs its own
  sshd (test host key, forced-commands-only) and its agent inside that namespace, so copies
  to it travel over SSH on a real network path and its containers' addresses live there.
Everything is removed at the end, also when a test fails.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from .conftest import RUN_DIR, AgentProcess, _unmount_under, destroy_containers_in, wait_until

NETNS = "vzpt-h3"
LINK_HOST, LINK_NS = "vzpt-h3a", "vzpt-h3b"
HOST_SIDE_IP, NS_SIDE_IP = "198.18.0.1", "198.18.0.2"
NSENTER = ["nsenter", f"--net=/run/netns/{NETNS}", "--"]


def make_host(name: str, base: Path, **fields):
    from hosts.models import Host
    for sub in ("lxc", "templates", "dump"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    return Host.objects.create(name=name, lxcpath=str(base / "lxc"), template_dir=str(base / "templates"),
                               dump_dir=str(base / "dump"), **fields)


@pytest.fixture
def second_host(transactional_db, host, redis_conn):
    """(Host, AgentProcess) of a second host on this machine; the agent is not started yet."""
    base = RUN_DIR / "h2"
    h2 = make_host("vzt-h2", base)
    agent = AgentProcess(h2.name, extra_env={"PANEL_AGENT_DATA_DIR": str(base / "agent-data")})
    try:
        yield h2, agent
    finally:
        agent.kill()
        destroy_containers_in(base / "lxc")
        _unmount_under(base)
        shutil.rmtree(base, ignore_errors=True)


class RemoteSite:
    """The network namespace, its link and its sshd (no database: module-scoped)."""

    def __init__(self, base: Path):
        self.base = base
        self.sshd: subprocess.Popen | None = None
        self.host_key = base / "ssh_host_ed25519_key"
        self.authorized_keys = base / "authorized_keys"
        self.made_run_sshd = False

    def up(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        run = lambda *argv: subprocess.run(list(argv), check=True, capture_output=True)  # noqa: E731
        run("ip", "netns", "add", NETNS)
        run("ip", "link", "add", LINK_HOST, "type", "veth", "peer", "name", LINK_NS)
        run("ip", "link", "set", LINK_NS, "netns", NETNS)
        run("ip", "addr", "add", f"{HOST_SIDE_IP}/24", "dev", LINK_HOST)
        run("ip", "link", "set", LINK_HOST, "up")
        run("ip", "-n", NETNS, "addr", "add", f"{NS_SIDE_IP}/24", "dev", LINK_NS)
        run("ip", "-n", NETNS, "link", "set", LINK_NS, "up")
        run("ip", "-n", NETNS, "link", "set", "lo", "up")
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.host_key))
        self.authorized_keys.touch(mode=0o600)
        (self.base / "sshd_config").write_text("\n".join([
            "Port 22", f"ListenAddress {NS_SIDE_IP}", f"HostKey {self.host_key}",
            f"AuthorizedKeysFile {self.authorized_keys}", "PermitRootLogin forced-commands-only",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
            f"PidFile {self.base / 'sshd.pid'}", "LogLevel VERBOSE", "MaxStartups 50",
        ]) + "\n")
        if not Path("/run/sshd").exists():
            Path("/run/sshd").mkdir(mode=0o755)
            self.made_run_sshd = True
        self.start_sshd()

    def start_sshd(self) -> None:
        log = open(self.base / "sshd.log", "a")
        self.sshd = subprocess.Popen([*NSENTER, "/usr/sbin/sshd", "-D", "-e", "-f", str(self.base / "sshd_config")],
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

        def listening():
            res = subprocess.run([*NSENTER, "ss", "-Hltn", "sport = :22"], capture_output=True, text=True)
            return NS_SIDE_IP in res.stdout
        wait_until(listening, 10, message="sshd in the namespace")

    def cut_ssh(self) -> None:
        """Kill sshd and every session it serves: connections drop at once."""
        subprocess.run(["pkill", "-KILL", "-f", f"sshd.*{self.base}"], capture_output=True)
        subprocess.run([*NSENTER, "pkill", "-KILL", "-x", "sshd"], capture_output=True)
        subprocess.run([*NSENTER, "pkill", "-KILL", "-x", "rsync"], capture_output=True)
        if self.sshd:
            self.sshd.wait(10)
            self.sshd = None

    def down(self) -> None:
        if self.sshd and self.sshd.poll() is None:
            os.killpg(self.sshd.pid, signal.SIGKILL)
            self.sshd.wait(10)
        subprocess.run([*NSENTER, "pkill", "-KILL", "-x", "sshd"], capture_output=True)
        subprocess.run(["ip", "netns", "del", NETNS], capture_output=True)
        subprocess.run(["ip", "link", "del", LINK_HOST], capture_output=True)
        if self.made_run_sshd:
            shutil.rmtree("/run/sshd", ignore_errors=True)
        _unmount_under(self.base)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def remote_site(run_dir):
    site = RemoteSite(RUN_DIR / "h3")
    try:
        site.up()
        yield site
    finally:
        site.down()


@pytest.fixture
def remote_host(transactional_db, host, redis_conn, remote_site):
    """(Host, AgentProcess) of the host in the namespace; the agent is not started yet. Start the
    source's agent first: this one authorizes the keys of the hosts it finds."""
    base = remote_site.base
    h3 = make_host("vzt-h3", base, ssh_address=NS_SIDE_IP)
    agent = AgentProcess(h3.name, prefix=NSENTER, extra_env={
        "PANEL_AGENT_DATA_DIR": str(base / "agent-data"),
        "PANEL_SSH_HOST_KEY": str(remote_site.host_key) + ".pub",
        "PANEL_SSH_AUTHORIZED_KEYS": str(remote_site.authorized_keys),
    })
    try:
        yield h3, agent
    finally:
        agent.kill()
        destroy_containers_in(base / "lxc", NSENTER)
        if remote_site.sshd is None:
            remote_site.start_sshd()
        remote_site.authorized_keys.write_text("")

