"""The Network tab, the host's Network section, the IP pools and the network API, on real rows.

No agent runs: the services queue tasks (rows) and the tests release the container's lock
as if the task had finished, so the next operation may run."""
import pytest
from rest_framework.test import APIClient

from containers.models import Container
from network.models import BridgeGrant, IPAddress, IPPool, NetInterface
from network.views import pool_capacity
from tasks.choices import TaskStatus
from tasks.models import Task
from tasks.services import finish_task
from tenancy.models import Tenant

from .conftest import form_errors

TAB = "/containers/501/?tab=network"
POOL_FORM = {"name": "lab", "network": "198.51.100.0/24", "gateway": "198.51.100.1",
             "ranges": "198.51.100.10-198.51.100.20", "description": "the lab's addresses"}


# -- helpers and fixtures -------------------------------------------------------------
def _login(client, user):
    client.force_login(user)
    return client


def _messages(response) -> list[str]:
    """The messages a followed response showed (showing them consumes them)."""
    return [str(m) for m in response.context["messages"]]


def _done(task):
    """As if the agent had run the task: it finishes and the container's lock is released."""
    finish_task(task, TaskStatus.OK)


def _last_net_task(ct):
    return Task.objects.filter(container=ct, type="ct.net").order_by("-pk").first()


def _post(client, url, data):
    """POST a Network tab form. Done: follow to the tab (which shows and so consumes the messages) and
    return the messages. Refused: the tab again (400; 403 or 409 if the service says so) with the form's errors
    in place; return those ("Label: error" for a field's)."""
    response = client.post(url, data)
    if response.status_code in (400, 403, 409):
        assert response.context["tab"] == "network"
        return form_errors(response)
    assert response.status_code == 302 and response["Location"].endswith("?tab=network"), response.content[:500]
    response = client.get(response["Location"])
    assert response.status_code == 200
    return _messages(response)


@pytest.fixture
def pool(client, admin_user, host, acme):
    _login(client, admin_user)
    response = client.post("/pools/new/", {**POOL_FORM, "hosts": [host.pk], "tenants": [acme.pk]})
    assert response.status_code == 302 and response["Location"] == "/pools/"
    client.logout()
    return IPPool.objects.get(name="lab")


@pytest.fixture
def peer_ct(host, template_name, acme, people):
    """A container of the same tenant the student may not see (owned by the peer)."""
    return Container.objects.create(ctid=502, name="acme-peer", hostname="peer.acme", ostemplate=template_name,
                                    host=host, tenant=acme, owner=people["peer"], status="stopped")


@pytest.fixture
def host_net(host, student_ct, peer_ct):
    """What the agent would have written: a bridge with the student's and the peer's veths in it."""
    NetInterface.objects.create(container=student_ct, ifname="eth0", mac="02:00:00:00:05:01",
                                host_ifname="veth501.0", host_mac="02:00:00:00:15:01", bridge="vzbr0",
                                gateway="192.0.2.1")
    NetInterface.objects.create(container=peer_ct, ifname="eth0", mac="02:00:00:00:05:02",
                                host_ifname="veth502.0", host_mac="02:00:00:00:15:02", bridge="vzbr0")
    host.network = {
        "bridges": [{"name": "vzbr0", "mac": "02:aa:bb:cc:dd:ee", "state": "up",
                     "ports": ["veth501.0", "veth502.0", "eth1"], "addresses": ["192.0.2.1/24"]},
                    {"name": "labbr", "mac": "02:aa:bb:cc:dd:ef", "state": "down", "ports": [], "addresses": []}],
        "interfaces": {"venet501": {"state": "up", "mac": "", "rx_bytes": 2048, "tx_bytes": 1048576, "master": None},
                       "veth501.0": {"state": "up", "mac": "02:00:00:00:15:01", "rx_bytes": 3072,
                                     "tx_bytes": 5 * 1048576, "master": "vzbr0"},
                       "veth502.0": {"state": "down", "mac": "02:00:00:00:15:02", "rx_bytes": 0,
                                     "tx_bytes": 0, "master": "vzbr0"}},
        "routes": [{"dst": "198.51.100.10", "dev": "venet501"}, {"dst": "198.51.100.11", "dev": "venet502"}],
        "updated_at": "2025-03-04T05:06:07+00:00",
    }
    host.save(update_fields=["network"])
    return host


# -- pools ----------------------------------------------------------------------------
def test_admin_defines_a_pool_and_a_bad_network_is_refused_on_its_field(client, admin_user, host, pool):
    assert pool.network == "198.51.100.0/24" and pool.gateway == "198.51.100.1"
    assert list(pool.hosts.all()) == [host]
    _login(client, admin_user)
    html = client.get("/pools/").content.decode()
    assert 'data-pool="lab"' in html and "0 / 11" in html and "198.51.100.10-198.51.100.20" in html

    response = client.post("/pools/new/", {**POOL_FORM, "name": "bad", "network": "198.51.100.0/33"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "Not a network" in html and 'name="network" id="id_network" value="198.51.100.0/33"' in html
    assert 'class="form-control is-invalid" type="text" name="network"' in html
    assert not IPPool.objects.filter(name="bad").exists()

    # A gateway outside the network lands on the gateway field.
    response = client.post("/pools/new/", {**POOL_FORM, "name": "bad", "gateway": "203.0.113.1"})
    assert response.status_code == 400 and "203.0.113.1 is not in 198.51.100.0/24" in response.content.decode()
    assert IPPool.objects.count() == 1

    # Editing keeps the row and changes it.
    response = client.post(f"/pools/{pool.pk}/edit/", {**POOL_FORM, "description": "changed", "hosts": []})
    assert response.status_code == 302
    pool.refresh_from_db()
    assert pool.description == "changed" and pool.hosts.count() == 0


def test_only_admins_define_pools_and_tenant_admins_see_their_own(client, people, pool, other_tenant):
    from network.models import IPPool
    IPPool.objects.create(name="others", network="203.0.113.0/24").tenants.add(other_tenant)
    _login(client, people["tadmin"])
    html = client.get("/pools/").content.decode()
    assert 'data-pool="lab"' in html and 'data-pool="others"' not in html and "New pool" not in html
    assert 'href="/pools/"' in html  # the nav link
    _login(client, people["student"])  # members take addresses on the Network tab; the pools page is not theirs
    assert client.get("/pools/").status_code == 403 and 'href="/pools/"' not in client.get("/").content.decode()
    assert client.get("/pools/new/").status_code == 403
    assert client.post("/pools/new/", {**POOL_FORM, "name": "mine"}).status_code == 403
    assert client.post(f"/pools/{pool.pk}/edit/", {**POOL_FORM, "description": "x"}).status_code == 403
    pool.refresh_from_db()
    assert pool.description == "the lab's addresses" and IPPool.objects.count() == 2
    client.logout()
    assert client.get("/pools/").status_code == 302  # to the login page


def test_pool_capacity_is_computed_without_walking_the_addresses(db):
    assert pool_capacity(IPPool(network="198.51.100.0/24", gateway="198.51.100.1",
                                ranges="198.51.100.10-198.51.100.20")) == (11, "11")
    assert pool_capacity(IPPool(network="198.51.100.0/24", gateway="198.51.100.15",
                                ranges="198.51.100.10-198.51.100.20, 198.51.100.30")) == (11, "11")
    assert pool_capacity(IPPool(network="198.51.100.0/24", gateway="198.51.100.1")) == (253, "253")
    assert pool_capacity(IPPool(network="198.51.100.0/24")) == (254, "254")
    assert pool_capacity(IPPool(network="2001:db8:1::/64", gateway="2001:db8:1::1")) == (None, "/64")
    small = IPPool(network="198.51.100.0/29", gateway="198.51.100.1")
    assert pool_capacity(small)[0] == len(list(small.candidates())) == 5


# -- addresses ------------------------------------------------------------------------
def test_student_adds_auto_through_the_network_tab(client, people, student_ct, pool):
    _login(client, people["student"])
    html = client.get(TAB).content.decode()
    assert 'id="ipadd-form"' in html and '<option value="lab">' in html

    msgs = _post(client, "/containers/501/network/ipadd/", {"addresses": "auto", "pool": ""})
    address = IPAddress.objects.get(container=student_ct)
    assert (address.address, address.interface, address.pool) == ("198.51.100.10", "venet0", pool)
    task = _last_net_task(student_ct)
    assert task.status == "queued" and task.params == {"venet_add": ["198.51.100.10"]}
    assert msgs == [f"Task #{task.pk} queued: add 198.51.100.10 to container 501."]

    html = client.get(TAB).content.decode()
    assert 'data-address="198.51.100.10"' in html and ">lab<" in html
    _login(client, people["tadmin"])
    assert "1 / 11" in client.get("/pools/").content.decode()


def test_a_taken_address_is_refused_naming_the_holder_only_when_visible(client, admin_user, people, student_ct,
                                                                        peer_ct, pool, host):
    _login(client, people["student"])
    _post(client, "/containers/501/network/ipadd/", {"addresses": "auto"})
    _done(_last_net_task(student_ct))

    _login(client, admin_user)
    msgs = _post(client, "/containers/502/network/ipadd/", {"addresses": "198.51.100.10"})
    assert msgs == [f"198.51.100.10 is already used by container 501 on host {host.name}."]
    assert not IPAddress.objects.filter(container=peer_ct).exists() and _last_net_task(peer_ct) is None

    msgs = _post(client, "/containers/502/network/ipadd/", {"addresses": "198.51.100.11 198.51.100.12"})
    assert msgs[0].startswith("Task #")
    assert set(peer_ct.addresses.values_list("address", flat=True)) == {"198.51.100.11", "198.51.100.12"}
    assert _last_net_task(peer_ct).params == {"venet_add": ["198.51.100.11", "198.51.100.12"]}

    _login(client, people["student"])
    msgs = _post(client, "/containers/501/network/ipadd/", {"addresses": "198.51.100.12"})
    assert msgs == ["198.51.100.12 is already used by a container you cannot see."]
    assert list(student_ct.addresses.values_list("address", flat=True)) == ["198.51.100.10"]

    msgs = _post(client, "/containers/501/network/ipadd/", {"addresses": "127.0.0.1"})
    assert "cannot be given to a container" in msgs[0]
    msgs = _post(client, "/containers/501/network/ipadd/", {"addresses": "auto", "pool": "nope"})
    assert msgs[0].startswith("Pool:")  # not a choice of the form
    assert student_ct.addresses.count() == 1 and Task.objects.filter(container=student_ct).count() == 1


def test_the_address_quota_refuses_a_second_address(client, people, student_ct, pool, acme):
    Tenant.objects.filter(pk=acme.pk).update(max_ips=1)
    _login(client, people["student"])
    _post(client, "/containers/501/network/ipadd/", {"addresses": "auto"})
    _done(_last_net_task(student_ct))
    tasks_before = Task.objects.count()
    msgs = _post(client, "/containers/501/network/ipadd/", {"addresses": "198.51.100.15"})
    assert msgs == ["Quota exceeded for tenant acme: IP addresses would be 2 "
                    "(in use 1, requested 1, limit 1)."]
    assert IPAddress.objects.count() == 1 and Task.objects.count() == tasks_before


def test_removing_addresses_one_or_all(client, people, student_ct, pool):
    _login(client, people["student"])
    _post(client, "/containers/501/network/ipadd/", {"addresses": "auto auto auto"})
    task = _last_net_task(student_ct)
    assert task.params == {"venet_add": ["198.51.100.10", "198.51.100.11", "198.51.100.12"]}
    _done(task)

    msgs = _post(client, "/containers/501/network/ipdel/", {"address": "198.51.100.11"})
    task = _last_net_task(student_ct)
    assert task.params == {"venet_del": ["198.51.100.11"]}
    assert msgs == [f"Task #{task.pk} queued: remove 198.51.100.11 from container 501."]
    assert set(student_ct.addresses.values_list("address", flat=True)) == {"198.51.100.10", "198.51.100.12"}
    _done(task)

    msgs = _post(client, "/containers/501/network/ipdel/", {"address": "198.51.100.99"})
    assert msgs == ["Container 501 has no venet address 198.51.100.99."]

    _post(client, "/containers/501/network/ipdel/", {"address": "all"})
    assert _last_net_task(student_ct).params == {"venet_del": ["198.51.100.10", "198.51.100.12"]}
    assert not student_ct.addresses.exists()


def test_a_locked_container_refuses_and_keeps_nothing(client, people, student_ct, pool):
    _login(client, people["student"])
    _post(client, "/containers/501/network/ipadd/", {"addresses": "auto"})
    msgs = _post(client, "/containers/501/network/ipadd/", {"addresses": "198.51.100.15"})
    assert "is locked by task" in msgs[0]
    assert list(student_ct.addresses.values_list("address", flat=True)) == ["198.51.100.10"]


# -- veth -----------------------------------------------------------------------------
def test_veth_with_defaults_gets_a_stable_local_mac_and_the_default_bridge(client, people, student_ct, host):
    host.network = {"bridges": [{"name": "vzbr0", "state": "up", "ports": [], "addresses": []},
                                {"name": "labbr", "state": "up", "ports": [], "addresses": []}]}
    host.save(update_fields=["network"])
    _login(client, people["student"])
    html = client.get(TAB).content.decode()
    assert 'id="netif-form"' in html
    # A member is offered the default bridge and those granted to the tenant; the host side is the panel's.
    assert f'<option value="{host.default_bridge}" selected>' in html and '<option value="labbr">' not in html
    assert 'name="host_ifname"' not in html and 'name="host_mac"' not in html
    BridgeGrant.objects.create(tenant=student_ct.tenant, bridge="labbr")
    assert '<option value="labbr">' in client.get(TAB).content.decode()

    form = {"ifname": "eth0", "mac": "", "host_ifname": "", "host_mac": "", "bridge": host.default_bridge,
            "address": "", "gateway": ""}
    msgs = _post(client, "/containers/501/network/netif_add/", form)
    netif = NetInterface.objects.get(container=student_ct)
    assert (netif.ifname, netif.host_ifname, netif.bridge) == ("eth0", "veth501.0", host.default_bridge)
    assert int(netif.mac.split(":")[0], 16) & 2 and int(netif.host_mac.split(":")[0], 16) & 2
    assert netif.mac != netif.host_mac
    task = _last_net_task(student_ct)
    assert task.params == {"netif_add": ["eth0"]} and msgs == [f"Task #{task.pk} queued: add interface eth0 to container 501."]
    first_mac = netif.mac
    _done(task)
    assert 'data-ifname="eth0"' in client.get(TAB).content.decode()

    msgs = _post(client, "/containers/501/network/netif_add/", form)
    assert msgs == ["Container 501 already has an interface eth0."]

    _post(client, "/containers/501/network/netif_del/", {"ifname": "eth0"})
    task = _last_net_task(student_ct)
    assert task.params == {"netif_del": [{"ifname": "eth0", "host_ifname": "veth501.0"}]}
    assert not NetInterface.objects.filter(container=student_ct).exists()
    _done(task)

    _post(client, "/containers/501/network/netif_add/", form)
    again = NetInterface.objects.get(container=student_ct)
    assert again.mac == first_mac and again.host_ifname == "veth501.0"


def test_veth_with_a_static_address_and_bad_input(client, people, student_ct, host, pool):
    _login(client, people["student"])
    form = {"ifname": "eth1", "bridge": host.default_bridge, "address": "192.0.2.50/24", "gateway": "192.0.2.1",
            "mac": "02:11:22:33:44:55"}
    msgs = _post(client, "/containers/501/network/netif_add/", form)  # outside the tenant's pools
    assert "is not in an IP pool of tenant acme" in msgs[0] and not NetInterface.objects.exists()
    form.update(address="198.51.100.15/24", gateway="198.51.100.1")
    _post(client, "/containers/501/network/netif_add/", form)
    netif = NetInterface.objects.get(container=student_ct)
    assert (netif.mac, str(netif.gateway)) == ("02:11:22:33:44:55", "198.51.100.1")
    address = IPAddress.objects.get(container=student_ct)
    assert (address.cidr, address.interface, address.pool) == ("198.51.100.15/24", "eth1", pool)
    _done(_last_net_task(student_ct))

    msgs = _post(client, "/containers/501/network/netif_add/", {**form, "ifname": "eth2", "address": "198.51.100.16"})
    assert "with its prefix" in msgs[0]
    msgs = _post(client, "/containers/501/network/netif_add/", {**form, "ifname": "eth2", "address": "",
                                                                "mac": "not-a-mac"})
    assert msgs[0].startswith("mac:")
    msgs = _post(client, "/containers/501/network/netif_add/", {**form, "ifname": "eth2", "bridge": "nosuchbr"})
    assert msgs[0].startswith("Bridge:")
    assert NetInterface.objects.filter(container=student_ct).count() == 1 and IPAddress.objects.count() == 1


# -- DNS ------------------------------------------------------------------------------
def test_dns_at_most_three_nameservers(client, people, student_ct):
    _login(client, people["student"])
    msgs = _post(client, "/containers/501/network/dns/", {"nameservers": "1.1.1.1 8.8.8.8 9.9.9.9 8.8.4.4",
                                                          "searchdomain": "acme.test"})
    assert msgs == ["At most 3 nameservers."]
    student_ct.refresh_from_db()
    assert student_ct.nameservers == [] and student_ct.searchdomain == "" and _last_net_task(student_ct) is None

    msgs = _post(client, "/containers/501/network/dns/", {"nameservers": "1.1.1.1, 2001:4860:4860::8888",
                                                          "searchdomain": "acme.test lab.test"})
    task = _last_net_task(student_ct)
    assert msgs == [f"Task #{task.pk} queued: set the DNS of container 501."] and task.params == {"dns": True}
    student_ct.refresh_from_db()
    assert student_ct.nameservers == ["1.1.1.1", "2001:4860:4860::8888"]
    assert student_ct.searchdomain == "acme.test lab.test"
    _done(task)
    html = client.get(TAB).content.decode()
    assert "<code>2001:4860:4860::8888</code>" in html and 'value="1.1.1.1 2001:4860:4860::8888"' in html

    msgs = _post(client, "/containers/501/network/dns/", {"nameservers": "dns.example", "searchdomain": ""})
    assert msgs == ["'dns.example' is not a nameserver address."]


# -- the tab's figures ----------------------------------------------------------------
def test_network_tab_shows_devices_state_and_bytes(client, people, host_net, student_ct, pool):
    IPAddress.objects.create(container=student_ct, address="198.51.100.10", pool=pool)
    IPAddress.objects.create(container=student_ct, address="192.0.2.5", prefixlen=24, interface="eth0")
    Container.objects.filter(pk=student_ct.pk).update(nameservers=["192.0.2.53"], searchdomain="acme.test")
    _login(client, people["student"])
    html = client.get(TAB).content.decode()
    assert 'aria-current="page" href="/containers/501/?tab=network">Network<' in html
    assert "as of 2025-03-04" in html
    assert 'data-address="198.51.100.10"' in html and "<td>lab</td>" in html
    # venet501: the host's tx is what the container received.
    assert "up · in 1.0 MiB · out 2.0 KiB" in html
    row = html.split('data-ifname="eth0"')[1].split("</tr>")[0]
    for text in ("02:00:00:00:05:01", "veth501.0", "02:00:00:00:15:01", "vzbr0", "192.0.2.1", "192.0.2.5/24",
                 ">up<", "5.0 MiB", "3.0 KiB"):
        assert text in row, text
    assert "<code>192.0.2.53</code>" in html and "acme.test" in html

    # The API says the same.
    api = APIClient()
    api.force_authenticate(people["student"])
    data = api.get("/api/containers/acme-student/network/").json()
    assert [a["address"] for a in data["addresses"]] == ["198.51.100.10"] and data["addresses"][0]["pool"] == "lab"
    assert data["venet_link"]["bytes_in"] == 1048576 and data["venet_link"]["bytes_out"] == 2048
    assert data["netifs"][0]["addresses"] == ["192.0.2.5/24"] and data["netifs"][0]["host_ifname"] == "veth501.0"
    assert data["nameservers"] == ["192.0.2.53"] and data["searchdomain"] == "acme.test"


# -- the permission matrix --------------------------------------------------------------
POSTS = {
    "/containers/501/network/ipadd/": {"addresses": "auto"},
    "/containers/501/network/ipdel/": {"address": "all"},
    "/containers/501/network/netif_add/": {"ifname": "eth5", "bridge": "vzbr0"},
    "/containers/501/network/netif_del/": {"ifname": "eth0"},
    "/containers/501/network/dns/": {"nameservers": "1.1.1.1"},
}
API_POSTS = {
    "/api/containers/501/network/ipadd/": {"addresses": ["auto"]},
    "/api/containers/501/network/ipdel/": {"addresses": "all"},
    "/api/containers/501/network/netif_add/": {"spec": "eth5"},
    "/api/containers/501/network/netif_del/": {"ifname": "eth0"},
    "/api/containers/501/network/dns/": {"nameservers": ["1.1.1.1"]},
}


def _state(ct):
    ct.refresh_from_db()
    return (sorted(IPAddress.objects.values_list("address", "container_id")),
            sorted(NetInterface.objects.values_list("ifname", "container_id")),
            Task.objects.count(), ct.nameservers, ct.searchdomain)


@pytest.mark.parametrize("who, tab_status, post_status", [("outsider", 404, 404), ("auditor", 200, 403)])
def test_outsiders_get_404_and_read_only_users_403(client, people, host_net, student_ct, pool, who,
                                                   tab_status, post_status):
    IPAddress.objects.create(container=student_ct, address="198.51.100.10", pool=pool)
    before = _state(student_ct)
    user = people[who]
    _login(client, user)
    response = client.get(TAB)
    assert response.status_code == tab_status
    if tab_status == 200:
        html = response.content.decode()
        assert 'data-address="198.51.100.10"' in html and 'data-ifname="eth0"' in html
        assert 'id="ipadd-form"' not in html and 'id="netif-form"' not in html and 'id="dns-form"' not in html
        assert "/network/ipdel/" not in html and "/network/netif_del/" not in html
    for url, data in POSTS.items():
        assert client.post(url, data).status_code == post_status, url

    api = APIClient()
    api.force_authenticate(user)
    assert api.get("/api/containers/501/network/").status_code == tab_status
    assert api.get("/api/containers/acme-student/network/").status_code == tab_status
    for url, data in API_POSTS.items():
        response = api.post(url, data, format="json")
        assert response.status_code == post_status, url
        assert "detail" in response.json()
    assert _state(student_ct) == before


def test_the_owner_and_the_tenant_admin_may_manage(client, people, student_ct, pool):
    for who in ("student", "tadmin"):
        _login(client, people[who])
        assert 'id="ipadd-form"' in client.get(TAB).content.decode()
    msgs = _post(client, "/containers/501/network/ipadd/", {"addresses": "auto"})
    assert msgs[0].startswith("Task #")
    _login(client, people["peer"])
    assert client.get(TAB).status_code == 404


# -- the API ----------------------------------------------------------------------------
def test_api_ipadd_answers_202_and_refusals_their_status(people, student_ct, pool, acme):
    api = APIClient()
    api.force_authenticate(people["student"])
    response = api.post("/api/containers/501/network/ipadd/", {"addresses": ["auto"]}, format="json")
    assert response.status_code == 202
    body = response.json()
    assert body["task_url"].endswith(f"/api/tasks/{body['task']['id']}/") and response["Location"] == body["task_url"]
    assert body["task"]["params"] == {"venet_add": ["198.51.100.10"]} and body["task"]["type"] == "ct.net"
    _done(Task.objects.get(pk=body["task"]["id"]))

    response = api.post("/api/containers/501/network/ipadd/", {"addresses": ["not-an-ip"]}, format="json")
    assert response.status_code == 400 and response.json() == {"detail": "'not-an-ip' is not an IP address."}
    response = api.post("/api/containers/501/network/ipadd/", {"addresses": []}, format="json")
    assert response.status_code == 400 and "addresses" in response.json()["detail"]
    response = api.post("/api/containers/501/network/ipadd/", {"addresses": ["198.51.100.10"]}, format="json")
    assert response.status_code == 400 and "already used by container 501" in response.json()["detail"]

    Tenant.objects.filter(pk=acme.pk).update(max_ips=1)
    response = api.post("/api/containers/501/network/ipadd/", {"addresses": ["198.51.100.15"]}, format="json")
    assert response.status_code == 409 and response.json()["detail"].startswith("Quota exceeded for tenant acme")
    assert IPAddress.objects.count() == 1

    response = api.post("/api/containers/501/network/dns/", {"nameservers": ["1.1.1.1"] * 4}, format="json")
    assert response.status_code == 400 and response.json() == {"detail": "At most 3 nameservers."}
    response = api.post("/api/containers/501/network/ipdel/", {"addresses": "all"}, format="json")
    assert response.status_code == 202 and response.json()["task"]["params"] == {"venet_del": ["198.51.100.10"]}
    _done(Task.objects.get(pk=response.json()["task"]["id"]))

    response = api.post("/api/containers/501/network/netif_add/", {"spec": "eth0", "address": "auto"}, format="json")
    assert response.status_code == 202
    netif = NetInterface.objects.get(container=student_ct)
    assert netif.host_ifname == "veth501.0" and str(netif.gateway) == "198.51.100.1"
    assert IPAddress.objects.get(container=student_ct).cidr == "198.51.100.10/24"
    _done(Task.objects.get(pk=response.json()["task"]["id"]))
    response = api.post("/api/containers/501/network/netif_del/", {"ifname": "eth0"}, format="json")
    assert response.status_code == 202 and not NetInterface.objects.exists() and not IPAddress.objects.exists()


def test_api_pools(people, admin_user, host, pool):
    api = APIClient()
    api.force_authenticate(people["student"])
    assert api.get("/api/pools/").status_code == 403
    api.force_authenticate(people["tadmin"])
    data = api.get("/api/pools/").json()
    assert [(p["name"], p["used"], p["total"], p["hosts"], p["tenants"]) for p in data["results"]] == [
        ("lab", 0, 11, [host.name], ["acme"])]
    response = api.post("/api/pools/", {"name": "mine", "network": "203.0.113.0/24"}, format="json")
    assert response.status_code == 403 and "administrator" in response.json()["detail"]

    api.force_authenticate(admin_user)
    response = api.post("/api/pools/", {"name": "v6", "network": "2001:db8:1::/64"}, format="json")
    assert response.status_code == 201 and response.json()["total_text"] == "/64"
    response = api.post("/api/pools/", {"name": "bad", "network": "198.51.100.0/33"}, format="json")
    assert response.status_code == 400 and "Not a network" in response.json()["detail"]
    response = api.post("/api/pools/", {"name": "lab", "network": "203.0.113.0/24"}, format="json")
    assert response.status_code == 400 and "name" in response.json()["detail"]
    assert sorted(IPPool.objects.values_list("name", flat=True)) == ["lab", "v6"]


# -- the host's Network section ---------------------------------------------------------
def test_host_page_shows_bridges_routes_interfaces_and_pools(client, admin_user, people, host_net, student_ct,
                                                             pool):
    IPAddress.objects.create(container=student_ct, address="198.51.100.10", pool=pool)
    _login(client, admin_user)
    html = client.get(f"/hosts/{host_net.name}/").content.decode()
    bridge = html.split('data-bridge="vzbr0"')[1].split("</tr>")[0]
    for text in ("default", "192.0.2.1/24", "veth501.0", "veth502.0", "eth1", ">up<"):
        assert text in bridge, text
    assert 'data-bridge="labbr"' in html and "As of 2025-03-04" in html
    assert 'data-dev="venet501"' in html and 'data-dev="veth502.0"' in html
    assert "<code>198.51.100.11</code>" in html  # the peer's route
    assert 'data-pool="lab"' in html and "1 / 11" in html
    assert 'id="bridge-form"' in html

    # Hosts are infrastructure: a student does not see the host page at all.
    _login(client, people["student"])
    assert client.get(f"/hosts/{host_net.name}/").status_code == 404


def test_bridge_create_by_operator_queues_a_task_and_students_are_refused(client, people, host):
    tasks_before = Task.objects.count()
    _login(client, people["student"])  # the host is not theirs to see: the same 404 as for no host
    assert client.post(f"/hosts/{host.name}/bridges/", {"name": "labbr"}).status_code == 404
    assert client.post("/hosts/no-such-host/bridges/", {"name": "labbr"}).status_code == 404
    assert Task.objects.count() == tasks_before

    _login(client, people["operator"])
    assert 'id="bridge-form"' in client.get(f"/hosts/{host.name}/").content.decode()
    response = client.post(f"/hosts/{host.name}/bridges/", {"name": "labbr", "address": "10.9.0.1/24"}, follow=True)
    assert response.redirect_chain == [(f"/hosts/{host.name}/#network", 302)]
    task = Task.objects.get(type="host.bridge")
    assert task.host == host and task.params == {"name": "labbr", "address": "10.9.0.1/24"}
    assert _messages(response) == [f"Task #{task.pk} queued: create bridge labbr on {host.name}."]

    response = client.post(f"/hosts/{host.name}/bridges/", {"name": "9bad"})
    assert response.status_code == 400 and form_errors(response)[0].startswith("An interface name is")
    assert 'value="9bad"' in response.content.decode()  # kept, on the host page
    response = client.post(f"/hosts/{host.name}/bridges/", {"name": "br2", "address": "10.9.0.300/24"})
    assert response.status_code == 400 and "is not an IP address" in form_errors(response)[0]
    assert Task.objects.filter(type="host.bridge").count() == 1


def test_api_bridges(people, host_net):
    api = APIClient()
    api.force_authenticate(people["student"])  # hosts are not a student's to see
    assert api.get(f"/api/hosts/{host_net.name}/bridges/").status_code == 404
    assert api.post(f"/api/hosts/{host_net.name}/bridges/", {"name": "br1"}, format="json").status_code == 404
    assert api.get("/api/hosts/no-such-host/bridges/").status_code == 404
    api.force_authenticate(people["auditor"])
    data = api.get(f"/api/hosts/{host_net.name}/bridges/").json()
    assert data["default_bridge"] == host_net.default_bridge
    assert [b["name"] for b in data["bridges"]] == ["vzbr0", "labbr"]
    assert data["bridges"][0]["ports"] == ["veth501.0", "veth502.0", "eth1"]
    assert api.post(f"/api/hosts/{host_net.name}/bridges/", {"name": "br1"}, format="json").status_code == 403

    api.force_authenticate(people["operator"])
    response = api.post(f"/api/hosts/{host_net.name}/bridges/", {"name": "br1"}, format="json")
    assert response.status_code == 202 and response.json()["task"]["type"] == "host.bridge"
    response = api.post(f"/api/hosts/{host_net.name}/bridges/", {"name": "-x"}, format="json")
    assert response.status_code == 400 and "interface name" in response.json()["detail"]
    assert Task.objects.filter(type="host.bridge").count() == 1


# -- bridges granted to tenants ---------------------------------------------------------
def test_admin_grants_bridges_on_the_quotas_page_and_members_may_then_use_them(client, admin_user, people, student_ct,
                                                                               acme):
    _login(client, admin_user)
    assert 'name="bridges"' in client.get("/tenants/acme/quotas/").content.decode()
    response = client.post("/tenants/acme/quotas/", {"bridges": "labbr  lab2"})
    assert response.status_code == 302
    assert sorted(acme.bridge_grants.values_list("bridge", flat=True)) == ["lab2", "labbr"]
    assert 'value="lab2 labbr"' in client.get("/tenants/acme/quotas/").content.decode()
    response = client.post("/tenants/acme/quotas/", {"bridges": "labbr bad/name"})
    assert response.status_code == 400 and "&#x27;bad/name&#x27;: An interface name is" in response.content.decode()
    assert acme.bridge_grants.count() == 2  # nothing changed

    _login(client, people["student"])
    form = {"ifname": "eth0", "bridge": "labbr"}
    host = student_ct.host
    host.network = {"bridges": [{"name": n} for n in ("vzbr0", "labbr", "closed")]}
    host.save(update_fields=["network"])
    assert _post(client, "/containers/501/network/netif_add/", form)[0].startswith("Task #")
    assert NetInterface.objects.get(container=student_ct).bridge == "labbr"
    _done(_last_net_task(student_ct))
    msgs = _post(client, "/containers/501/network/netif_add/", {"ifname": "eth1", "bridge": "closed"})
    assert msgs[0].startswith("Bridge:")  # not offered
    msgs = _post(client, "/containers/501/network/netif_add/", {"ifname": "eth1", "bridge": "labbr",
                                                                "host_ifname": "eth0", "host_mac": "02:00:00:00:00:01"})
    assert msgs[0].startswith("Task #")  # fields not offered to a member are ignored, not used
    assert NetInterface.objects.get(container=student_ct, ifname="eth1").host_ifname == "veth501.1"


def test_api_bridge_grants(people, admin_user, student_ct, acme):
    api = APIClient()
    api.force_authenticate(people["student"])
    assert api.get("/api/tenants/acme/bridges/").json() == {"tenant": "acme", "bridges": []}
    response = api.post("/api/tenants/acme/bridges/", {"bridges": ["labbr"]}, format="json")
    assert response.status_code == 403 and "Only an administrator" in response.json()["detail"]
    response = api.post("/api/containers/501/network/netif_add/", {"spec": "eth0,,,,labbr"}, format="json")
    assert response.status_code == 403 and "may not use bridge labbr" in response.json()["detail"]
    response = api.post("/api/containers/501/network/netif_add/", {"spec": "eth0,,veth502.0,,"}, format="json")
    assert response.status_code == 403 and "Host-side names belong to the panel" in response.json()["detail"]
    api.force_authenticate(people["outsider"])
    assert api.get("/api/tenants/acme/bridges/").status_code == 404

    api.force_authenticate(admin_user)
    response = api.post("/api/tenants/acme/bridges/", {"bridges": ["labbr", "labbr", "lab2"]}, format="json")
    assert response.status_code == 200 and response.json() == {"tenant": "acme", "bridges": ["labbr", "lab2"]}
    response = api.post("/api/tenants/acme/bridges/", {"bridges": ["lab\n2"]}, format="json")
    assert response.status_code == 400 and "An interface name is" in response.json()["detail"]
    assert sorted(acme.bridge_grants.values_list("bridge", flat=True)) == ["lab2", "labbr"]

    api.force_authenticate(people["student"])
    response = api.post("/api/containers/501/network/netif_add/", {"spec": "eth0,,,,labbr"}, format="json")
    assert response.status_code == 202 and NetInterface.objects.get(container=student_ct).bridge == "labbr"
