"""What a student does with their container, end to end on real LXC; and expiry."""
import subprocess
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from backups.models import Backup
from containers import services
from containers.models import Container
from tasks.models import Task
from tenancy.expiry import enforce_expiry

from .conftest import DUMP_DIR, LXCPATH, lxc_info_state, wait_task

pytestmark = pytest.mark.integration

PASSWORD = "Correct-Horse-42"


def _make(user, host, template_name, tenant, plan, ctid, owner=None, start=True, **kw):
    task = services.create_container(user=user, ctid=ctid, ostemplate=template_name, hostname=f"s{ctid}.test",
                                     host=host, tenant=tenant, plan=plan, owner=owner, start=start, **kw)
    assert wait_task(task).status == "ok", task.log
    return Container.objects.get(ctid=ctid)


def test_password_key_limits_and_reset(agent, people, acme, plan, host, template_name, redis_conn):
    ct = _make(people["tadmin"], host, template_name, acme, plan, 701, owner=people["student"])
    student = people["student"]

    task = wait_task(services.set_user_password(ct, student, "root", PASSWORD))
    assert task.status == "ok", task.log
    shadow = (LXCPATH / "701" / "rootfs" / "etc" / "shadow").read_text()
    assert shadow.startswith("root:$")  # a real hash, set by chpasswd inside
    # The password is nowhere: not in the task, not in the audit log, not left in Redis.
    for text in [task.log, str(task.params), str(task.result)] + [
            f"{e.detail} {e.object_repr}" for e in AuditEvent.objects.all()]:
        assert PASSWORD not in text
    assert not any(PASSWORD.encode() in (redis_conn.get(k) or b"") for k in redis_conn.keys("vzpanel:*")
                   if redis_conn.type(k) == b"string")

    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx1c3RpZ2VyLXRlc3Qta2V5LWZvci12enBhbmVs student@laptop"
    assert wait_task(services.set_ssh_key(ct, student, key)).status == "ok"
    auth = LXCPATH / "701" / "rootfs" / "root" / ".ssh" / "authorized_keys"
    assert auth.read_text() == key + "\n" and oct(auth.stat().st_mode & 0o777) == "0o600"

    # Lowering a limit on the running container takes effect at once.
    assert wait_task(services.update_container(ct, student, ram_mb=128)).status == "ok"
    res = subprocess.run(["lxc-cgroup", "-n", "701", "-P", str(LXCPATH), "memory.limit_in_bytes"],
                         capture_output=True, text=True, check=True)
    assert int(res.stdout) == 128 * 1024 * 1024

    # Reset to the template: what the student made is gone, the container is as new.
    wait_task(services.exec_in_container(ct, student, ["touch", "/root/homework"]))
    assert wait_task(services.stop_container(ct, student)).status == "ok"
    ct.refresh_from_db()
    with pytest.raises(services.InvalidRequest):
        services.reset_container(ct, student, "70")
    assert wait_task(services.reset_container(ct, student, "701")).status == "ok"
    rootfs = LXCPATH / "701" / "rootfs"
    assert not (rootfs / "root" / "homework").exists() and not auth.exists()
    assert (rootfs / "etc" / "hostname").read_text() == "s701.test\n"
    assert wait_task(services.start_container(ct, student)).status == "ok"


def test_backup_counts_against_the_quota(agent, people, acme, plan, host, template_name):
    ct = _make(people["tadmin"], host, template_name, acme, plan, 702, owner=people["student"])
    acme.max_backups = 1
    acme.save()
    task = wait_task(services_backup(ct, people["student"]))
    assert task.status == "ok", task.log
    backup = Backup.objects.get()
    archive = DUMP_DIR / backup.filename
    assert archive.exists() and backup.filename.startswith("vzdump-lxc-702-") and backup.filename.endswith(".tar.zst")
    assert lxc_info_state(702) == "RUNNING"  # stop mode starts it again
    listing = subprocess.run(["tar", "-tf", str(archive)], capture_output=True, text=True, check=True).stdout
    assert "./etc/vzdump/pct.conf" in listing.splitlines()
    from tenancy.quotas import QuotaExceeded
    with pytest.raises(QuotaExceeded, match="backups would be 2"):
        services_backup(ct, people["student"])


def services_backup(ct, user):
    from backups.services import backup_container
    return backup_container(ct, user)


def test_expiry_stops_then_backs_up_and_destroys_after_grace(agent, people, acme, plan, host, template_name):
    from tenancy.services import create_class
    cls = create_class(people["tadmin"], tenant=acme, slug="os201", name="OS 201", host=host,
                       ostemplate=template_name, plan=plan, grace_days=2, backup_before_destroy=True,
                       expires_at=timezone.now() + timedelta(days=30))
    ct = _make(people["tadmin"], host, template_name, acme, plan, 703, owner=people["student"],
               student_class=cls, expires_at=cls.expires_at)
    keep = _make(people["tadmin"], host, template_name, acme, plan, 704, owner=people["peer"])

    assert enforce_expiry() == []  # nothing has expired
    Container.objects.filter(pk=ct.pk).update(expires_at=timezone.now() - timedelta(hours=1))
    [line] = enforce_expiry()
    assert "stop queued" in line
    wait_task(Task.objects.filter(ctid=703).latest("id"))
    assert lxc_info_state(703) == "STOPPED"
    assert enforce_expiry() == []  # within the grace period: stays stopped, nothing else

    later = timezone.now() + timedelta(days=2, hours=1)
    [line] = enforce_expiry(later)
    assert "backup queued" in line
    wait_task(Task.objects.filter(ctid=703).latest("id"))
    assert Backup.objects.filter(ctid=703).count() == 1
    [line] = enforce_expiry(later)
    assert "destroy queued" in line
    wait_task(Task.objects.filter(ctid=703).latest("id"))
    assert lxc_info_state(703) == "ABSENT" and not Container.objects.filter(ctid=703).exists()
    assert (DUMP_DIR / Backup.objects.get(ctid=703).filename).exists()  # the backup outlives the container
    assert lxc_info_state(keep.ctid) == "RUNNING"
    assert AuditEvent.objects.filter(action="expiry", address="scheduler").count() == 3


def test_scheduler_command_runs_a_pass(agent, people, acme, plan, host, template_name):
    import os
    import sys

    from .conftest import BASE_DIR
    ct = _make(people["tadmin"], host, template_name, acme, plan, 705, owner=people["student"],
               expires_at=timezone.now() - timedelta(minutes=1))
    res = subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), "scheduler", "--once"], cwd=BASE_DIR,
                         env=agent.env(), capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "CT 705" in res.stdout and "stop queued" in res.stdout
    wait_task(Task.objects.filter(ctid=705).latest("id"))
    assert lxc_info_state(ct.ctid) == "STOPPED"
