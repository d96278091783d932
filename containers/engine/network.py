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

Host-side interfaces belong to the panel. A name proves nothing (anything on the host can
carry any name), so before the agent sets a master, a MAC or a state on a host interface,
routes through it or deletes it, it checks with the kernel that the interface is the host end
of a veth pair whose other end lives in that container's network namespace
(`owned_host_end`). The panel never adopts an interface it finds: it creates pairs in one
netlink request that fails if the name exists. Each host end it made or checked carries the
alias vzpanel:<CTID>:<ifname>, so `ip -d link` shows whose it is.
"""
from __future__ import annotations

import errno
import hashlib
import ipaddress
import os
import re
import socket
from dataclasses import dataclass, field

from pyroute2 import IPRoute, NetNS
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.ndmsg import NTF_PROXY

VENET_INSIDE = "venet0"
IFA_F_NODAD = 0x02  # the addresses are the panel's to give: no duplicate detection delay
IPV6_GATEWAY = "fe80::1"  # the host end of venet answers here for IPv6


IFNAMSIZ = 16  # the kernel's buffer for an interface name, with its terminating NUL
# What the kernel takes as a name unchanged (dev_valid_name refuses '/', ':' and whitespace; a '%'
# asks it to pick a number), and what an LXC config line holds safely: ASCII letters, digits, '_', '.'
# and '-', starting with a letter, at most 15 of them.
IFNAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,%d}" % (IFNAMSIZ - 2))
# The names the panel derives for containers; nobody may choose one of these by hand.
DERIVED_NAME_RE = re.compile(r"(?:venet[0-9]+|veth[0-9]+\.[0-9]+)")


class NetworkError(Exception):
    pass


class ForeignInterface(NetworkError):
    """A host interface that is not the one the panel made for the container: left untouched."""


def valid_ifname(name: str) -> bool:
    return isinstance(name, str) and IFNAME_RE.fullmatch(name) is not None


def owner_alias(ctid: int, ifname: str) -> str:
    """The IFLA_IFALIAS the panel gives the host end of a container's interface."""
    return f"vzpanel:{int(ctid)}:{ifname}"


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


def _netns_path(pid: int) -> str:
    return f"/proc/{int(pid)}/ns/net"


def _netns(pid: int) -> NetNS:
    return NetNS(_netns_path(pid))


def _index(ipr, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def _kind(link) -> str | None:
    info = link.get_attr("IFLA_LINKINFO")
    return info.get_attr("IFLA_INFO_KIND") if info else None


def _netnsid_of(ipr, pid: int) -> int | None:
    """The id this (the host's) namespace gives to the network namespace of process `pid`;
    None for the host's own namespace or one it has no id for."""
    fd = os.open(_netns_path(pid), os.O_RDONLY | os.O_CLOEXEC)
    try:
        if os.fstat(fd).st_ino == os.stat("/proc/self/ns/net").st_ino:
            return None
        nsid = (ipr.get_netnsid(fd=fd) or {}).get("nsid")
    except NetlinkError:
        return None
    finally:
        os.close(fd)
    return nsid if isinstance(nsid, int) and nsid >= 0 else None


def owned_host_end(ipr, ctid: int, pid: int, host_name: str) -> tuple[int, int]:
    """(host ifindex, ifindex inside) of `host_name` if the kernel says it is the host end of a veth
    pair whose other end is in the network namespace of container `ctid` (init process `pid`).

    Otherwise ForeignInterface (NetworkError if no interface has the name), with nothing touched.
    The kernel's records decide, never names: the host end's peer must live in the namespace the
    host knows the container's by (IFLA_LINK_NETNSID), and the end inside must point back at the
    host end (IFLA_LINK). A process in the container can make interfaces and namespaces of its own,
    even with chosen ifindexes, but cannot change which namespace the host end's peer is in."""
    index = _index(ipr, host_name)
    if index is None:
        raise NetworkError(f"{host_name} does not exist on this host")
    refusal = ForeignInterface(f"host interface {host_name} is not container {int(ctid)}'s own (it is not the peer "
                               f"of an interface of the container): the panel leaves it untouched")
    link = ipr.get_links(index)[0]
    peer_index, peer_nsid = link.get_attr("IFLA_LINK"), link.get_attr("IFLA_LINK_NETNSID")
    # After the dump above: showing a veth whose peer is in another namespace gives that namespace an id.
    if _kind(link) != "veth" or peer_index is None or peer_nsid is None or peer_nsid != _netnsid_of(ipr, pid):
        raise refusal
    with _netns(pid) as ns:
        try:
            inner = ns.get_links(peer_index)[0]
        except NetlinkError:
            raise refusal from None
        if _kind(inner) != "veth" or inner.get_attr("IFLA_LINK") != index:
            raise refusal
    return index, peer_index


def _refuse_host_used(ipr, prefix: tuple[str, int, int], venet_idx: int) -> None:
    """A venet address gets a host route through the container's venet, which would steer the host's
    own traffic into the container if the host uses the address: so not one of the host's addresses,
    not a gateway of any of its routes, not one it already routes through another interface."""
    ip, full, version = prefix
    refusal = NetworkError(f"{ip} is used by the host itself (its address, a gateway or a route of its own); "
                           f"it cannot be a container's")
    for a in ipr.get_addr(family=_af(version)):
        if ip in (a.get_attr("IFA_ADDRESS"), a.get_attr("IFA_LOCAL")):
            raise refusal
    for route in ipr.get_routes(family=_af(version)):  # a dump of every table
        hops = [route, *(route.get_attr("RTA_MULTIPATH") or [])]
        if any(hop.get_attr("RTA_GATEWAY") == ip for hop in hops):
            raise refusal
        if route.get_attr("RTA_DST") == ip and route["dst_len"] == full and route.get_attr("RTA_OIF") != venet_idx:
            raise refusal  # in any table: also the host's broadcast and local entries


def _bridge_index(ipr, name: str) -> int:
    """The ifindex of bridge `name`: it must exist and be a bridge (not a bond, not a NIC)."""
    index = _index(ipr, name)
    if index is None:
        raise NetworkError(f"bridge {name} does not exist on this host")
    if _kind(ipr.get_links(index)[0]) != "bridge":
        raise NetworkError(f"{name} is not a bridge")
    return index


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
        """Bring venet up on both sides and give the container `addresses` (idempotent).
        venet<CTID> must be the host end of the container's own pair (owned_host_end)."""
        done = []
        host_if = venet_host_name(ctid)
        with IPRoute() as ipr:
            idx, inner = owned_host_end(ipr, ctid, pid, host_if)
            for addr in addresses:  # all of them before anything changes
                _refuse_host_used(ipr, _prefix(addr), idx)
            ipr.link("set", index=idx, state="up", ifalias=owner_alias(ctid, VENET_INSIDE))
            _sysctl(f"/proc/sys/net/ipv4/conf/{host_if}/proxy_arp", "1")
            _sysctl("/proc/sys/net/ipv4/ip_forward", "1")
            if any(_prefix(a)[2] == 6 for a in addresses):
                _sysctl(f"/proc/sys/net/ipv6/conf/{host_if}/proxy_ndp", "1")
                _sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1")
                self._ensure_addr(ipr, idx, IPV6_GATEWAY, 64, 6)
            with _netns(pid) as ns:
                for i in (_index(ns, "lo"), inner):
                    if i is not None:
                        ns.link("set", index=i, state="up")
            for addr in addresses:
                done += self._add_venet_address(ipr, ctid, pid, idx, inner, addr)
        return done

    def ensure_venet(self, ctid: int, pid: int) -> None:
        """A first venet address on a running container: its venet pair if it has one (checked to be
        its own), else a new one. An interface that merely bears the name is refused, never used."""
        with IPRoute() as ipr:
            if _index(ipr, venet_host_name(ctid)) is not None:
                owned_host_end(ipr, ctid, pid, venet_host_name(ctid))
                return
        self._create_pair(ctid, pid, venet_host_name(ctid), VENET_INSIDE)

    def _add_venet_address(self, ipr, ctid: int, pid: int, host_idx: int, inner: int, addr: str) -> list[str]:
        ip, full, version = _prefix(addr)
        host_if = venet_host_name(ctid)
        with _netns(pid) as ns:
            self._ensure_addr(ns, inner, ip, full, version)
            self._ensure_default_route(ns, inner, version)
        try:
            ipr.route("replace", dst=f"{ip}/{full}", oif=host_idx, family=_af(version))
        except Exception as exc:
            raise NetworkError(f"route to {ip} via {host_if}: {exc}") from None
        outer = host_interface_for(ipr, ip)
        if outer:
            self._proxy(ipr, "replace", ip, outer, version)
        return [f"{ip} on {VENET_INSIDE}, host route via {host_if}" + (f", proxy ARP/NDP on {outer}" if outer else "")]

    def remove_venet_address(self, ctid: int, pid: int | None, addr: str) -> list[str]:
        """Take `addr` off the container. The host route is removed only through the container's own
        venet<CTID> (a stopped container's routes went with the device); a route to the same address
        through any other interface is not the panel's to delete."""
        ip, full, version = _prefix(addr)
        with IPRoute() as ipr:
            if pid:
                try:
                    idx, inner = owned_host_end(ipr, ctid, pid, venet_host_name(ctid))
                except (NetworkError, OSError):
                    idx = inner = None  # no venet of its own (or it stopped meanwhile): no route of ours
                if idx is not None:
                    with _netns(pid) as ns:
                        try:
                            ns.addr("del", index=inner, address=ip, prefixlen=full)
                        except NetlinkError:
                            pass  # not there: nothing to undo
                    try:
                        ipr.route("del", dst=f"{ip}/{full}", oif=idx, family=_af(version))
                    except NetlinkError:
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
        """Host MAC and bridge on the host end; addresses and gateway inside (idempotent).
        The host end must be the container's own (owned_host_end), at start as after a hot add."""
        with IPRoute() as ipr:
            bridge = _bridge_index(ipr, veth.bridge)
            idx, inner = owned_host_end(ipr, ctid, pid, veth.host_ifname)
            ipr.link("set", index=idx, address=veth.host_mac, master=bridge, state="up",
                     ifalias=owner_alias(ctid, veth.ifname))
        with _netns(pid) as ns:
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
        """Add a veth interface to a running container at once: a new pair, or nothing.
        If the setup after creating it fails, the pair is deleted again."""
        with IPRoute() as ipr:
            _bridge_index(ipr, veth.bridge)  # before anything is made
        self._create_pair(ctid, pid, veth.host_ifname, veth.ifname, veth.mac)
        try:
            return self.setup_veth(ctid, pid, veth)
        except BaseException:
            self.remove_veth(ctid, pid, veth.host_ifname)
            raise

    def _create_pair(self, ctid: int, pid: int, host_name: str, inner_name: str, inner_mac: str | None = None) -> None:
        """One netlink request makes the pair, its inner end already inside the container: it fails
        (EEXIST) rather than take over an interface that bears one of the names."""
        with IPRoute() as ipr:
            if _index(ipr, host_name) is not None:
                raise ForeignInterface(f"host interface {host_name} exists already: the panel makes its own "
                                       f"interfaces and never takes one over")
            with _netns(pid) as ns:
                if _index(ns, inner_name) is not None:
                    raise NetworkError(f"container {int(ctid)} already has an interface {inner_name}")
            peer = {"ifname": inner_name, **({"address": inner_mac} if inner_mac else {})}
            fd = os.open(_netns_path(pid), os.O_RDONLY | os.O_CLOEXEC)
            try:
                ipr.link("add", ifname=host_name, kind="veth", peer={**peer, "net_ns_fd": fd})
            except NetlinkError as exc:
                if exc.code == errno.EEXIST:
                    raise ForeignInterface(f"{host_name} on the host or {inner_name} in container {int(ctid)} "
                                           f"appeared meanwhile: nothing was made") from None
                raise NetworkError(f"could not make {host_name}: {exc}") from None
            finally:
                os.close(fd)
            ipr.link("set", index=_index(ipr, host_name), ifalias=owner_alias(ctid, inner_name))

    def remove_veth(self, ctid: int, pid: int, host_ifname: str) -> bool:
        """Delete the container's interface whose host end is `host_ifname` (its peer inside goes
        with it). False if no interface has that name; ForeignInterface if it is not the container's."""
        with IPRoute() as ipr:
            if _index(ipr, host_ifname) is None:
                return False
            idx, _ = owned_host_end(ipr, ctid, pid, host_ifname)
            ipr.link("del", index=idx)
        return True

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
