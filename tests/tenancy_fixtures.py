"""A little tenancy world for the tests: two tenants, their people, a plan, global roles."""
import pytest

from accounts.models import User
from containers.models import Container
from tenancy.models import Membership, Plan, Tenant


@pytest.fixture
def plan(db):
    return Plan.objects.create(name="vps.basic", ram_mb=256, swap_mb=0, cpus=1, disk_mb=1024)


@pytest.fixture
def acme(db):
    return Tenant.objects.create(slug="acme", name="Acme")


@pytest.fixture
def other_tenant(db):
    return Tenant.objects.create(slug="other", name="Other Ltd")


def _user(username, tenant=None, role="member", global_role=""):
    user = User.objects.create_user(username, f"{username}@example.test", f"{username}-pass-123", role=global_role)
    if tenant:
        Membership.objects.create(tenant=tenant, user=user, role=role)
    return user


@pytest.fixture
def people(acme, other_tenant):
    """tadmin: acme's tenant admin; student: owns the container; peer: acme member without it;
    outsider: member of another tenant; auditor and operator: global roles."""
    return {
        "tadmin": _user("tadmin", acme, "admin"),
        "student": _user("student", acme),
        "peer": _user("peer", acme),
        "outsider": _user("stranger", other_tenant),
        "auditor": _user("auditor", global_role="auditor"),
        "operator": _user("operator", global_role="operator"),
    }


@pytest.fixture
def student_ct(host, template_name, acme, plan, people):
    return Container.objects.create(ctid=501, name="acme-student", hostname="student.acme", ostemplate=template_name,
                                    host=host, tenant=acme, plan=plan, owner=people["student"], status="stopped",
                                    **plan.limits())


def students_running_container(ctid, hostname, host, template_name, acme, plan, people) -> Container:
    """A real container of acme's student, made by acme's admin and started by the student (the
    agent must run)."""
    from containers import services

    from .conftest import wait_task
    task = services.create_container(user=people["tadmin"], ctid=ctid, ostemplate=template_name, hostname=hostname,
                                     host=host, tenant=acme, plan=plan, owner=people["student"])
    assert wait_task(task).status == "ok"
    assert wait_task(services.start_container(Container.objects.get(ctid=ctid), people["student"])).status == "ok"
    return Container.objects.get(ctid=ctid)
