"""The container list's filters, for the page and the API alike (one filterset, as NetBox has it)."""
from __future__ import annotations

import django_filters
from django.db.models import Q

from accounts.permissions import sees_infrastructure, visible_containers, visible_hosts, visible_tenants
from hosts.models import Host
from network.models import IPAddress
from panel.filters import PanelFilterSet, user_scoped
from panel.validators import is_ascii_number

from .choices import ContainerStatus
from .models import Container


def known_hosts(user):
    """Hosts a user may filter by: all for those who see the machines; for a tenant's people only the
    names already shown to them, those of hosts their own containers are on."""
    if sees_infrastructure(user):
        return visible_hosts(user)
    return Host.objects.filter(pk__in=visible_containers(user).values("host_id"))


class ContainerFilterSet(PanelFilterSet):
    """Search (CTID, hostname, name, description, an address or its beginning), status, host, tenant,
    OS template. Every choice is looked up among what the user may see."""

    status = django_filters.ChoiceFilter(choices=ContainerStatus.choices, empty_label="any status")
    host = django_filters.ModelChoiceFilter(queryset=user_scoped(known_hosts), to_field_name="name",
                                            empty_label="any host")
    tenant = django_filters.ModelChoiceFilter(queryset=user_scoped(visible_tenants), to_field_name="slug",
                                              empty_label="any tenant")
    ostemplate = django_filters.CharFilter(label="OS template", max_length=128)

    class Meta:
        model = Container
        fields = ["q", "status", "host", "tenant", "ostemplate"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.form.fields["q"].widget.attrs["placeholder"] = "CTID, hostname, name, address"

    def search_match(self, value):
        match = (Q(hostname__icontains=value) | Q(name__icontains=value) | Q(description__icontains=value)
                 | Q(pk__in=IPAddress.objects.filter(address__startswith=value).values("container_id")))
        if is_ascii_number(value):
            match |= Q(ctid=int(value))
        return match
