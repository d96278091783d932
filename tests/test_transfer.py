"""The migration key's limits, run for real: rsync_gate.py as sshd would run it, and the
authorized_keys block the agent manages. (The accepted path runs in tests/test_migration.py,
where every SSH migration goes through the gate.)"""
from __future__ import annotations

import os
import subprocess

import pytest

from containers.engine import transfer
from containers.engine.sshaddress import AddressError, split_address

GATE = transfer.GATE


def gate(lxcpath, command: str):
    env = dict(os.environ, SSH_ORIGINAL_COMMAND=command)
    return subprocess.run(["/usr/bin/python3", "-I", str(GATE), str(lxcpath)], env=env, capture_output=True,
                          text=True, timeout=30, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("command, why", [
    ("", "only rsync receiving"),
    ("sh -c 'touch /tmp/pwned'", "only rsync receiving"),
    ("rsync --server --sender -logDtpre.iLsfxCIvu . .vzpanel-incoming-1-2/", "only rsync receiving"),
    ("rsync --server -logDtpre.iLsfxCIvu . /etc/", "destination '/etc/'"),
    ("rsync --server -logDtpre.iLsfxCIvu . .vzpanel-incoming-1-2/../../etc/", "destination"),
    ("rsync --server -logDtpre.iLsfxCIvu . 101/rootfs/", "destination '101/rootfs/'"),
    ("rsync --server --rsync-path=/bin/sh -logDtpre.iLsfxCIvu . .vzpanel-incoming-1-2/", "option '--rsync-path"),
    ("rsync --server --log-file=/etc/passwd -r . .vzpanel-incoming-1-2/", "option '--log-file"),
    ("rsync --server -r .; touch /tmp/x . .vzpanel-incoming-1-2/", "refused"),
    ("rsync --server -r 'unterminated", "unparsable command"),
])
def test_the_gate_refuses_everything_but_receiving_into_an_incoming_copy(tmp_path, command, why):
    res = gate(tmp_path, command)
    assert res.returncode == 2 and "vzpanel rsync gate: refused" in res.stderr and why in res.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written, nothing run


def test_the_gate_runs_rsync_for_what_migrations_send(tmp_path):
    # What the source's rsync asks for (as captured from a real run), but with no peer to talk to:
    # the gate execs rsync --server in the lxcpath, which then waits for the protocol and ends.
    res = gate(tmp_path, "rsync --server -lWHogDtpAXrxSe.iLsfxCIvu --timeout=60 --delete -@-1 --numeric-ids "
                         ". .vzpanel-incoming-9801-7/rootfs/")
    assert "refused" not in res.stderr and res.returncode != 2


def test_authorized_keys_block_keeps_the_admins_own_lines(tmp_path):
    path = tmp_path / "authorized_keys"
    path.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIadmin admin@laptop\n")
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIpeer"
    line = transfer.authorized_line(key + " comment", "/var/lib/lxc", "vzpanel-agent@node1")
    assert line.startswith(f'command="/usr/bin/python3 -I {GATE} /var/lib/lxc",restrict {key} ')
    assert transfer.write_authorized_keys(path, [line]) is True
    assert transfer.write_authorized_keys(path, [line]) is False  # unchanged: not rewritten
    text = path.read_text()
    assert text.startswith("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIadmin admin@laptop\n") and line in text
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    transfer.write_authorized_keys(path, [])  # every peer revoked: the block goes, the admin's line stays
    assert path.read_text() == "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIadmin admin@laptop\n"


@pytest.mark.parametrize("key, lxcpath", [
    ('ssh-ed25519 AAAA",command="sh', "/var/lib/lxc"),
    ("not-a-key AAAA", "/var/lib/lxc"),
    ("ssh-ed25519 AAAAC3Nza", "/var/lib/lxc x"),
    ("ssh-ed25519 AAAAC3Nza", '/var/lib/lxc",command="sh'),
])
def test_odd_keys_and_paths_are_never_authorized(key, lxcpath):
    with pytest.raises(transfer.TransferError, match="refusing to authorize"):
        transfer.authorized_line(key, lxcpath, "x")


@pytest.mark.parametrize("address, expected", [
    ("node2", ("node2", 22)), ("192.0.2.5:2222", ("192.0.2.5", 2222)), ("[2001:db8::5]:22", ("2001:db8::5", 22)),
])
def test_ssh_addresses(address, expected):
    assert split_address(address) == expected


@pytest.mark.parametrize("address", ["node2:0", "node2:99999", "root@node2", "node2;reboot", "-oProxyCommand=x", "-oProxyCommand", ""])
def test_bad_ssh_addresses(address):
    with pytest.raises(AddressError):
        split_address(address)
