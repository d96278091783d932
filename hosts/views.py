"""Host pages and the OS template catalogue."""
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import Http404
from django.shortcuts import render

from accounts.permissions import visible_containers, visible_hosts
from containers.models import OSTemplate


@login_required
def host_list(request):
    hosts = visible_hosts(request.user).annotate(container_count=Count("containers"))
    return render(request, "hosts/list.html", {"hosts": hosts})


@login_required
def host_detail(request, name):
    host = visible_hosts(request.user).filter(name=name).first()
    if host is None:
        raise Http404(f"No host {name}")
    from network.views import host_network
    return render(request, "hosts/detail.html", {
        "host": host,
        "containers": visible_containers(request.user).filter(host=host),
        "templates": host.templates.all(),
        **host_network(host, request.user),
    })


@login_required
def template_list(request):
    templates = OSTemplate.objects.filter(host__in=visible_hosts(request.user)).select_related("host")
    return render(request, "hosts/templates.html", {"templates": templates})
