"""Networking on real containers, all traffic kept inside this machine.

Test addresses come from TEST-NET-2 (198.51.100.0/24, venet) and TEST-NET-3
(203.0.113.0/24, veth), which are not this host's network; the only packets sent
go between containers these tests create and a dummy interface they create.
Every interface, route, bridge and proxy entry they make is checked gone afterwards.
"""
import json
import time
import socket
import subprocess

import pytest
from pyroute2 import IPRoute

from containers import services
from containers.models import Container
from network import services as net
from network.models import IPAddress, IPPool, NetInterface

from .conftest import LXCPATH, wait_task

pytestmark = pytest.mark.integration
BRIDGE = "vztbr0"
DUMMY = "vztdummy0"


def links():
    with IPRoute() as ipr:
        return {l.get_attr("IFLA_IFNAME") for l in ipr.get_links()}


def routes_to(prefix):
    """Routes of the main table to addresses in `prefix`, not counting the test's own host address."""
    with IPRoute() as ipr:
        return [r.get_attr("RTA_DST") for r in ipr.get_routes(family=socket.AF_INET, table=254)
                if str(r.get_attr("RTA_DST")).startswith(prefix) and r.get_attr("RTA_DST") != "198.51.100.254"]


def proxies():
    """The host's proxy ARP entries, as `ip neigh show proxy` lists them (a test may read ip's output)."""
    out = subprocess.run(["ip", "-4", "-j", "neigh", "show", "proxy"], capture_output=True, text=True, check=True)
    return [entry["dst"] for entry in json.loads(out.stdout or "[]")]


@pytest.fixture
def clean_network():
    """Whatever happens, remove the test's bridge and dummy interfaces; then check nothing is left."""
    yield
    from .conftest import _destroy_all_test_containers
    _destroy_all_test_containers()  # a failed test may have left them running
    with IPRoute() as ipr:
        for name in (BRIDGE, DUMMY):
            found = ipr.link_lookup(ifname=name)
            if found:
                ipr.link("del", index=found[0])
    # A dead container's network namespace is torn down by the kernel a moment later.
    leftover = []
    for _ in range(50):
        leftover = [n for n in links() if n.startswith(("venet94", "veth94", "vzt"))]
        if not leftover:
            break
        time.sleep(0.1)
    assert leftover == [], leftover
    assert routes_to("198.51.100.") == [] and routes_to("203.0.113.") == []
    left_proxies = [p for p in proxies() if p.startswith(("198.51.100.", "203.0.113."))]
    for address in left_proxies:  # leave the host clean even when the check below fails
        with IPRoute() as ipr:
            from containers.engine.network import HostNetwork
            HostNetwork().remove_proxy(ipr, address)
    assert left_proxies == []


def make(admin, host, template_name, ctid):
    task = services.create_container(user=admin, ctid=ctid, ostemplate=template_name, hostname=f"n{ctid}.test",
                                     host=host, start=True)
    assert wait_task(task).status == "ok", task.log
    return Container.objects.get(ctid=ctid)


def run_in(ct, user, argv):
    task = wait_task(services.exec_in_container(ct, user, argv, timeout=30))
    assert task.status == "ok", task.log
    return task.result


def ping(ct, user, address) -> bool:
    return run_in(ct, user, ["ping", "-c", "1", "-W", "2", address])["exit_code"] == 0


def test_venet_containers_reach_each_other_and_the_host(agent, clean_network, admin_user, host, template_name):
    with IPRoute() as ipr:  # a host address in the test network, on an interface the test owns
        ipr.link("add", ifname=DUMMY, kind="bridge")  # no dummy module here: a bridge without ports will do
        idx = ipr.link_lookup(ifname=DUMMY)[0]
        ipr.addr("add", index=idx, address="198.51.100.254", prefixlen=32)
        ipr.link("set", index=idx, state="up")
    pool = IPPool.objects.create(name="test-venet", network="198.51.100.0/24", ranges="198.51.100.10-198.51.100.20")
    a, b = make(admin_user, host, template_name, 9411), make(admin_user, host, template_name, 9412)
    task = wait_task(net.add_addresses(a, admin_user, ["auto"]))
    assert task.status == "ok", task.log
    assert wait_task(net.add_addresses(b, admin_user, ["198.51.100.15"])).status == "ok"
    assert IPAddress.objects.get(container=a).address == "198.51.100.10"
    assert IPAddress.objects.get(container=b).pool == pool
    assert "198.51.100.10" in run_in(a, admin_user, ["ip", "addr", "show", "venet0"])["stdout"]
    assert set(routes_to("198.51.100.1")) >= {"198.51.100.10", "198.51.100.15"}
    assert ping(a, admin_user, "198.51.100.15") and ping(b, admin_user, "198.51.100.10")
    assert ping(a, admin_user, "198.51.100.254")  # the host

    # Add and remove on the running container: at once.
    assert wait_task(net.add_addresses(b, admin_user, ["198.51.100.16"])).status == "ok"
    assert ping(a, admin_user, "198.51.100.16")
    assert wait_task(net.remove_addresses(b, admin_user, ["198.51.100.16"])).status == "ok"
    assert not ping(a, admin_user, "198.51.100.16")
    assert "198.51.100.16" not in routes_to("198.51.100.")
    # /etc/hosts names the container by its address.
    assert "198.51.100.15\tn9412.test" in (LXCPATH / "9412" / "rootfs" / "etc" / "hosts").read_text()

    # A conflict names the holder; nothing changes.
    with pytest.raises(services.InvalidRequest, match="already used by container 9412"):
        net.add_addresses(a, admin_user, ["198.51.100.15"])
    # After a restart the addresses come back; after a stop the routes go with the device.
    assert wait_task(services.restart_container(a, admin_user)).status == "ok"
    assert ping(b, admin_user, "198.51.100.10")
    for ct in (a, b):
        assert wait_task(services.stop_container(ct, admin_user)).status == "ok"
    assert routes_to("198.51.100.") == []


def test_proxy_arp_for_addresses_of_a_host_network(agent, clean_network, admin_user, host, template_name):
    with IPRoute() as ipr:  # a "host network" the test owns, so no real one is touched
        ipr.link("add", ifname=DUMMY, kind="bridge")  # no dummy module here: a bridge without ports will do
        idx = ipr.link_lookup(ifname=DUMMY)[0]
        ipr.addr("add", index=idx, address="203.0.113.1", prefixlen=24)
        ipr.link("set", index=idx, state="up")
    ct = make(admin_user, host, template_name, 9413)
    assert wait_task(net.add_addresses(ct, admin_user, ["203.0.113.50"])).status == "ok"
    assert "203.0.113.50" in proxies()
    assert wait_task(net.remove_addresses(ct, admin_user, "all")).status == "ok"
    assert "203.0.113.50" not in proxies()
    assert wait_task(net.add_addresses(ct, admin_user, ["203.0.113.51"])).status == "ok"
    assert wait_task(services.stop_container(ct, admin_user)).status == "ok"
    assert "203.0.113.51" not in proxies()  # removed at stop; the route went with the device


def test_veth_on_a_bridge_macs_stable_dns(agent, clean_network, admin_user, host, template_name):
    assert wait_task(net.create_bridge(host, admin_user, BRIDGE)).status == "ok"
    assert BRIDGE in links()
    a, b = make(admin_user, host, template_name, 9414), make(admin_user, host, template_name, 9415)
    assert wait_task(net.add_netif(a, admin_user, f"eth0,,,,{BRIDGE}", address="203.0.113.11/24")).status == "ok"
    assert wait_task(net.add_netif(b, admin_user, f"eth0,,,,{BRIDGE}", address="203.0.113.12/24")).status == "ok"
    assert ping(a, admin_user, "203.0.113.12") and ping(b, admin_user, "203.0.113.11")
    mac = NetInterface.objects.get(container=a).mac
    assert int(mac.split(":")[0], 16) & 2  # locally administered
    assert run_in(a, admin_user, ["cat", "/sys/class/net/eth0/address"])["stdout"].strip() == mac
    assert wait_task(services.restart_container(a, admin_user)).status == "ok"
    assert run_in(a, admin_user, ["cat", "/sys/class/net/eth0/address"])["stdout"].strip() == mac  # stable
    assert ping(a, admin_user, "203.0.113.12")

    assert wait_task(net.set_dns(a, admin_user, ["198.51.100.53", "198.51.100.54"], "lab.example")).status == "ok"
    resolv = run_in(a, admin_user, ["cat", "/etc/resolv.conf"])["stdout"]
    assert "search lab.example" in resolv and "nameserver 198.51.100.54" in resolv

    assert wait_task(net.remove_netif(b, admin_user, "eth0")).status == "ok"
    assert "veth9415.0" not in links() and not ping(a, admin_user, "203.0.113.12")
    for ct in (a, b):
        assert wait_task(services.stop_container(ct, admin_user)).status == "ok"


def test_ipv6_venet_and_traffic_counted(agent, clean_network, admin_user, host, template_name):
    from metrics.models import Sample
    a, b = make(admin_user, host, template_name, 9416), make(admin_user, host, template_name, 9417)
    assert wait_task(net.add_addresses(a, admin_user, ["2001:db8:5::10", "198.51.100.30"])).status == "ok"
    assert wait_task(net.add_addresses(b, admin_user, ["2001:db8:5::11"])).status == "ok"
    assert run_in(a, admin_user, ["ping", "-6", "-c", "1", "-W", "2", "2001:db8:5::11"])["exit_code"] == 0
    run_in(a, admin_user, ["ping", "-c", "20", "-i", "0.2", "-s", "1000", "-W", "2", "2001:db8:5::11"])
    # The sampler reads the host side of venet9416 through netlink: traffic shows as bytes per second.
    from .conftest import wait_until
    wait_until(lambda: Sample.objects.filter(container=a, net_tx_bps__gt=0).exists(), 20,
               message="network bytes in the samples")
    for ct in (a, b):
        assert wait_task(services.stop_container(ct, admin_user)).status == "ok"
