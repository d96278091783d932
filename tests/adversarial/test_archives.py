"""Issue 12, findings 4 to 7: hostile archives during restore and import.

The archives are made here, header by header (archives.py), and compressed with the real
zstd and gzip. Each attack goes through the panel's own service functions to the real agent
(restore, import), whose memory is sampled while it works; the walker's rules are also tested
directly, fast, through safe_extract and scan_archive.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

from backups import services as bs
from backups.models import Backup
from containers import services
from containers.engine.diskimage import DiskImage
from containers.engine.vzdump import (CONFIG_LIMIT, ArchiveError, Member, MemberCheck, PathSet, UnsafeArchive,
                                      safe_extract, scan_archive, sha256_file)
from containers.models import Container

from ..conftest import DUMP_DIR, LXCPATH, RUN_DIR, lxc_info_state, wait_task
from . import archives as A

MIB = 1 << 20
MEMORY_LIMIT = 200 * MIB
HOST_DIR_CONFIG = "hostname: stolen.example\nnameservers: 203.0.113.66\nsearchdomain: stolen.example\n"


# -- helpers --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def base_tree(busybox_template) -> bytes:
    """The members of a small but real root filesystem (busybox), without an end marker."""
    return A.base_members(busybox_template)


@pytest.fixture
def host_dir():
    """A host directory the test owns, holding a pct.conf an archive must never reach."""
    path = Path("/root") / f"vzpanel-adv-{os.getpid()}"
    path.mkdir(mode=0o700)
    (path / "pct.conf").write_text(HOST_DIR_CONFIG)
    (path / "vps.conf").write_text('HOSTNAME="stolen.example"\n')
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def stored_backup(host, data: bytes, ctid: int, compress: str = "zst", **config) -> Backup:
    """A backup row for an archive the test wrote into the dump directory."""
    DUMP_DIR.mkdir(parents=True, exist_ok=True)
    path = A.write(DUMP_DIR / A.archive_name(ctid, compress), data)
    return Backup.objects.create(ctid=ctid, host=host, storage_path=str(DUMP_DIR), filename=path.name,
                                 size=len(data), sha256=sha256_file(path), compress=compress,
                                 config={"hostname": f"adv{ctid}.test", "disk_mb": 300, **config})


def restored(backup, user, ctid: int, timeout: float = 180, **kw):
    return wait_task(bs.restore_backup(backup, user, ctid=ctid, **kw), timeout)


def staged(data: bytes, ctid: int, compress: str = "zst") -> Path:
    """An uploaded archive waiting in the uploads directory to be imported."""
    return A.write(Path(settings.UPLOAD_DIR) / A.archive_name(ctid, compress), data)


def assert_refused_cleanly(task, ctid: int, *words: str) -> None:
    """Failed, saying why in one line (no traceback), and nothing of the container is left."""
    assert task.status == "failed", task.log
    assert "Traceback" not in task.log and "\n" not in task.error, task.log
    assert any(word in task.error for word in words), task.error
    assert not Container.objects.filter(ctid=ctid).exists()
    assert lxc_info_state(ctid) == "ABSENT"
    assert [p.name for p in LXCPATH.iterdir() if str(ctid) in p.name] == []  # no partial copy either


def assert_no_children(agent) -> None:
    """No decompressor or tar left behind by the agent, running or zombie."""
    assert A.children_named(agent.proc.pid) == []


# -- finding 4: the configuration comes from the stream, never from the tree ----------------------------

@pytest.mark.integration
def test_config_device_node_and_vzdump_symlink_never_reach_host_files(agent, admin_user, host, base_tree, host_dir):
    """pct.conf as a device node, then ./etc/vzdump as a link to a host directory holding a pct.conf:
    the agent once read that file into the new container's settings and deleted it."""
    data = A.compress(base_tree + A.device("./etc/vzdump/pct.conf") + A.symlink("./etc/vzdump", str(host_dir))
                      + A.end())
    task = restored(stored_backup(host, data, 74001), admin_user, 74002)
    assert_refused_cleanly(task, 74002, "configuration ./etc/vzdump/pct.conf is a character device")
    assert (host_dir / "pct.conf").read_text() == HOST_DIR_CONFIG
    assert (host_dir / "vps.conf").exists()
    assert "stolen" not in task.log


@pytest.mark.integration
def test_config_is_read_from_the_stream_and_not_written_into_the_tree(agent, admin_user, host, base_tree, host_dir):
    """The archive's own pct.conf sets the restored container's DNS; a link the archive then makes at
    ./etc/vzdump (to a host directory with another pct.conf) is only a link in the tree."""
    config = b"hostname: adv.test\nnameservers: 192.0.2.53\nsearchdomain: adv.example\n"
    data = A.compress(base_tree + A.member("./etc/vzdump/pct.conf", config) + A.member("./srv-marker", b"m")
                      + A.end())
    task = restored(stored_backup(host, data, 74003), admin_user, 74004)
    assert task.status == "ok", task.log
    ct = Container.objects.get(ctid=74004)
    assert ct.nameservers == ["192.0.2.53"] and ct.searchdomain == "adv.example"
    rootfs = LXCPATH / "74004" / "rootfs"
    assert not os.path.lexists(rootfs / "etc" / "vzdump")  # neither the file nor the directory made for it
    # The same with the link to a host directory following the configuration.
    data = A.compress(base_tree + A.member("./etc/vzdump/pct.conf", config) + A.symlink("./etc/vzdump", str(host_dir))
                      + A.end())
    task = restored(stored_backup(host, data, 74005), admin_user, 74006)
    assert task.status == "ok", task.log
    assert Container.objects.get(ctid=74006).nameservers == ["192.0.2.53"]
    assert os.readlink(LXCPATH / "74006" / "rootfs" / "etc" / "vzdump") == str(host_dir)
    assert (host_dir / "pct.conf").read_text() == HOST_DIR_CONFIG


@pytest.mark.integration
def test_import_reads_the_config_from_the_stream_only(agent, admin_user, host, base_tree, host_dir):
    data = A.compress(base_tree + A.device("./etc/vzdump/vps.conf", b"6") + A.symlink("./etc/vzdump", str(host_dir))
                      + A.end())
    source = staged(data, 74007)
    task = wait_task(bs.import_archive(admin_user, host, str(source)))
    assert task.status == "failed" and "\n" not in task.error and "Traceback" not in task.log, task.log
    assert "configuration ./etc/vzdump/vps.conf is a FIFO" in task.error
    assert not Backup.objects.exists() and not source.exists()
    assert (host_dir / "pct.conf").read_text() == HOST_DIR_CONFIG and (host_dir / "vps.conf").exists()


# -- finding 5: memory, and the decompressor is always reaped --------------------------------------------

def huge_config_archive(base: bytes, name: str = "./etc/vzdump/pct.conf", size: int = 256 * MIB) -> bytes:
    """A tiny zstd archive whose configuration is `size` bytes of newlines."""
    return A.compress([base, *A.big_member(name, size), A.end()])


@pytest.mark.integration
def test_huge_config_is_refused_unread_by_import_and_restore(agent, admin_user, host, base_tree):
    data = huge_config_archive(base_tree)
    assert len(data) < 2 * MIB
    source = staged(data, 74010)
    with A.PeakRss(agent.proc.pid) as rss:
        task = wait_task(bs.import_archive(admin_user, host, str(source)), 120)
    assert task.status == "failed" and "Traceback" not in task.log, task.log
    assert "configuration ./etc/vzdump/pct.conf has 268,435,456 bytes" in task.error and "not read" in task.error
    assert not Backup.objects.exists() and not source.exists()
    assert rss.peak < MEMORY_LIMIT, f"agent peaked at {rss.peak / MIB:.0f} MiB"
    # A restore of the same archive (the disk would hold it): refused the same way.
    backup = stored_backup(host, data, 74011, disk_mb=1024)
    with A.PeakRss(agent.proc.pid) as rss:
        task = restored(backup, admin_user, 74012)
    assert_refused_cleanly(task, 74012, "has 268,435,456 bytes")
    assert rss.peak < MEMORY_LIMIT, f"agent peaked at {rss.peak / MIB:.0f} MiB"
    assert_no_children(agent)


@pytest.mark.integration
def test_agent_memory_stays_bounded_whatever_the_archive_declares(agent, admin_user, host, base_tree):
    """Every kind of hostile archive, restored one after the other by the real agent, its resident
    memory sampled all along: a huge vps.conf, huge extended headers, a 10 GiB sparse file, 200,000
    members in a few hundred KiB."""
    many = b"".join(A.symlink(f"./srv/l{i:06d}", "x") for i in range(200_000))
    def huge_extension(kind: bytes) -> bytes:  # 256 MiB of NULs as a pax header or long name
        return A.compress([base_tree, *A.big_member("./PaxHeaders/x", 256 * MIB, b"\0", kind=kind, magic=A.USTAR_MAGIC),
                           A.member("./srv/a", b"a"), A.end()])
    cases = {
        "huge vps.conf": huge_config_archive(base_tree, "./etc/vzdump/vps.conf", 64 * MIB),
        "huge pax header": huge_extension(b"x"),
        "huge long name": huge_extension(b"L"),
        "sparse 10 GiB": A.compress(base_tree + A.gnu_sparse("./srv/sparse", 10 << 30) + A.end()),
        "200,000 members": A.compress(base_tree + A.directory("./srv/") + many + A.end()),
    }
    outcomes = {}
    with A.PeakRss(agent.proc.pid) as rss:
        for i, (case, data) in enumerate(cases.items()):
            task = restored(stored_backup(host, data, 74020 + i, disk_mb=1024), admin_user, 74030 + i, timeout=300)
            outcomes[case] = (task.status, task.error)
    print(f"agent: {rss.first / MIB:.0f} MiB at first, {rss.peak / MIB:.0f} MiB at most")
    assert rss.peak < MEMORY_LIMIT, f"agent peaked at {rss.peak / MIB:.0f} MiB ({outcomes})"
    assert outcomes["200,000 members"][0] == "ok", outcomes
    assert all(status == "failed" for case, (status, _e) in outcomes.items() if case != "200,000 members"), outcomes
    assert_no_children(agent)


@pytest.mark.integration
@pytest.mark.parametrize("compress", ["zst", "gz"])
def test_compressed_junk_after_the_end_marker_fails_and_reaps_the_decompressor(agent, admin_user, host, base_tree,
                                                                              compress):
    """A second compressed stream after the archive: the restore once waited forever on the decompressor."""
    data = A.compress(base_tree + A.end(), compress) + A.compress(b"junk" * (8 * MIB), compress)
    task = restored(stored_backup(host, data, 74040, compress), admin_user, 74041, timeout=120)
    assert_refused_cleanly(task, 74041, "data after its end marker")
    assert_no_children(agent)


@pytest.mark.integration
def test_zero_padding_after_the_end_marker_is_taken_up_to_a_limit(agent, admin_user, host, base_tree):
    task = restored(stored_backup(host, A.compress(base_tree + A.end(bytes(200_000))), 74042), admin_user, 74043)
    assert task.status == "ok", task.log
    task = restored(stored_backup(host, A.compress(base_tree + A.end(bytes(3 * MIB))), 74044), admin_user, 74045)
    assert_refused_cleanly(task, 74045, "after its end marker")
    assert_no_children(agent)


@pytest.mark.integration
def test_truncated_archive_fails_and_reaps_the_decompressor(agent, admin_user, host, base_tree):
    whole = A.compress(base_tree + A.member("./srv/big", os.urandom(3 * MIB)) + A.end())
    task = restored(stored_backup(host, whole[:len(whole) // 2], 74046), admin_user, 74047)
    assert_refused_cleanly(task, 74047, "does not add up")
    assert "zstd" in task.error
    assert_no_children(agent)


@pytest.mark.integration
def test_a_member_tar_cannot_write_fails_the_restore(agent, admin_user, host, base_tree):
    """tar's errors are never filtered: a member it could not write (its name here says "Cannot mknod",
    which the old filter dropped) fails the restore instead of going missing."""
    data = A.compress(base_tree + A.member("./srv/Cannot mknod", b"a file")
                      + A.member("./srv/Cannot mknod/passwd", b"x") + A.end())
    task = restored(stored_backup(host, data, 74048), admin_user, 74049)
    assert_refused_cleanly(task, 74049, "unpacking failed")
    assert "Not a directory" in task.error


@pytest.mark.integration
def test_device_nodes_and_fifos_never_reach_tar_and_are_counted(agent, admin_user, host, base_tree):
    data = A.compress(base_tree + A.device("./srv/sda", b"4") + A.device("./srv/kmem") + A.device("./srv/fifo", b"6")
                      + A.hardlink("./srv/sda-again", "./srv/sda") + A.end())
    task = restored(stored_backup(host, data, 74050), admin_user, 74051)
    assert task.status == "ok", task.log
    assert task.result["dropped"] == {"block device": 1, "character device": 1, "FIFO": 1,
                                      "hardlink to a member left out": 1}
    srv = LXCPATH / "74051" / "rootfs" / "srv"
    assert not any(os.path.lexists(srv / name) for name in ("sda", "kmem", "fifo", "sda-again"))


# -- finding 6: what the walker never checked ----------------------------------------------------------

@pytest.mark.integration
@pytest.mark.parametrize("case, words", [
    ("global pax path", "global pax header that sets 'path'"),
    ("gnu dumpdir", "GNU dumpdir"),
    ("sparse over the disk", "more than 300 MiB"),
    ("pax sparse over the disk", "more than 300 MiB"),
])
def test_members_the_walker_never_checked_are_refused(agent, admin_user, host, base_tree, case, words):
    hostile = {
        "global pax path": A.pax({"path": "../../etc/vzpanel-adv-x"}, b"g") + A.member("./srv/ok", b"x"),
        "gnu dumpdir": A.header("./srv/dump/", b"D", 7) + A.padded(b"Nfile\0\0"),
        "sparse over the disk": A.gnu_sparse("./srv/sparse", 1 << 30),
        "pax sparse over the disk": A.pax_sparse("./srv/sparse", 1 << 30),
    }[case]
    task = restored(stored_backup(host, A.compress(base_tree + hostile + A.end()), 74060), admin_user, 74061)
    assert_refused_cleanly(task, 74061, words)
    assert not Path("/etc/vzpanel-adv-x").exists()


# -- finding 7: a failed restore leaves nothing, and says why in one line ------------------------------

@pytest.mark.integration
@pytest.mark.parametrize("name, hostile", [
    ("dev", A.symlink("./dev", "/dev")),
    ("proc", A.symlink("./proc", "/proc")),
    ("sys", A.symlink("./sys", "sys-elsewhere")),
    ("etc", A.symlink("./etc", "/etc")),
    ("dev", A.device("./dev", b"6")),
    ("sys", A.member("./sys", b"not a directory")),
])
def test_system_directories_must_be_directories(agent, admin_user, host, busybox_template, name, hostile):
    base = A.base_members(busybox_template, leave_out=(name,))
    data = A.compress(base + hostile + A.end())
    task = restored(stored_backup(host, data, 74070), admin_user, 74071, start=True)
    assert_refused_cleanly(task, 74071, f"archive's /{name} is")
    assert "must be directories" in task.error


@pytest.mark.integration
def test_missing_system_directories_are_made(agent, admin_user, host, busybox_template):
    base = A.base_members(busybox_template, leave_out=("dev", "proc", "sys"))
    task = restored(stored_backup(host, A.compress(base + A.end()), 74072), admin_user, 74073, start=True)
    assert task.status == "ok", task.log
    assert lxc_info_state(74073) == "RUNNING"


MINIMAL_TREE = (A.directory("./") + A.directory("./etc/") + A.member("./etc/hostname", b"old\n")
                + A.member("./etc/hosts", b"127.0.0.1 localhost\n") + A.directory("./sbin/")
                + A.member("./sbin/init", b"#!/bin/sh\n", mode=0o755) + A.directory("./srv/"))


def dry_run(archive: Path, disk_mb: int) -> tuple[bool, int, bool]:
    """Unpack `archive` into a fresh container disk of `disk_mb` as a restore would: (did it fit,
    bytes left free, could a small file still be written)."""
    work = Path(RUN_DIR) / f"adv-dry-run-{os.getpid()}"
    disk = DiskImage(work / "disk.img", work / "rootfs")
    try:
        work.mkdir()
        disk.create(disk_mb, 220000)
        disk.mount()
        try:
            safe_extract(archive, disk.mountpoint)
        except Exception:
            return False, 0, False
        st = os.statvfs(disk.mountpoint)
        try:
            (disk.mountpoint / "etc" / "probe").write_text("probe.test\n")
            written = True
        except OSError:
            written = False
        return True, st.f_bavail * st.f_frsize, written
    finally:
        disk.umount()
        shutil.rmtree(work, ignore_errors=True)


def disk_filling_archive(tmp_path: Path, disk_mb: int) -> bytes:
    """A minimal root filesystem and a file as big as what is left of a `disk_mb` container disk once
    it is unpacked: found by unpacking it into such a disk first, until the files fit and a small
    file (the hostname) no longer does. XFS keeps a little back, so "full" is a few blocks early."""
    fits, free, _written = dry_run(A.write(tmp_path / "base.tar", MINIMAL_TREE + A.end()), disk_mb)
    assert fits
    for extra in (32, 0, 64, -32, 16, 48):
        data = MINIMAL_TREE + b"".join(A.big_member("./srv/filler", free + extra * 1024, b"\xa5")) + A.end()
        fits, _left, written = dry_run(A.write(tmp_path / "full.tar", data), disk_mb)
        if fits and not written:
            return A.compress(data)
    raise AssertionError("no file size fills the disk exactly")


@pytest.mark.integration
def test_disk_full_while_writing_identity_removes_the_new_container_and_keeps_the_old(
        agent, admin_user, host, template_name, tmp_path):
    """An archive that fills the container's disk to the byte: the files fit, the hostname does not."""
    backup = stored_backup(host, disk_filling_archive(tmp_path, 300), 74080, diskinodes=220000)
    task = restored(backup, admin_user, 74081)
    assert_refused_cleanly(task, 74081, "no space left")
    # Over an existing container: the restore fails, the container keeps its files.
    task = services.create_container(user=admin_user, ctid=74082, ostemplate=template_name, hostname="keep.test",
                                     host=host, limits={"disk_mb": 300, "diskinodes": 220000})
    assert wait_task(task).status == "ok", task.log
    (LXCPATH / "74082" / "rootfs" / "marker").write_text("old")
    task = wait_task(bs.restore_backup(backup, admin_user, ctid=74082, force=True, confirm="74082"), 180)
    assert task.status == "failed" and "no space left" in task.error and "Traceback" not in task.log, task.log
    assert "\n" not in task.error
    assert (LXCPATH / "74082" / "rootfs" / "marker").read_text() == "old"
    assert [p.name for p in LXCPATH.iterdir() if "74082" in p.name] == ["74082"]
    assert Container.objects.get(ctid=74082).status == "stopped"
    assert wait_task(services.start_container(Container.objects.get(ctid=74082), admin_user)).status == "ok"


@pytest.mark.integration
def test_restored_container_that_does_not_start_stays_whole_and_stopped(agent, admin_user, host, busybox_template):
    """start=True and the start fails (no init in the archive): the data is back, the container is
    there and stopped, and the task says it did not start."""
    base = A.base_members(busybox_template, leave_out=("sbin",))
    task = restored(stored_backup(host, A.compress(base + A.end()), 74090), admin_user, 74091, start=True)
    assert task.status == "failed", task.log
    assert "was restored but did not start" in task.error and "Traceback" not in task.log
    assert "\n" not in task.error
    ct = Container.objects.get(ctid=74091)
    assert ct.status == "stopped" and lxc_info_state(74091) == "STOPPED"
    assert (LXCPATH / "74091" / "rootfs" / "bin" / "busybox").exists()
    assert ct.lock_task_id is None


@pytest.mark.integration
def test_failed_create_and_reset_say_why_in_one_line(agent, admin_user, host, template_name, busybox_template):
    """A template is an archive like any other: a hostile one fails create (nothing is left) and reset
    (the old root filesystem stays), in one line."""
    from datetime import datetime, timezone

    from containers.engine.templates import list_templates
    from containers.models import OSTemplate
    template_dir = Path(host.template_dir)
    base = A.base_members(busybox_template, leave_out=("proc",))
    path = A.write(template_dir / "hostile-1-amd64.tar.zst", A.compress(base + A.symlink("./proc", "/") + A.end()))
    try:
        info = next(i for i in list_templates(template_dir) if i.filename == path.name)
        OSTemplate.objects.create(host=host, name=info.name, filename=info.filename, size=info.size, sha256=info.sha256,
                                  modified_at=datetime.fromtimestamp(info.mtime, timezone.utc))
        task = wait_task(services.create_container(user=admin_user, ctid=74095, ostemplate=info.name,
                                                   hostname="hostile.test", host=host))
        assert_refused_cleanly(task, 74095, "archive's /proc is a symlink")
        # Reset of a container whose template has become that one: it keeps its files.
        task = wait_task(services.create_container(user=admin_user, ctid=74096, ostemplate=template_name,
                                                   hostname="kept.test", host=host))
        assert task.status == "ok", task.log
        (LXCPATH / "74096" / "rootfs" / "marker").write_text("old")
        Container.objects.filter(ctid=74096).update(ostemplate=info.name)
        task = wait_task(services.reset_container(Container.objects.get(ctid=74096), admin_user, "74096"))
        assert task.status == "failed" and "\n" not in task.error and "Traceback" not in task.log, task.log
        assert "archive's /proc is a symlink" in task.error
        assert (LXCPATH / "74096" / "rootfs" / "marker").read_text() == "old"
        assert [p.name for p in LXCPATH.iterdir() if "74096" in p.name] == ["74096"]
    finally:
        path.unlink(missing_ok=True)


@pytest.mark.integration
def test_restore_of_an_archive_that_is_not_the_one_backed_up_leaves_nothing(agent, admin_user, host, base_tree,
                                                                          template_name):
    """The checksum is taken while the archive is unpacked (issue 22): a file that reads well but is not
    the backup, or was cut short, fails the restore with nothing left, and an overwrite keeps the old files."""
    whole = A.compress(base_tree + A.member("./srv/big", os.urandom(2 * MIB)) + A.end())
    backup = stored_backup(host, whole, 74120)
    A.write(Path(backup.path), A.compress(base_tree + A.member("./srv/big", b"not what was backed up") + A.end()))
    task = restored(backup, admin_user, 74121)
    assert_refused_cleanly(task, 74121, "checksum mismatch")
    assert_no_children(agent)
    Path(backup.path).write_bytes(whole[:len(whole) // 2])
    task = restored(backup, admin_user, 74122)
    assert_refused_cleanly(task, 74122, "checksum mismatch")
    assert "does not add up" in task.error
    assert_no_children(agent)
    # Over an existing container: it keeps what it had.
    task = services.create_container(user=admin_user, ctid=74123, ostemplate=template_name, hostname="keep.test",
                                     host=host)
    assert wait_task(task).status == "ok", task.log
    (LXCPATH / "74123" / "rootfs" / "marker").write_text("old")
    task = wait_task(bs.restore_backup(backup, admin_user, ctid=74123, force=True, confirm="74123"), 180)
    assert task.status == "failed" and "checksum mismatch" in task.error and "\n" not in task.error, task.log
    assert (LXCPATH / "74123" / "rootfs" / "marker").read_text() == "old"
    assert not (LXCPATH / "74123" / "rootfs" / "srv" / "big").exists()
    assert [p.name for p in LXCPATH.iterdir() if "74123" in p.name] == ["74123"]
    # The archive made whole again restores, and its checksum is said to match.
    Path(backup.path).write_bytes(whole)
    task = restored(backup, admin_user, 74124)
    assert task.status == "ok", task.log
    assert "Checksum matches" in task.log
    assert (LXCPATH / "74124" / "rootfs" / "srv" / "big").stat().st_size == 2 * MIB


# -- the walker's rules, fast: through safe_extract and scan_archive ------------------------------------

def archive_file(tmp_path: Path, data: bytes, compress: str = "none") -> Path:
    return A.write(tmp_path / f"a.tar{'' if compress == 'none' else '.' + compress}", A.compress(data, compress))


def unpack(tmp_path: Path, data: bytes, compress: str = "none", **kw):
    dest = tmp_path / "dest"
    dest.mkdir(parents=True, exist_ok=True)
    return safe_extract(archive_file(tmp_path, data, compress), dest, **kw), dest


def refused(tmp_path: Path, data: bytes, match: str, compress: str = "none") -> Path:
    """safe_extract refuses the archive, and nothing climbed out of the destination."""
    dest = tmp_path / "dest"
    dest.mkdir(parents=True, exist_ok=True)
    with pytest.raises(UnsafeArchive, match=match):
        safe_extract(archive_file(tmp_path, data, compress), dest)
    assert not (tmp_path / "escaped").exists()
    return dest


TREE = A.directory("./") + A.directory("./etc/") + A.member("./etc/hostname", b"h\n") + A.directory("./srv/")


@pytest.mark.parametrize("kind, words", [(b"D", "GNU dumpdir"), (b"V", "volume label"), (b"M", "multi-volume"),
                                         (b"N", "rename list"), (b"X", "Solaris"), (b"Z", "unknown type 'Z'"),
                                         (b"A", "unknown type 'A'")])
def test_dumpdirs_volumes_and_unknown_types_are_refused(tmp_path, kind, words):
    # Each with data that, read as headers, would be another member: tar reads it as data.
    hidden = A.symlink("./srv/x", str(tmp_path / "escaped"))
    refused(tmp_path, TREE + A.header("./srv/odd", kind, 512) + hidden + A.end(), words)


def test_global_pax_headers_are_refused_unless_only_a_comment(tmp_path):
    refused(tmp_path, TREE + A.pax({"path": "../escaped"}, b"g") + A.member("./srv/a", b"x") + A.end(),
            "global pax header that sets 'path'")
    refused(tmp_path / "2", TREE + A.pax({"comment": "c", "size": "0"}, b"g") + A.member("./srv/a", b"x") + A.end(),
            "sets 'size'")
    # git archive's commit id: taken, and never passed on (tar would otherwise apply it to every member).
    report, dest = unpack(tmp_path / "3", TREE + A.pax({"comment": "0123abcd"}, b"g") + A.member("./srv/a", b"x")
                          + A.end())
    assert (dest / "srv" / "a").read_bytes() == b"x" and report.members == 5


@pytest.mark.parametrize("case, data, words", [
    ("pax path climbs", A.pax({"path": "./srv/../../escaped"}) + A.member("./srv/ok", b"x"), "'..'"),
    ("pax linkpath leaves", A.pax({"linkpath": "/etc/passwd"}) + A.hardlink("./srv/h", "./etc/hostname"),
     "points outside"),
    ("sparse name climbs", A.pax_sparse("../../escaped", 4096), "'..'"),
    ("blanks before a pax key", A.pax(raw=b"29  path=./srv/../../escaped\n") + A.member("./srv/ok", b"x"),
     "keyword ' path' is not one"),
    ("two pax headers", A.pax({"path": "./srv/ok"}) + A.pax({"mtime": "1"}) + A.member("../escaped", b"x"),
     "two extended headers"),
    ("NUL in a long name", A.long_name(b"..\0srv/ok") + A.member("./srv/ok", b"x"), "'..'"),
    ("NUL in a pax path", A.pax({"path": b"..\0/srv/ok"}) + A.member("./srv/ok", b"x"), "NUL"),
    ("size tar reads otherwise", A.header("./srv/a", b"0", size_field=b"0000001_000\0")
     + A.symlink("./dev", "/"), "not a number"),
    ("pax size on a symlink", A.pax({"size": "1024"}) + A.symlink("./srv/l", "x") + bytes(1024), "bytes of data"),
    ("directory with data", A.header("./srv/d", b"5", 512) + A.symlink("./dev", "/"), "bytes of data"),
    ("file named like a directory, with data", A.member("./srv/d/", b"x" * 600), "directory to tar"),
    ("unknown pax keyword", A.pax({"GNU.dumpdir": "Ya\0"}) + A.directory("./srv/dd/"), "GNU.dumpdir"),
    ("old pax sparse format", A.pax({"GNU.sparse.size": "4096", "GNU.sparse.numblocks": "1"})
     + A.member("./srv/s", b"x"), "'GNU.sparse.size' is not one"),
    ("old pax sparse 1.0 without its size", A.pax({"GNU.sparse.major": "1", "GNU.sparse.minor": "0"})
     + A.member("./srv/s", b"x", magic=A.USTAR_MAGIC), "format other than"),
    ("pax sparse records in a GNU header", A.pax({"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                                                  "GNU.sparse.realsize": "10"}) + A.member("./srv/s", b"x"),
     "not a file with a POSIX header"),
    ("sparse records on a symlink", A.pax({"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                                           "GNU.sparse.realsize": "10"}) + A.symlink("./srv/l", "x"),
     "not a file with a POSIX header"),
    ("GNU sparse without a GNU header", A.header("./srv/s", b"S", 512, magic=A.USTAR_MAGIC) + bytes(512),
     "without a GNU header"),
    ("sparse map past the size", A.pax_sparse("./srv/s", 1024, regions=[(1 << 30, 512)]), "past its size"),
    ("star header", A.header("./srv/s", b"0", magic=A.USTAR_MAGIC, fields={476: b"00000000000 ", 488: b"00000000000 "}),
     "star-format"),
    ("empty name", A.member("", b"x"), "no name"),
    ("through a normalised symlink", A.symlink("./srv/l", str(Path("/tmp"))) + A.member("././srv//l/x", b"x"),
     "through the symlink 'srv/l'"),
    ("directory over a symlink keeps it one", A.directory("./srv/real/") + A.symlink("./srv/l", "real")
     + A.directory("./srv/l/") + A.member("./srv/l/x", b"x"), "through the symlink 'srv/l'"),
    ("hardlink through a symlink", A.symlink("./srv/l", "/etc") + A.hardlink("./srv/h", "./srv/l/passwd"),
     "points through the symlink"),
    ("hardlink to nothing", A.hardlink("./srv/h", "./srv/none"), "not in the archive before it"),
    ("extended header and no member", A.long_name("./srv/x"), "no member after it"),
    ("config as a symlink", A.symlink("./etc/vzdump/pct.conf", "/root/pct.conf"), "is a symlink, not a plain file"),
    ("config twice", A.member("./etc/vzdump/pct.conf", b"a: 1\n") + A.member("./etc//vzdump/./pct.conf", b"b: 2\n"),
     "twice"),
    ("config too big", A.header("./etc/vzdump/pct.conf", b"0", CONFIG_LIMIT + 1) + A.padded(b"\n" * (CONFIG_LIMIT + 1)),
     "more than the 64 KiB"),
])
def test_what_tar_would_read_otherwise_is_refused(tmp_path, case, data, words):
    refused(tmp_path, TREE + data + A.end(), words)


def test_numbers_are_read_as_tar_reads_them(tmp_path):
    """A size field GNU tar reads past a leading NUL (512 bytes here): the block after the header is
    the file's data to both, never a member (the walker once read a size of 0 and took it for one)."""
    hidden = A.symlink("./dev", "/")
    report, dest = unpack(tmp_path, TREE + A.header("./srv/a", b"0", size_field=b"\0" + b"0000001000\0") + hidden
                          + A.end())
    assert (dest / "srv" / "a").read_bytes() == hidden and not os.path.lexists(dest / "dev")
    # Base-256 sizes (GNU tar's for big files) likewise.
    base256 = b"\x80" + (512).to_bytes(11, "big")
    report, dest = unpack(tmp_path / "2", TREE + A.header("./srv/a", b"0", size_field=base256) + hidden + A.end())
    assert (dest / "srv" / "a").read_bytes() == hidden


def test_the_end_marker_and_what_follows(tmp_path):
    whole = TREE + A.member("./srv/a", b"x" * 3000)
    refused(tmp_path / "1", whole, "without an end marker")
    refused(tmp_path / "2", whole + A.end(b"\0" * 1000 + b"x"), "data after its end marker")
    refused(tmp_path / "3", whole + A.end(bytes(2 * MIB)), "more than 1024 KiB after its end marker")
    refused(tmp_path / "4", (whole + A.end())[:len(TREE) + 1000], "data is shorter than its header says")
    report, dest = unpack(tmp_path / "5", whole + A.end(bytes(500_000)))
    assert (dest / "srv" / "a").stat().st_size == 3000
    # Compressed junk after the archive: the decompressor is stopped and reaped.
    data = A.compress(whole + A.end(), "zst") + A.compress(b"junk" * MIB, "zst")
    dest = tmp_path / "6"
    dest.mkdir()
    with pytest.raises(UnsafeArchive, match="data after its end marker"):
        safe_extract(A.write(tmp_path / "6.tar.zst", data), dest)
    assert A.children_named(os.getpid()) == []


def test_the_configuration_is_taken_from_the_stream(tmp_path):
    config = b"hostname: from.stream\n"
    report, dest = unpack(tmp_path, TREE + A.directory("./etc/vzdump/") + A.member("./etc/vzdump/vps.conf", b"X=1\n")
                          + A.member("./etc/vzdump/pct.conf", config) + A.end(), "gz")
    assert report.config == ("etc/vzdump/pct.conf", config)  # pct.conf before vps.conf
    assert sorted(os.listdir(dest / "etc")) == ["hostname"]
    # Refused as soon as its header is read: its data is never read into memory.
    data = A.compress([TREE, *A.big_member("./etc/vzdump/pct.conf", 1 << 30), A.end()])
    with pytest.raises(UnsafeArchive, match="1,073,741,824 bytes"):
        scan_archive(A.write(tmp_path / "big.tar.zst", data))
    assert A.children_named(os.getpid()) == []


def test_devices_fifos_and_links_to_them_are_left_out(tmp_path):
    report, dest = unpack(tmp_path, TREE + A.device("./srv/null") + A.device("./srv/sda", b"4")
                          + A.device("./srv/fifo", b"6") + A.hardlink("./srv/null2", "./srv/null")
                          + A.member("./srv/file", b"f") + A.hardlink("./srv/file2", "./srv/file") + A.end())
    assert report.dropped == {"character device": 1, "block device": 1, "FIFO": 1, "hardlink to a member left out": 1}
    assert sorted(os.listdir(dest / "srv")) == ["file", "file2"]


def test_sparse_files_count_at_their_apparent_size(tmp_path):
    for i, sparse in enumerate([A.gnu_sparse("./srv/s", 50 * MIB), A.pax_sparse("./srv/s", 50 * MIB)]):
        with pytest.raises(UnsafeArchive, match="more than 40 MiB"):
            unpack(tmp_path / f"over{i}", TREE + sparse + A.end(), max_bytes=40 * MIB)
        report, dest = unpack(tmp_path / f"ok{i}", TREE + sparse + A.end(), max_bytes=60 * MIB)
        assert (dest / "srv" / "s").stat().st_size == 50 * MIB and report.bytes > 50 * MIB


def test_real_gnu_tar_archives_read_the_same(tmp_path):
    """What GNU tar writes (POSIX format with xattrs, sparse files, hardlinks, long names) passes."""
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_text("data\n")
    os.setxattr(src / "d" / "f", "user.k", b"v")
    with open(src / "d" / "sparse", "wb") as fh:
        fh.truncate(20 * MIB)
        fh.write(b"head")
    os.link(src / "d" / "f", src / "d" / "hard")
    os.symlink("f", src / "d" / "soft")
    (src / "d" / ("long" * 40)).write_text("l")
    archive = tmp_path / "real.tar.zst"
    subprocess.run(["tar", "-c", "--zstd", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls", "--sparse",
                    "-f", str(archive), "-C", str(src), "."], check=True)
    dest = tmp_path / "dest"
    dest.mkdir()
    report = safe_extract(archive, dest)
    assert report.members == 7 and report.bytes >= 20 * MIB
    assert (dest / "d" / "sparse").stat().st_size == 20 * MIB
    assert os.getxattr(dest / "d" / "f", "user.k") == b"v"
    assert (dest / "d" / "hard").stat().st_ino == (dest / "d" / "f").stat().st_ino


def test_member_limit_and_pathset():
    paths = PathSet()
    names = [f"srv/{i}" for i in range(5000)]
    for name in names:
        paths.add(name)
    assert all(name in paths for name in names) and "srv/5000" not in paths
    for name in names[::2]:
        paths.discard(name)
    assert not any(name in paths for name in names[::2]) and all(name in paths for name in names[1::2])
    for name in names:
        paths.add(name)
    assert all(name in paths for name in names)
    check = MemberCheck(max_members=3)
    for name in ("a", "b", "c"):
        check.check(Member(name, b"0"))
    with pytest.raises(UnsafeArchive, match="more than 3 members"):
        check.check(Member("d", b"0"))


# -- the checksum, taken in the same pass as the checks (issue 22) ---------------------------------------

def reads_of(monkeypatch, path: Path) -> list[int]:
    """The bytes each pread/preadv of the archive file (by any fd of it) returned, in order."""
    import containers.engine.vzdump as vzdump_module
    wanted, seen = os.stat(path).st_ino, []
    real_pread, real_preadv = os.pread, os.preadv

    def ours(fd):
        return os.fstat(fd).st_ino == wanted

    def pread(fd, n, offset):
        data = real_pread(fd, n, offset)
        if ours(fd):
            seen.append(len(data))
        return data

    def preadv(fd, buffers, offset):
        n = real_preadv(fd, buffers, offset)
        if ours(fd):
            seen.append(n)
        return n
    monkeypatch.setattr(vzdump_module.os, "pread", pread)
    monkeypatch.setattr(vzdump_module.os, "preadv", preadv)
    return seen


@pytest.mark.parametrize("compress", ["none", "zst", "gz"])
def test_the_checksum_is_taken_in_the_one_pass_that_checks_and_unpacks(tmp_path, compress, monkeypatch):
    data = TREE + A.member("./srv/big", os.urandom(3 * MIB)) + A.end()
    path = archive_file(tmp_path, data, compress)
    expected = sha256_file(path)
    seen = reads_of(monkeypatch, path)
    dest = tmp_path / "dest"
    dest.mkdir()
    report = safe_extract(path, dest, expected_sha256=expected)
    assert report.sha256 == expected and (dest / "srv" / "big").stat().st_size == 3 * MIB
    # The panel reads the file once besides the decompressor: its 6 magic bytes, then every byte once for the
    # hash while the walk runs (no pass of its own before or after).
    assert seen[0] == 6 and sum(seen[1:]) == path.stat().st_size
    assert scan_archive(path, hashed=True).sha256 == expected
    assert scan_archive(path).sha256 is None  # not asked for: the decompressor reads the file itself


@pytest.mark.parametrize("compress", ["none", "zst"])
def test_a_checksum_mismatch_is_found_in_the_same_pass_and_fails_the_unpacking(tmp_path, compress):
    """An archive that reads well but is not the one backed up (its hash differs) is refused by the walk itself."""
    path = archive_file(tmp_path, TREE + A.member("./srv/f", b"changed\n") + A.end(), compress)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ArchiveError, match=r"^checksum mismatch: the archive has [0-9a-f]{64}, the backup was 0{64}$"):
        safe_extract(path, dest, expected_sha256="0" * 64)
    with pytest.raises(ArchiveError, match="checksum mismatch"):
        scan_archive(path, expected_sha256="0" * 64)


def test_a_damaged_or_truncated_archive_with_a_checksum_says_mismatch_and_why(tmp_path):
    whole = A.compress(TREE + A.member("./srv/big", os.urandom(3 * MIB)) + A.end())
    expected = hashlib.sha256(whole).hexdigest()
    for name, data in (("truncated", whole[:len(whole) // 2]),
                       ("damaged", whole[:len(whole) // 2] + bytes(4096) + whole[len(whole) // 2 + 4096:])):
        path = A.write(tmp_path / name / "a.tar.zst", whole)
        dest = tmp_path / name / "dest"
        dest.mkdir()
        assert safe_extract(path, dest, expected_sha256=expected).sha256 == expected  # whole, it passes
        shutil.rmtree(dest)
        dest.mkdir()
        path.write_bytes(data)
        with pytest.raises(ArchiveError, match=r"checksum mismatch: .*\(reading it: the archive does not add up"):
            safe_extract(path, dest, expected_sha256=expected)
        with pytest.raises(UnsafeArchive, match="does not add up"):  # without a checksum: the walk's own reason
            scan_archive(path)


def test_a_matching_checksum_lets_no_hostile_member_through(tmp_path):
    """The hash says the file is the one recorded, not that it is safe: every check still runs."""
    data = TREE + A.symlink("./srv/x", str(tmp_path / "escaped")) + A.member("./srv/x/owned", b"x") + A.end()
    path = archive_file(tmp_path, data)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeArchive, match="through the symlink"):
        safe_extract(path, dest, expected_sha256=sha256_file(path))
    assert not (tmp_path / "escaped").exists()


def test_member_data_of_every_size_around_the_walkers_read_ahead_arrives_whole(tmp_path):
    """The walker reads ahead and writes in batches, splicing only large data: every size around
    its buffers unpacks byte for byte, and zero padding read ahead with the last member is still checked."""
    from containers.engine.vzdump import READ_AHEAD
    sizes = [0, 1, 511, 512, 513, READ_AHEAD - 513, READ_AHEAD - 1, READ_AHEAD, READ_AHEAD + 1, 3 * MIB + 7]
    files = {f"./srv/f{size}": os.urandom(size) for size in sizes}
    data = TREE + b"".join(A.member(name, body) for name, body in files.items())
    report, dest = unpack(tmp_path, data + A.end(bytes(10 * 512)))
    assert report.members == 4 + len(sizes)
    for name, body in files.items():
        assert (dest / name).read_bytes() == body
    refused(tmp_path / "junk", data + A.end(bytes(512) + b"x" + bytes(511)), "data after its end marker")


def test_a_symlink_in_the_directory_just_checked_is_seen(tmp_path):
    """The walker remembers the last directory it found free of symlinks; a symlink made in it (or as
    it) right after is still caught."""
    for hostile in (A.member("./srv/a", b"x") + A.symlink("./srv/l", str(tmp_path / "escaped"))
                    + A.member("./srv/l/owned", b"x"),
                    A.symlink("./srv/d", str(tmp_path / "escaped")) + A.member("./srv/d/owned", b"x"),
                    A.directory("./srv/e/") + A.member("./srv/e/a", b"x") + A.hardlink("./srv/e/h", "./srv/e/a")
                    + A.symlink("./srv/e/l", str(tmp_path / "escaped")) + A.hardlink("./srv/e/l/h2", "./srv/e/a")):
        shutil.rmtree(tmp_path / "dest", ignore_errors=True)
        refused(tmp_path, TREE + hostile + A.end(), "through the symlink")


@pytest.mark.parametrize("compress, bwlimit", [("zst", None), ("gz", None), ("none", None), ("zst", 4096),
                                               ("none", 4096)])
def test_a_backup_is_hashed_as_it_is_written(tmp_path, compress, bwlimit):
    """The digest the backup records is the file's, every byte of it, however the archive was written
    (the tools write the file, the hasher follows it as it grows)."""
    from containers.engine.vzdump import ArchiveOptions, create_archive
    root = tmp_path / "root"
    (root / "srv").mkdir(parents=True)
    for i in range(40):
        (root / "srv" / f"f{i}").write_bytes(os.urandom(64 * 1024 * (i % 5)))
    archive = create_archive(root, "hostname: h\n", tmp_path / "dump", 555,
                             ArchiveOptions(compress=compress, bwlimit_kbps=bwlimit))
    assert archive.sha256 == sha256_file(archive.path)
    assert (tmp_path / "dump" / (archive.path.name + ".sha256")).read_text().split()[0] == archive.sha256
    assert not list((tmp_path / "dump").glob("*.partial"))
    dest = tmp_path / "dest"
    dest.mkdir()
    assert safe_extract(archive.path, dest, expected_sha256=archive.sha256).members == 42  # ., srv and its files
