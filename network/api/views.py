"""Network over REST: a container's addresses, interfaces and DNS; IP pools; a host's bridges.

Changes answer 202 with the task's URL (containers.api.views.accepted); refusals answer
{"detail": message} with the TaskError's status. Containers the caller may not see are 404,
read-only callers get 403 on changes."""
from django.db import transaction
from django.db.models import Count
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.decorators import api_page_for
from accounts.permissions import (get_container_for_user, get_tenant_for_user, is_admin, manages_hosts, oversees_people,
                                  sees_everything, visible_hosts, visible_pools, visible_tenants)
from containers.api.views import accepted, refused
from network import services
from network.models import IPPool
from network.views import container_network, host_bridges
from tasks.api.serializers import TaskAcceptedSerializer
from tasks.services import TaskError

from .serializers import (BridgeGrantSerializer, BridgeSerializer, ContainerNetworkSerializer, DNSSerializer,
                          HostBridgesSerializer, IPAddSerializer, IPDelSerializer, NetifAddSerializer,
                          NetifDelSerializer, PoolSerializer, TenantBridgesSerializer)


def invalid(ser):
    """A malformed request: 400 with one readable message and the field errors."""
    text = " ".join(f"{'' if k == 'non_field_errors' else k}: {' '.join(map(str, v)) if isinstance(v, list) else v}"
                    .lstrip(": ") for k, v in ser.errors.items())
    return Response({"detail": text, "errors": ser.errors}, status=status.HTTP_400_BAD_REQUEST)


def forbidden(message: str):
    return Response({"detail": message}, status=status.HTTP_403_FORBIDDEN)


@extend_schema(parameters=[OpenApiParameter("ctid", str, OpenApiParameter.PATH, description="CTID or name")])
class ContainerNetworkViewSet(viewsets.ViewSet):
    """/api/containers/<ctid or name>/network/: what the container has, and vzctl set's network options."""

    serializer_class = ContainerNetworkSerializer

    def _container(self, request, ctid):
        # Reading needs visibility (404 otherwise); changing needs the right to manage (403 if read-only).
        return get_container_for_user(request.user, ctid, manage=request.method not in ("GET", "HEAD", "OPTIONS"))

    @extend_schema(responses=ContainerNetworkSerializer)
    def list(self, request, ctid=None):
        ct = self._container(request, ctid)
        ctx = container_network(ct, request.user, can_manage=False)
        data = {"ctid": ct.ctid, "addresses": ctx["net_venet"], "venet_link": ctx["net_venet_link"],
                "netifs": ctx["net_netifs"], "nameservers": ct.nameservers or [], "searchdomain": ct.searchdomain,
                "updated_at": ctx["net_updated_at"]}
        return Response(ContainerNetworkSerializer(data, context={"request": request}).data)

    def _run(self, request, ctid, serializer_class, func):
        ct = self._container(request, ctid)
        ser = serializer_class(data=request.data)
        if not ser.is_valid():
            return invalid(ser)
        try:
            task = func(ct, ser.validated_data)
        except TaskError as exc:
            return refused(exc)
        return accepted(request, task)

    @extend_schema(request=IPAddSerializer, responses={202: TaskAcceptedSerializer})
    @action(detail=False, methods=["post"])
    def ipadd(self, request, ctid=None):
        return self._run(request, ctid, IPAddSerializer, lambda ct, d: services.add_addresses(
            ct, request.user, [a.strip() for a in d["addresses"]], pool=d.get("pool") or None))

    @extend_schema(request=IPDelSerializer, responses={202: TaskAcceptedSerializer})
    @action(detail=False, methods=["post"])
    def ipdel(self, request, ctid=None):
        return self._run(request, ctid, IPDelSerializer, lambda ct, d: services.remove_addresses(
            ct, request.user, d["addresses"]))

    @extend_schema(request=NetifAddSerializer, responses={202: TaskAcceptedSerializer})
    @action(detail=False, methods=["post"], url_path="netif_add")
    def netif_add(self, request, ctid=None):
        return self._run(request, ctid, NetifAddSerializer, lambda ct, d: services.add_netif(
            ct, request.user, d["spec"], address=(d.get("address") or "").strip() or None,
            gateway=(d.get("gateway") or "").strip() or None))

    @extend_schema(request=NetifDelSerializer, responses={202: TaskAcceptedSerializer})
    @action(detail=False, methods=["post"], url_path="netif_del")
    def netif_del(self, request, ctid=None):
        return self._run(request, ctid, NetifDelSerializer, lambda ct, d: services.remove_netif(
            ct, request.user, d["ifname"].strip()))

    @extend_schema(request=DNSSerializer, responses={202: TaskAcceptedSerializer})
    @action(detail=False, methods=["post"])
    def dns(self, request, ctid=None):
        return self._run(request, ctid, DNSSerializer, lambda ct, d: services.set_dns(
            ct, request.user, nameservers=d.get("nameservers"), searchdomain=d.get("searchdomain")))


class PoolViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """IP pools: the global roles see all, tenant admins their tenants' and the shared ones;
    administrators define them."""

    serializer_class = PoolSerializer
    permission_classes = [api_page_for(oversees_people, "IP pools")]

    def get_queryset(self):
        return (visible_pools(self.request.user).annotate(used=Count("addresses", distinct=True))
                .prefetch_related("hosts", "tenants"))

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if not sees_everything(self.request.user):
            context["visible_tenant_slugs"] = set(visible_tenants(self.request.user).values_list("slug", flat=True))
        return context

    @extend_schema(request=PoolSerializer, responses={201: PoolSerializer})
    def create(self, request):
        if not is_admin(request.user):
            return forbidden("Only an administrator can define IP pools.")
        ser = PoolSerializer(data=request.data)
        if not ser.is_valid():
            return invalid(ser)
        data = dict(ser.validated_data)
        hosts, tenants = data.pop("hosts", None), data.pop("tenants", None)
        try:
            with transaction.atomic():
                pool = services.save_pool(request.user, IPPool(**data), hosts=hosts, tenants=tenants)
        except TaskError as exc:
            return refused(exc)
        return Response(PoolSerializer(self.get_queryset().get(pk=pool.pk)).data, status=status.HTTP_201_CREATED)


@extend_schema(parameters=[OpenApiParameter("name", str, OpenApiParameter.PATH, description="host name")])
class HostBridgeViewSet(viewsets.ViewSet):
    """/api/hosts/<name>/bridges/: the bridges the host's agent reported; administrators and operators add some."""

    serializer_class = BridgeSerializer

    def _host(self, request, name):
        host = visible_hosts(request.user).filter(name=name).first()
        if host is None:
            raise Http404(f"No host {name}")
        return host

    @extend_schema(responses=HostBridgesSerializer)
    def list(self, request, name=None):
        host = self._host(request, name)
        return Response({"host": host.name, "default_bridge": host.default_bridge,
                         "updated_at": (host.network or {}).get("updated_at"),
                         "bridges": host_bridges(host, request.user)})

    @extend_schema(request=BridgeSerializer, responses={202: TaskAcceptedSerializer})
    def create(self, request, name=None):
        host = self._host(request, name)
        if not manages_hosts(request.user):
            return forbidden("Only administrators and operators manage bridges.")
        ser = BridgeSerializer(data=request.data)
        if not ser.is_valid():
            return invalid(ser)
        try:
            task = services.create_bridge(host, request.user, ser.validated_data["name"].strip(),
                                          (ser.validated_data.get("address") or "").strip() or None)
        except TaskError as exc:
            return refused(exc)
        return accepted(request, task)


@extend_schema(parameters=[OpenApiParameter("slug", str, OpenApiParameter.PATH, description="tenant slug")])
class TenantBridgeViewSet(viewsets.ViewSet):
    """/api/tenants/<slug>/bridges/: the bridges a tenant's members may use besides each host's default
    bridge. Whoever sees the tenant may read them; a POST of {"bridges": [...]} (administrators) sets them."""

    serializer_class = BridgeGrantSerializer

    @extend_schema(responses=TenantBridgesSerializer)
    def list(self, request, slug=None):
        tenant = get_tenant_for_user(request.user, slug)
        return Response({"tenant": tenant.slug, "bridges": services.granted_bridges(tenant)})

    @extend_schema(request=BridgeGrantSerializer, responses={200: TenantBridgesSerializer})
    def create(self, request, slug=None):
        tenant = get_tenant_for_user(request.user, slug)
        ser = BridgeGrantSerializer(data=request.data)
        if not ser.is_valid():
            return invalid(ser)
        try:
            names = services.set_bridge_grants(request.user, tenant, ser.validated_data["bridges"])
        except TaskError as exc:
            return refused(exc)
        return Response({"tenant": tenant.slug, "bridges": names})
