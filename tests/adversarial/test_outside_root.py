"""An outside tester's variants of issue 12: rows the web user can write (a host's lxcpath, a task's
path, a storage) must not steer the root agent. Each reproduces the attack for real.
(The tester's escape through privileged containers themselves is issue "unprivileged containers".)"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from containers import services
from containers.models import Container

from ..conftest import RUN_DIR, wait_task

integration = pytest.mark.integration


def student_container(people, acme, plan, host, template_name, ctid: int, start: bool = True) -> Container:
    """A container as a class gives it: made by the tenant admin, owned by the student."""
    task = services.create_container(user=people["tadmin"], owner=people["student"], ctid=ctid,
                                     ostemplate=template_name, hostname=f"s{ctid}.acme", host=host,
                                     tenant=acme, plan=plan, start=start)
    assert wait_task(task, 120).status == "ok", task.log
    return Container.objects.get(ctid=ctid)


WEB_UID = 65534  # stands in for the web user `vzpanel` (tests run as root)


def web_dir(name: str) -> Path:
    """A directory the web user owns, in its uploads directory."""
    from panel.uploads import upload_dir
    path = upload_dir() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def give_to_web_user(path: Path) -> None:
    subprocess.run(["chown", "-R", f"{WEB_UID}:{WEB_UID}", str(path)], check=True)


@integration
def test_web_user_cannot_point_the_agent_at_an_lxcpath_of_its_own(agent, host, acme):
    """Host.lxcpath comes from the database and is used as it is: the web user points it at its
    uploads directory, writes CTID/config there with an lxc.hook.destroy, and queues an ordinary
    destroy of a stopped container row; the agent runs lxc-destroy -P <that directory>, and LXC runs
    the hook as root."""
    from tasks.choices import TaskType
    from tasks.services import submit_task
    marker = RUN_DIR / "escaped-76010"
    marker.unlink(missing_ok=True)
    lxcpath = web_dir("lxc")
    (lxcpath / "76010" / "rootfs").mkdir(parents=True, exist_ok=True)
    (lxcpath / "76010" / "config").write_text(
        "lxc.uts.name = web\n"
        f"lxc.rootfs.path = dir:{lxcpath}/76010/rootfs\n"
        f"lxc.hook.destroy = /bin/sh -c 'id > {marker}'\n")
    give_to_web_user(lxcpath.parent)
    original = host.lxcpath
    try:
        type(host).objects.filter(pk=host.pk).update(lxcpath=str(lxcpath))
        ct = Container.objects.create(ctid=76010, hostname="web.example", ostemplate="x", host=host, tenant=acme,
                                      status="stopped")
        task = wait_task(submit_task(type=TaskType.CT_DESTROY, host=host, container=ct), 60)
        assert not marker.exists(), f"root ran the web user's hook ({task.status}): {marker.read_text()!r}"
        assert task.status == "failed" and "not root's alone" in task.error
    finally:
        type(host).objects.filter(pk=host.pk).update(lxcpath=original)
        marker.unlink(missing_ok=True)
        subprocess.run(["rm", "-rf", str(lxcpath)])
        os.chown(lxcpath.parent, 0, 0)  # the uploads directory, handed to the stand-in web user above


@integration
def test_web_user_cannot_make_the_agent_delete_a_host_file(agent, host):
    """TPL_IMPORT takes its path from the task's params and deletes whatever fails the tarball check:
    a task row naming any host file (here a root-only file outside the uploads) has root delete it."""
    from tasks.choices import TaskType
    from tasks.services import submit_task
    victim = RUN_DIR / "bait" / "root-only.conf"
    victim.parent.mkdir(parents=True, exist_ok=True)
    victim.write_text("root's own file\n")
    os.chmod(victim, 0o600)
    try:
        task = wait_task(submit_task(type=TaskType.TPL_IMPORT, host=host,
                                     params={"path": str(victim), "name": "whatever"}), 60)
        assert victim.exists(), f"root deleted {victim} ({task.status}: {task.error})"
    finally:
        victim.unlink(missing_ok=True)


# -- 3. a backup storage is any directory, and root re-owns it -----------------------------------------
@integration
def test_a_backup_storage_does_not_hand_a_host_directory_to_the_web_users_group(agent, host, people, acme, plan,
                                                                                template_name):
    """An operator (a panel role, not root on the host) defines a storage at any absolute path; the
    first backup into it (here the student's own) has root chmod it 0750 and chgrp it to the web
    user's group (vzdump.prepare_dump_dir): /root, /etc/ssl/private or /etc itself become listable by
    the web user, or closed to every other local user. A stand-in root-only directory is used."""
    from backups import services as backup_services
    victim = RUN_DIR / "bait" / "root-private"
    victim.mkdir(parents=True, exist_ok=True)
    os.chown(victim, 0, 0)
    os.chmod(victim, 0o700)
    ct = student_container(people, acme, plan, host, template_name, 76020, start=False)
    storage = backup_services.save_storage(people["operator"], host=host, name="ops", path=str(victim))
    try:
        # The agent resolves the web user's group from its own settings; in the test run WEB_USER is
        # unset, so only the mode change shows. Either change is root acting on the operator's word.
        task = wait_task(backup_services.backup_container(ct, people["student"], storage=storage), 120)
        st = victim.stat()
        assert (st.st_mode & 0o777, st.st_gid) == (0o700, 0), \
            f"root changed {victim} to {oct(st.st_mode & 0o777)} gid {st.st_gid} ({task.status})"
    finally:
        subprocess.run(["rm", "-rf", str(victim)])
