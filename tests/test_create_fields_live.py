"""Issue 18 on real containers: what a create gives (an address, root's password, SSH keys) is there
when checked from inside; a template that plants links where they are written is refused and leaves
nothing; a restore keeps each address of the archive that is free and its tenant's, and says why it
drops the others."""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from django.utils import timezone

from backups import services as backup_services
from backups.models import Backup
from containers import services
from containers.models import Container, OSTemplate
from network.models import IPAddress, IPPool
from panel.shacrypt import sha512_crypt

from .adversarial import archives as A
from .conftest import DUMP_DIR, LXCPATH, TEMPLATE_DIR, wait_task
from .test_create_fields import ED25519, PASSWORD
from .test_network import clean_network  # noqa: F401  (a fixture: no interface, route or proxy entry is left)

pytestmark = pytest.mark.integration

SECOND_KEY = ("ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQEezOmxkZMy7opKgwFB9nkt"
              "5YRrYMjNuG5N87uRgg6CLrbo5wAdT/y6v0mKV0U2w0WZ2YB/++Tpockg= bob@desk")
# Root's hash in /etc/shadow, made again inside with busybox's mkpasswd from the password on stdin and
# the hash's own salt: the container's crypt agrees with the panel's.
CHECK_PASSWORD = ('h=$(grep "^root:" /etc/shadow | cut -d: -f2); s=$(echo "$h" | cut -d"$" -f3); '
                  'm=$(mkpasswd -m sha512 -S "$s"); [ -n "$h" ] && [ "$m" = "$h" ] && echo MATCH || echo "NO $h"')


def run_in(ct, user, argv, stdin=None):
    task = wait_task(services.exec_in_container(ct, user, argv, timeout=30, stdin=stdin))
    assert task.status == "ok", task.log
    return task.result


def test_a_created_container_has_its_address_password_and_keys_inside(agent, clean_network, people, acme, plan,  # noqa: F811
                                                                      host, template_name, redis_conn):
    IPPool.objects.create(name="acme-live", network="198.51.100.0/24", ranges="198.51.100.60-198.51.100.69"
                          ).tenants.add(acme)
    tadmin = people["tadmin"]
    task = wait_task(services.create_container(
        user=tadmin, ctid=9494, ostemplate=template_name, hostname="live.test", host=host, tenant=acme, plan=plan,
        start=True, addresses=["auto"], root_password=PASSWORD, ssh_public_keys=[ED25519, SECOND_KEY]), 120)
    assert task.status == "ok", task.log
    ct = Container.objects.get(ctid=9494)
    assert run_in(ct, tadmin, ["sh", "-c", CHECK_PASSWORD], stdin=PASSWORD + "\n")["stdout"].strip() == "MATCH"
    assert run_in(ct, tadmin, ["sh", "-c", CHECK_PASSWORD], stdin="wrong-password\n")["stdout"].startswith("NO $6$")
    modes = run_in(ct, tadmin, ["stat", "-c", "%a %u %g %F", "/root/.ssh", "/root/.ssh/authorized_keys"])["stdout"]
    assert modes.splitlines() == ["700 0 0 directory", "600 0 0 regular file"]
    assert run_in(ct, tadmin, ["cat", "/root/.ssh/authorized_keys"])["stdout"] == f"{ED25519}\n{SECOND_KEY}\n"
    assert "inet 198.51.100.60/32" in run_in(ct, tadmin, ["ip", "-4", "addr", "show"])["stdout"]
    assert list(ct.addresses.values_list("address", flat=True)) == ["198.51.100.60"]
    assert "Root password set" in task.log and "2 SSH public keys for root" in task.log
    assert PASSWORD not in task.log and "$6$" not in task.log and "$6$" not in str(task.params)
    assert redis_conn.keys("vzpanel:task-secret:*") == []  # taken once by the agent


def hostile_template(busybox_template: Path, name: str, replace: dict[str, bytes]) -> str:
    """A copy of the busybox template in the cache whose members named in `replace` are swapped for
    the raw members given (links onto the host); returns its name."""
    buf = io.BytesIO()
    out = tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT)
    with subprocess.Popen(["zstd", "-dc", str(busybox_template)], stdout=subprocess.PIPE) as dec:
        with tarfile.open(fileobj=dec.stdout, mode="r|") as tar:
            for info in tar:
                if info.name.rstrip("/") not in replace:
                    out.addfile(info, tar.extractfile(info) if info.isfile() else None)
    out.fileobj.flush()
    data = buf.getvalue() + b"".join(replace.values()) + A.end()
    A.write(TEMPLATE_DIR / f"{name}.tar.zst", A.compress(data))
    return name


@pytest.fixture
def host_dir():
    path = Path("/root") / f"vzpanel-createfields-{os.getpid()}"
    (path / "ssh").mkdir(parents=True, mode=0o700)
    (path / "shadow").write_text("hostroot:HOST-HASH:19000:0:99999:7:::\n")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("member,target,given", [
    ("./etc/shadow", "shadow", {"root_password": PASSWORD}),
    ("./root", "", {"ssh_public_keys": [ED25519]}),  # root's home a link to a host directory
])
def test_links_in_the_template_never_lead_the_password_or_keys_onto_the_host(agent, admin_user, host,
                                                                            busybox_template, host_dir, member,
                                                                            target, given):
    name = f"linked-{member.strip('./').replace('/', '-')}"
    link_to = str(host_dir / target) if target else str(host_dir / "ssh")
    hostile_template(busybox_template, name, {member: A.symlink(member, link_to)})
    try:
        OSTemplate.objects.update_or_create(host=host, name=name, defaults={"filename": f"{name}.tar.zst", "size": 1,
                                                                          "sha256": "x" * 64,
                                                                          "modified_at": timezone.now()})
        task = wait_task(services.create_container(user=admin_user, ctid=9495, ostemplate=name, hostname="l.test",
                                                   host=host, **given), 120)
        assert task.status == "failed", task.log
        assert "symbolic link" in task.error and "\n" not in task.error, task.error
        assert not Container.objects.filter(ctid=9495).exists()
        assert [p.name for p in LXCPATH.iterdir() if "9495" in p.name] == []
        assert (host_dir / "shadow").read_text() == "hostroot:HOST-HASH:19000:0:99999:7:::\n"
        assert list((host_dir / "ssh").iterdir()) == []
    finally:
        (TEMPLATE_DIR / f"{name}.tar.zst").unlink(missing_ok=True)
        OSTemplate.objects.filter(name=name).delete()


# -- restore: what becomes of each address ----------------------------------------------------------
def backup_of(ct, user) -> Backup:
    task = wait_task(backup_services.backup_container(ct, user), 180)
    assert task.status == "ok", task.log
    return Backup.objects.get(task=task)


def outcome(task, address):
    return next(o for o in task.result["addresses"] if o["address"] == address)


def test_restore_keeps_free_addresses_of_the_tenant_and_says_why_it_drops_the_others(
        agent, clean_network, people, acme, other_tenant, plan, host, template_name, admin_user, redis_conn):  # noqa: F811
    IPPool.objects.create(name="acme-r", network="198.51.100.0/24", ranges="198.51.100.70-198.51.100.79"
                          ).tenants.add(acme)
    IPPool.objects.create(name="other-r", network="203.0.113.0/24").tenants.add(other_tenant)
    tadmin = people["tadmin"]
    task = wait_task(services.create_container(user=tadmin, ctid=9496, ostemplate=template_name, hostname="r.test",
                                               host=host, tenant=acme, plan=plan, addresses=["auto", "auto"]), 120)
    assert task.status == "ok", task.log
    original = Container.objects.get(ctid=9496)
    # An administrator also gave it an address of the other tenant's pool (theirs to do).
    IPAddress.objects.create(address="203.0.113.5", container=original)
    backup = backup_of(original, tadmin)
    assert set(backup.config["addresses"]) == {"198.51.100.70", "198.51.100.71", "203.0.113.5"}
    IPAddress.objects.filter(address="203.0.113.5").delete()

    # As a new container while the original still holds its addresses: each dropped, saying by whom.
    task = wait_task(backup_services.restore_backup(backup, tadmin, ctid=9497, plan=plan), 180)
    assert task.status == "ok", task.log
    held = outcome(task, "198.51.100.70")
    assert held["kept"] is False and "in use by container 9496" in held["reason"], task.result
    foreign = outcome(task, "203.0.113.5")
    assert foreign["kept"] is False and "not in an IP pool of tenant acme" in foreign["reason"]
    assert not IPAddress.objects.filter(container__ctid=9497).exists()
    assert "Address 198.51.100.70: dropped (198.51.100.70 is in use by container 9496" in task.log
    # Even an administrator's restore of acme's container never takes another tenant's address.
    task = wait_task(backup_services.restore_backup(backup, admin_user, ctid=9498, plan=plan,
                                                    tenant=acme), 180)
    assert task.status == "ok", task.log
    assert "which tenant acme may not use" in outcome(task, "203.0.113.5")["reason"]
    assert not IPAddress.objects.filter(address="203.0.113.5").exists()

    # Over the original: the addresses it holds are kept as they are; one it lost meanwhile comes back.
    IPAddress.objects.filter(address="198.51.100.71").delete()
    task = wait_task(backup_services.restore_backup(backup, tadmin, ctid=9496, force=True, confirm="9496"), 180)
    assert task.status == "ok", task.log
    assert outcome(task, "198.51.100.70") == {"address": "198.51.100.70", "kept": True, "new": False,
                                              "reason": "the container holds it already"}
    assert outcome(task, "198.51.100.71")["kept"] is True and outcome(task, "198.51.100.71")["new"] is True
    assert set(original.addresses.values_list("address", flat=True)) == {"198.51.100.70", "198.51.100.71"}
    assert "198.51.100.71" in (LXCPATH / "9496" / "rootfs" / "etc" / "hosts").read_text()

    # Once the original is gone, a restore as a new container keeps them all (those of its tenant).
    assert wait_task(services.destroy_container(original, tadmin, "9496")).status == "ok"
    task = wait_task(backup_services.restore_backup(backup, tadmin, ctid=9499, plan=plan, start=True), 180)
    assert task.status == "ok", task.log
    assert [o["kept"] for o in task.result["addresses"]] == [True, True, False]
    assert set(IPAddress.objects.filter(container__ctid=9499).values_list("address", flat=True)) == {
        "198.51.100.70", "198.51.100.71"}
    ct = Container.objects.get(ctid=9499)
    assert "inet 198.51.100.70/32" in run_in(ct, tadmin, ["ip", "-4", "addr", "show"])["stdout"]
    shutil.rmtree(DUMP_DIR, ignore_errors=True)


@pytest.mark.parametrize("tamper,words", [
    (lambda conn, key: conn.delete(key), "root password was not found"),  # Redis restarted, or a day passed
    # Redis is writable by the web user: a value that would add a line to /etc/shadow is never written.
    (lambda conn, key: conn.set(key, sha512_crypt("x") + "\nevil::0:0:99999:7:::"), "SHA-512 crypt hash"),
    (lambda conn, key: conn.set(key, "$6$salt$short:0:"), "SHA-512 crypt hash"),
])
def test_a_lost_or_tampered_password_hash_fails_the_create_and_leaves_nothing(agent_process, admin_user, host,
                                                                            template_name, redis_conn, tamper,
                                                                            words):
    task = services.create_container(user=admin_user, ctid=9493, ostemplate=template_name, hostname="t.test",
                                     host=host, root_password=PASSWORD, ssh_public_keys=[ED25519])
    tamper(redis_conn, f"vzpanel:task-secret:{host.name}:{task.pk}")
    agent_process.start()
    task = wait_task(task, 120)
    assert task.status == "failed" and words in task.error and "\n" not in task.error, task.log
    assert not Container.objects.filter(ctid=9493).exists()
    assert [p.name for p in LXCPATH.iterdir() if "9493" in p.name] == []


def test_a_failed_restore_over_a_container_gives_back_the_addresses_it_took(agent, admin_user, host, template_name,
                                                                            tmp_path, monkeypatch):
    """The archive fills the disk to the byte, so the restore fails after its addresses were taken:
    the one the container held stays its own, the one it took for the restore is free again."""
    from .adversarial import test_archives as T
    config = A.member("./etc/vzdump/pct.conf", b"addresses: 198.51.100.88 198.51.100.89\n")
    monkeypatch.setattr(T, "MINIMAL_TREE", T.MINIMAL_TREE + A.directory("./etc/vzdump/") + config)
    backup = T.stored_backup(host, T.disk_filling_archive(tmp_path, 300), 9478, diskinodes=220000)
    IPPool.objects.create(name="give-back", network="198.51.100.0/24", ranges="198.51.100.80-198.51.100.89")
    task = wait_task(services.create_container(user=admin_user, ctid=9479, ostemplate=template_name,
                                               hostname="g.test", host=host, addresses=["198.51.100.88"],
                                               limits={"disk_mb": 300, "diskinodes": 220000}), 120)
    assert task.status == "ok", task.log
    task = wait_task(backup_services.restore_backup(backup, admin_user, ctid=9479, force=True, confirm="9479"), 180)
    assert task.status == "failed" and "no space left" in task.error, task.log
    assert "Address 198.51.100.89: kept" in task.log and "Addresses given back: 198.51.100.89" in task.log
    assert list(IPAddress.objects.values_list("address", "container__ctid")) == [("198.51.100.88", 9479)]
    shutil.rmtree(DUMP_DIR, ignore_errors=True)
