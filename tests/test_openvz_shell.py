"""The OpenVZ admin's shell: vzctl, vzlist, vzdump, vzrestore, vzmigrate, vzcalc and vzmemcheck as
root types them, against real containers on a real agent."""
import gzip
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from rest_framework.test import APIClient

from accounts.models import AuditEvent
from backups.models import Backup
from containers import services
from containers.engine.diskimage import mounted_source
from containers.models import Container
from containers.services import NotAllowed
from tasks.models import Task

from .conftest import BASE_DIR, LXCPATH, lxc_info_state, wait_task, wait_until
from .hosts_fixtures import second_host  # noqa: F401
from .tenancy_fixtures import students_running_container
from .test_backups import _base_members, _info, _tar

pytestmark = pytest.mark.integration

# A vswap container's config as vzctl 4 wrote it (ve-vswap-256m.conf-sample, with its DISKSPACE).
VPS_CONF = """# RAM
PHYSPAGES="0:256M"
# Swap
SWAPPAGES="0:512M"
# Disk quota parameters (in form of softlimit:hardlimit)
DISKSPACE="2G:2.2G"
DISKINODES="131072:144179"
QUOTATIME="0"
# CPU fair scheduler parameter
CPUUNITS="1000"
NUMPROC="unlimited"
VE_ROOT="/vz/root/$VEID"
VE_PRIVATE="/vz/private/$VEID"
OSTEMPLATE="debian-7.0-x86_64"
ORIGIN_SAMPLE="vswap-256m"
HOSTNAME="{hostname}"
ONBOOT="no"
"""


def openvz_archive(busybox_template, path, hostname: str):
    """An archive as OpenVZ's vzdump wrote it: the private area with ./etc/vzdump/vps.conf."""
    conf = VPS_CONF.format(hostname=hostname).encode()
    data = _tar(_base_members(busybox_template) + [_info("./etc/vzdump", tarfile.DIRTYPE),
                                                    _info("./etc/vzdump/vps.conf", data=conf)])
    path.write_bytes(gzip.compress(data, 1) if path.name.endswith(("gz", ".tgz")) else data)
    return path


SHELL_COMMANDS = ("vzctl", "vzlist", "vzdump", "vzrestore", "vzmigrate", "vzcalc", "vzmemcheck")


def install_shell_commands(sbin: Path, **variables) -> subprocess.CompletedProcess:
    """`make shell-commands` into `sbin` (never the real /usr/local/sbin in a test)."""
    args = [f"{k}={v}" for k, v in {"SBIN_DIR": sbin, "VENV_DIR": sys.prefix, **variables}.items()]
    return subprocess.run(["make", "-s", "-C", str(BASE_DIR), "shell-commands", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def sbin(tmp_path_factory):
    sbin = tmp_path_factory.mktemp("sbin")
    res = install_shell_commands(sbin)
    assert res.returncode == 0, res.stderr
    return sbin


@pytest.fixture
def vz(agent, sbin):
    """Run a command as root types it at a plain shell: found on PATH (the wrappers `make
    shell-commands` wrote), no virtualenv on PATH, only the panel's settings in the environment."""
    env = {"PATH": f"{sbin}:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
           **{k: v for k, v in agent.env().items() if k.startswith(("PANEL_", "VZPANEL_", "DJANGO_", "REDIS_"))}}

    def run(*argv, input=None):
        return subprocess.run(list(argv), cwd="/", env=env, capture_output=True, text=True, timeout=300,
                              input=input)
    return run


def changes():
    return (Backup.objects.count(), Task.objects.count(), Container.objects.count())


def test_vzrestore_takes_openvz_archives_by_path(vz, admin_user, host, busybox_template, tmp_path, settings):
    archive = openvz_archive(busybox_template, tmp_path / "vzdump-openvz-9720-2014_05_06-01_02_03.tgz", "old.example")
    res = vz("vzrestore", str(archive), "9720")
    assert res.returncode == 0, res.stderr + res.stdout
    ct = Container.objects.get(ctid=9720)
    assert (ct.hostname, ct.disk_soft_mb, ct.disk_mb, ct.ram_mb, ct.swap_mb, ct.numproc) == (
        "old.example", 2048, 2252, 256, 512, None)
    assert lxc_info_state(9720) == "STOPPED"
    assert archive.exists()  # root's file is copied, never taken
    assert Backup.objects.get().filename == "vzdump-openvz-9720-2014_05_06-01_02_03.tar.gz"
    assert not [p for p in os.listdir(settings.UPLOAD_DIR) if not p.startswith(".")]

    # vzdump 1.0's name (no kind, no date): the file's own time.
    old = openvz_archive(busybox_template, tmp_path / "vzdump-9721.tar", "older.example")
    os.utime(old, (1262304000, 1262304000))
    res = vz("vzrestore", str(old), "9721")
    assert res.returncode == 0, res.stderr + res.stdout
    assert Backup.objects.filter(filename__startswith="vzdump-openvz-9721-2010_01_01-").exists()
    assert Container.objects.get(ctid=9721).hostname == "older.example"

    # Copied into the host's dump directory by hand, under its vzdump name: listed where it is.
    Path(host.dump_dir).mkdir(parents=True, exist_ok=True)
    in_place = openvz_archive(busybox_template, Path(host.dump_dir) / "vzdump-openvz-9726-2014_05_06-01_02_03.tar",
                              "in-place.example")
    res = vz("vzrestore", str(in_place), "9726")
    assert res.returncode == 0, res.stderr + res.stdout
    assert Backup.objects.get(ctid=9726).filename == in_place.name and in_place.exists()
    assert Container.objects.get(ctid=9726).hostname == "in-place.example"


def test_vzrestore_bad_input_is_one_line_and_changes_nothing(vz, admin_user, host, busybox_template, tmp_path):
    archive = openvz_archive(busybox_template, tmp_path / "vzdump-openvz-9722-2014_05_06-01_02_03.tar", "x.example")
    (tmp_path / "evil.tar").write_bytes(archive.read_bytes())
    (tmp_path / "vzdump-openvz-9723-2014_05_06-01_02_03.tar.zst").write_bytes(b"not an archive at all")
    Container.objects.create(ctid=9724, hostname="taken.example", ostemplate="x", host=host, status="stopped")
    before = changes()
    for argv, says in [
        ((str(tmp_path / "evil.tar"), "9722"), "is not a vzdump archive name"),
        ((str(tmp_path / "missing.tar"), "9722"), "neither a listed backup nor an archive file"),
        ((str(archive), "9724"), "CTID 9724 is already in use"),
        ((str(archive), "12"), "CTID"),
    ]:
        res = vz("vzrestore", *argv)
        assert res.returncode != 0 and says in res.stderr.strip().splitlines()[-1], (argv, res.stderr)
        assert "Traceback" not in res.stderr and changes() == before
    # Not an archive inside: the agent refuses it, and keeps nothing of it.
    res = vz("vzrestore", str(tmp_path / "vzdump-openvz-9723-2014_05_06-01_02_03.tar.zst"), "9723")
    assert res.returncode != 0 and "not imported" in res.stderr
    assert not Backup.objects.exists() and not Container.objects.filter(ctid=9723).exists()


def test_vzrestore_from_a_file_is_for_root_only(admin_user, host, tmp_path, monkeypatch):
    (tmp_path / "vzdump-openvz-9725-2014_05_06-01_02_03.tar").write_bytes(b"x")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(CommandError, match="only root restores from a file"):
        call_command("vzrestore", str(tmp_path / "vzdump-openvz-9725-2014_05_06-01_02_03.tar"), "9725")
    assert not Task.objects.exists()


def test_vzctl_verbs_as_an_openvz_admin_types_them(vz, admin_user, host, template_name, tmp_path):
    from tenancy.models import Plan
    assert vz("vzctl", "create", "9701", "--ostemplate", template_name, "--hostname", "ct9701.test").returncode == 0
    assert vz("vzctl", "status", "9701").stdout == "CTID 9701 exist mounted down\n"  # the agent keeps it mounted
    assert vz("vzctl", "start", "9701").returncode == 0
    assert vz("vzctl", "status", "9701").stdout == "CTID 9701 exist mounted running\n"
    assert vz("vzctl", "status", "9799").stdout == "CTID 9799 deleted unmounted down\n"

    # exec: one word with blanks is a shell command line, as vzctl gave it to the container's shell
    res = vz("vzctl", "exec", "9701", "echo hi | tr h H; exit 3")
    assert (res.returncode, res.stdout) == (3, "Hi\n")
    res = vz("vzctl", "exec2", "9701", "sh", "-c", "exit 5")
    assert res.returncode == 5
    res = vz("vzctl", "exec", "9701", "-", input="echo from stdin\nexit 0\n")
    assert (res.returncode, res.stdout) == (0, "from stdin\n")

    # runscript: a local script, copied in (its #! line counts) and run; nothing of it stays inside
    script = tmp_path / "check.sh"
    script.write_text("#!/bin/sh\necho \"$0 args: $*\"\ncat /etc/hostname\nexit 4\n")
    res = vz("vzctl", "runscript", "9701", str(script), "a", "b")
    assert res.returncode == 4, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].endswith(" args: a b") and lines[1] == "ct9701.test"
    leftover = lines[0].split()[0]
    assert vz("vzctl", "exec2", "9701", "test", "-e", leftover).returncode == 1
    res = vz("vzctl", "runscript", "9701", str(tmp_path / "missing.sh"))
    assert res.returncode != 0 and "No such file or directory" in res.stderr

    # suspend: frozen, said plainly without a checkpoint, and left frozen by the agent's reconcile
    res = vz("vzctl", "suspend", "9701")
    assert res.returncode == 0 and "No checkpoint is written" in res.stdout, res.stderr
    assert lxc_info_state(9701) == "FROZEN"
    assert vz("vzctl", "status", "9701").stdout == "CTID 9701 exist mounted down suspended\n"
    time.sleep(3 * 2)  # a few reconcile passes (PANEL_AGENT_RECONCILE_SECONDS=2 in the tests)
    assert lxc_info_state(9701) == "FROZEN"
    res = vz("vzctl", "exec", "9701", "true")
    assert res.returncode != 0 and "is suspended; resume it" in res.stderr
    assert vz("vzctl", "resume", "9701").returncode == 0
    assert lxc_info_state(9701) == "RUNNING"
    assert vz("vzctl", "resume", "9701").returncode != 0

    # enter with its commands on a pipe: root's shell reads them (on a terminal: tests/test_console_cli.py)
    res = vz("vzctl", "enter", "9701", input="cat /etc/hostname\nexit\n")
    assert res.returncode == 0 and res.stdout == "ct9701.test\n", res.stderr

    # set: --save and --setmode accepted with their meaning here, a plan applied, the rest refused
    Plan.objects.create(name="vps.basic", ram_mb=256, swap_mb=128, cpus=1, disk_mb=2048)
    res = vz("vzctl", "set", "9701", "--applyconfig", "vps.basic", "--setmode", "restart", "--save")
    assert res.returncode == 0, res.stderr
    assert "nothing here needs a restart" in res.stdout
    ct = Container.objects.get(ctid=9701)
    assert (ct.ram_mb, ct.swap_mb) == (256, 128)
    res = vz("vzctl", "set", "9701", "--applyconfig", "vps.nothere")
    assert res.returncode != 0 and "no plan 'vps.nothere'" in res.stderr
    before = Task.objects.count()
    for argv, says in [(("--capability", "sys_time:on"), "--capability: every container here has the same"),
                       (("--features", "nfs:on", "--ram", "1G"), "--features: OpenVZ's kernel features"),
                       (("--privvmpages", "1G"), "privvmpages: no limit for this"),
                       (("--quotaugidlimit", "100"), "--quotaugidlimit: user and group quotas")]:
        res = vz("vzctl", "set", "9701", *argv, "--save")
        assert res.returncode != 0 and says in res.stderr and "Nothing was changed" in res.stderr, res.stderr
    assert Task.objects.count() == before and Container.objects.get(ctid=9701).ram_mb == 256
    for verb in ("chkpnt", "snapshot-mount", "quotaon"):
        res = vz("vzctl", verb, "9701")
        assert res.returncode != 0 and res.stderr.startswith(f"CommandError: vzctl {verb}: "), res.stderr
    help_text = vz("vzctl", "--help").stdout
    for verb in ("create", "destroy", "start", "stop", "restart", "status", "set", "exec", "exec2", "runscript",
                 "enter", "suspend", "resume", "mount", "umount", "console"):
        assert f"\n    {verb} " in help_text

    res = vz("vzctl", "create", "9708", "--ostemplate", template_name, "--private", "/vz/private/9708")
    assert res.returncode != 0 and "--private: where a container lives" in res.stderr
    assert not Container.objects.filter(ctid=9708).exists()
    res = vz("vzctl", "create", "9708", "--ostemplate", template_name, "--ipadd", "198.51.100.98")
    assert res.returncode == 0, res.stderr
    assert vz("vzlist", "-a", "-H", "-o", "ip", "9708").stdout.split() == ["198.51.100.98"]

    assert vz("vzctl", "stop", "9701").returncode == 0
    assert vz("vzctl", "delete", "9701").returncode == 0
    assert lxc_info_state(9701) == "ABSENT"
    assert vz("vzctl", "status", "9701").stdout == "CTID 9701 deleted unmounted down\n"


DATA = BASE_DIR / "tests" / "data"
LONG_MAX = 9223372036854775807
# vzlist -j keys the panel has a counterpart for, and those whose value a running container changes.
COUNTERPART = ("ctid", "hostname", "ip", "status", "numproc", "physpages", "swappages", "diskspace", "diskinodes",
               "laverage", "uptime", "onboot", "ostemplate", "name", "description")
MEASURED = {"held", "maxheld", "failcnt", "usage"}


def recorded_containers(vz, template_name):
    """The two containers of the recorded OpenVZ output (tests/data), made as an OpenVZ admin would."""
    for argv in (
        ("create", "9703", "--ostemplate", template_name, "--hostname", "web.example.org", "--name", "web",
         "--description", "front end", "--onboot", "yes"),
        ("set", "9703", "--ram", "512M", "--swap", "256M", "--diskspace", "2G:3G", "--diskinodes", "131072:144179",
         "--numproc", "unlimited", "--ipadd", "198.51.100.97", "--nameserver", "198.51.100.53",
         "--searchdomain", "example.org", "--save"),
        ("start", "9703"),
        ("create", "9704", "--ostemplate", template_name, "--hostname", "stopped.example.org"),
        ("set", "9704", "--physpages", "0:262144", "--swappages", "0:0", "--diskspace", "3G",
         "--diskinodes", "200000", "--numproc", "240", "--save"),
        ("umount", "9704"),  # stopped on OpenVZ is unmounted too; here a stop leaves the disk image mounted
    ):
        res = vz("vzctl", *argv)
        assert res.returncode == 0, (argv, res.stderr)


def masked(text: str) -> list[str]:
    """vzlist's lines with the running container's process count (columns 11-21) blanked."""
    return [line[:11] + "#" * 10 + line[21:] if line[11:21].strip().isdigit() else line
            for line in text.splitlines()]


def same_shape(ours, theirs, path=""):
    """Our vzlist -j value against OpenVZ's: equal, except what a running container changes
    (same type) and what the panel does not measure (null where OpenVZ has a value)."""
    key = path.rsplit(".", 1)[-1]
    if isinstance(theirs, dict):
        assert isinstance(ours, dict) and set(ours) == set(theirs), path
        for k in theirs:
            same_shape(ours[k], theirs[k], f"{path}.{k}")
    elif key in MEASURED or key == "uptime":
        assert type(ours) is type(theirs) and ours >= 0, path
        if theirs == 0 and key in ("held", "maxheld", "failcnt"):
            assert ours == 0, path  # a stopped container holds nothing
    elif key == "laverage":
        assert ours is None, path  # not measured here: null, never made up
    elif key == "ostemplate":
        assert isinstance(ours, str), path
    else:
        assert ours == theirs, path


def test_vzlist_and_vzctl_status_match_recorded_openvz_output(vz, admin_user, host, template_name):
    recorded_containers(vz, template_name)
    assert masked(vz("vzlist", "-a").stdout) == masked((DATA / "openvz_vzlist_a.txt").read_text())
    res = vz("vzlist", "-a", "-o", "ctid,numproc,physpages.l,swappages.l,diskspace.s,diskspace.h,onboot,name")
    assert masked(res.stdout) == masked((DATA / "openvz_vzlist_o.txt").read_text())
    status = [vz("vzctl", "status", ctid).stdout for ctid in ("9703", "9704", "9799")]
    assert "".join(status) == (DATA / "openvz_vzctl_status.txt").read_text()

    ours, theirs = json.loads(vz("vzlist", "-a", "-j").stdout), json.loads((DATA / "openvz_vzlist_a_j.json").read_text())
    assert [ct["ctid"] for ct in ours] == [ct["ctid"] for ct in theirs]
    for mine, recorded in zip(ours, theirs):
        assert set(COUNTERPART) <= set(mine) <= set(recorded)
        assert [k for k in recorded if k in mine] == list(mine)  # in vzlist's order
        for k in mine:
            same_shape(mine[k], recorded[k], f"{mine['ctid']}.{k}")

    # The options a script uses.
    assert vz("vzlist", "-1").stdout.split() == ["9703"]
    assert vz("vzlist", "-S", "-H", "-o", "ctid,status").stdout.split() == ["9704", "stopped"]
    assert vz("vzlist", "-a", "-H", "-o", "ctid", "-s", "-ctid").stdout.split() == ["9704", "9703"]
    assert vz("vzlist", "-a", "-H", "-o", "ctid", "--sort", "physpages.l").stdout.split() == ["9703", "9704"]
    assert vz("vzlist", "-an", "-H").stdout.split()[-1] == "-"  # names: 9704 has none
    assert vz("vzlist", "-a", "-H", "-h", "web.*", "-o", "ctid,ip").stdout.split() == ["9703", "198.51.100.97"]
    assert vz("vzlist", "-H", "-o", "hostname", "9704").stdout.split() == ["stopped.example.org"]
    assert json.loads(vz("vzlist", "-j", "-o", "ctid,physpages.l").stdout) == [
        {"ctid": 9703, "physpages.l": {**theirs[0]["physpages"], **{k: mine for k, mine in
                                       json.loads(vz("vzlist", "-j", "-o", "physpages").stdout)[0]["physpages"].items()
                                       if k in MEASURED}}}]
    res = vz("vzlist", "-o", "ctid,kmemsize")
    assert res.returncode != 0 and "unknown field 'kmemsize'" in res.stderr
    assert "physpages.m" in vz("vzlist", "-L").stdout.split()


def test_shell_commands_are_thin_wrappers_and_never_replace_what_is_not_ours(tmp_path):
    res = install_shell_commands(tmp_path, ENV_FILE="/etc/vzpanel/vzpanel.env", APP_DIR=BASE_DIR)
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(SHELL_COMMANDS)
    lines = (tmp_path / "vzrestore").read_text().splitlines()
    assert lines[0] == "#!/bin/sh" and lines[1].startswith("# vzpanel shell command")
    assert lines[2:] == ['set -a; . "/etc/vzpanel/vzpanel.env" || exit 1; set +a',
                         f'exec "{sys.prefix}/bin/python" -I -S "{BASE_DIR}/panel/cli_client.py" vzrestore "$@"']
    assert os.stat(tmp_path / "vzctl").st_mode & 0o777 == 0o755
    assert install_shell_commands(tmp_path).returncode == 0  # ours: written again
    (tmp_path / "vzcalc").write_text("#!/bin/sh\necho somebody else's\n")
    before = {p.name: p.read_text() for p in tmp_path.iterdir()}
    res = install_shell_commands(tmp_path, VENV_DIR="/nonexistent")
    assert res.returncode != 0 and "no /nonexistent/bin/python" in res.stderr
    res = install_shell_commands(tmp_path)
    assert res.returncode != 0 and f"{tmp_path}/vzcalc is not vzpanel's; nothing was installed" in res.stderr
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == before


def test_vzdump_vzmigrate_vzcalc_vzmemcheck_at_the_shell(vz, admin_user, host, template_name):
    assert vz("vzctl", "create", "9706", "--ostemplate", template_name, "--hostname", "dump.example").returncode == 0
    res = vz("vzdump", "9706", "--compress", "gzip")
    assert res.returncode == 0, res.stderr
    backup = Backup.objects.get(ctid=9706)
    assert backup.filename.startswith("vzdump-lxc-9706-") and backup.filename.endswith(".tar.gz")
    res = vz("vzrestore", backup.filename, "9707")
    assert res.returncode == 0, res.stderr
    assert Container.objects.get(ctid=9707).hostname == "dump.example" and lxc_info_state(9707) == "STOPPED"
    assert vz("vzctl", "start", "9706").returncode == 0
    wait_until(lambda: Container.objects.get(ctid=9706).host.stats.get("mem_total"), 30, message="host stats")
    res = vz("vzcalc", "9706")
    assert res.returncode == 0, res.stderr
    rows = {line[:12].strip(): line[12:].split() for line in res.stdout.splitlines()[1:]}
    assert set(rows) == {"Total RAM", "Mem + Swap", "CPUs", "Disk"}
    assert float(rows["Total RAM"][1]) > 0  # 512 MiB of the host's memory promised
    res = vz("vzmemcheck", "-v")
    assert res.returncode == 0 and res.stdout.startswith("Output values in %"), res.stderr
    assert [line.split()[0] for line in res.stdout.splitlines() if line[:4].isdigit()] == ["9706", "9707"]
    assert vz("vzmemcheck", "-A").stdout.startswith("Output values in MiB")
    res = vz("vzmigrate", "nowhere", "9706")
    assert res.returncode != 0 and "no host 'nowhere'" in res.stderr
    res = vz("vzcalc", "9798")
    assert res.returncode != 0 and "Container 9798 does not exist" in res.stderr


# -- vzctl mount and umount ----------------------------------------------------------------------
def rootfs_mounted(ctid, lxcpath=None) -> bool:
    """The kernel's view: is something mounted at the container's rootfs?"""
    return mounted_source(Path(lxcpath or LXCPATH) / str(ctid) / "rootfs") is not None


def test_vzctl_umount_holds_across_reconcile_and_agent_restart_until_mount_or_start(vz, agent, admin_user, host,
                                                                                     template_name):
    assert vz("vzctl", "create", "9710", "--ostemplate", template_name, "--hostname", "m.example").returncode == 0
    assert (LXCPATH / "9710" / "root.img").is_file() and rootfs_mounted(9710)
    # A stop leaves the disk image mounted here (OpenVZ's stop unmounted): vzctl status says so.
    assert vz("vzctl", "status", "9710").stdout == "CTID 9710 exist mounted down\n"

    res = vz("vzctl", "umount", "9710")
    assert res.returncode == 0 and "Container is unmounted" in res.stdout, res.stderr
    assert not rootfs_mounted(9710) and Container.objects.get(ctid=9710).unmounted
    assert vz("vzctl", "status", "9710").stdout == "CTID 9710 exist unmounted down\n"
    time.sleep(3 * 2)  # a few reconcile passes (PANEL_AGENT_RECONCILE_SECONDS=2 in the tests)
    assert not rootfs_mounted(9710)
    agent.restart()  # its start reconciles before it counts as started
    assert not rootfs_mounted(9710)
    assert vz("vzctl", "status", "9710").stdout == "CTID 9710 exist unmounted down\n"

    res = vz("vzctl", "mount", "9710")
    assert res.returncode == 0 and "Container is mounted" in res.stdout, res.stderr
    assert rootfs_mounted(9710) and not Container.objects.get(ctid=9710).unmounted
    assert (LXCPATH / "9710" / "rootfs" / "etc" / "hostname").read_text() == "m.example\n"
    assert vz("vzctl", "status", "9710").stdout == "CTID 9710 exist mounted down\n"
    res = vz("vzctl", "mount", "9710")
    assert res.returncode == 0 and "Container is already mounted" in res.stdout

    # start mounts an unmounted container first, as vzctl start did, and the mark goes
    assert vz("vzctl", "umount", "9710").returncode == 0 and not rootfs_mounted(9710)
    res = vz("vzctl", "start", "9710")
    assert res.returncode == 0 and "Mounting the root filesystem" in res.stdout, res.stderr
    assert lxc_info_state(9710) == "RUNNING" and rootfs_mounted(9710)
    assert not Container.objects.get(ctid=9710).unmounted
    assert vz("vzctl", "status", "9710").stdout == "CTID 9710 exist mounted running\n"

    # umount of a running container: refused in vzctl's words, nothing queued, still mounted
    before = Task.objects.count()
    res = vz("vzctl", "umount", "9710")
    assert res.returncode != 0 and "Container 9710 is running -- stop it first" in res.stderr, res.stderr
    assert Task.objects.count() == before and rootfs_mounted(9710) and lxc_info_state(9710) == "RUNNING"
    res = vz("vzctl", "mount", "9710")
    assert res.returncode == 0 and "Container is already mounted" in res.stdout
    assert vz("vzctl", "stop", "9710").returncode == 0

    help_text = vz("vzctl", "--help").stdout
    assert "mount its root filesystem" in help_text and "unmount a stopped container's root" in help_text


def test_backup_set_restore_and_destroy_work_on_an_unmounted_container(vz, agent, admin_user, host,
                                                                      template_name):
    """Each mounts it for what it needs and leaves it unmounted, as vzctl did for a stopped container."""
    assert vz("vzctl", "create", "9711", "--ostemplate", template_name, "--hostname", "u.example").returncode == 0
    assert vz("vzctl", "umount", "9711").returncode == 0

    res = vz("vzdump", "9711", "--compress", "gzip")
    assert res.returncode == 0, res.stderr
    backup = Backup.objects.get(ctid=9711)
    with tarfile.open(backup.path) as tar:
        names = tar.getnames()
    assert "./etc/hostname" in names and "./sbin/init" in names  # the disk's files, not an empty mountpoint
    assert not rootfs_mounted(9711) and Container.objects.get(ctid=9711).unmounted

    res = vz("vzctl", "set", "9711", "--hostname", "renamed.example", "--save")
    assert res.returncode == 0, res.stderr
    assert not rootfs_mounted(9711)
    assert not os.listdir(LXCPATH / "9711" / "rootfs")  # nothing written into the bare mountpoint

    res = vz("vzrestore", backup.filename, "9711", "--force")
    assert res.returncode == 0, res.stderr
    assert not rootfs_mounted(9711) and Container.objects.get(ctid=9711).unmounted
    assert vz("vzctl", "status", "9711").stdout == "CTID 9711 exist unmounted down\n"
    assert vz("vzctl", "mount", "9711").returncode == 0
    assert (LXCPATH / "9711" / "rootfs" / "etc" / "hostname").read_text() == "renamed.example\n"  # written at restore

    assert vz("vzctl", "umount", "9711").returncode == 0
    res = vz("vzctl", "destroy", "9711")
    assert res.returncode == 0, res.stderr
    assert lxc_info_state(9711) == "ABSENT" and not (LXCPATH / "9711").exists()
    assert not Container.objects.filter(ctid=9711).exists()


def test_an_unmounted_container_migrates_and_stays_unmounted(agent, second_host, admin_user, host, template_name):
    h2, h2_agent = second_host
    h2_agent.start()
    task = services.create_container(user=admin_user, ctid=9712, ostemplate=template_name, hostname="mig.example",
                                     host=host, limits={"disk_mb": 400})
    assert wait_task(task).status == "ok", task.log
    ct = Container.objects.get(ctid=9712)
    assert wait_task(services.umount_container(ct, admin_user)).status == "ok"
    task = wait_task(services.migrate_container(ct, admin_user, h2), 180)
    assert task.status == "ok", task.log
    ct.refresh_from_db()
    assert ct.host == h2 and ct.unmounted and not (LXCPATH / "9712").exists()
    assert not rootfs_mounted(9712, h2.lxcpath)
    time.sleep(3 * 2)  # h2's reconcile leaves it so
    assert not rootfs_mounted(9712, h2.lxcpath)
    assert wait_task(services.mount_container(ct, admin_user)).status == "ok"
    assert (Path(h2.lxcpath) / "9712" / "rootfs" / "etc" / "hostname").read_text() == "mig.example\n"


def test_mount_and_umount_are_for_those_who_manage_the_container(agent, host, template_name, acme, plan, people):
    """A tenant member mounts and unmounts their own containers only: over the API, the shell and
    the service alike; each is audited."""
    ct = students_running_container(9713, "own.example", host, template_name, acme, plan, people)
    student, api = people["student"], APIClient()
    api.force_authenticate(student)
    res = api.post("/api/containers/9713/umount/")
    assert res.status_code == 409 and "is running -- stop it first" in res.json()["detail"]
    assert wait_task(services.stop_container(ct, student)).status == "ok"
    res = api.post("/api/containers/9713/umount/")
    assert res.status_code == 202, res.content
    assert wait_task(Task.objects.get(pk=res.json()["task"]["id"])).status == "ok"
    assert not rootfs_mounted(9713) and Container.objects.get(ctid=9713).unmounted
    assert AuditEvent.objects.filter(action="container.umount", user=student).exists()

    before = Task.objects.count()
    for user in (people["outsider"], people["peer"]):  # another tenant's member; a member of acme, not its owner
        api.force_authenticate(user)
        assert api.post("/api/containers/9713/mount/").status_code == 404, user  # not theirs to see
        with pytest.raises(NotAllowed):
            services.mount_container(ct, user)
        res = subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), "vzctl", "--user", user.username,
                              "mount", "9713"], cwd=BASE_DIR, env=agent.env(), capture_output=True, text=True,
                             timeout=120)
        assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr
    assert Task.objects.count() == before and not rootfs_mounted(9713)

    api.force_authenticate(student)
    res = api.post("/api/containers/9713/mount/")
    assert res.status_code == 202 and wait_task(Task.objects.get(pk=res.json()["task"]["id"])).status == "ok"
    assert rootfs_mounted(9713) and AuditEvent.objects.filter(action="container.mount", user=student).exists()
