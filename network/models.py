"""Addresses, pools and bridged interfaces of containers."""
from __future__ import annotations

import ipaddress
import re

from django.core.exceptions import ValidationError
from django.db import models

from containers.engine.network import valid_ifname
from panel import validators

_MAC_RE = re.compile(r"(?:[0-9a-f]{2}:){5}[0-9a-f]{2}")


def ifname_validator(value) -> None:
    """An interface name the kernel takes as it is (containers.engine.network.IFNAME_RE)."""
    if not valid_ifname(value):
        raise ValidationError("An interface name is 1-15 letters, digits, '_', '.' or '-', starting with a letter.",
                              code="invalid")


def mac_validator(value) -> None:
    """A unicast MAC address other than all zeros, in lower case: what the kernel accepts for a veth end."""
    if not isinstance(value, str) or not _MAC_RE.fullmatch(value):
        raise ValidationError("A MAC address looks like 02:18:51:aa:bb:cc.", code="invalid")
    if int(value[:2], 16) & 1 or value == "00:00:00:00:00:00":
        raise ValidationError(f"{value} is a multicast or empty MAC address; an interface needs a unicast one "
                              "(an even first byte, e.g. 02:...).", code="invalid")


class IPPool(models.Model):
    """A network admins hand addresses out of ("auto"), on the hosts allowed to use it."""

    name = models.CharField(max_length=64, unique=True, validators=[validators.validate_name])
    network = models.CharField(max_length=64, help_text="e.g. 198.51.100.0/24 or 2001:db8:1::/64")
    gateway = models.GenericIPAddressField(null=True, blank=True, help_text="for bridged (veth) interfaces")
    ranges = models.CharField(max_length=500, blank=True,
                              help_text="FIRST-LAST, comma separated; empty for the whole network")
    hosts = models.ManyToManyField("hosts.Host", blank=True, related_name="pools",
                                   help_text="hosts that may use it; none selected: all")
    # Whose people may take addresses from it (administrators and operators: every pool).
    tenants = models.ManyToManyField("tenancy.Tenant", blank=True, related_name="pools",
                                     help_text="tenants whose members may take addresses from it")
    shared = models.BooleanField(default=False, help_text="every tenant may take addresses from it")
    description = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "IP pool"

    def __str__(self) -> str:
        return self.name

    def net(self):
        return ipaddress.ip_network(self.network, strict=False)

    def clean(self):
        try:
            net = validators.parse_network(self.network)
        except ValidationError as exc:
            raise ValidationError({"network": exc.messages}) from None
        self.network = str(net)
        if self.gateway and ipaddress.ip_address(self.gateway) not in net:
            raise ValidationError({"gateway": f"{self.gateway} is not in {net}."})
        try:
            ranges = self.parsed_ranges()
        except ValidationError as exc:
            raise ValidationError({"ranges": f"Write ranges as FIRST-LAST, comma separated. {validators.messages(exc)}"}
                                  ) from None
        for first, last in ranges:
            if first not in net or last not in net or first > last:
                raise ValidationError({"ranges": f"{first}-{last} is not a range inside {net}."})

    def parsed_ranges(self):
        out = []
        for part in filter(None, (p.strip() for p in self.ranges.split(","))):
            first, _, last = part.partition("-")
            out.append((validators.parse_ip(first), validators.parse_ip(last or first)))
        return out

    def offers(self, ip) -> bool:
        """Whether `ip` is one of the addresses this pool hands out (candidates()): inside the ranges
        if there are any, never the network or broadcast address, never the gateway."""
        net = self.net()
        if ip.version != net.version or ip not in net:
            return False
        if self.gateway and ip == ipaddress.ip_address(self.gateway):
            return False
        ranges = self.parsed_ranges()
        if ranges:
            return any(first <= ip <= last for first, last in ranges)
        return net.num_addresses <= 2 or (ip != net.network_address and
                                          (net.version == 6 or ip != net.broadcast_address))

    def candidates(self):
        """Usable addresses in order: the ranges, or the whole network less network, broadcast and gateway."""
        net = self.net()
        gateway = ipaddress.ip_address(self.gateway) if self.gateway else None
        ranges = self.parsed_ranges()
        if ranges:
            for first, last in ranges:
                current = first
                while current <= last:
                    if current != gateway:
                        yield current
                    current += 1
        else:
            for ip in net.hosts():
                if ip != gateway:
                    yield ip


class IPAddress(models.Model):
    """One address of one container: on venet0 (routed) or on a veth interface (bridged).
    The unique constraint makes an address belong to at most one container across all hosts."""

    address = models.GenericIPAddressField(unique=True)
    prefixlen = models.PositiveSmallIntegerField(null=True, blank=True)  # veth only; venet is /32 or /128
    container = models.ForeignKey("containers.Container", on_delete=models.CASCADE, related_name="addresses")
    interface = models.CharField(max_length=15, default="venet0")
    pool = models.ForeignKey(IPPool, null=True, blank=True, on_delete=models.SET_NULL, related_name="addresses")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["interface", "id"]

    def __str__(self) -> str:
        return self.address

    @property
    def cidr(self) -> str:
        full = 32 if ":" not in self.address else 128
        return f"{self.address}/{self.prefixlen or full}"


class NetInterface(models.Model):
    """A bridged veth interface (vzctl --netif_add ifname,mac,host_ifname,host_mac,bridge)."""

    container = models.ForeignKey("containers.Container", on_delete=models.CASCADE, related_name="netifs")
    ifname = models.CharField(max_length=15, validators=[ifname_validator])
    mac = models.CharField(max_length=17, validators=[mac_validator])
    host_ifname = models.CharField(max_length=15, validators=[ifname_validator])
    host_mac = models.CharField(max_length=17, validators=[mac_validator])
    bridge = models.CharField(max_length=15, validators=[ifname_validator])
    gateway = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["container", "ifname"], name="one_ifname_per_container"),
            # Derived names hold a CTID (unique everywhere) and custom ones must be too, so a container
            # can move to another host without its host-side name meeting another's there.
            models.UniqueConstraint(fields=["host_ifname"], name="one_container_per_host_ifname"),
        ]

    def __str__(self) -> str:
        return f"{self.ifname} ({self.bridge})"


class BridgeGrant(models.Model):
    """A bridge whose name a tenant's members may give for their containers' interfaces, on any host
    that has it, besides the host's default bridge. Administrators and operators may use any bridge."""

    tenant = models.ForeignKey("tenancy.Tenant", on_delete=models.CASCADE, related_name="bridge_grants")
    bridge = models.CharField(max_length=15, validators=[ifname_validator])

    class Meta:
        ordering = ["bridge"]
        constraints = [models.UniqueConstraint(fields=["tenant", "bridge"], name="one_grant_per_tenant_bridge")]

    def __str__(self) -> str:
        return f"{self.bridge} for {self.tenant}"
