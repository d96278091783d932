"""Forms of the Network tab, the host's bridges and the IP pools.

They only parse what was typed; network.services decides what is allowed."""
from __future__ import annotations

import re

from django import forms

from hosts.models import Host
from panel import validators
from tenancy.models import Tenant

from .models import IPPool

_SEPARATORS = re.compile(r"[\s,]+")


def split_words(text: str) -> list[str]:
    """'a b, c' -> ['a', 'b', 'c']."""
    return [w for w in _SEPARATORS.split(text or "") if w]


class IPAddForm(forms.Form):
    addresses = forms.CharField(max_length=2000, label="Addresses",
                                help_text="auto, or addresses separated by spaces")
    pool = forms.ChoiceField(required=False, label="Pool", help_text="for auto; none: the first pool of this host")

    def __init__(self, *args, pools=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["pool"].choices = [("", "(any pool)")] + [(p.name, f"{p.name} ({p.network})") for p in pools]

    def clean_addresses(self):
        words = split_words(self.cleaned_data["addresses"])
        if not words:
            raise forms.ValidationError("Give auto or at least one address.")
        return ["auto" if w.lower() == "auto" else w for w in words]


class IPDelForm(forms.Form):
    address = forms.CharField(max_length=64, help_text="an address of the container, or all")


class NetifAddForm(forms.Form):
    ifname = forms.CharField(max_length=15, initial="eth0", label="Name inside")
    mac = forms.CharField(max_length=17, required=False, label="MAC", help_text="empty: a stable one")
    host_ifname = forms.CharField(max_length=15, required=False, label="Host name",
                                  help_text="empty: veth<CTID>.<N>")
    host_mac = forms.CharField(max_length=17, required=False, label="Host MAC")
    bridge = forms.ChoiceField(label="Bridge")
    address = forms.CharField(max_length=64, required=False, label="Address",
                              help_text="CIDR such as 203.0.113.5/24, or auto")
    gateway = forms.CharField(max_length=64, required=False, label="Gateway")

    def __init__(self, *args, bridges=(), default_bridge="", host_side=True, **kwargs):
        """`bridges`: those offered; `host_side`: whether the host-side name and MAC may be chosen
        (network.services.configures_host_network), else the panel derives them and they are not asked."""
        super().__init__(*args, **kwargs)
        names = list(dict.fromkeys([*(b for b in bridges if b), *([default_bridge] if default_bridge else [])]))
        self.fields["bridge"].choices = [(n, n) for n in names]
        if default_bridge:
            self.fields["bridge"].initial = default_bridge
        if not host_side:
            del self.fields["host_ifname"], self.fields["host_mac"]

    def clean(self):
        data = super().clean()
        for key in ("ifname", "mac", "host_ifname", "host_mac", "bridge"):
            if "," in (data.get(key) or ""):
                self.add_error(key, "No commas here.")
        return data

    def spec(self) -> str:
        d = self.cleaned_data
        return ",".join(d.get(k, "").strip() for k in ("ifname", "mac", "host_ifname", "host_mac", "bridge"))


class NetifDelForm(forms.Form):
    ifname = forms.CharField(max_length=15)


class DNSForm(forms.Form):
    nameservers = forms.CharField(max_length=500, required=False, label="Nameservers",
                                  help_text="up to 3, separated by spaces; empty: none")
    searchdomain = forms.CharField(max_length=253, required=False, label="Search domain",
                                   help_text="domains separated by spaces; empty: none")

    def clean_nameservers(self):
        return split_words(self.cleaned_data["nameservers"])


class BridgeForm(forms.Form):
    name = forms.CharField(max_length=15, label="Bridge name")
    address = forms.CharField(max_length=64, required=False, label="Address",
                              help_text="optional, CIDR such as 10.0.0.1/24")


class PoolForm(forms.ModelForm):
    """The model's clean() checks network, gateway and ranges; its errors land on those fields."""

    hosts = forms.ModelMultipleChoiceField(queryset=Host.objects.all(), required=False,
                                           help_text="hosts that may use it; none selected: all")
    tenants = forms.ModelMultipleChoiceField(queryset=Tenant.objects.all(), required=False,
                                             help_text="tenants whose members may take addresses from it")

    # Not the model's GenericIPAddressField: Django's drops an IPv6 scope id ("%eth0", newline and all).
    gateway = forms.CharField(max_length=64, required=False, help_text="for bridged (veth) interfaces")

    def clean_gateway(self):
        text = self.cleaned_data["gateway"]
        return str(validators.parse_ip(text, "a gateway address")) if text else None

    class Meta:
        model = IPPool
        fields = ["name", "network", "gateway", "ranges", "hosts", "tenants", "shared", "description"]
