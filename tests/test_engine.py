"""The host-facing package on its own: no Django, config rendering, safe writes."""
import os
import subprocess
import sys
from pathlib import Path

from containers.engine.lxc import ContainerSpec, Lxc, write_identity
from containers.engine.templates import list_templates, template_name


def test_engine_imports_nothing_from_django():
    code = ("import sys; import containers.engine.lxc, containers.engine.templates, "
            "containers.engine.busybox, containers.engine.sysinfo; "
            "print(any(m == 'django' or m.startswith('django.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent, check=True).stdout
    assert out.strip() == "False"


def test_template_names():
    assert template_name("debian-12-amd64.tar.zst") == "debian-12-amd64"
    assert template_name("centos-7.tar.gz") == "centos-7"
    assert template_name("notes.txt") is None
    assert template_name("..tar.gz") is None


def test_list_templates_reports_size_and_checksum(tmp_path):
    (tmp_path / "tiny-1.tar.gz").write_bytes(b"abc")
    (tmp_path / "readme.txt").write_text("not a template")
    [info] = list_templates(tmp_path)
    assert (info.name, info.size) == ("tiny-1", 3)
    assert info.sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_config_names_the_container_by_ctid(tmp_path):
    text = Lxc(tmp_path).render_config(ContainerSpec(ctid=123, hostname="web.example", onboot=True))
    assert "lxc.uts.name = web.example" in text
    assert f"lxc.rootfs.path = dir:{tmp_path}/123/rootfs" in text
    assert "lxc.start.auto = 1" in text
    assert "lxcfs" not in text  # no 0.5 s post-stop hook


def test_identity_write_does_not_follow_symlinks_out_of_the_container(tmp_path):
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    outside = tmp_path / "host-file"
    outside.write_text("precious\n")
    os.symlink(outside, rootfs / "etc" / "hostname")
    os.symlink(outside, rootfs / "etc" / ".hosts.vzpanel-tmp")
    write_identity(rootfs, ContainerSpec(1, "ct.example"))
    assert outside.read_text() == "precious\n"
    assert (rootfs / "etc" / "hostname").read_text() == "ct.example\n"
    assert "127.0.1.1\tct.example ct" in (rootfs / "etc" / "hosts").read_text()
