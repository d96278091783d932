"""The hosts' promise policy (issue 18, capacity): a small host runs a class, every refusal says what is
short and who can change it, administrators (and only they) override on every path that can refuse,
and tenant admins see the room left on their hosts without learning about other tenants."""
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from accounts.models import AuditEvent
from backups.models import Backup
from backups.services import restore_backup
from containers import services
from containers.models import Container
from hosts.capacity import InsufficientCapacity, headroom
from hosts.models import Host
from tasks.models import Task
from tenancy.services import create_class, import_students

GIB = 1 << 30


def small_host(host, cores=2, mem_gib=8, disk_gib=100, **policy) -> Host:
    """The host as its agent would report a small machine, with the policy given (else the defaults)."""
    Host.objects.filter(pk=host.pk).update(stats={"mem_total": mem_gib * GIB, "cpu_count": cores,
                                                  "disk_total": disk_gib * GIB}, **policy)
    host.refresh_from_db()
    return host


def _create(user, host, template_name, tenant, plan, ctid, **kw):
    return services.create_container(user=user, ctid=ctid, ostemplate=template_name, hostname=f"c{ctid}.test",
                                     host=host, tenant=tenant, plan=plan, **kw)


def _refusal(*args) -> str:
    """The refusal of _create(*args), which must be for want of room (HTTP 409)."""
    with pytest.raises(InsufficientCapacity) as refused:
        _create(*args)
    assert refused.value.http_status == 409
    return str(refused.value)


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _students(n: int) -> str:
    return "".join(f"s{i:02d},s{i:02d}@example.test\n" for i in range(n))


@pytest.fixture
def full_host(host, people, acme, plan, template_name, admin_user):
    """A 1 GiB host whose RAM is all promised: the next 256 MiB container does not fit."""
    small_host(host, mem_gib=1)
    services.create_container(user=admin_user, ctid=700, ostemplate=template_name, hostname="big.test", host=host,
                              limits={"ram_mb": 1024})
    return host


# -- the default policy --------------------------------------------------------------------------------
def test_default_policy_lets_a_two_core_host_take_a_class_of_twenty_one_cpu_containers(people, acme, plan, host,
                                                                                        template_name):
    host = small_host(host, cores=2)
    assert (host.ram_promise, host.cpu_promise, host.disk_promise) == (1.0, None, 1.0)
    cls = create_class(people["tadmin"], tenant=acme, slug="os201", name="OS 201", host=host,
                       ostemplate=template_name, plan=plan)
    created = import_students(people["tadmin"], cls, _students(20))
    assert len(created) == 20
    assert Container.objects.filter(host=host, cpus=1).count() == 20  # 20 CPUs promised on 2 cores
    assert headroom(host)["cpu_limited"] is False


def test_a_cpu_ratio_set_by_an_administrator_is_enforced_with_numbers(people, acme, plan, host, template_name):
    small_host(host, cores=2, cpu_promise=4.0)
    for ctid in range(710, 718):
        _create(people["tadmin"], host, template_name, acme, plan, ctid)
    assert _refusal(people["tadmin"], host, template_name, acme, plan, 718) == (
        "Host vzt-host has not enough CPUs: containers there are promised 8, this one would add 1, and the host "
        "can promise 8: 1 short. An administrator can raise the host's CPU promise (on the host's page) or "
        "override this create.")
    assert not Container.objects.filter(ctid=718).exists()


# -- refusals ------------------------------------------------------------------------------------------
def test_ram_refusal_says_what_is_short_by_how_much_where_and_who_can_change_it(people, acme, plan, full_host,
                                                                                 template_name):
    assert _refusal(people["tadmin"], full_host, template_name, acme, plan, 720) == (
        "Host vzt-host has not enough memory: containers there are promised 1024 MiB, this one would add 256 MiB, "
        "and the host can promise 1024 MiB: 256 MiB short. An administrator can raise the host's RAM promise "
        "(on the host's page) or override this create.")
    assert not Container.objects.filter(ctid=720).exists() and Task.objects.filter(ctid=720).count() == 0
    assert AuditEvent.objects.filter(action="container.create", result="refused",
                                     detail__contains="256 MiB short").exists()


def test_disk_refusal_and_a_raised_disk_promise_lets_it_in(people, acme, plan, host, template_name, admin_user):
    from hosts.services import set_promise
    small_host(host, disk_gib=1)  # 1024 MiB of disk; the plan's container wants 1024 MiB
    _create(people["tadmin"], host, template_name, acme, plan, 721)
    with pytest.raises(InsufficientCapacity, match=r"^Host vzt-host has not enough disk: containers there are "
                                                   r"promised 1024 MiB, this one would add 1024 MiB, and the host "
                                                   r"can promise 1024 MiB: 1024 MiB short\. An administrator can "
                                                   r"raise the host's disk promise"):
        _create(people["tadmin"], host, template_name, acme, plan, 722)
    set_promise(admin_user, host, ram_promise=1.0, cpu_promise=None, disk_promise=2.0)
    _create(people["tadmin"], host, template_name, acme, plan, 722)
    assert Container.objects.filter(ctid__in=[721, 722]).count() == 2


def test_restore_refusal_names_the_restore(people, acme, plan, full_host, student_ct, tmp_path):
    backup = _backup(student_ct, full_host, tmp_path)
    with pytest.raises(InsufficientCapacity, match=r"512 MiB short\. An administrator can raise the host's RAM "
                                                   r"promise \(on the host's page\) or override this restore\.$"):
        restore_backup(backup, people["tadmin"], ctid=730)


# -- the administrators' override, on every path ---------------------------------------------------------
def test_create_form_override_for_an_admin_only(client, people, acme, plan, full_host, template_name, admin_user):
    form = {"ctid": "740", "host": full_host.pk, "ostemplate": template_name, "hostname": "f.test",
            "tenant": acme.pk, "plan": plan.pk, "override_capacity": "on"}
    client.force_login(people["tadmin"])
    page = client.get("/containers/new/").content.decode()
    assert 'name="override_capacity"' not in page
    resp = client.post("/containers/new/", form)  # the field is not theirs: ignored, and refused for room
    assert resp.status_code == 409 and "256 MiB short" in resp.content.decode()
    assert not Container.objects.filter(ctid=740).exists()
    client.force_login(admin_user)
    assert 'name="override_capacity"' in client.get("/containers/new/").content.decode()
    assert client.post("/containers/new/", form).status_code == 302
    assert Container.objects.get(ctid=740).host == full_host
    override = AuditEvent.objects.get(action="capacity.override")
    assert override.user == admin_user and "create: Host vzt-host has not enough memory" in override.detail


def test_api_create_override_for_an_admin_only(people, acme, plan, full_host, template_name, admin_user):
    payload = {"ctid": 741, "ostemplate": template_name, "hostname": "a.test", "host": full_host.name,
               "tenant": acme.slug, "plan": plan.name, "override_capacity": True}
    resp = api(people["tadmin"]).post("/api/containers/", payload, format="json")
    assert resp.status_code == 403 and "Only an administrator can override" in resp.json()["detail"]
    resp = api(people["tadmin"]).post("/api/containers/", {**payload, "override_capacity": False}, format="json")
    assert resp.status_code == 409 and "256 MiB short" in resp.json()["detail"]
    assert not Container.objects.filter(ctid=741).exists()
    assert api(admin_user).post("/api/containers/", payload, format="json").status_code == 202
    assert Container.objects.filter(ctid=741).exists()


def test_class_import_override_for_an_admin_only(client, people, acme, plan, full_host, template_name, admin_user):
    from accounts.models import User
    cls = create_class(people["tadmin"], tenant=acme, slug="os202", name="OS 202", host=full_host,
                       ostemplate=template_name, plan=plan)
    with pytest.raises(InsufficientCapacity) as refused:
        import_students(people["tadmin"], cls, _students(2))
    assert str(refused.value) == (
        f"Host {full_host.name} has not enough memory: containers there are promised 1024 MiB, the class's 2 new ones "
        "would add 512 MiB, and the host can promise 1024 MiB: 512 MiB short. An administrator can raise the host's RAM "
        "promise (on the host's page) or override this class import.")
    with pytest.raises(services.NotAllowed, match="Only an administrator can override"):
        import_students(people["tadmin"], cls, _students(2), override_capacity=True)
    assert not User.objects.filter(username__in=["s00", "s01"]).exists() and Container.objects.count() == 1
    client.force_login(people["tadmin"])
    assert 'name="override_capacity"' not in client.get(f"/classes/{cls.slug}/").content.decode()
    client.force_login(admin_user)
    assert 'name="override_capacity"' in client.get(f"/classes/{cls.slug}/").content.decode()
    resp = client.post(f"/classes/{cls.slug}/import/", {"csv_text": _students(2), "override_capacity": "on"})
    assert resp.status_code == 302
    assert Container.objects.filter(student_class=cls).count() == 2
    assert AuditEvent.objects.filter(action="capacity.override", user=admin_user).count() == 2


def _backup(ct, host, tmp_path) -> Backup:
    archive = f"vzdump-lxc-{ct.ctid}-2025_01_02-03_04_05.tar.zst"
    (tmp_path / archive).write_bytes(b"archive")
    return Backup.objects.create(ctid=ct.ctid, container=ct, tenant=ct.tenant, owner=ct.owner, host=host,
                                 storage_path=str(tmp_path), filename=archive, size=7, sha256="0" * 64)


def test_restore_override_for_an_admin_only_in_the_service_form_api_and_vzrestore(
        client, people, full_host, student_ct, admin_user, tmp_path, monkeypatch):
    backup = _backup(student_ct, full_host, tmp_path)
    with pytest.raises(services.NotAllowed, match="Only an administrator can override"):
        restore_backup(backup, people["tadmin"], ctid=750, override_capacity=True)
    resp = api(people["tadmin"]).post(f"/api/backups/{backup.pk}/restore/", {"ctid": 750, "override_capacity": True},
                                      format="json")
    assert resp.status_code == 403 and not Container.objects.filter(ctid=750).exists()
    client.force_login(people["tadmin"])
    assert 'name="override_capacity"' not in client.get(f"/backups/{backup.pk}/restore/").content.decode()
    # Service, API, page and vzrestore: each restores past the policy for the administrator.
    restore_backup(backup, admin_user, ctid=750, override_capacity=True)
    resp = api(admin_user).post(f"/api/backups/{backup.pk}/restore/", {"ctid": 751, "override_capacity": True},
                                format="json")
    assert resp.status_code == 202
    client.force_login(admin_user)
    assert 'name="override_capacity"' in client.get(f"/backups/{backup.pk}/restore/").content.decode()
    resp = client.post(f"/backups/{backup.pk}/restore/", {"target": "new", "ctid": "752", "host": full_host.name,
                                                           "override_capacity": "on"})
    assert resp.status_code == 302
    monkeypatch.setattr("backups.management.commands.vzrestore.finish_task", lambda task, out: task)
    with pytest.raises(CommandError, match="MiB short"):
        call_command("vzrestore", backup.filename, "753", "--user", admin_user.username)
    call_command("vzrestore", backup.filename, "753", "--user", admin_user.username, "--override-capacity")
    with pytest.raises(CommandError, match="Only an administrator can override"):
        call_command("vzrestore", backup.filename, "754", "--user", people["tadmin"].username, "--override-capacity")
    assert set(Container.objects.filter(ctid__gte=750).values_list("ctid", flat=True)) == {750, 751, 752, 753}
    assert AuditEvent.objects.filter(action="capacity.override", detail__startswith="restore: ").count() == 4


def test_vzctl_create_override_capacity_for_an_admin_only(people, acme, plan, full_host, template_name,
                                                          admin_user, monkeypatch):
    monkeypatch.setattr("containers.management.commands.vzctl.finish_task", lambda task, out, **kw: task)
    args = ["--ostemplate", template_name, "--host", full_host.name, "--tenant", acme.slug, "--plan", plan.name]
    with pytest.raises(CommandError, match="256 MiB short"):
        call_command("vzctl", "--user", admin_user.username, "create", "760", *args)
    with pytest.raises(CommandError, match="Only an administrator can override"):
        call_command("vzctl", "--user", people["tadmin"].username, "create", "760", *args, "--override-capacity")
    assert not Container.objects.filter(ctid=760).exists()
    call_command("vzctl", "--user", admin_user.username, "create", "760", *args, "--override-capacity")
    assert Container.objects.get(ctid=760).host == full_host


def test_placement_with_an_override_still_places_and_the_refusal_without_says_who_can_change_it(
        people, acme, plan, full_host, template_name, admin_user):
    from django.utils import timezone
    Host.objects.filter(pk=full_host.pk).update(agent_seen_at=timezone.now())
    from hosts.services import add_host
    add_host(admin_user, name="vzt-other", lxcpath="/tmp/vzt-other")  # never reported: takes nothing
    with pytest.raises(services.TaskError, match=r"vzt-host: not enough memory: .*256 MiB short.* An administrator "
                                                 r"can raise a host's promise \(on its page\) or override"):
        _create(people["tadmin"], None, template_name, acme, plan, 770)
    assert _create(admin_user, None, template_name, acme, plan, 770, override_capacity=True).host == full_host


# -- the policy: set by administrators, on the page and in the API ---------------------------------------
def test_promise_policy_is_set_by_administrators_on_the_page_and_in_the_api(client, people, host, admin_user):
    resp = api(people["operator"]).post(f"/api/hosts/{host.name}/promise/",
                                        {"ram_promise": 2, "cpu_promise": None, "disk_promise": 1}, format="json")
    assert resp.status_code == 403
    resp = api(admin_user).post(f"/api/hosts/{host.name}/promise/",
                                {"ram_promise": 0, "cpu_promise": None, "disk_promise": 1}, format="json")
    assert resp.status_code == 400 and "above 0 and at most 100" in resp.json()["detail"]
    host.refresh_from_db()
    assert (host.ram_promise, host.cpu_promise, host.disk_promise) == (1.0, None, 1.0)
    resp = api(admin_user).post(f"/api/hosts/{host.name}/promise/",
                                {"ram_promise": 1.5, "cpu_promise": 8, "disk_promise": 1.2}, format="json")
    assert resp.status_code == 200 and (resp.json()["ram_promise"], resp.json()["cpu_promise"]) == (1.5, 8.0)
    client.force_login(admin_user)
    resp = client.post(f"/hosts/{host.name}/do/promise/", {"ram_promise": "1.25", "cpu_promise": "",
                                                           "disk_promise": "1"})
    assert resp.status_code == 302
    host.refresh_from_db()
    assert (host.ram_promise, host.cpu_promise, host.disk_promise) == (1.25, None, 1.0)
    page = client.get(f"/hosts/{host.name}/").content.decode()
    assert "RAM × 1.25, CPUs not a limit (reported, never refused), disk × 1" in page
    assert 'id="promise-form"' in page
    assert AuditEvent.objects.filter(action="host.promise", result="ok").count() == 2


# -- headroom for tenant admins ------------------------------------------------------------------------
def test_tenant_admin_sees_the_room_left_on_their_hosts_and_nothing_of_other_tenants(
        client, people, acme, other_tenant, plan, host, template_name, admin_user):
    small_host(host, mem_gib=4, disk_gib=10)
    Container.objects.create(ctid=780, name="other-secret", hostname="secret.other.test", ostemplate=template_name,
                             host=host, tenant=other_tenant, plan=plan, owner=people["outsider"], status="stopped",
                             ram_mb=1000, cpus=1, disk_mb=3000)
    free = headroom(host)
    assert (free["ram_mb"], free["disk_mb"]) == (4096 - 1000, 10240 - 3000)
    client.force_login(people["tadmin"])
    for url in (f"/tenants/{acme.slug}/", "/containers/new/"):
        page = client.get(url).content.decode()
        assert 'id="host-headroom"' in page and f'data-headroom="{host.name}"' in page
        assert "3096 MiB" in page and "7240 MiB" in page and "not limited" in page
        for secret in ("other-secret", "secret.other.test", "780", other_tenant.slug, "4096", "10240"):
            assert secret not in page
    client.force_login(people["student"])  # a member creates nothing here: no figures for them
    assert 'id="host-headroom"' not in client.get(f"/tenants/{acme.slug}/").content.decode()
