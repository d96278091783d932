"""vzdump and vzrestore on real containers: faithful round trips, consistency, hostile archives."""
import hashlib
import io
import os
import re
import stat
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from django.conf import settings

from backups import services as bs
from backups.models import Backup
from containers import services
from containers.engine.vzdump import sha256_file
from containers.models import Container
from tasks.models import Task

from .conftest import DUMP_DIR, LXCPATH, lxc_info_state, lxcpath_entries, wait_task, wait_until

# own_lane: make test runs these beside the main lane (their CTIDs, 95xx, are theirs alone).
pytestmark = [pytest.mark.integration, pytest.mark.own_lane]


def make(admin, host, template_name, ctid, start=False):
    task = services.create_container(user=admin, ctid=ctid, ostemplate=template_name, hostname=f"b{ctid}.test",
                                     host=host, start=start)
    assert wait_task(task).status == "ok", task.log
    return Container.objects.get(ctid=ctid)


def tree(root: Path) -> dict:
    """Every path below root: type, mode, owner, size, content hash or link target, xattrs."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if rel.startswith("etc/vzdump"):
                continue
            st = os.lstat(path)
            entry = {"mode": st.st_mode, "uid": st.st_uid, "gid": st.st_gid,
                     "xattrs": sorted((k, os.getxattr(path, k, follow_symlinks=False))
                                      for k in os.listxattr(path, follow_symlinks=False))}
            if stat.S_ISLNK(st.st_mode):
                entry["target"] = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                entry["sha"] = hashlib.sha256(path.read_bytes()).hexdigest()
            out[rel] = entry
    return out


def decorate(rootfs: Path):
    """Files whose owners, modes and xattrs a backup must keep."""
    data = rootfs / "srv" / "data"
    data.mkdir(parents=True)
    (data / "owned").write_text("by 1234:2345\n")
    os.chown(data / "owned", 1234, 2345)
    (data / "setuid").write_bytes(b"\x7fELF fake")
    os.chmod(data / "setuid", 0o4755)
    (data / "tagged").write_text("xattr\n")
    os.setxattr(data / "tagged", "user.vzpanel", b"kept")
    os.symlink("owned", data / "link")
    os.link(data / "owned", data / "hardlink")
    (data / "big").write_bytes(os.urandom(3 * 1024 * 1024))


@pytest.mark.parametrize("mode", ["stop", "suspend", "snapshot"])
@pytest.mark.parametrize("compress", ["zst", "gz", "none"])
def test_backup_destroy_restore_keeps_every_file(agent, admin_user, host, template_name, mode, compress):
    ct = make(admin_user, host, template_name, 9501, start=(mode != "stop"))
    decorate(LXCPATH / "9501" / "rootfs")
    before = tree(LXCPATH / "9501" / "rootfs")
    task = wait_task(bs.backup_container(ct, admin_user, mode=mode, compress=compress))
    assert task.status == "ok", task.log
    backup = Backup.objects.get()
    archive = Path(backup.path)
    assert archive.name.startswith("vzdump-lxc-9501-") and archive.name.endswith({"zst": ".tar.zst", "gz": ".tar.gz", "none": ".tar"}[compress])
    assert sha256_file(archive) == backup.sha256
    assert (archive.parent / (archive.name + ".sha256")).read_text().split()[0] == backup.sha256
    assert (archive.parent / (archive.name.split(".tar")[0] + ".log")).read_text().count("Archive vzdump-lxc-9501") == 1
    if mode == "snapshot":
        assert "falling back to suspend" in task.log
    if mode == "suspend":
        assert "Frozen for" in task.log
    assert not list(DUMP_DIR.glob("*.partial")) and not list(DUMP_DIR.glob(".vzdump-tmp-*"))
    if mode != "stop":
        ct.refresh_from_db()
        assert wait_task(services.stop_container(ct, admin_user)).status == "ok"
        ct.refresh_from_db()
    assert wait_task(services.destroy_container(ct, admin_user, "9501")).status == "ok"
    task = wait_task(bs.restore_backup(Backup.objects.get(), admin_user, ctid=9502))
    assert task.status == "ok", task.log
    after = tree(LXCPATH / "9502" / "rootfs")
    assert after == before
    restored = Container.objects.get(ctid=9502)
    assert restored.hostname == "b9501.test" and restored.status == "stopped"
    assert wait_task(services.start_container(restored, admin_user)).status == "ok"


def test_suspend_mode_archive_is_consistent_with_the_frozen_moment(agent, admin_user, host, template_name):
    ct = make(admin_user, host, template_name, 9503, start=True)
    # A writer that puts the same counter into 20 files, round after round, as fast as it can.
    script = ("mkdir -p /w; i=0; while true; do i=$((i+1)); for f in 01 02 03 04 05 06 07 08 09 10 11 12 13 14 "
              "15 16 17 18 19 20; do echo $i > /w/$f; done; done")
    subprocess.Popen(["lxc-attach", "-n", "9503", "-P", str(LXCPATH), "--", "sh", "-c", script],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: (LXCPATH / "9503" / "rootfs" / "w" / "20").exists(), 10, message="the writer")
    task = wait_task(bs.backup_container(ct, admin_user, mode="suspend", compress="zst"))
    assert task.status == "ok", task.log
    backup = Backup.objects.get()
    found = {}
    with subprocess.Popen(["zstd", "-dc", backup.path], stdout=subprocess.PIPE) as dec:
        with tarfile.open(fileobj=dec.stdout, mode="r|") as tar:
            for member in tar:
                if member.name.startswith("./w/") and member.isfile():
                    text = tar.extractfile(member).read().decode().strip()
                    found[member.name] = int(text) if text else None
    values = [found[name] for name in sorted(found)]
    # At the frozen moment at most one file is being rewritten (truncated, not yet written: empty).
    assert len(values) == 20 and values.count(None) <= 1, values
    written = [v for v in values if v is not None]
    # Frozen between two rounds or inside one: never more than one round apart,
    # and files written earlier in a round are never behind later ones.
    assert max(written) - min(written) <= 1, values
    assert written == sorted(written, reverse=True), values
    assert "Frozen for" in task.log


def _tar(members, end=True) -> bytes:
    """A tar archive in memory from (TarInfo, data) pairs; without its end marker if not `end`."""
    buf = io.BytesIO()
    tar = tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT)
    for info, data in members:
        tar.addfile(info, io.BytesIO(data) if data is not None else None)
    if not end:
        return buf.getvalue()
    tar.close()
    return buf.getvalue()


def _info(name, kind=tarfile.REGTYPE, data=b"", linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.linkname = linkname
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info, (data if kind == tarfile.REGTYPE else None)


def _base_members(busybox_template):
    """A small but real root filesystem (busybox), so a harmless archive would restore fine."""
    out = []
    with subprocess.Popen(["zstd", "-dc", str(busybox_template)], stdout=subprocess.PIPE) as dec:
        with tarfile.open(fileobj=dec.stdout, mode="r|") as tar:
            for member in tar:
                data = tar.extractfile(member).read() if member.isfile() else None
                out.append((member, data))
    return out


HOSTILE = {
    "absolute path": [_info("/etc/vzpanel-pwned", data=b"x")],
    "dot-dot": [_info("./../../vzpanel-pwned", data=b"x")],
    "symlink escape": [_info("./escape", tarfile.SYMTYPE, linkname="/tmp"), _info("./escape/vzpanel-pwned", data=b"x")],
    "hardlink outside": [_info("./passwd-link", tarfile.LNKTYPE, linkname="/etc/passwd")],
    "hardlink to nothing": [_info("./orphan", tarfile.LNKTYPE, linkname="./not/there")],
}


@pytest.mark.parametrize("case", list(HOSTILE) + ["truncated", "size lies"])
def test_hostile_archives_are_refused_and_leave_nothing(agent, admin_user, host, template_name, busybox_template,
                                                        case):
    members = _base_members(busybox_template)
    if case in HOSTILE:
        data = _tar(members + HOSTILE[case])
    elif case == "truncated":
        data = _tar(members + [_info("./srv/big", data=os.urandom(200_000))], end=False)[:-150_000]
    else:  # a header that says more bytes follow than the archive holds, and no end
        info, payload = _info("./srv/short", data=b"x" * 100)
        info.size = 10_000_000
        data = _tar(members, end=False) + info.tobuf(tarfile.GNU_FORMAT) + payload.ljust(512, b"\0")
    DUMP_DIR.mkdir(parents=True, exist_ok=True)
    archive = DUMP_DIR / "vzdump-lxc-9510-2026_01_01-00_00_00.tar"
    archive.write_bytes(data)
    backup = Backup.objects.create(ctid=9510, host=host, storage_path=str(DUMP_DIR), filename=archive.name,
                                   size=len(data), sha256=sha256_file(archive), compress="none",
                                   config={"hostname": "hostile.test", "disk_mb": 512})
    task = wait_task(bs.restore_backup(backup, admin_user, ctid=9511))
    assert task.status == "failed", task.log
    assert any(word in task.error for word in ("absolute", "..", "symlink", "hardlink", "does not add up",
                                               "unpacking failed")), task.error
    assert not Container.objects.filter(ctid=9511).exists()
    assert lxc_info_state(9511) == "ABSENT"
    assert lxcpath_entries() == []  # no partial directory either
    assert not Path("/etc/vzpanel-pwned").exists() and not Path("/tmp/vzpanel-pwned").exists()
    assert not Path("/vzpanel-pwned").exists()


def test_device_nodes_in_an_archive_are_never_created(agent, admin_user, host, busybox_template):
    members = _base_members(busybox_template)
    dev = tarfile.TarInfo("./srv/sda")
    dev.type, dev.devmajor, dev.devminor, dev.mode = tarfile.BLKTYPE, 8, 0, 0o660
    data = _tar(members + [(dev, None)])
    DUMP_DIR.mkdir(parents=True, exist_ok=True)
    archive = DUMP_DIR / "vzdump-lxc-9512-2026_01_01-00_00_00.tar"
    archive.write_bytes(data)
    backup = Backup.objects.create(ctid=9512, host=host, storage_path=str(DUMP_DIR), filename=archive.name,
                                   size=len(data), sha256=sha256_file(archive), compress="none",
                                   config={"hostname": "dev.test", "disk_mb": 512})
    task = wait_task(bs.restore_backup(backup, admin_user, ctid=9513))
    assert task.status == "ok", task.log
    assert not (LXCPATH / "9513" / "rootfs" / "srv" / "sda").exists()
    assert "Device nodes not created" in task.log


def test_agent_crash_mid_backup_leaves_no_archive_that_looks_complete(agent, admin_user, host, template_name):
    ct = make(admin_user, host, template_name, 9514)
    (LXCPATH / "9514" / "rootfs" / "srv").mkdir(exist_ok=True)
    (LXCPATH / "9514" / "rootfs" / "srv" / "noise").write_bytes(os.urandom(8 * 1024 * 1024))
    task = bs.backup_container(ct, admin_user, compress="none", bwlimit_kbps=512)  # ~16 s at this rate
    wait_until(lambda: list(DUMP_DIR.glob("*.partial")), 20, message="the backup to be under way")
    agent.kill()
    assert not [p for p in DUMP_DIR.glob("vzdump-*") if not p.name.endswith(".partial")]
    agent.start()
    task.refresh_from_db()
    assert task.status == "failed" and "interrupted" in task.error
    assert list(DUMP_DIR.glob("*")) == [] and not Backup.objects.exists()


def test_verify_finds_a_damaged_archive(agent, admin_user, host, template_name):
    ct = make(admin_user, host, template_name, 9515)
    assert wait_task(bs.backup_container(ct, admin_user)).status == "ok"
    backup = Backup.objects.get()
    assert wait_task(bs.verify_backup(backup, admin_user)).status == "ok"
    backup.refresh_from_db()
    assert backup.verified_at is not None
    with open(backup.path, "r+b") as fh:
        fh.seek(200)
        fh.write(b"\x00" * 64)
    task = wait_task(bs.verify_backup(backup, admin_user))
    assert task.status == "failed" and "checksum mismatch" in task.error


def test_restore_over_a_stopped_container_needs_force_and_keeps_the_old_on_failure(agent, admin_user, host,
                                                                                 template_name):
    ct = make(admin_user, host, template_name, 9516)
    (LXCPATH / "9516" / "rootfs" / "marker").write_text("v1")
    assert wait_task(bs.backup_container(ct, admin_user)).status == "ok"
    backup = Backup.objects.get()
    (LXCPATH / "9516" / "rootfs" / "marker").write_text("v2")
    with pytest.raises(services.InvalidRequest, match="exists"):
        bs.restore_backup(backup, admin_user, ctid=9516)
    with pytest.raises(services.InvalidRequest, match="typing its CTID"):
        bs.restore_backup(backup, admin_user, ctid=9516, force=True, confirm="1")
    task = wait_task(bs.restore_backup(backup, admin_user, ctid=9516, force=True, confirm="9516"))
    assert task.status == "ok", task.log
    assert (LXCPATH / "9516" / "rootfs" / "marker").read_text() == "v1"
    # A damaged archive: the restore fails and the container keeps what it had.
    (LXCPATH / "9516" / "rootfs" / "marker").write_text("v3")
    with open(backup.path, "r+b") as fh:
        fh.truncate(os.path.getsize(backup.path) // 2)
    Backup.objects.filter(pk=backup.pk).update(sha256="")  # let it get as far as unpacking
    task = wait_task(bs.restore_backup(backup, admin_user, ctid=9516, force=True, confirm="9516"))
    assert task.status == "failed"
    assert (LXCPATH / "9516" / "rootfs" / "marker").read_text() == "v3"


def test_openvz_archive_is_imported_converted_and_restored(agent, admin_user, host, busybox_template):
    from network.models import IPAddress
    members = _base_members(busybox_template)
    vps_conf = b"\n".join([
        b'# OpenVZ config of a CT from an old host', b'ONBOOT="yes"', b'PHYSPAGES="0:262144"',
        b'SWAPPAGES="0:65536"', b'DISKSPACE="1048576:1153434"', b'DISKINODES="200000:220000"',
        b'NUMPROC="240:240"', b'CPUUNITS="1000"', b'CPULIMIT="50"', b'CPUS="2"',
        b'HOSTNAME="legacy.example.org"', b'IP_ADDRESS="198.51.100.77"', b'NAMESERVER="198.51.100.53"',
        b'SEARCHDOMAIN="example.org"', b'OSTEMPLATE="centos-6-x86_64"', b''])
    data = _tar(members + [_info("./etc/vzdump", tarfile.DIRTYPE), _info("./etc/vzdump/vps.conf", data=vps_conf)])
    staged = Path(settings.UPLOAD_DIR)
    staged.mkdir(parents=True, exist_ok=True)
    archive = staged / "vzdump-openvz-9520-2014_05_06-01_02_03.tar"
    archive.write_bytes(data)
    task = wait_task(bs.import_archive(admin_user, host, str(archive)))
    assert task.status == "ok", task.log
    backup = Backup.objects.get()
    assert (backup.kind, backup.ctid) == ("openvz", 9520)
    assert backup.config["ram_mb"] == 1024 and backup.config["swap_mb"] == 256 and backup.config["cpus"] == 2
    assert backup.config["addresses"] == ["198.51.100.77"]
    assert not archive.exists() and (DUMP_DIR / archive.name).exists()
    task = wait_task(bs.restore_backup(backup, admin_user, ctid=9520, start=True))
    assert task.status == "ok", task.log
    ct = Container.objects.get(ctid=9520)
    assert (ct.hostname, ct.ram_mb, ct.swap_mb, ct.cpus, ct.cpulimit, ct.numproc, ct.disk_mb) == (
        "legacy.example.org", 1024, 256, 2, 50, 240, 1126)
    assert ct.nameservers == ["198.51.100.53"] and ct.searchdomain == "example.org"
    assert IPAddress.objects.get(container=ct).address == "198.51.100.77"
    assert lxc_info_state(9520) == "RUNNING"
    assert not (LXCPATH / "9520" / "rootfs" / "etc" / "vzdump" / "vps.conf").exists()


def test_vzdump_and_vzrestore_cli_with_mailed_report(agent, admin_user, host, template_name, smtp_server):
    import sys
    from .conftest import BASE_DIR
    make(admin_user, host, template_name, 9530)
    env = {**agent.env(), "PANEL_EMAIL_HOST": "127.0.0.1", "PANEL_EMAIL_PORT": str(smtp_server.port)}
    res = subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), "vzdump", "9530", "--compress", "gzip",
                          "--stdexcludes", "--mailto", "ops@example.test"], cwd=BASE_DIR, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr + res.stdout
    backup = Backup.objects.get()
    assert backup.filename.endswith(".tar.gz")
    wait_until(lambda: smtp_server.messages, 10, message="the report")
    from email import message_from_bytes, policy
    message = message_from_bytes(smtp_server.messages[0].original_content, policy=policy.default)
    import socket
    assert message["Subject"] == f"vzdump backup status ({socket.getfqdn()}) : backup successful"
    assert smtp_server.messages[0].rcpt_tos == ["ops@example.test"]
    body = message.get_body(preferencelist=("plain",)).get_content()
    assert "9530" in body and "TOTAL" in body and "\nvzdump 9530 --mode " in body
    assert re.search(r"^9530: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO: ", body, re.M)
    res = subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), "vzrestore", backup.filename, "9531"],
                         cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr + res.stdout
    assert lxc_info_state(9531) == "STOPPED"
    res = subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), "vzrestore", backup.filename, "9531"],
                         cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "exists" in res.stderr
