"""Container networking on the host, through netlink (pyroute2): venet and veth, the OpenVZ ways.

venet (routed, layer 3): a veth pair named venet<CTID> on the host and venet0 inside,
with no bridge. Inside, each address sits on venet0 as a /32 (or /128) and the
default route points at the device. On the host, a route to each address points
at venet<CTID>; proxy ARP on venet<CTID> answers the container's ARP for anything
the host can route to, and a proxy ARP/NDP entry on the host interface whose
network holds an address lets other machines on that network reach it.

veth (bridged, layer 2): a veth pair with its host end (veth<CTID>.<N>) in a
bridge; inside, the addresses the panel assigned, and a default route via the
interface's gateway if it has one (otherwise the container's own DHCP client may
configure it).

All of it is done with pyroute2 on live network namespaces (the container's is
reached through /proc/<init pid>/ns/net), so adding or removing an address on a
running container takes effect at once. Routes bound to venet<CTID> vanish with
the device when the container stops; proxy entries on host interfaces do not,
and are removed explicitly.
"""
from __future__ import annotations

import hashlib
import ipaddress
import os
import socket
from dataclasses import dataclass, field

from pyroute2 import IPRoute, NetNS
from pyroute2.netlink.rtnl.ndmsg import NTF_PROXY

VENET_INSIDE = "venet0"
IFA_F_NODAD = 0x02  # the addresses are the panel's to give: no duplicate detection delay
IPV6_GATEWAY = "fe80::1"  # the host end of venet answers here for IPv6


class NetworkError(Exception):
    pass


@dataclass
class Veth:
    """One bridged interface, as `vzctl set --netif_add ifname,mac,host_ifname,host_mac,bridge` names it."""

    ifname: str
    mac: str
    host_ifname: str
    host_mac: str
    bridge: str
    addresses: list[str] = field(default_factory=list)  # "203.0.113.5/24"
    gateway: str | None = None


def venet_host_name(ctid: int) -> str:
    return f"venet{int(ctid)}"


def veth_host_name(ctid: int, index: int) -> str:
    return f"veth{int(ctid)}.{int(index)}"


def stable_mac(ctid: int, ifname: str, side: str = "ct") -> str:
    """A locally administered unicast MAC derived from the CTID and interface: the same at every start."""
    digest = hashlib.sha256(f"{int(ctid)}/{ifname}/{side}".encode()).digest()
    octets = [0x02 | (digest[0] & 0xFC), *digest[1:6]]  # bit 1 set: local; bit 0 clear: unicast
    return ":".join(f"{o:02x}" for o in octets)


def lxc_net_lines(ctid: int, venet: bool, veths: list[Veth]) -> list[str]:
    """The lxc.net.* keys: venet first (as index 0) when the container has venet addresses."""
    lines: list[str] = []
    index = 0
    if venet:
        lines += [f"lxc.net.{index}.type = veth", f"lxc.net.{index}.veth.pair = {venet_host_name(ctid)}",
                  f"lxc.net.{index}.name = {VENET_INSIDE}", f"lxc.net.{index}.flags = up"]
        index += 1
    for veth in veths:
        lines += [f"lxc.net.{index}.type = veth", f"lxc.net.{index}.link = {veth.bridge}",
                  f"lxc.net.{index}.veth.pair = {veth.host_ifname}", f"lxc.net.{index}.name = {veth.ifname}",
                  f"lxc.net.{index}.hwaddr = {veth.mac}", f"lxc.net.{index}.flags = up"]
        index += 1
    return lines or ["lxc.net.0.type = empty"]


def _af(version: int) -> int:
    return socket.AF_INET if version == 4 else socket.AF_INET6


def _netns(pid: int) -> NetNS:
    return NetNS(f"/proc/{int(pid)}/ns/net")


def _index(ipr, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def _prefix(addr: str) -> tuple[str, int, int]:
    ip = ipaddress.ip_address(addr.split("/")[0])
    full = 32 if ip.version == 4 else 128
    return str(ip), full, ip.version


def _sysctl(path: str, value: str) -> None:
    with open(path, "w") as fh:
        fh.write(value)


def host_interface_for(ipr, addr: str) -> str | None:
    """The host interface whose own network contains `addr` (for proxy ARP/NDP), if any."""
    ip = ipaddress.ip_address(addr)
    for a in ipr.get_addr(family=_af(ip.version)):
        net = ipaddress.ip_network(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}", strict=False)
        if ip in net and a.get_attr("IFA_ADDRESS") != addr and a["prefixlen"] < (32 if ip.version == 4 else 128):
            links = ipr.get_links(a["index"])
            name = links[0].get_attr("IFLA_IFNAME") if links else None
            if name and not name.startswith(("venet", "veth", "lo")):
                return name
    return None


class HostNetwork:
    """The host's side of container networking (needs CAP_NET_ADMIN: the agent only)."""

    def setup_venet(self, ctid: int, pid: int, addresses: list[str]) -> list[str]:
        """Bring venet up on both sides and give the container `addresses` (idempotent)."""
        done = []
        host_if = venet_host_name(ctid)
        with IPRoute() as ipr:
            idx = _index(ipr, host_if)
            if idx is None:
                raise NetworkError(f"{host_if} does not exist: is container {ctid} running with venet?")
            ipr.link("set", index=idx, state="up")
            _sysctl(f"/proc/sys/net/ipv4/conf/{host_if}/proxy_arp", "1")
            _sysctl("/proc/sys/net/ipv4/ip_forward", "1")
            if any(_prefix(a)[2] == 6 for a in addresses):
                _sysctl(f"/proc/sys/net/ipv6/conf/{host_if}/proxy_ndp", "1")
                _sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1")
                self._ensure_addr(ipr, idx, IPV6_GATEWAY, 64, 6)
        with _netns(pid) as ns:
            for name in ("lo", VENET_INSIDE):
                i = _index(ns, name)
                if i is not None:
                    ns.link("set", index=i, state="up")
        for addr in addresses:
            done += self.add_venet_address(ctid, pid, addr)
        return done

    def add_venet_address(self, ctid: int, pid: int, addr: str) -> list[str]:
        ip, full, version = _prefix(addr)
        host_if = venet_host_name(ctid)
        with _netns(pid) as ns:
            inner = _index(ns, VENET_INSIDE)
            if inner is None:
                raise NetworkError(f"container {ctid} has no {VENET_INSIDE}")
            self._ensure_addr(ns, inner, ip, full, version)
            self._ensure_default_route(ns, inner, version)
        with IPRoute() as ipr:
            idx = _index(ipr, host_if)
            try:
                ipr.route("replace", dst=f"{ip}/{full}", oif=idx, family=_af(version))
            except Exception as exc:
                raise NetworkError(f"route to {ip} via {host_if}: {exc}") from None
            outer = host_interface_for(ipr, ip)
            if outer:
                self._proxy(ipr, "replace", ip, outer, version)
        return [f"{ip} on {VENET_INSIDE}, host route via {host_if}" + (f", proxy ARP/NDP on {outer}" if outer else "")]

    def remove_venet_address(self, ctid: int, pid: int | None, addr: str) -> list[str]:
        ip, full, version = _prefix(addr)
        if pid:
            try:
                with _netns(pid) as ns:
                    inner = _index(ns, VENET_INSIDE)
                    if inner is not None:
                        try:
                            ns.addr("del", index=inner, address=ip, prefixlen=full)
                        except Exception:
                            pass  # not there: nothing to undo
            except OSError:
                pass  # the container stopped meanwhile
        with IPRoute() as ipr:
            try:
                ipr.route("del", dst=f"{ip}/{full}", family=_af(version))
            except Exception:
                pass
            self.remove_proxy(ipr, ip)
        return [f"{ip} removed"]

    def remove_proxy(self, ipr, ip: str) -> None:
        """Remove proxy ARP/NDP entries for `ip` on every host interface.

        pyroute2's neighbour dump does not ask the kernel for proxy entries, so rather than
        list them we delete on each interface that could hold one and ignore "not there"."""
        version = ipaddress.ip_address(ip).version
        for link in ipr.get_links():
            name = link.get_attr("IFLA_IFNAME") or ""
            if name.startswith(("venet", "veth", "lo")):
                continue
            try:
                ipr.neigh("del", dst=ip, ifindex=link["index"], flags=NTF_PROXY, family=_af(version))
            except Exception:
                pass  # no such entry on this interface

    def teardown_venet(self, addresses: list[str]) -> None:
        """After a stop: routes went with the device; proxy entries on host interfaces stay, so remove them."""
        with IPRoute() as ipr:
            for addr in addresses:
                self.remove_proxy(ipr, _prefix(addr)[0])

    def setup_veth(self, ctid: int, pid: int, veth: Veth) -> list[str]:
        """Host MAC and bridge on the host end; addresses and gateway inside (idempotent)."""
        with IPRoute() as ipr:
            idx = _index(ipr, veth.host_ifname)
            if idx is None:
                raise NetworkError(f"{veth.host_ifname} does not exist")
            bridge = _index(ipr, veth.bridge)
            if bridge is None:
                raise NetworkError(f"bridge {veth.bridge} does not exist on this host")
            ipr.link("set", index=idx, address=veth.host_mac, master=bridge, state="up")
        with _netns(pid) as ns:
            inner = _index(ns, veth.ifname)
            if inner is None:
                raise NetworkError(f"container {ctid} has no {veth.ifname}")
            ns.link("set", index=inner, state="up")
            for addr in veth.addresses:
                ip, _, version = _prefix(addr)
                prefix = int(addr.split("/")[1]) if "/" in addr else (24 if version == 4 else 64)
                self._ensure_addr(ns, inner, ip, prefix, version)
            if veth.gateway:
                version = ipaddress.ip_address(veth.gateway).version
                try:
                    ns.route("replace", dst="default" if version == 4 else "::/0", gateway=veth.gateway, oif=inner,
                             family=_af(version))
                except Exception as exc:
                    raise NetworkError(f"default route via {veth.gateway}: {exc}") from None
        return [f"{veth.ifname} ({veth.mac}) in bridge {veth.bridge} as {veth.host_ifname}"]

    def hot_add_veth(self, ctid: int, pid: int, veth: Veth) -> list[str]:
        """Add a veth interface to a running container at once."""
        tmp = f"vzn{int(ctid) % 100000}p{os.getpid() % 1000}"[:15]  # the peer's name until it is inside
        with IPRoute() as ipr:
            if _index(ipr, veth.host_ifname) is None:
                ipr.link("add", ifname=veth.host_ifname, kind="veth", peer={"ifname": tmp, "address": veth.mac})
                ipr.link("set", index=_index(ipr, tmp), net_ns_pid=int(pid))
        with _netns(pid) as ns:
            inner = _index(ns, tmp)
            if inner is not None:
                ns.link("set", index=inner, ifname=veth.ifname)
        return self.setup_veth(ctid, pid, veth)

    def remove_veth(self, host_ifname: str) -> None:
        with IPRoute() as ipr:
            idx = _index(ipr, host_ifname)
            if idx is not None:
                ipr.link("del", index=idx)  # its peer inside the container goes with it

    # -- bridges and live figures --------------------------------------------
    def bridges(self) -> list[dict]:
        with IPRoute() as ipr:
            links = ipr.get_links()
            by_index = {link["index"]: link for link in links}
            out = []
            for link in links:
                info = link.get_attr("IFLA_LINKINFO")
                if info and info.get_attr("IFLA_INFO_KIND") == "bridge":
                    ports = [l.get_attr("IFLA_IFNAME") for l in links if l.get_attr("IFLA_MASTER") == link["index"]]
                    addrs = [f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}" for a in ipr.get_addr(index=link["index"])]
                    out.append({"name": link.get_attr("IFLA_IFNAME"), "mac": link.get_attr("IFLA_ADDRESS"),
                                "state": link.get_attr("IFLA_OPERSTATE"), "ports": sorted(ports), "addresses": addrs})
            del by_index
            return sorted(out, key=lambda b: b["name"])

    def create_bridge(self, name: str, address: str | None = None) -> None:
        with IPRoute() as ipr:
            if _index(ipr, name) is not None:
                raise NetworkError(f"an interface named {name} exists already")
            ipr.link("add", ifname=name, kind="bridge")
            idx = _index(ipr, name)
            if address:
                ip, prefix = address.split("/")
                ipr.addr("add", index=idx, address=ip, prefixlen=int(prefix))
            ipr.link("set", index=idx, state="up")

    def delete_bridge(self, name: str) -> None:
        with IPRoute() as ipr:
            idx = _index(ipr, name)
            if idx is None:
                return
            if any(l.get_attr("IFLA_MASTER") == idx for l in ipr.get_links()):
                raise NetworkError(f"bridge {name} still has interfaces in it")
            ipr.link("del", index=idx)

    def interfaces(self, names: list[str]) -> dict[str, dict]:
        """Link state, MAC and byte counters of host interfaces, by name."""
        out = {}
        with IPRoute() as ipr:
            for link in ipr.get_links():
                name = link.get_attr("IFLA_IFNAME")
                if name in names:
                    stats = link.get_attr("IFLA_STATS64") or {}
                    master = link.get_attr("IFLA_MASTER")
                    out[name] = {"state": link.get_attr("IFLA_OPERSTATE"), "mac": link.get_attr("IFLA_ADDRESS"),
                                 "rx_bytes": stats.get("rx_bytes"), "tx_bytes": stats.get("tx_bytes"),
                                 "master": master}
        return out

    def routes_via(self, names: list[str]) -> list[dict]:
        """Host routes whose device is one of `names` (the containers' venet routes)."""
        out = []
        with IPRoute() as ipr:
            index_names = {l["index"]: l.get_attr("IFLA_IFNAME") for l in ipr.get_links()}
            for family in (socket.AF_INET, socket.AF_INET6):
                for r in ipr.get_routes(family=family):
                    dev = index_names.get(r.get_attr("RTA_OIF"))
                    if dev in names and r.get_attr("RTA_DST"):
                        out.append({"dst": f"{r.get_attr('RTA_DST')}/{r['dst_len']}", "dev": dev})
        return out

    # -- helpers --------------------------------------------------------------
    @staticmethod
    def _ensure_addr(ipr, index: int, ip: str, prefix: int, version: int) -> None:
        present = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=index, family=_af(version))}
        if ip not in present:
            extra = {"flags": IFA_F_NODAD} if version == 6 else {}
            ipr.addr("add", index=index, address=ip, prefixlen=prefix, family=_af(version), **extra)

    @staticmethod
    def _ensure_default_route(ns, index: int, version: int) -> None:
        if version == 4:
            ns.route("replace", dst="default", oif=index, scope=253, family=socket.AF_INET)  # "default dev venet0"
        else:
            ns.route("replace", dst="::/0", gateway=IPV6_GATEWAY, oif=index, family=socket.AF_INET6)

    @staticmethod
    def _proxy(ipr, op: str, ip: str, ifname: str, version: int) -> None:
        idx = _index(ipr, ifname)
        ipr.neigh(op, dst=ip, ifindex=idx, flags=NTF_PROXY, family=_af(version))
