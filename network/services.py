"""Network operations on containers and hosts (vzctl --ipadd/--ipdel/--netif_add/--netif_del/
--nameserver/--searchdomain), called by the views, the CLI and the API alike."""
from __future__ import annotations

import ipaddress

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.audit import audited, record
from containers.choices import Action
from containers.engine.network import stable_mac, veth_host_name
from containers.models import Container
from containers.services import InvalidRequest, NotAllowed, _check_manage, _submit_locked
from containers.validators import validate_hostname
from tasks.choices import TaskType
from tasks.models import Task
from tasks.services import submit_task
from tenancy.quotas import check_quota

from .models import IPAddress, IPPool, NetInterface, ifname_validator, mac_validator

MAX_NAMESERVERS = 3


def parse_address(text: str, allow_prefix: bool = False):
    """An address a container may hold: not loopback, multicast, link-local or unspecified."""
    text = (text or "").strip()
    try:
        if allow_prefix and "/" in text:
            iface = ipaddress.ip_interface(text)
            ip, prefix = iface.ip, iface.network.prefixlen
        else:
            ip, prefix = ipaddress.ip_address(text), None
    except ValueError:
        raise InvalidRequest(f"{text!r} is not an IP address.") from None
    if ip.is_loopback or ip.is_multicast or ip.is_link_local or ip.is_unspecified or ip.is_reserved:
        raise InvalidRequest(f"{ip} cannot be given to a container (loopback, multicast, link-local or reserved).")
    return ip, prefix


def _holder_text(address: str, user) -> str:
    from accounts.permissions import visible_containers
    held = IPAddress.objects.filter(address=address).select_related("container__host").first()
    if held is None:
        return f"{address} is already in use."
    if user is None or visible_containers(user).filter(pk=held.container_id).exists():
        return f"{address} is already used by container {held.container.ctid} on host {held.container.host.name}."
    return f"{address} is already used by a container you cannot see."


def pools_for(host):
    from django.db.models import Count, Q
    return IPPool.objects.annotate(n_hosts=Count("hosts")).filter(Q(n_hosts=0) | Q(hosts=host)).distinct()


def allocate(pool: IPPool) -> str:
    """The next free address of the pool, looked up 256 candidates at a time (the database's
    unique constraint settles races)."""
    batch: list[str] = []

    def first_free(candidates):
        taken = set(IPAddress.objects.filter(address__in=candidates).values_list("address", flat=True))
        return next((c for c in candidates if c not in taken), None)

    for ip in pool.candidates():
        batch.append(str(ip))
        if len(batch) == 256:
            found = first_free(batch)
            if found:
                return found
            batch = []
    found = first_free(batch) if batch else None
    if found:
        return found
    raise InvalidRequest(f"Pool {pool.name} has no free address left.")


def pool_of(host, ip) -> IPPool | None:
    """The pool (usable by `host`) whose network holds `ip`, so its use counts there."""
    for candidate in pools_for(host):
        if ip in candidate.net():
            return candidate
    return None


def _pool_named(host, name: str | None, version: int | None = None) -> IPPool:
    pools = pools_for(host)
    if name:
        pool = pools.filter(name=name).first()
        if pool is None:
            raise InvalidRequest(f"There is no pool {name!r} that host {host.name} may use.")
        return pool
    for pool in pools:
        if version is None or pool.net().version == version:
            return pool
    raise InvalidRequest(f"No IP pool is available to host {host.name}; ask an administrator to define one.")


@audited("container.ipadd")
def add_addresses(ct: Container, user, addresses: list[str], pool: str | None = None) -> "Task":
    """vzctl set --ipadd ADDR|auto: routed (venet) addresses, at once on a running container."""
    _check_manage(ct, user)
    if not addresses:
        raise InvalidRequest("Give at least one address (or auto).")
    added = []
    try:
        with transaction.atomic():
            check_quota(ct.tenant, ips=len(addresses))
            for text in addresses:
                if text == "auto":
                    chosen = _pool_named(ct.host, pool)
                    address, from_pool = allocate(chosen), chosen
                else:
                    ip, _ = parse_address(text)
                    address, from_pool = str(ip), pool_of(ct.host, ip)
                if address in added:
                    raise InvalidRequest(f"{address} is given twice.")
                try:
                    with transaction.atomic():
                        IPAddress.objects.create(address=address, container=ct, pool=from_pool, interface="venet0")
                except IntegrityError:
                    raise InvalidRequest(_holder_text(address, user)) from None
                added.append(address)
            task = _submit_locked(ct, Action.SET, TaskType.CT_NET, user, params={"venet_add": added})
    except IntegrityError:
        raise InvalidRequest("One of the addresses was taken meanwhile; try again.") from None
    return task


@audited("container.ipdel")
def remove_addresses(ct: Container, user, addresses: list[str] | str) -> "Task":
    """vzctl set --ipdel ADDR|all."""
    _check_manage(ct, user)
    held = IPAddress.objects.filter(container=ct, interface="venet0")
    if addresses == "all" or addresses == ["all"]:
        doomed = list(held.values_list("address", flat=True))
    else:
        doomed = []
        for text in addresses:
            ip, _ = parse_address(text)
            if not held.filter(address=str(ip)).exists():
                on_veth = IPAddress.objects.filter(container=ct, address=str(ip)).first()
                raise InvalidRequest(f"{ip} is on {on_veth.interface}, not venet: remove that interface (--netif_del)."
                                     if on_veth else f"Container {ct.ctid} has no venet address {ip}.")
            doomed.append(str(ip))
    if not doomed:
        raise InvalidRequest(f"Container {ct.ctid} has no venet addresses.")
    with transaction.atomic():
        task = _submit_locked(ct, Action.SET, TaskType.CT_NET, user, params={"venet_del": doomed})
        held.filter(address__in=doomed).delete()
    return task


def parse_netif(ct: Container, spec: str) -> dict:
    """ifname[,mac,host_ifname,host_mac,bridge] with OpenVZ's defaults for what is left out."""
    parts = [p.strip() for p in spec.split(",")]
    if len(parts) > 5 or not parts[0]:
        raise InvalidRequest("Write the interface as IFNAME[,MAC,HOST_IFNAME,HOST_MAC,BRIDGE].")
    parts += [""] * (5 - len(parts))
    ifname, mac, host_ifname, host_mac, bridge = parts
    if ifname.startswith("venet"):
        raise InvalidRequest("venet names are for routed addresses (--ipadd); pick another name such as eth0.")
    existing = NetInterface.objects.filter(container=ct)
    index = 0
    used_host_names = set(existing.values_list("host_ifname", flat=True))
    while veth_host_name(ct.ctid, index) in used_host_names:
        index += 1
    values = {
        "ifname": ifname, "mac": (mac or stable_mac(ct.ctid, ifname)).lower(),
        "host_ifname": host_ifname or veth_host_name(ct.ctid, index),
        "host_mac": (host_mac or stable_mac(ct.ctid, ifname, "host")).lower(),
        "bridge": bridge or ct.host.default_bridge,
    }
    for key, validator in (("ifname", ifname_validator), ("host_ifname", ifname_validator),
                           ("bridge", ifname_validator), ("mac", mac_validator), ("host_mac", mac_validator)):
        try:
            validator(values[key])
        except ValidationError as exc:
            raise InvalidRequest(f"{key}: {' '.join(exc.messages)}") from None
    return values


@audited("container.netif_add")
def add_netif(ct: Container, user, spec: str, address: str | None = None, gateway: str | None = None,
              pool: str | None = None) -> "Task":
    """vzctl set --netif_add: a bridged interface; optionally a static address (CIDR or auto) and gateway."""
    _check_manage(ct, user)
    values = parse_netif(ct, spec)
    if NetInterface.objects.filter(container=ct, ifname=values["ifname"]).exists():
        raise InvalidRequest(f"Container {ct.ctid} already has an interface {values['ifname']}.")
    if NetInterface.objects.filter(container__host=ct.host, host_ifname=values["host_ifname"]).exists():
        raise InvalidRequest(f"Host interface {values['host_ifname']} is already used on {ct.host.name}.")
    with transaction.atomic():
        if address:
            check_quota(ct.tenant, ips=1)
            if address == "auto":
                chosen = _pool_named(ct.host, pool, 4)
                if not chosen.gateway:
                    raise InvalidRequest(f"Pool {chosen.name} has no gateway; give the address and gateway yourself.")
                ip, prefix, gateway = allocate(chosen), chosen.net().prefixlen, gateway or chosen.gateway
            else:
                ip_obj, prefix = parse_address(address, allow_prefix=True)
                if prefix is None:
                    raise InvalidRequest("Give the address of a bridged interface with its prefix, e.g. 203.0.113.5/24.")
                ip, chosen = str(ip_obj), pool_of(ct.host, ip_obj)
            try:
                with transaction.atomic():
                    IPAddress.objects.create(address=ip, prefixlen=prefix, container=ct, interface=values["ifname"],
                                             pool=chosen)
            except IntegrityError:
                raise InvalidRequest(_holder_text(ip, user)) from None
        if gateway:
            parse_address(gateway)
        NetInterface.objects.create(container=ct, gateway=gateway or None, **values)
        task = _submit_locked(ct, Action.SET, TaskType.CT_NET, user, params={"netif_add": [values["ifname"]]})
    return task


@audited("container.netif_del")
def remove_netif(ct: Container, user, ifname: str) -> "Task":
    _check_manage(ct, user)
    netifs = NetInterface.objects.filter(container=ct)
    doomed = list(netifs if ifname == "all" else netifs.filter(ifname=ifname))
    if not doomed:
        raise InvalidRequest(f"Container {ct.ctid} has no interface {ifname}." if ifname != "all"
                             else f"Container {ct.ctid} has no veth interfaces.")
    with transaction.atomic():
        task = _submit_locked(ct, Action.SET, TaskType.CT_NET, user,
                              params={"netif_del": [{"ifname": n.ifname, "host_ifname": n.host_ifname} for n in doomed]})
        IPAddress.objects.filter(container=ct, interface__in=[n.ifname for n in doomed]).delete()
        NetInterface.objects.filter(pk__in=[n.pk for n in doomed]).delete()
    return task


@audited("container.dns")
def set_dns(ct: Container, user, nameservers: list[str] | None = None, searchdomain: str | None = None) -> "Task":
    """vzctl set --nameserver (up to 3) --searchdomain: written into the container at once."""
    _check_manage(ct, user)
    changes = {}
    if nameservers is not None:
        if len(nameservers) > MAX_NAMESERVERS:
            raise InvalidRequest(f"At most {MAX_NAMESERVERS} nameservers.")
        clean = []
        for text in nameservers:
            try:
                clean.append(str(ipaddress.ip_address(text.strip())))
            except ValueError:
                raise InvalidRequest(f"{text!r} is not a nameserver address.") from None
        changes["nameservers"] = clean
    if searchdomain is not None:
        for domain in searchdomain.split():
            try:
                validate_hostname(domain)
            except ValidationError:
                raise InvalidRequest(f"{domain!r} is not a search domain.") from None
        changes["searchdomain"] = " ".join(searchdomain.split())
    if not changes:
        raise InvalidRequest("Give nameservers or a search domain.")
    with transaction.atomic():
        task = _submit_locked(ct, Action.SET, TaskType.CT_NET, user, params={"dns": True})
        Container.objects.filter(pk=ct.pk).update(**changes)
    for key, value in changes.items():
        setattr(ct, key, value)
    return task


def create_bridge(host, user, name: str, address: str | None = None):
    """Create a bridge on a host (an agent task)."""
    from accounts.permissions import manages_hosts
    try:
        if user is not None and not manages_hosts(user):
            raise NotAllowed("Only administrators and operators manage bridges.")
        try:
            ifname_validator(name)
        except ValidationError as exc:
            raise InvalidRequest(" ".join(exc.messages)) from None
        if address:
            parse_address(address, allow_prefix=True)
    except (NotAllowed, InvalidRequest) as exc:
        record(user, "host.bridge.create", host, "refused", str(exc))
        raise
    with transaction.atomic():
        task = submit_task(type=TaskType.HOST_BRIDGE, host=host, user=user,
                           params={"name": name, "address": address or None})
    record(user, "host.bridge.create", host, detail=f"{name} {address or ''}".strip())
    return task


def save_pool(by, pool: IPPool, hosts=None) -> IPPool:
    from accounts.permissions import is_admin
    if not is_admin(by):
        raise NotAllowed("Only an administrator can define IP pools.")
    try:
        pool.full_clean()
    except ValidationError as exc:
        raise InvalidRequest("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
    pool.save()
    if hosts is not None:
        pool.hosts.set(hosts)
    record(by, "pool.save", pool, detail=f"{pool.network}")
    return pool
