"""Network pages: the container's Network tab actions, the host's bridges and the IP pools.

Thin views: who may see what comes from accounts.permissions, what may be done from
network.services (which checks permissions again and refuses with a TaskError)."""
from __future__ import annotations

import ipaddress

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_POST

from accounts.decorators import page_for
from accounts.permissions import (is_admin, manages_hosts, oversees_people, sees_everything, visible_containers,
                                  visible_pools)
from panel.forms import form_response

from . import services
from .forms import BridgeForm, DNSForm, IPAddForm, IPDelForm, NetifAddForm, NetifDelForm, PoolForm
from .models import IPPool, NetInterface


# -- figures ------------------------------------------------------------------------
def pool_capacity(pool: IPPool) -> tuple[int | None, str]:
    """How many addresses the pool hands out, without walking them: (number or None, text).
    Ranges: their sizes less the gateway where it falls inside; a whole IPv4 network: all but
    network, broadcast and gateway; a whole IPv6 network: its prefix (too many to matter)."""
    try:
        net = pool.net()
        ranges = pool.parsed_ranges()
        gateway = ipaddress.ip_address(pool.gateway) if pool.gateway else None
    except (ValueError, ValidationError):
        return None, "?"
    if ranges:
        total = 0
        for first, last in ranges:
            if first.version != last.version or last < first:
                continue
            total += int(last) - int(first) + 1
            if gateway is not None and gateway.version == first.version and first <= gateway <= last:
                total -= 1
        return total, str(total)
    if net.version == 6:
        return None, f"/{net.prefixlen}"
    if net.prefixlen >= 31:  # point-to-point and single-address networks: every address is usable
        total = net.num_addresses
        inside = gateway is not None and gateway in net
    else:
        total = net.num_addresses - 2
        inside = (gateway is not None and gateway in net
                  and gateway not in (net.network_address, net.broadcast_address))
    total -= 1 if inside else 0
    return total, str(total)


def pool_rows(pools) -> list[IPPool]:
    """The pools with .used (addresses handed out), .total and .total_text."""
    rows = list(IPPool.objects.filter(pk__in=[p.pk for p in pools])
                .annotate(used=Count("addresses", distinct=True)).prefetch_related("hosts"))
    for pool in rows:
        pool.total, pool.total_text = pool_capacity(pool)
    return rows


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value) -> list:
    return value if isinstance(value, list) else []


def _link(ifaces: dict, name: str) -> dict | None:
    """An interface's state and bytes as the container sees them: the host end's rx is what it sent."""
    info = ifaces.get(name)
    if not isinstance(info, dict):
        return None
    return {"name": name, "state": info.get("state") or "unknown", "mac": info.get("mac") or "",
            "master": info.get("master") or "", "bytes_in": info.get("tx_bytes"), "bytes_out": info.get("rx_bytes")}


def bridge_names(host) -> list[str]:
    return [b["name"] for b in _list(_dict(host.network).get("bridges")) if isinstance(b, dict) and b.get("name")]


def netif_form(ct, user, data=None) -> NetifAddForm:
    """The --netif_add form as `user` may fill it: the bridges they may use that the host has (the
    default one always) and, for those who configure the host's network, the host-side name and MAC."""
    allowed = services.usable_bridges(ct, user)
    reported = bridge_names(ct.host)
    offered = reported if allowed is None else [b for b in allowed if b in reported or b == ct.host.default_bridge]
    return NetifAddForm(data, bridges=offered, default_bridge=ct.host.default_bridge,
                        host_side=services.configures_host_network(user))


def container_network(ct, user, can_manage: bool) -> dict:
    """The Network tab's context."""
    net = _dict(ct.host.network)
    ifaces = _dict(net.get("interfaces"))
    addresses = list(ct.addresses.select_related("pool"))
    netifs = list(ct.netifs.all())
    for netif in netifs:
        netif.address_list = [a for a in addresses if a.interface == netif.ifname]
        netif.link = _link(ifaces, netif.host_ifname)
    context = {
        "net_venet": [a for a in addresses if a.interface == "venet0"],
        "net_venet_link": _link(ifaces, f"venet{ct.ctid}"),
        "net_netifs": netifs,
        "net_updated_at": parse_datetime(net["updated_at"]) if isinstance(net.get("updated_at"), str) else None,
        "net_max_nameservers": services.MAX_NAMESERVERS,
    }
    if can_manage:
        context.update({
            "ipadd_form": IPAddForm(pools=services.pools_for(ct.host, ct, user)),
            "netif_form": netif_form(ct, user),
            "dns_form": DNSForm(initial={"nameservers": " ".join(ct.nameservers or []),
                                         "searchdomain": ct.searchdomain}),
        })
    return context


def _device_owners(host, user):
    """(host device -> CTID, shown(device)): devices of containers the user may not see are not shown,
    nor devices of no container unless the user sees everything."""
    owners = {f"venet{ctid}": ctid for ctid in host.containers.values_list("ctid", flat=True)}
    owners.update(dict(NetInterface.objects.filter(container__host=host)
                       .values_list("host_ifname", "container__ctid")))
    visible = set(visible_containers(user).filter(host=host).values_list("ctid", flat=True))
    everything = sees_everything(user)

    def shown(dev) -> bool:
        ctid = owners.get(dev)
        return ctid in visible if ctid is not None else everything
    return owners, shown


def host_bridges(host, user, shown=None) -> list[dict]:
    """The bridges the agent reported, with the ports the user may see."""
    if shown is None:
        shown = _device_owners(host, user)[1]
    bridges = []
    for bridge in _list(_dict(host.network).get("bridges")):
        if not isinstance(bridge, dict):
            continue
        ports = [p for p in _list(bridge.get("ports")) if isinstance(p, str)]
        bridges.append({"name": bridge.get("name", "?"), "state": bridge.get("state") or "unknown",
                        "mac": bridge.get("mac") or "", "addresses": _list(bridge.get("addresses")),
                        "ports": [p for p in ports if shown(p)],
                        "hidden_ports": sum(1 for p in ports if not shown(p)),
                        "default": bridge.get("name") == host.default_bridge})
    return bridges


def host_network(host, user) -> dict:
    """The host page's Network section."""
    net = _dict(host.network)
    owners, shown = _device_owners(host, user)
    routes = [{"dst": r.get("dst", ""), "dev": r.get("dev", ""), "ctid": owners.get(r.get("dev"))}
              for r in _list(net.get("routes")) if isinstance(r, dict) and shown(r.get("dev"))]
    interfaces = []
    for name, _info in sorted(_dict(net.get("interfaces")).items()):
        if shown(name):
            link = _link(net["interfaces"], name)
            if link:
                link["ctid"] = owners.get(name)
                interfaces.append(link)
    return {
        "net_bridges": host_bridges(host, user, shown),
        "net_routes": routes,
        "net_interfaces": interfaces,
        "net_updated_at": parse_datetime(net["updated_at"]) if isinstance(net.get("updated_at"), str) else None,
        "net_pools": pool_rows(services.pools_for(host)),
        "can_bridge": manages_hosts(user),
        "bridge_form": BridgeForm(),
    }


# -- the container's Network tab ----------------------------------------------------
def _ct_operation(request, ident, key: str, make_form, operation):
    """A Network tab form (`key` in the page's context) posted: `operation(ct, form) -> (task, done)`;
    bad input or a refusal shows the tab again with this form bound."""
    from containers.views import container_form

    def act(ct, form):
        task, done = operation(ct, form)
        messages.success(request, f"Task #{task.pk} queued: {done}.")
        return redirect(reverse("container-detail", args=[ct.ctid]) + "?tab=network")
    return container_form(request, ident, key, make_form, act, tab="network")


@login_required
@require_POST
def ct_ipadd(request, ident):
    def run(ct, form):
        pool = form.cleaned_data.get("pool") or None
        task = services.add_addresses(ct, request.user, form.cleaned_data["addresses"], pool=pool)
        return task, f"add {', '.join(task.params.get('venet_add', []))} to container {ct.ctid}"
    return _ct_operation(request, ident, "ipadd_form",
                         lambda ct: IPAddForm(request.POST, pools=services.pools_for(ct.host, ct, request.user)), run)


@login_required
@require_POST
def ct_ipdel(request, ident):
    def run(ct, form):
        address = form.cleaned_data["address"].strip()
        task = services.remove_addresses(ct, request.user, "all" if address == "all" else [address])
        return task, f"remove {', '.join(task.params.get('venet_del', []))} from container {ct.ctid}"
    return _ct_operation(request, ident, "ipdel_form", lambda ct: IPDelForm(request.POST), run)


@login_required
@require_POST
def ct_netif_add(request, ident):
    def run(ct, form):
        d = form.cleaned_data
        task = services.add_netif(ct, request.user, form.spec(), address=d.get("address").strip() or None,
                                  gateway=d.get("gateway").strip() or None)
        return task, f"add interface {d['ifname']} to container {ct.ctid}"
    return _ct_operation(request, ident, "netif_form", lambda ct: netif_form(ct, request.user, request.POST), run)


@login_required
@require_POST
def ct_netif_del(request, ident):
    def run(ct, form):
        ifname = form.cleaned_data["ifname"].strip()
        task = services.remove_netif(ct, request.user, ifname)
        return task, (f"remove all interfaces of container {ct.ctid}" if ifname == "all"
                      else f"remove interface {ifname} from container {ct.ctid}")
    return _ct_operation(request, ident, "netif_del_form", lambda ct: NetifDelForm(request.POST), run)


@login_required
@require_POST
def ct_dns(request, ident):
    def run(ct, form):
        d = form.cleaned_data
        task = services.set_dns(ct, request.user, nameservers=d["nameservers"], searchdomain=d["searchdomain"])
        return task, f"set the DNS of container {ct.ctid}"
    return _ct_operation(request, ident, "dns_form", lambda ct: DNSForm(request.POST), run)


# -- hosts --------------------------------------------------------------------------
@login_required
@require_POST
def host_bridge_create(request, name):
    from hosts.views import host_form

    def act(host, form):
        d = form.cleaned_data
        task = services.create_bridge(host, request.user, d["name"].strip(), d["address"].strip() or None)
        messages.success(request, f"Task #{task.pk} queued: create bridge {d['name'].strip()} on {host.name}.")
        return redirect(reverse("host-detail", args=[host.name]) + "#network")
    return host_form(request, name, "bridge_form", BridgeForm(request.POST), act)


# -- pools --------------------------------------------------------------------------
@login_required
@page_for(oversees_people, "IP pools")
def pool_list(request):
    return render(request, "network/pool_list.html", {
        "pools": pool_rows(visible_pools(request.user)), "can_edit": is_admin(request.user)})


def _pool_form(request, pool=None):
    if not is_admin(request.user):
        raise PermissionDenied("Only an administrator can define IP pools.")
    title = f"Pool {pool.name}" if pool else "New pool"  # before the form changes the instance

    def act(form):
        with transaction.atomic():
            saved = services.save_pool(request.user, form.save(commit=False), hosts=form.cleaned_data["hosts"],
                                       tenants=form.cleaned_data["tenants"])
        messages.success(request, f"Pool {saved.name} saved.")
        return redirect("pool-list")

    def page(form, status=200):
        return render(request, "network/pool_form.html", {"form": form, "pool": pool, "title": title}, status=status)
    form = PoolForm(request.POST or None, instance=pool)
    return form_response(request, form, act, page) if request.method == "POST" else page(form)


@login_required
def pool_create(request):
    return _pool_form(request)


@login_required
def pool_edit(request, pk):
    if not is_admin(request.user):
        raise PermissionDenied("Only an administrator can define IP pools.")
    pool = IPPool.objects.filter(pk=pk).first()
    if pool is None:
        raise Http404(f"No pool {pk}")
    return _pool_form(request, pool)
