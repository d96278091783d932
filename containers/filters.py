"""The container list's filters, for the page and the API alike (one filterset, as NetBox has it)."""
from __future__ import annotations

import django_filters
from django.db.models import Q

from accounts.permissions import sees_infrastructure, visible_containers, visible_hosts
from hosts.models import Host
from network.models import IPAddress
from panel.filters import PanelFilterSet
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
    OS template, all within the containers the user may see."""

    status = django_filters.ChoiceFilter(choices=ContainerStatus.choices, empty_label="any status")
    # Names narrow the user's own containers only: another tenant's slug, or a host none of theirs is
    # on, finds nothing, exactly as a name that does not exist. The page offers known_hosts and
    # visible_tenants as choices.
    host = django_filters.CharFilter(field_name="host__name", max_length=64)
    tenant = django_filters.CharFilter(field_name="tenant__slug", max_length=40)
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
