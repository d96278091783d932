"""OS templates on the real agent: a Debian build that boots, a template made from a container,
uploads checked, copies between hosts. The build fetches packages from the host's Debian mirror."""
import subprocess
import tarfile
from pathlib import Path

import pytest
from django.conf import settings

from containers import ostemplates, services
from containers.models import Container, OSTemplate
from network import services as net

from .conftest import LXCPATH, TEMPLATE_DIR, AgentProcess, lxc_info_state, wait_task, wait_until

pytestmark = pytest.mark.integration


def members(path: Path) -> list[str]:
    out = subprocess.run(["tar", "-tf", str(path)], capture_output=True, text=True, check=True).stdout
    return out.splitlines()


@pytest.mark.own_lane  # minutes of debootstrap, mostly waiting on the mirror
def test_debian_build_boots_and_makes_a_template(agent, admin_user, host):
    task = wait_task(ostemplates.build_template(admin_user, host, distribution="debian", release="bookworm",
                                                architecture="amd64", name="debian-12-test"), timeout=900)
    assert task.status == "ok", task.log[-3000:]
    tpl = wait_until(lambda: OSTemplate.objects.filter(host=host, name="debian-12-test").first(), 30,
                     message="the template in the catalogue")
    assert (tpl.distribution, tpl.version, tpl.architecture) == ("debian", "12", "amd64")
    assert "deb.debian.org" in tpl.source or "debootstrap" in tpl.source
    listing = members(TEMPLATE_DIR / tpl.filename)
    assert not [m for m in listing if "/etc/ssh/ssh_host_" in m]  # made at first boot, never baked in
    assert "./etc/systemd/system/systemd-udevd.service" in listing

    task = wait_task(services.create_container(user=admin_user, ctid=9601, ostemplate="debian-12-test",
                                               hostname="deb.test.example", host=host, start=False))
    assert task.status == "ok", task.log
    ct = Container.objects.get(ctid=9601)
    assert wait_task(net.add_addresses(ct, admin_user, ["198.51.100.96"])).status == "ok"
    assert wait_task(net.set_dns(ct, admin_user, ["198.51.100.53"], "test.example")).status == "ok"
    assert wait_task(services.start_container(ct, admin_user)).status == "ok"

    def run(argv):
        t = wait_task(services.exec_in_container(ct, admin_user, argv, timeout=60))
        assert t.status == "ok", t.log
        return t.result

    assert run(["cat", "/etc/debian_version"])["stdout"].startswith("12.")
    state = wait_until(lambda: run(["systemctl", "is-system-running"])["stdout"].strip()
                       in ("running", "degraded") and run(["systemctl", "is-system-running"])["stdout"].strip(), 60,
                       interval=1, message="systemd to finish booting")
    assert state in ("running", "degraded")
    assert run(["hostname"])["stdout"].strip() == "deb.test.example"
    assert "198.51.100.96" in run(["ip", "-4", "addr", "show", "venet0"])["stdout"]
    assert "nameserver 198.51.100.53" in run(["cat", "/etc/resolv.conf"])["stdout"]
    wait_until(lambda: run(["ls", "/etc/ssh"])["stdout"].count("ssh_host_") >= 2, 30, interval=1,
               message="SSH host keys made at first boot")
    # A vzctl exec from the CLI, as the issue asks.
    res = subprocess.run([".venv/bin/python", "manage.py", "vzctl", "exec", "9601", "--", "cat", "/etc/debian_version"],
                         env=agent.env(), capture_output=True, text=True, cwd=str(Path(__file__).resolve().parents[1]))
    assert res.returncode == 0 and res.stdout.startswith("12.")

    # A template from the stopped container: its identity stays behind.
    assert wait_task(services.stop_container(ct, admin_user)).status == "ok"
    ct.refresh_from_db()
    task = wait_task(ostemplates.template_from_container(ct, admin_user, "web-golden"), timeout=300)
    assert task.status == "ok", task.log
    made = TEMPLATE_DIR / "web-golden.tar.zst"
    listing = members(made)
    assert not [m for m in listing if "ssh_host_" in m and m.endswith("_key")]
    assert "./etc/systemd/system/vzpanel-ssh-keygen.service" in listing
    extracted = subprocess.run(["tar", "-xOf", str(made), "./etc/hostname"], capture_output=True, text=True).stdout
    assert extracted == "localhost\n"
    assert subprocess.run(["tar", "-xOf", str(made), "./etc/machine-id"], capture_output=True).stdout == b""
    assert (LXCPATH / "9601" / "rootfs" / "etc" / "hostname").read_text() == "deb.test.example\n"  # untouched


def _tarball(path: Path, entries):
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, data, link in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = link
            if kind == tarfile.REGTYPE:
                import io
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)


@pytest.mark.parametrize("case,entries,message", [
    ("not-rootfs", [("./hello.txt", tarfile.REGTYPE, b"hi", "")], "not a root filesystem"),
    ("absolute", [("./sbin/init", tarfile.REGTYPE, b"x", ""), ("/etc/evil", tarfile.REGTYPE, b"x", "")], "absolute"),
    ("dotdot", [("./sbin/init", tarfile.REGTYPE, b"x", ""), ("./../evil", tarfile.REGTYPE, b"x", "")], ".."),
    ("symlink", [("./sbin/init", tarfile.REGTYPE, b"x", ""), ("./etc", tarfile.SYMTYPE, b"", "/etc"),
                 ("./etc/evil", tarfile.REGTYPE, b"x", "")], "symlink"),
])
def test_hostile_or_wrong_uploads_are_refused_and_deleted(agent, admin_user, host, tmp_path, case, entries, message):
    staged = Path(settings.UPLOAD_DIR)  # where the web server streams uploads; the agent takes only those
    staged.mkdir(parents=True, exist_ok=True)
    upload = staged / f"{case}.tar.gz"
    _tarball(upload, entries)
    task = wait_task(ostemplates.import_uploaded_template(admin_user, host, str(upload), f"up-{case}"))
    assert task.status == "failed" and message in task.error, task.error
    assert not upload.exists()
    assert not list(TEMPLATE_DIR.glob(f"up-{case}*"))
    assert not OSTemplate.objects.filter(name=f"up-{case}").exists()


def test_names_that_would_leave_the_cache_are_refused(admin_user, host, busybox_template):
    for bad in ("../evil", "a/b", ".hidden", "x" * 200):
        with pytest.raises(services.InvalidRequest, match="not a template name"):
            ostemplates.download_template(admin_user, host, url="http://127.0.0.1/x.tar.gz", name=bad)


def test_copy_between_hosts_and_delete(agent, admin_user, host, template_name, busybox_template, tmp_path):
    from hosts.models import Host
    other = Host.objects.create(name="vzt-second", lxcpath=str(tmp_path / "lxc2"), template_dir=str(tmp_path / "tpl2"),
                                dump_dir=str(tmp_path / "dump2"))
    second = AgentProcess(other.name).start()
    try:
        tpl = OSTemplate.objects.get(host=host, name=template_name)
        task = wait_task(ostemplates.copy_template(admin_user, tpl, other))
        assert task.status == "ok", task.log
        copied = wait_until(lambda: OSTemplate.objects.filter(host=other, name=template_name).first(), 20)
        assert copied.sha256 == tpl.sha256 and copied.source.startswith("copied from")
        assert wait_task(ostemplates.delete_template(admin_user, copied)).status == "ok"
        wait_until(lambda: not OSTemplate.objects.filter(host=other, name=template_name).exists(), 20)
        assert not list((tmp_path / "tpl2").glob("busybox*"))
    finally:
        second.kill()


@pytest.fixture
def http_dir(tmp_path):
    """A real HTTP server on 127.0.0.1 serving a directory; shut down afterwards."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
    root = tmp_path / "www"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(SimpleHTTPRequestHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_download_checks_the_checksum_and_keeps_nothing_bad(agent, admin_user, host, busybox_template, http_dir):
    import shutil
    from containers.engine.templates import sha256_of
    root, base = http_dir
    shutil.copy(busybox_template, root / "tiny-1.tar.zst")
    good = sha256_of(root / "tiny-1.tar.zst")
    task = wait_task(ostemplates.download_template(admin_user, host, url=f"{base}/tiny-1.tar.zst", sha256="0" * 64))
    assert task.status == "failed" and "checksum mismatch" in task.error
    assert not list(TEMPLATE_DIR.glob("tiny-1*")) and not list(TEMPLATE_DIR.glob(".tiny-1*"))
    task = wait_task(ostemplates.download_template(admin_user, host, url=f"{base}/tiny-1.tar.zst", sha256=good))
    assert task.status == "ok", task.log
    tpl = wait_until(lambda: OSTemplate.objects.filter(host=host, name="tiny-1").first(), 20)
    assert tpl.sha256 == good and tpl.source == f"{base}/tiny-1.tar.zst"
    # Anything that is not a root filesystem is refused after download, and deleted.
    (root / "notroot.tar.gz").write_bytes(subprocess.run(["tar", "-cz", "-C", str(root), "tiny-1.tar.zst"],
                                                         capture_output=True, check=True).stdout)
    task = wait_task(ostemplates.download_template(admin_user, host, url=f"{base}/notroot.tar.gz"))
    assert task.status == "failed" and "not a root filesystem" in task.error
    assert not list(TEMPLATE_DIR.glob("notroot*"))
