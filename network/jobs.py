"""Agent side of networking: bring a container's network up and down, apply changes, make bridges."""
from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone

from containers.engine.network import (ForeignInterface, HostNetwork, NetworkError, Veth, lxc_net_lines,
                                      venet_host_name)
from containers.jobs import lxc_for, needs_rootfs, spec_for
from hosts.models import Host
from tasks.choices import TaskType
from tasks.registry import handler
from tasks.runner import TaskFailed

from .models import IPAddress, NetInterface


@dataclass
class ContainerNetwork:
    venet: list[str]
    veths: list[Veth]

    def lxc_lines(self, ctid: int) -> list[str]:
        return lxc_net_lines(ctid, bool(self.venet), self.veths)


def network_of(ct) -> ContainerNetwork:
    addresses = list(IPAddress.objects.filter(container=ct))
    venet = [a.address for a in addresses if a.interface == "venet0"]
    veths = []
    for n in NetInterface.objects.filter(container=ct):
        veths.append(Veth(ifname=n.ifname, mac=n.mac, host_ifname=n.host_ifname, host_mac=n.host_mac,
                          bridge=n.bridge, addresses=[a.cidr for a in addresses if a.interface == n.ifname],
                          gateway=n.gateway))
    return ContainerNetwork(venet, veths)


def bring_up(ct, pid: int | None) -> list[str]:
    net = network_of(ct)
    if not pid or not (net.venet or net.veths):
        return []
    host = HostNetwork()
    done = []
    try:
        if net.venet:
            done += host.setup_venet(ct.ctid, pid, net.venet)
        for veth in net.veths:
            done += host.setup_veth(ct.ctid, pid, veth)
    except NetworkError as exc:
        raise TaskFailed(f"network of container {ct.ctid}: {exc}") from None
    return done


def bring_down(ct) -> None:
    """After a stop: remove what outlives the container's devices (proxy ARP/NDP entries)."""
    net = network_of(ct)
    if net.venet:
        HostNetwork().teardown_venet(net.venet)


@handler(TaskType.CT_NET)
@needs_rootfs
def apply_network(task, log):
    ct = task.container
    if ct is None:
        raise TaskFailed(f"container {task.ctid} no longer exists")
    lxc = lxc_for(task.host)
    running = lxc.state(ct.ctid) == "RUNNING"
    pid = lxc.init_pid(ct.ctid) if running else None
    host = HostNetwork()
    params = task.params
    try:
        if running:
            for addr in params.get("venet_del", []):
                for line in host.remove_venet_address(ct.ctid, pid, addr):
                    log(line)
            if params.get("venet_add"):
                host.ensure_venet(ct.ctid, pid)
                for line in host.setup_venet(ct.ctid, pid, params["venet_add"]):
                    log(line)
            _remove_netifs(host, ct, pid, params.get("netif_del", []), log)
            net = network_of(ct)
            for veth in net.veths:
                if veth.ifname in params.get("netif_add", []):
                    for line in host.hot_add_veth(ct.ctid, pid, veth):
                        log(line)
        else:
            for addr in params.get("venet_del", []):
                host.remove_venet_address(ct.ctid, None, addr)
    except (NetworkError, OSError) as exc:
        _revert(ct, params)
        raise TaskFailed(f"{exc}. The change was not kept.") from None
    spec = spec_for(ct)
    lxc.write_config(spec)
    lxc.write_identity(spec)
    log("Saved" + ("; applied to the running container" if running else "; applied at the next start"))
    return {"running": running}


def _remove_netifs(host: HostNetwork, ct, pid: int, gone: list[dict], log) -> None:
    """--netif_del on a running container. The rows are gone already; a host interface that bears
    the name but is not the container's own is left untouched, and the task says so and fails."""
    refused = []
    for netif in gone:
        try:
            removed = host.remove_veth(ct.ctid, pid, netif["host_ifname"])
        except ForeignInterface as exc:
            refused.append(str(exc))
            continue
        log(f"{netif['ifname']} removed" if removed else f"{netif['ifname']} was not on the host any more")
    if refused:
        lxc_for(ct.host).write_config(spec_for(ct))  # the container's config no longer names them
        raise TaskFailed("; ".join(refused) + ". The panel no longer lists the interface.")


def _revert(ct, params: dict) -> None:
    """Undo the database side of a change the host refused."""
    if params.get("venet_add"):
        IPAddress.objects.filter(container=ct, address__in=params["venet_add"]).delete()
    if params.get("netif_add"):
        IPAddress.objects.filter(container=ct, interface__in=params["netif_add"]).delete()
        NetInterface.objects.filter(container=ct, ifname__in=params["netif_add"]).delete()


@handler(TaskType.HOST_BRIDGE)
def make_bridge(task, log):
    try:
        HostNetwork().create_bridge(task.params["name"], task.params.get("address"))
    except NetworkError as exc:
        raise TaskFailed(str(exc)) from None
    log(f"Bridge {task.params['name']} created")
    refresh_host_network(task.host)
    return {"bridge": task.params["name"]}


def refresh_host_network(host: Host) -> None:
    """What the host page shows: bridges, and the interfaces and routes the containers use."""
    net = HostNetwork()
    names = [venet_host_name(c) for c in host.containers.values_list("ctid", flat=True)]
    names += list(NetInterface.objects.filter(container__host=host).values_list("host_ifname", flat=True))
    state = {"bridges": net.bridges(), "interfaces": net.interfaces(names), "routes": net.routes_via(names),
             "updated_at": timezone.now().isoformat()}
    Host.objects.filter(pk=host.pk).update(network=state)
