"""The database never disagrees with LXC: a value LXC or the kernel would refuse (a hostname past the
kernel's 64 characters or with a line break for the config file, a limit its cgroup file would not
take, a nameserver or search domain that would add a line to resolv.conf) is refused by the service
before anything is written, on a real running container: the row, the LXC config, the tasks and the
container's state stay as they were, through the service and through the API alike."""
from __future__ import annotations

import json

import pytest

from containers import services
from containers.models import Container
from network import services as net
from tasks.models import Task
from tasks.services import TaskError

from ..conftest import LXCPATH, lxc_info_state, wait_task

pytestmark = pytest.mark.integration

HUGE = [2 ** 63, 2 ** 64 + 1, 10 ** 30]
NOT_A_NUMBER = ["inf", "nan", "1e400", "\u0665\u0661\u0662", "\uff15\uff11\uff12", "\u00b2", " 64", "64\n", "1_000",
                True, 1.5, float("inf"), float("nan"), [], {}]

# Per field: values that must never reach the row or LXC. Numbers past the ranges are what the
# kernel's cgroup files refuse (or would wrap around); the others are not numbers at all.
REFUSED = {
    "hostname": ["x" * 65, "a" * 60 + "." + "b" * 60, "\u212aelvin.example", "\u017fite.example", "\u0131nside.example",
                 "host\nlxc.mount.entry = / mnt none bind 0 0", "host\n", "host name", "-host", "host-", "a..b", "",
                 "h\x00st", "\uff48ost"],
    "name": ["name\n", "n\u212ame", "x" * 65, "12345", "../etc", "a b", "\u0661\u0662"],
    "ram_mb": [0, 15, -1, 1 << 23, *HUGE, *NOT_A_NUMBER],
    "swap_mb": [-1, 1 << 23, *HUGE, *NOT_A_NUMBER],
    "cpus": [0, -1, 1025, *HUGE, *NOT_A_NUMBER],
    "cpuunits": [0, 7, 500_001, *HUGE, *NOT_A_NUMBER],
    "cpulimit": [-1, 102_401, *HUGE, *NOT_A_NUMBER],
    "numproc": [0, 7, -1, 4_000_001, *HUGE, *NOT_A_NUMBER],
    "disk_mb": [0, 299, 1 << 26 | 1, *HUGE, *NOT_A_NUMBER],
    "diskinodes": [0, 999, 1 << 31 | 1, *HUGE, *NOT_A_NUMBER],
    "ioprio": [-1, 8, *HUGE, *NOT_A_NUMBER],
    "ram_barrier_mb": [15, 1 << 23, 4096, *NOT_A_NUMBER],        # 4096 > ram 512: barrier above the limit
    "disk_soft_mb": [63, 4096, *NOT_A_NUMBER],                    # 4096 > disk 2048
    "diskinodes_soft": [999, 300_000, *NOT_A_NUMBER],             # 300000 > inodes 220000
}
DNS_REFUSED = {
    "nameservers": [["fe80::1%eth0\nnameserver 6.6.6.6"], ["2001:db8::5%x"], ["8.8.8.8.8"], ["\uff11.1.1.1"],
                    ["8.8.8.8\x00"], ["1.1.1.1", "8.8.8.8", "9.9.9.9", "8.8.4.4"], ["::1%lo"], [""]],
    "searchdomain": ["a.example\nnameserver 6.6.6.6", "a.example\tb.example", "\u212a.example", "-x.example",
                     " ".join(f"d{i}.example" for i in range(7)), "x" * 64 + ".example", "a.example\r"],
}
# Each test its own CTID within this file's range (78300-78399).
CTIDS = {field: 78301 + i for i, field in enumerate([*REFUSED, *DNS_REFUSED])}
WATCHED = ["hostname", "name", "onboot", "description", *services.LIMIT_FIELDS, "nameservers", "searchdomain",
           "lock_task_id", "host_id", "tenant_id", "plan_id"]


def running_container(admin, host, template_name, ctid) -> Container:
    task = services.create_container(user=admin, ctid=ctid, ostemplate=template_name, hostname=f"r{ctid}.test",
                                     host=host, start=True)
    assert wait_task(task, timeout=120).status == "ok", task.log
    return Container.objects.get(ctid=ctid)


def snapshot(ct: Container) -> dict:
    """What must not change: the row's settings, the LXC config, the tasks, LXC's state."""
    return {"row": Container.objects.filter(pk=ct.pk).values(*WATCHED).get(),
            "config": (LXCPATH / str(ct.ctid) / "config").read_text(),
            "tasks": list(Task.objects.order_by("pk").values_list("pk", flat=True)),
            "state": lxc_info_state(ct.ctid)}


def api_client(admin):
    from rest_framework.test import APIClient
    client = APIClient()
    client.force_authenticate(admin)
    return client


def assert_each_refused(ct, admin, field, values, service, api_path):
    """For each value: `service(ct, admin, field=value)` refuses with a 400-class error in one line,
    the API (method, path) answers 400 to {field: value}, and nothing changes."""
    method, path = api_path
    client = api_client(admin)
    for value in values:
        before = snapshot(ct)
        with pytest.raises(TaskError) as refusal:
            service(Container.objects.get(pk=ct.pk), admin, **{field: value})
        assert refusal.value.http_status == 400 and "\n" not in str(refusal.value), refusal.value
        body = json.dumps({field: value}, allow_nan=True)
        response = getattr(client, method)(path, body, content_type="application/json")
        assert response.status_code == 400, (value, response.status_code, response.content[:300])
        assert snapshot(ct) == before, value


@pytest.mark.parametrize("field", list(REFUSED))
def test_a_setting_lxc_would_refuse_is_refused_before_anything_is_written(agent, admin_user, host, template_name,
                                                                          field):
    ct = running_container(admin_user, host, template_name, CTIDS[field])
    assert_each_refused(ct, admin_user, field, REFUSED[field], services.update_container,
                        ("patch", f"/api/containers/{ct.ctid}/"))
    # The check is not all there is: a good value of the same field still goes through to LXC.
    good = {"hostname": "good.example", "name": "good-name"}.get(field)
    if good is not None:
        task = services.update_container(Container.objects.get(pk=ct.pk), admin_user, **{field: good})
        assert task is None or wait_task(task).status == "ok"
        assert getattr(Container.objects.get(pk=ct.pk), field) == good
        if field == "hostname":
            assert "lxc.uts.name = good.example\n" in (LXCPATH / str(ct.ctid) / "config").read_text()
    assert lxc_info_state(ct.ctid) == "RUNNING"


@pytest.mark.parametrize("field", list(DNS_REFUSED))
def test_dns_that_would_add_a_line_to_resolv_conf_is_refused(agent, admin_user, host, template_name, field):
    ct = running_container(admin_user, host, template_name, CTIDS[field])
    assert_each_refused(ct, admin_user, field, DNS_REFUSED[field], net.set_dns,
                        ("post", f"/api/containers/{ct.ctid}/network/dns/"))
    result = wait_task(services.exec_in_container(ct, admin_user, ["cat", "/etc/resolv.conf"])).result
    assert "6.6.6.6" not in result["stdout"] and "%" not in result["stdout"]
