"""Quotas and plans: enforced at every create and limit change, atomically, with reasons."""
import threading

import pytest
from django.db import connection

from containers import services
from containers.models import Container
from tasks.models import Task
from tenancy.quotas import QuotaExceeded, quota_rows


def _create(user, host, template_name, tenant, plan, ctid, **kw):
    return services.create_container(user=user, ctid=ctid, ostemplate=template_name, hostname=f"q{ctid}.test",
                                     host=host, tenant=tenant, plan=plan, **kw)


def test_refusal_names_the_quota_the_usage_and_the_limit(people, acme, plan, host, template_name):
    acme.max_ram_mb = 600
    acme.save()
    _create(people["tadmin"], host, template_name, acme, plan, 601)
    _create(people["tadmin"], host, template_name, acme, plan, 602)
    with pytest.raises(QuotaExceeded) as refused:
        _create(people["tadmin"], host, template_name, acme, plan, 603)
    assert str(refused.value) == ("Quota exceeded for tenant acme: RAM would be 768 MiB "
                                  "(in use 512 MiB, requested 256 MiB, limit 600 MiB).")
    assert Container.objects.count() == 2 and Task.objects.count() == 2


def test_usage_rows_for_the_bars(people, acme, plan, host, template_name):
    acme.max_containers = 4
    acme.save()
    _create(people["tadmin"], host, template_name, acme, plan, 604)
    rows = {r["label"]: r for r in quota_rows(acme)}
    assert (rows["containers"]["used"], rows["containers"]["limit"], rows["containers"]["percent"]) == (1, 4, 25)
    assert rows["RAM"]["used"] == 256 and rows["RAM"]["limit"] is None


def test_members_cannot_raise_limits_above_their_plan(people, student_ct):
    with pytest.raises(services.NotAllowed, match="above plan vps.basic"):
        services.update_container(student_ct, people["student"], ram_mb=512)
    services.update_container(student_ct, people["student"], ram_mb=128)  # lowering is fine
    student_ct.refresh_from_db()
    assert student_ct.ram_mb == 128


def test_operators_may_raise_limits_but_not_past_the_quota(people, student_ct, acme):
    acme.max_ram_mb = 1000
    acme.save()
    services.update_container(student_ct, people["operator"], ram_mb=900)
    Task.objects.all().delete()
    Container.objects.filter(pk=student_ct.pk).update(lock_task=None)
    student_ct.refresh_from_db()
    with pytest.raises(QuotaExceeded, match="in use 900 MiB, requested 200 MiB, limit 1000 MiB"):
        services.update_container(student_ct, people["operator"], ram_mb=1100)
    student_ct.refresh_from_db()
    assert student_ct.ram_mb == 900


def test_plan_not_offered_to_the_tenant_is_refused(people, acme, other_tenant, plan, host, template_name):
    plan.tenants.add(other_tenant)
    with pytest.raises(services.InvalidRequest, match="not offered to tenant acme"):
        _create(people["tadmin"], host, template_name, acme, plan, 605)


def test_members_cannot_create_and_tenant_admins_only_in_their_tenant(people, acme, other_tenant, plan, host,
                                                                      template_name):
    with pytest.raises(services.NotAllowed):
        _create(people["student"], host, template_name, acme, plan, 606)
    with pytest.raises(services.NotAllowed):
        _create(people["tadmin"], host, template_name, other_tenant, plan, 607)
    assert Container.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_creates_cannot_together_pass_the_quota(redis_conn, people, acme, plan, host, template_name):
    acme.max_containers = 1
    acme.save()
    barrier = threading.Barrier(2)
    outcomes = []

    def create(ctid):
        try:
            barrier.wait(5)
            _create(people["tadmin"], host, template_name, acme, plan, ctid)
            outcomes.append("ok")
        except QuotaExceeded as exc:
            outcomes.append(str(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=(ctid,)) for ctid in (611, 612)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(outcomes) == 2 and outcomes.count("ok") == 1, outcomes
    assert "containers would be 2" in [o for o in outcomes if o != "ok"][0]
    assert Container.objects.filter(tenant=acme).count() == 1


def test_class_import_over_quota_creates_nothing(people, acme, plan, host, template_name):
    from tenancy.services import create_class, import_students
    from accounts.models import User
    acme.max_containers = 2
    acme.save()
    cls = create_class(people["tadmin"], tenant=acme, slug="os101", name="OS 101", host=host,
                       ostemplate=template_name, plan=plan)
    csv_text = "username,email,name\nann,ann@example.test,Ann A\nbob,bob@example.test,Bob B\ncid,cid@example.test\n"
    with pytest.raises(QuotaExceeded, match="containers would be 3"):
        import_students(people["tadmin"], cls, csv_text)
    assert not User.objects.filter(username__in=["ann", "bob", "cid"]).exists()
    assert Container.objects.count() == 0 and Task.objects.count() == 0


def test_class_import_reports_every_bad_row_and_creates_nothing(people, acme, plan, host, template_name):
    from tenancy.services import ImportRefused, create_class, import_students
    cls = create_class(people["tadmin"], tenant=acme, slug="os102", name="OS 102", host=host,
                       ostemplate=template_name, plan=plan)
    csv_text = "ann,ann@example.test\nBad Name,x@example.test\nann,ann2@example.test\ndan,not-an-email\nstudent,s@example.test\n"
    with pytest.raises(ImportRefused) as refused:
        import_students(people["tadmin"], cls, csv_text)
    errors = {r.line: r.errors for r in refused.value.rows if r.errors}
    assert set(errors) == {2, 3, 4, 5}
    assert "already on line 1" in errors[3][0]
    assert "not a valid email" in errors[4][0]
    assert "taken" in errors[5][0]
    assert Container.objects.count() == 0 and Task.objects.count() == 0


def test_disabling_a_user_cancels_their_queued_tasks(people, student_ct, admin_user):
    from tenancy.services import set_user_active
    task = services.start_container(student_ct, people["student"])
    assert set_user_active(admin_user, people["student"], False) == 1
    task.refresh_from_db()
    assert task.status == "cancelled"
    student_ct.refresh_from_db()
    assert student_ct.lock_task is None


def test_host_capacity_refuses_overcommit_with_numbers_unless_an_admin_overrides(people, acme, plan, host,
                                                                                  template_name, admin_user):
    host.stats = {"mem_total": 1024 * 1024 * 1024, "cpu_count": 2, "disk_total": 100 * 1024 ** 3}
    host.save()
    _create(people["tadmin"], host, template_name, acme, plan, 620)  # 256 MiB of 1024
    services.create_container(user=admin_user, ctid=621, ostemplate=template_name, hostname="big.test", host=host,
                              limits={"ram_mb": 700})
    with pytest.raises(services.InsufficientCapacity) as refused:
        _create(people["tadmin"], host, template_name, acme, plan, 622)
    assert str(refused.value) == ("Host vzt-host has not enough memory: containers there are promised 956 MiB, "
                                  "this one would add 256 MiB, and the host can promise 1024 MiB: 188 MiB short. "
                                  "An administrator can raise the host's RAM promise (on the host's page) or "
                                  "override this create.")
    with pytest.raises(services.NotAllowed, match="Only an administrator can override"):
        _create(people["operator"], host, template_name, acme, plan, 622, override_capacity=True)
    _create(admin_user, host, template_name, acme, plan, 622, override_capacity=True)
    assert Container.objects.filter(host=host).count() == 3


def test_raising_a_limit_past_capacity_is_refused(people, student_ct, host):
    host.stats = {"mem_total": 1024 * 1024 * 1024, "cpu_count": 2, "disk_total": 100 * 1024 ** 3}
    host.save()
    with pytest.raises(services.InsufficientCapacity, match="not enough memory"):
        services.update_container(student_ct, people["operator"], ram_mb=2048)
    student_ct.refresh_from_db()
    assert student_ct.ram_mb == 256 and Task.objects.count() == 0
    from accounts.models import User
    admin = User.objects.create_superuser("root2", "", "x-pass-12345")
    services.update_container(student_ct, admin, override_capacity=True, ram_mb=2048)
    student_ct.refresh_from_db()
    assert student_ct.ram_mb == 2048


def test_a_new_tenant_may_keep_five_snapshots_unless_an_administrator_says_otherwise(db):
    # Each btrfs snapshot holds space outside the container's disk limit: an unlimited default would
    # let one tenant fill a shared pool by snapshotting, deleting and writing again.
    from tenancy.models import DEFAULT_MAX_SNAPSHOTS, Tenant
    assert DEFAULT_MAX_SNAPSHOTS == 5
    assert Tenant.objects.create(slug="snappy", name="Snappy").max_snapshots == 5
    assert Tenant.objects.create(slug="trusted", name="Trusted", max_snapshots=None).max_snapshots is None
