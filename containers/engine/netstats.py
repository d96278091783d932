"""Network byte counters of a container's host-side interfaces, read through netlink (pyroute2)."""
from __future__ import annotations

import re

from pyroute2 import IPRoute


def host_interface_pattern(ctid: int) -> re.Pattern:
    # OpenVZ names: veth<CTID>.<N> for veth devices, venet<CTID> for the routed venet pair.
    return re.compile(rf"^(veth{int(ctid)}\.[0-9]+|venet{int(ctid)})\Z")


def interface_bytes(ipr: IPRoute) -> dict[str, tuple[int, int]]:
    """name -> (rx_bytes, tx_bytes) of every interface on the host, in one netlink dump."""
    out = {}
    for link in ipr.get_links():
        name = link.get_attr("IFLA_IFNAME")
        stats = link.get_attr("IFLA_STATS64") or link.get_attr("IFLA_STATS")
        if name and stats:
            out[name] = (stats["rx_bytes"], stats["tx_bytes"])
    return out


def container_bytes(all_bytes: dict[str, tuple[int, int]], ctid: int,
                    host_names: list[str] | None = None) -> tuple[int, int] | None:
    """(bytes into the container, bytes out of it): the host side's tx and rx. None: no interface.
    `host_names` are the host ends the panel knows of; without them OpenVZ's default names are matched."""
    pattern = host_interface_pattern(ctid)
    names = set(host_names or ())
    found = [v for k, v in all_bytes.items() if k in names or pattern.match(k)]
    if not found:
        return None
    return sum(tx for _rx, tx in found), sum(rx for rx, _tx in found)
