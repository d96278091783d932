"""Host interfaces are the panel's: a tenant cannot make the root agent adopt, reconfigure or delete
one that is not their container's own (issue 12, finding 2).

Real containers started by the real agent, real netlink. The attacker is `student`, a member of
tenant acme who owns container 72001; the victim is tenant other's container 72002. Stand-ins for
host interfaces the panel must never touch (the host's eth0, a bridge) are made by the tests:
veth pairs with both ends on the host (this kernel has no dummy driver) and bridges, named vzt72*
or after a container's own interfaces. Every test checks the
kernel's own view of the victim interface afterwards: same ifindex, kind, master, MAC, state,
alias, and no route through it. Everything a test makes is removed afterwards, also on failure.
"""
from __future__ import annotations

import re
import time

import pytest
from pyroute2 import IPRoute
from pyroute2.netlink.rtnl.ifinfmsg import IFF_UP

from containers import services
from containers.models import Container
from containers.services import InvalidRequest, NotAllowed
from network import services as net
from network.models import IPAddress, IPPool, NetInterface
from tasks.models import Task
from tests.conftest import _destroy_all_test_containers, lxc_info_state, wait_task

pytestmark = pytest.mark.integration

ATTACKER, VICTIM = 72001, 72002
BRIDGE = "vzt72br0"          # the host's default bridge in these tests
OTHER_BRIDGE = "vzt72br1"    # a bridge nobody granted to acme
ETH0 = "vzt72eth0"           # stands in for the host's uplink
STANDIN_MAC = "02:72:00:00:00:99"
OURS = re.compile(r"(vzt72.*|venet72[0-9]{3}|veth72[0-9]{3}\..*)")  # what these tests may leave: nothing
ADDRESS = "198.51.100.172"   # TEST-NET-2, never this host's network


# -- the kernel's view --------------------------------------------------------------------
def links() -> set[str]:
    with IPRoute() as ipr:
        return {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}


def link_state(name: str) -> dict | None:
    """What an attack could change about a host interface, as the kernel reports it."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            return None
        link = ipr.get_links(found[0])[0]
        info = link.get_attr("IFLA_LINKINFO")
        routes = sorted(r.get_attr("RTA_DST") for family in (2, 10) for r in ipr.get_routes(family=family, table=254)
                        if r.get_attr("RTA_OIF") == link["index"] and r.get_attr("RTA_DST"))
    proxy_arp = open(f"/proc/sys/net/ipv4/conf/{name}/proxy_arp").read().strip()
    return {"index": link["index"], "kind": info.get_attr("IFLA_INFO_KIND") if info else None,
            "master": link.get_attr("IFLA_MASTER"), "mac": link.get_attr("IFLA_ADDRESS"),
            "up": bool(link["flags"] & IFF_UP), "alias": link.get_attr("IFLA_IFALIAS"),
            "peer_netns": link.get_attr("IFLA_LINK_NETNSID"), "routes": routes, "proxy_arp": proxy_arp}


def make_link(name: str, kind: str = "veth", master: str | None = None) -> dict:
    """A host interface the panel did not make, with a MAC of ours: a bridge, or a veth pair whose both
    ends stay on the host (like a NIC it can join a bridge, and it is of the very kind the panel makes)."""
    with IPRoute() as ipr:
        if kind == "veth":
            ipr.link("add", ifname=name, kind="veth", peer={"ifname": f"vzt72p{len(links())}"})
        else:
            ipr.link("add", ifname=name, kind=kind)
        idx = ipr.link_lookup(ifname=name)[0]
        if kind != "bridge":
            extra = {"master": ipr.link_lookup(ifname=master)[0]} if master else {}
            ipr.link("set", index=idx, address=STANDIN_MAC, **extra)
    return link_state(name)


def delete_link(name: str) -> None:
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if found:
            ipr.link("del", index=found[0])


# -- fixtures and helpers -----------------------------------------------------------------
@pytest.fixture
def world(agent, host, admin_user, people, acme, other_tenant, template_name):
    """Two bridges and an uplink stand-in on the host; the attacker's and the victim's containers
    running. Afterwards every container and every interface named like ours is gone."""
    try:
        make_link(BRIDGE, "bridge")
        make_link(OTHER_BRIDGE, "bridge")
        make_link(ETH0)
        host.default_bridge = BRIDGE
        host.save(update_fields=["default_bridge"])
        # The student's tenant's pool holds the addresses these tests reach for (pools: test_pools.py).
        IPPool.objects.create(name="acme-test", network="198.51.100.160/27").tenants.add(acme)
        yield {"attacker": make(admin_user, host, template_name, ATTACKER, acme, people["student"]),
               "victim": lambda: make(admin_user, host, template_name, VICTIM, other_tenant, people["outsider"]),
               "student": people["student"], "admin": admin_user, "host": host}
    finally:
        _destroy_all_test_containers()
        for name in our_links():
            if (link_state(name) or {}).get("peer_netns") is None:  # not a container's: the test's own
                delete_link(name)
        for _ in range(50):  # a stopped container's namespace, and its veths, go a moment later
            if not our_links():
                break
            time.sleep(0.1)
        leftover = our_links()
        for name in leftover:  # leave the host clean even when the check below fails
            delete_link(name)
        assert leftover == []


def our_links() -> list[str]:
    return sorted(n for n in links() if OURS.fullmatch(n))


def make(admin, host, template_name, ctid, tenant, owner) -> Container:
    task = services.create_container(user=admin, ctid=ctid, ostemplate=template_name, hostname=f"c{ctid}.test",
                                     host=host, start=True, tenant=tenant, owner=owner)
    assert wait_task(task).status == "ok", task.log
    return Container.objects.get(ctid=ctid)


def victim_with_veth_and_venet(world) -> Container:
    victim = world["victim"]()
    assert wait_task(net.add_netif(victim, world["admin"], "eth0")).status == "ok"
    assert wait_task(net.add_addresses(victim, world["admin"], [ADDRESS])).status == "ok"
    assert link_state("veth72002.0")["master"] == link_state(BRIDGE)["index"]
    assert ADDRESS in link_state("venet72002")["routes"]
    return victim


def failed(task) -> str:
    task = wait_task(task)
    assert task.status == "failed", task.log
    return task.error or task.log


# -- naming a host interface ---------------------------------------------------------------
@pytest.mark.parametrize("target", ["venet72002", "veth72002.0", ETH0, OTHER_BRIDGE])
def test_member_cannot_name_a_host_interface_that_is_not_theirs(world, target):
    victim_with_veth_and_venet(world)
    before = link_state(target)
    with pytest.raises(NotAllowed, match="Host-side names belong to the panel"):
        net.add_netif(world["attacker"], world["student"], f"eth1,,{target},,")
    with pytest.raises(NotAllowed, match="host-side MAC belongs to the panel"):
        net.add_netif(world["attacker"], world["student"], f"eth1,,,{STANDIN_MAC},")
    assert link_state(target) == before
    assert not NetInterface.objects.filter(container=world["attacker"]).exists()
    assert not Task.objects.filter(container=world["attacker"], type="ct.net").exists()


@pytest.mark.parametrize("target", ["venet72002", "veth72002.0", "veth72999.3", "venet72001"])
def test_admin_cannot_pick_a_name_the_panel_derives(world, target):
    victim_with_veth_and_venet(world)
    before = link_state(target)
    with pytest.raises((InvalidRequest, NotAllowed)):
        net.add_netif(world["attacker"], world["admin"], f"eth1,,{target},,")
    with pytest.raises(InvalidRequest, match="derives"):
        net.create_bridge(world["host"], world["admin"], target)
    assert link_state(target) == before


def test_an_existing_interface_is_never_adopted_even_for_an_admin(world):
    """The agent is the last word: a name the panel did not know of exists on the host."""
    before = link_state(ETH0)
    message = failed(net.add_netif(world["attacker"], world["admin"], f"eth1,,{ETH0},,{BRIDGE}"))
    assert link_state(ETH0) == before
    assert "exists already" in message and "never takes one over" in message
    assert not NetInterface.objects.filter(container=world["attacker"]).exists()  # the row went back


def test_hot_add_refuses_when_the_derived_name_is_taken(world):
    before = make_link("veth72001.0", master=OTHER_BRIDGE)
    message = failed(net.add_netif(world["attacker"], world["student"], "eth1"))
    assert link_state("veth72001.0") == before
    assert "veth72001.0 exists already" in message
    assert not NetInterface.objects.filter(container=world["attacker"]).exists()


def test_admin_reserves_a_name_the_panel_makes_and_removes(world):
    task = wait_task(net.add_netif(world["attacker"], world["admin"], "eth1,,vzt72own0,,"))
    assert task.status == "ok", task.log
    made = link_state("vzt72own0")
    assert (made["kind"], made["master"], made["alias"]) == ("veth", link_state(BRIDGE)["index"], "vzpanel:72001:eth1")
    assert wait_task(net.remove_netif(world["attacker"], world["admin"], "eth1")).status == "ok"
    assert "vzt72own0" not in links()


# -- rows that point at a foreign interface ------------------------------------------------
def test_netif_del_leaves_an_interface_that_took_the_place_of_the_containers(world):
    """The container's veth is deleted behind the panel's back and something else gets its name."""
    attacker = world["attacker"]
    assert wait_task(net.add_netif(attacker, world["student"], "eth0")).status == "ok"
    delete_link("veth72001.0")
    before = make_link("veth72001.0", master=OTHER_BRIDGE)
    message = failed(net.remove_netif(attacker, world["student"], "eth0"))
    assert link_state("veth72001.0") == before
    assert "is not container 72001's own" in message and "untouched" in message


def test_netif_del_of_a_row_pointing_at_another_containers_venet(world):
    """A row tampered with (or left by an older panel) names the victim's venet."""
    victim_with_veth_and_venet(world)
    before = link_state("venet72002")
    NetInterface.objects.create(container=world["attacker"], ifname="eth3", mac="02:72:00:00:00:01",
                                host_ifname="venet72002", host_mac="02:72:00:00:00:02", bridge=BRIDGE)
    message = failed(net.remove_netif(world["attacker"], world["student"], "eth3"))
    assert link_state("venet72002") == before
    assert "host interface venet72002 is not container 72001's own" in message


def test_setup_at_start_refuses_a_host_end_that_is_not_the_containers(world):
    """setup_veth, as run after LXC starts a container, checks the peer before setting anything."""
    from containers.engine.network import HostNetwork, NetworkError, Veth
    from containers.jobs import lxc_for
    victim_with_veth_and_venet(world)
    pid = lxc_for(world["host"]).init_pid(ATTACKER)
    for name in ("veth72002.0", "venet72002", ETH0):
        before = link_state(name)
        veth = Veth(ifname="eth0", mac="02:72:00:00:00:01", host_ifname=name, host_mac="02:72:00:00:00:02",
                    bridge=BRIDGE)
        with pytest.raises(NetworkError, match=f"{re.escape(name)} is not container 72001's own"):
            HostNetwork().setup_veth(ATTACKER, pid, veth)
        assert link_state(name) == before
        with pytest.raises(NetworkError, match="untouched"):
            HostNetwork().remove_veth(ATTACKER, pid, name)
        assert link_state(name) == before


def test_a_first_venet_address_does_not_adopt_a_venet_name_on_the_host(world):
    before = make_link("venet72001")
    message = failed(net.add_addresses(world["attacker"], world["student"], [ADDRESS]))
    assert link_state("venet72001") == before  # no route, no proxy ARP, still down
    assert "venet72001 is not container 72001's own" in message
    assert not IPAddress.objects.filter(container=world["attacker"]).exists()


def routes_touching(address: str) -> list[tuple]:
    """The host's routes (any table) to or through `address`: (table, destination, length, device, gateway)."""
    with IPRoute() as ipr:
        return sorted((r.get_attr("RTA_TABLE"), r.get_attr("RTA_DST"), r["dst_len"], r.get_attr("RTA_OIF"),
                       r.get_attr("RTA_GATEWAY")) for r in ipr.get_routes(family=2)
                      if address in (r.get_attr("RTA_DST"), r.get_attr("RTA_GATEWAY")))


@pytest.mark.parametrize("use", ["address", "gateway", "route"])
def test_a_venet_address_cannot_capture_an_address_the_host_uses(world, use):
    """--ipadd routes the address through the container's venet: never one the host itself uses."""
    used = "198.51.100.173"
    with IPRoute() as ipr:
        bridge = ipr.link_lookup(ifname=OTHER_BRIDGE)[0]
        ipr.link("set", index=bridge, state="up")
        if use == "address":
            ipr.addr("add", index=bridge, address=used, prefixlen=32)
        elif use == "gateway":  # onlink: the bridge has no carrier
            ipr.route("add", dst="203.0.113.200/32", gateway=used, oif=bridge, flags=4)
        else:
            ipr.route("add", dst=f"{used}/32", oif=bridge)
    before = routes_touching(used)
    message = failed(net.add_addresses(world["attacker"], world["student"], [used]))
    assert routes_touching(used) == before
    assert f"{used} is used by the host itself" in message
    assert not IPAddress.objects.filter(container=world["attacker"]).exists()


@pytest.mark.parametrize("standin", ["venet72001", "veth72001.0"])
def test_start_refuses_when_a_name_of_the_container_is_taken(world, standin):
    attacker = world["attacker"]
    assert wait_task(net.add_netif(attacker, world["student"], "eth0")).status == "ok"
    assert wait_task(net.add_addresses(attacker, world["student"], [ADDRESS])).status == "ok"
    assert wait_task(services.stop_container(attacker, world["student"])).status == "ok"
    for _ in range(50):
        if standin not in links():
            break
        time.sleep(0.1)
    before = make_link(standin, master=OTHER_BRIDGE)
    message = failed(services.start_container(attacker, world["student"]))
    assert "File exists" in message and standin in message
    assert lxc_info_state(ATTACKER) == "STOPPED"
    assert link_state(standin) == before


# -- bridges ---------------------------------------------------------------------------------
def test_member_uses_only_the_default_bridge_and_granted_ones(world, people):
    from network.models import BridgeGrant
    attacker, eth0_before = world["attacker"], link_state(ETH0)
    for who in (world["student"], people["tadmin"]):
        with pytest.raises(NotAllowed, match=f"may not use bridge {OTHER_BRIDGE}"):
            net.add_netif(attacker, who, f"eth1,,,,{OTHER_BRIDGE}")
        with pytest.raises(NotAllowed, match=f"may not use bridge {ETH0}"):
            net.add_netif(attacker, who, f"eth1,,,,{ETH0}")
    assert link_state(ETH0) == eth0_before and not NetInterface.objects.filter(container=attacker).exists()
    with pytest.raises(NotAllowed):
        net.set_bridge_grants(people["tadmin"], attacker.tenant, [OTHER_BRIDGE])
    assert not BridgeGrant.objects.exists()

    net.set_bridge_grants(world["admin"], attacker.tenant, [OTHER_BRIDGE])
    assert wait_task(net.add_netif(attacker, world["student"], f"eth1,,,,{OTHER_BRIDGE}")).status == "ok"
    assert link_state("veth72001.0")["master"] == link_state(OTHER_BRIDGE)["index"]
    # Granted or not, a name must be a bridge: the agent will not enslave an interface to the uplink.
    net.set_bridge_grants(world["admin"], attacker.tenant, [OTHER_BRIDGE, ETH0])
    message = failed(net.add_netif(attacker, world["student"], f"eth2,,,,{ETH0}"))
    assert f"{ETH0} is not a bridge" in message and link_state(ETH0) == eth0_before
    assert "veth72001.1" not in links()


# -- names the kernel would mangle or refuse ---------------------------------------------------
ODD_NAMES = ["e\nth0", "a/b", "a:b", "a b", "veth%d", "eth\u00e9", "\uff45th0", "sixteen-chars-xx", "-eth0",
             "0eth", ".", "..", "eth0\x00", "eth\u0660"]


@pytest.mark.parametrize("name", ODD_NAMES)
def test_odd_names_are_refused_at_the_boundary(world, name):
    attacker, before = world["attacker"], links()
    for spec, field in ((f"eth1,,{name},,", "host_ifname"), (f"eth1,,,,{name}", "bridge"), (f"{name}", "ifname")):
        with pytest.raises(InvalidRequest, match=f"^{field}: An interface name is"):
            net.add_netif(attacker, world["admin"], spec)
    with pytest.raises(InvalidRequest):
        net.create_bridge(world["host"], world["admin"], name)
    with pytest.raises(InvalidRequest):
        net.set_bridge_grants(world["admin"], attacker.tenant, [name])
    assert links() == before and not NetInterface.objects.exists()


@pytest.mark.parametrize("mac", ["03:00:00:00:00:01", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00", "02:00:00:00:00:0g",
                                 "02:00:00:00:00:1", "\uff10\uff12:00:00:00:00:01"])
def test_macs_the_kernel_refuses_are_refused_first(world, mac):
    with pytest.raises(InvalidRequest, match="^mac: "):
        net.add_netif(world["attacker"], world["admin"], f"eth1,{mac}")
    with pytest.raises(InvalidRequest, match="^host_mac: "):
        net.add_netif(world["attacker"], world["admin"], f"eth1,,,{mac}")
    assert not NetInterface.objects.exists()


def test_members_own_derived_names_are_theirs_to_give(world):
    attacker = world["attacker"]
    task = wait_task(net.add_netif(attacker, world["student"], "eth4,,veth72001.4,,"))
    assert task.status == "ok", task.log
    assert link_state("veth72001.4")["alias"] == "vzpanel:72001:eth4"
    with pytest.raises(InvalidRequest, match="already another interface's"):
        net.add_netif(attacker, world["admin"], "eth5,,veth72001.4,,")
    with pytest.raises(NotAllowed):  # a leading zero makes another name: not a derived one
        net.add_netif(attacker, world["student"], "eth5,,veth72001.04,,")
