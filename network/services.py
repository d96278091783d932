"""Network operations on containers and hosts (vzctl --ipadd/--ipdel/--netif_add/--netif_del/
--nameserver/--searchdomain), called by the views, the CLI and the API alike."""
from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.audit import audited, record
from containers.choices import Action
from containers.engine.network import DERIVED_NAME_RE, IFNAMSIZ, stable_mac, veth_host_name
from containers.models import Container
from containers.services import InvalidRequest, NotAllowed, _check_manage, _submit_locked
from panel import validators
from tasks.choices import TaskType
from tasks.models import Task
from tasks.services import submit_task
from tenancy.quotas import check_quota

from .models import BridgeGrant, IPAddress, IPPool, NetInterface, ifname_validator, mac_validator

MAX_NAMESERVERS = validators.NAMESERVERS_MAX


def parse_ip(text: str, what: str = "an IP address"):
    """panel.validators.parse_ip, refusing as a service does (InvalidRequest, HTTP 400)."""
    try:
        return validators.parse_ip(text, what)
    except ValidationError as exc:
        raise InvalidRequest(validators.messages(exc)) from None


def parse_address(text: str, allow_prefix: bool = False):
    """An address a container may hold: not loopback, multicast, link-local or unspecified."""
    text = text if isinstance(text, str) else ""
    address, slash, prefix_text = text.strip().partition("/")
    ip = parse_ip(address)
    prefix = None
    if slash:
        if not allow_prefix:
            raise InvalidRequest(f"{text[:60]!r} is an address with a prefix; give the address alone.")
        try:
            prefix = validators.whole_number(prefix_text, "The prefix length", 0, ip.max_prefixlen)
        except ValidationError as exc:
            raise InvalidRequest(validators.messages(exc)) from None
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


def pools_for(host, ct: Container | None = None, user=None):
    """The pools `host` may use; for a container and a user who does not configure the host's
    network, only those assigned to the container's tenant or shared with every tenant."""
    from django.db.models import Count, Q
    pools = IPPool.objects.annotate(n_hosts=Count("hosts")).filter(Q(n_hosts=0) | Q(hosts=host))
    if ct is not None and not configures_host_network(user):
        pools = pools.filter(Q(shared=True) | Q(tenants=ct.tenant_id) if ct.tenant_id else Q(shared=True))
    return pools.distinct().order_by("name")


def _explicit_address(ct: Container, user, ip) -> IPPool | None:
    """The pool an address a user named comes from. Administrators and operators may give any
    address (outside every pool too); everyone else only one their tenant's pools hand out, never a
    gateway, a network or broadcast address, or one outside the pool's ranges."""
    for candidate in pools_for(ct.host, ct, user):
        if ip in candidate.net():
            if configures_host_network(user) or candidate.offers(ip):
                return candidate
            raise NotAllowed(f"{ip} is reserved in pool {candidate.name} (its gateway, network or broadcast "
                             "address, or outside its ranges); take one with 'auto' or ask an administrator.")
    if configures_host_network(user):
        return pool_of(ct.host, ip)
    raise NotAllowed(f"{ip} is not in an IP pool of tenant {ct.tenant.slug if ct.tenant_id else '-'}; "
                     "take one with 'auto' or ask an administrator.")


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


def _pool_named(ct: Container, user, name: str | None, version: int | None = None) -> IPPool:
    """The pool to take an 'auto' address from: the one named, or the first the container may use."""
    pools = pools_for(ct.host, ct, user)
    if name:
        pool = pools.filter(name=name).first()
        if pool is None:  # the same answer for a pool that does not exist and one that is not theirs
            raise InvalidRequest(f"There is no pool {name!r} that container {ct.ctid} may use.")
        return pool
    for pool in pools:
        if version is None or pool.net().version == version:
            return pool
    raise InvalidRequest(f"No IP pool is available to container {ct.ctid}; ask an administrator to assign one.")


@audited("container.ipadd")
def add_addresses(ct: Container, user, addresses: list[str], pool: str | None = None) -> "Task":
    """vzctl set --ipadd ADDR|auto: routed (venet) addresses, at once on a running container."""
    _check_manage(ct, user)
    if not addresses:
        raise InvalidRequest("Give at least one address (or auto).")
    try:
        with transaction.atomic():
            added = assign_addresses(ct, user, addresses, pool)
            task = _submit_locked(ct, Action.SET, TaskType.CT_NET, user, params={"venet_add": added})
    except IntegrityError:
        raise InvalidRequest("One of the addresses was taken meanwhile; try again.") from None
    return task


def assign_addresses(ct: Container, user, addresses: list[str], pool: str | None = None) -> list[str]:
    """Give `ct` the venet addresses `addresses` ("auto": the next free one of `pool`, or of the
    first pool its tenant may use), checked for `user` (their tenant's pools only, unless they
    configure the host's network), free and within the quota. Rows only: the caller queues the
    task that applies them, in the same transaction (a refusal rolls back every address)."""
    added: list[str] = []
    check_quota(ct.tenant, ips=len(addresses))
    for text in addresses:
        if text == "auto":
            chosen = _pool_named(ct, user, pool)
            address, from_pool = allocate(chosen), chosen
        else:
            ip, _ = parse_address(text)
            address, from_pool = str(ip), _explicit_address(ct, user, ip)
        if address in added:
            raise InvalidRequest(f"{address} is given twice.")
        try:
            with transaction.atomic():
                IPAddress.objects.create(address=address, container=ct, pool=from_pool, interface="venet0")
        except IntegrityError:
            raise InvalidRequest(_holder_text(address, user)) from None
        added.append(address)
    return added


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


def configures_host_network(user) -> bool:
    """Administrators, operators and the system (user None) may name host-side interfaces and
    any bridge; tenants' members and tenant admins get what the panel derives or was granted."""
    from accounts.permissions import manages_hosts
    return user is None or manages_hosts(user)


def usable_bridges(ct: Container, user) -> list[str] | None:
    """The bridges `user` may put an interface of `ct` in: the host's default bridge and those
    granted to the container's tenant. None: any bridge of the host."""
    if configures_host_network(user):
        return None
    granted = BridgeGrant.objects.filter(tenant_id=ct.tenant_id).values_list("bridge", flat=True)
    return list(dict.fromkeys([ct.host.default_bridge, *granted]))


def _reported_names(host) -> set[str]:
    """Interface names the host's agent last reported (bridges and the containers' devices)."""
    net = host.network if isinstance(host.network, dict) else {}
    names = {b.get("name") for b in net.get("bridges") or [] if isinstance(b, dict)}
    return names | set(net.get("interfaces") or {})


def _host_ifname(ct: Container, user, requested: str) -> str:
    """The host-side name of a new interface of `ct`: the next veth<CTID>.<N> the container has free,
    another of its own veth<CTID>.<N>, or (administrators only) a name they reserve for it, which may
    not look like a derived name nor be one the host reported."""
    used = set(NetInterface.objects.filter(container=ct).values_list("host_ifname", flat=True))
    index = 0
    while veth_host_name(ct.ctid, index) in used:
        index += 1
    name = requested or veth_host_name(ct.ctid, index)
    own = re.fullmatch(rf"veth{int(ct.ctid)}\.(0|[1-9][0-9]*)", name) is not None
    if not own:
        if not configures_host_network(user):
            raise NotAllowed(f"Host-side names belong to the panel: leave HOST_IFNAME empty (it will be "
                             f"{veth_host_name(ct.ctid, index)}) or ask an administrator to reserve {name}.")
        if DERIVED_NAME_RE.fullmatch(name):
            raise InvalidRequest(f"{name} is a name the panel derives for another container; "
                                 f"pick a name not of the form venetCTID or vethCTID.N.")
        if name in _reported_names(ct.host):
            raise InvalidRequest(f"{name} exists on host {ct.host.name}; the panel does not take over interfaces.")
    if len(name) >= IFNAMSIZ:
        raise InvalidRequest(f"The host-side name {name} would be longer than {IFNAMSIZ - 1} characters.")
    return name


def _mac(text: str, default: str) -> str:
    """A MAC as written (any case) or the default; non-ASCII text is left for the validator to refuse."""
    return (text.lower() if text.isascii() else text) if text else default


def parse_netif(ct: Container, spec: str, user=None) -> dict:
    """ifname[,mac,host_ifname,host_mac,bridge] with OpenVZ's defaults for what is left out, and what
    `user` may choose: host-side name and MAC and the bridge are the panel's unless they may configure
    the host's network (configures_host_network); members get the tenant's bridges (usable_bridges)."""
    parts = [p.strip() for p in spec.split(",")]
    if len(parts) > 5 or not parts[0]:
        raise InvalidRequest("Write the interface as IFNAME[,MAC,HOST_IFNAME,HOST_MAC,BRIDGE].")
    parts += [""] * (5 - len(parts))
    ifname, mac, host_ifname, host_mac, bridge = parts
    if ifname.startswith("venet"):
        raise InvalidRequest("venet names are for routed addresses (--ipadd); pick another name such as eth0.")
    values = {"ifname": ifname, "mac": _mac(mac, stable_mac(ct.ctid, ifname)), "host_ifname": host_ifname,
              "host_mac": _mac(host_mac, stable_mac(ct.ctid, ifname, "host")),
              "bridge": bridge or ct.host.default_bridge}
    for key, validator in (("ifname", ifname_validator), ("host_ifname", ifname_validator),
                           ("bridge", ifname_validator), ("mac", mac_validator), ("host_mac", mac_validator)):
        try:
            if values[key]:
                validator(values[key])
        except ValidationError as exc:
            raise InvalidRequest(f"{key}: {' '.join(exc.messages)}") from None
    values["host_ifname"] = _host_ifname(ct, user, host_ifname)
    if values["host_mac"] != stable_mac(ct.ctid, ifname, "host") and not configures_host_network(user):
        raise NotAllowed("The host-side MAC belongs to the panel: leave HOST_MAC empty.")
    allowed = usable_bridges(ct, user)
    if allowed is not None and values["bridge"] not in allowed:
        raise NotAllowed(f"You may not use bridge {values['bridge']}; yours: {', '.join(allowed)}. "
                         "An administrator can grant the tenant more.")
    return values


@audited("container.netif_add")
def add_netif(ct: Container, user, spec: str, address: str | None = None, gateway: str | None = None,
              pool: str | None = None) -> "Task":
    """vzctl set --netif_add: a bridged interface; optionally a static address (CIDR or auto) and gateway."""
    _check_manage(ct, user)
    values = parse_netif(ct, spec, user)
    if NetInterface.objects.filter(container=ct, ifname=values["ifname"]).exists():
        raise InvalidRequest(f"Container {ct.ctid} already has an interface {values['ifname']}.")
    if NetInterface.objects.filter(host_ifname=values["host_ifname"]).exists():
        raise InvalidRequest(f"Host interface name {values['host_ifname']} is already another interface's.")
    with transaction.atomic():
        if address:
            check_quota(ct.tenant, ips=1)
            if address == "auto":
                chosen = _pool_named(ct, user, pool, 4)
                if not chosen.gateway:
                    raise InvalidRequest(f"Pool {chosen.name} has no gateway; give the address and gateway yourself.")
                ip, prefix, gateway = allocate(chosen), chosen.net().prefixlen, gateway or chosen.gateway
            else:
                ip_obj, prefix = parse_address(address, allow_prefix=True)
                if prefix is None:
                    raise InvalidRequest("Give the address of a bridged interface with its prefix, e.g. 203.0.113.5/24.")
                ip, chosen = str(ip_obj), _explicit_address(ct, user, ip_obj)
            try:
                with transaction.atomic():
                    IPAddress.objects.create(address=ip, prefixlen=prefix, container=ct, interface=values["ifname"],
                                             pool=chosen)
            except IntegrityError:
                raise InvalidRequest(_holder_text(ip, user)) from None
        if gateway:
            parse_ip(gateway, "a gateway address")
        try:
            with transaction.atomic():
                NetInterface.objects.create(container=ct, gateway=gateway or None, **values)
        except IntegrityError:  # the unique constraints settle a race with another request
            raise InvalidRequest(f"{values['ifname']} or {values['host_ifname']} was taken meanwhile; "
                                 "try again.") from None
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
    try:
        if nameservers is not None:
            changes["nameservers"] = validators.clean_nameservers(nameservers)
        if searchdomain is not None:
            changes["searchdomain"] = validators.clean_searchdomain(searchdomain)
    except ValidationError as exc:
        raise InvalidRequest(validators.messages(exc)) from None
    if not changes:
        raise InvalidRequest("Give nameservers or a search domain.")
    with transaction.atomic():
        task = _submit_locked(ct, Action.SET, TaskType.CT_NET, user, params={"dns": True})
        Container.objects.filter(pk=ct.pk).update(**changes)
    for key, value in changes.items():
        setattr(ct, key, value)
    return task


def restore_network(ct: Container, user, config: dict) -> list[str]:
    """What an archive's configuration says of a restored container's network (venet addresses,
    nameservers, search domain), through the same checks, pools and quota as vzctl set by `user`
    (the restore's). What cannot be applied is left out; returns one line per thing left out
    (restore_addresses says what became of each address)."""
    skipped: list[str] = []
    nameservers = []
    for text in list(config.get("nameservers") or [])[:MAX_NAMESERVERS]:
        try:
            nameservers.append(str(parse_ip(str(text), "a nameserver address")))
        except InvalidRequest as exc:
            skipped.append(f"nameserver not restored: {exc}")
    try:
        searchdomain = validators.clean_searchdomain(str(config.get("searchdomain") or ""))
    except ValidationError as exc:
        skipped.append(f"search domain not restored: {validators.messages(exc)}")
        searchdomain = ""
    dns = {k: v for k, v in (("nameservers", nameservers), ("searchdomain", searchdomain)) if v}
    if dns:
        Container.objects.filter(pk=ct.pk).update(**dns)
        for key, value in dns.items():
            setattr(ct, key, value)
    found = restore_addresses(ct, user, config.get("addresses") or [])
    skipped += [f"{o['address']} was not restored: {o['reason']}" for o in found if not o["kept"]]
    return skipped


def _restore_pool(ct: Container, user, ip) -> IPPool | None:
    """The pool a restored address of `ct` counts in, or a refusal. The restoring user's rules
    (_explicit_address), and more for administrators restoring a tenant's container: the archive is
    the tenant's word (an upload, say), so only what the tenant's own pools hand out, as vzctl set
    --ipadd by the tenant would take: never another tenant's or the administrators' pool, never a
    pool's gateway, network or broadcast address, never an address outside every pool (the host
    answers ARP for a container's address on its own network: the LAN's router, another server).
    An administrator gives those by hand (vzctl set --ipadd) after the restore."""
    if not (ct.tenant_id and configures_host_network(user)):
        return _explicit_address(ct, user, ip)
    for candidate in pools_for(ct.host):
        if ip in candidate.net():
            if not (candidate.shared or candidate.tenants.filter(pk=ct.tenant_id).exists()):
                raise NotAllowed(f"{ip} is in IP pool {candidate.name}, which tenant {ct.tenant.slug} may not use.")
            if not candidate.offers(ip):
                raise NotAllowed(f"{ip} is reserved in pool {candidate.name} (its gateway, network or broadcast "
                                 "address, or outside its ranges); an administrator gives it by hand.")
            return candidate
    raise NotAllowed(f"{ip} is not in an IP pool of tenant {ct.tenant.slug}: an archive's address outside the "
                     "pools is not restored; an administrator gives it by hand (vzctl set --ipadd).")


def restore_addresses(ct: Container, user, addresses: list) -> list[dict]:
    """The venet addresses of a restored container's archive, each kept if it is free (or already
    the container's, restoring over it) and its tenant may hold it, or dropped with the reason: in
    use by another container, outside the tenant's pools, reserved, over the quota, not an address.
    Returns {"address", "kept", "reason"} for each, in the archive's order."""
    from django.db import IntegrityError
    from tenancy.quotas import QuotaExceeded
    outcomes: list[dict] = []
    for index, text in enumerate(addresses):
        text = str(text)[:64]
        if index >= MAX_RESTORED_ADDRESSES:
            outcomes.append({"address": text, "kept": False,
                             "reason": f"the archive names more than {MAX_RESTORED_ADDRESSES} addresses."})
            continue
        try:
            ip, _ = parse_address(text)
            address = str(ip)
            if any(o["kept"] and o["address"] == address for o in outcomes):
                continue  # named twice in the archive
            if IPAddress.objects.filter(address=address, container=ct).exists():
                outcomes.append({"address": address, "kept": True, "reason": "the container holds it already"})
                continue
            if IPAddress.objects.filter(address=address).exists():
                raise InvalidRequest(_holder_text(address, user).replace("is already used by", "is in use by"))
            with transaction.atomic():
                pool = _restore_pool(ct, user, ip)
                check_quota(ct.tenant, ips=1)
                IPAddress.objects.create(address=address, container=ct, pool=pool, interface="venet0")
            outcomes.append({"address": address, "kept": True,
                             "reason": f"free, in pool {pool.name}" if pool else "free (outside the IP pools)"})
        except IntegrityError:
            outcomes.append({"address": text, "kept": False, "reason": f"{text} was taken by another container "
                                                                       "meanwhile."})
        except (InvalidRequest, NotAllowed, QuotaExceeded) as exc:
            outcomes.append({"address": text, "kept": False, "reason": str(exc)})
    return outcomes


MAX_RESTORED_ADDRESSES = 64  # an archive's word: more than any container is given is not read


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
        if DERIVED_NAME_RE.fullmatch(name):
            raise InvalidRequest(f"{name} is a name the panel derives for a container's interface; pick another.")
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


def save_pool(by, pool: IPPool, hosts=None, tenants=None) -> IPPool:
    from accounts.permissions import is_admin
    if not is_admin(by):
        raise NotAllowed("Only an administrator can define IP pools.")
    try:
        pool.full_clean()
    except ValidationError as exc:
        raise InvalidRequest(validators.messages(exc)) from None
    pool.save()
    if hosts is not None:
        pool.hosts.set(hosts)
    if tenants is not None:
        pool.tenants.set(tenants)
    record(by, "pool.save", pool, detail=f"{pool.network}" + (" shared" if pool.shared else "")
           + (f" for {', '.join(t.slug for t in pool.tenants.all())}" if pool.tenants.exists() else ""))
    return pool


def set_bridge_grants(by, tenant, bridges: list[str]) -> list[str]:
    """The bridges (by name, on any host) `tenant`'s members may use besides each host's default
    bridge: replaces the tenant's grants with `bridges`. Administrators only."""
    from accounts.permissions import is_admin
    try:
        if not is_admin(by):
            raise NotAllowed("Only an administrator can grant bridges to a tenant.")
        names = list(dict.fromkeys(b.strip() for b in bridges if b.strip()))
        for name in names:
            try:
                ifname_validator(name)
            except ValidationError as exc:
                raise InvalidRequest(f"{name!r}: {' '.join(exc.messages)}") from None
    except (NotAllowed, InvalidRequest) as exc:
        record(by, "tenant.bridges", tenant, "refused", str(exc))
        raise
    with transaction.atomic():
        tenant.bridge_grants.exclude(bridge__in=names).delete()
        have = set(tenant.bridge_grants.values_list("bridge", flat=True))
        BridgeGrant.objects.bulk_create([BridgeGrant(tenant=tenant, bridge=n) for n in names if n not in have])
    record(by, "tenant.bridges", tenant, detail=" ".join(names) or "(none)")
    return names


def granted_bridges(tenant) -> list[str]:
    return list(tenant.bridge_grants.values_list("bridge", flat=True))
