"""Hosts over the API: everyone signed in sees them; administrators and operators drain and
evacuate; administrators add, remove and handle tokens (403 for the rest)."""
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import PermissionDenied
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.permissions import sees_infrastructure, visible_hosts
from containers.api.views import accepted, refused
from hosts import services
from tasks.api.serializers import TaskAcceptedSerializer
from tasks.services import TaskError

from .serializers import (DrainSerializer, EvacuateSerializer, HostCreateSerializer, HostSerializer,
                          PromiseSerializer, RemoveSerializer, SshSerializer)


class HostViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = HostSerializer
    lookup_field = "name"

    def get_queryset(self):
        return visible_hosts(self.request.user)

    def list(self, request, *args, **kwargs):
        if not sees_infrastructure(request.user):  # a page that is not part of the role (a host: 404)
            raise PermissionDenied("Hosts are not part of your role.")
        return super().list(request, *args, **kwargs)

    def _call(self, request, serializer_class, func):
        data = {}
        if serializer_class is not None:
            ser = serializer_class(data=request.data)
            ser.is_valid(raise_exception=True)
            data = ser.validated_data
        try:
            return func(data)
        except TaskError as exc:
            return refused(exc)

    def _host_response(self, host, code=status.HTTP_200_OK, **extra):
        host.refresh_from_db()
        return Response({**HostSerializer(host).data, **extra}, status=code)

    @extend_schema(request=HostCreateSerializer, responses={201: HostSerializer})
    def create(self, request):
        def add(d):
            host, token = services.add_host(request.user, **d)
            return self._host_response(host, status.HTTP_201_CREATED, token=token)
        return self._call(request, HostCreateSerializer, add)

    @extend_schema(request=DrainSerializer, responses={200: HostSerializer})
    @action(detail=True, methods=["post"])
    def drain(self, request, name=None):
        host = self.get_object()
        return self._call(request, DrainSerializer,
                          lambda d: self._host_response(services.drain_host(request.user, host, d["reason"])))

    @extend_schema(request=None, responses={200: HostSerializer})
    @action(detail=True, methods=["post"])
    def undrain(self, request, name=None):
        host = self.get_object()
        return self._call(request, None, lambda d: self._host_response(services.undrain_host(request.user, host)))

    @extend_schema(request=EvacuateSerializer, responses={202: TaskAcceptedSerializer})
    @action(detail=True, methods=["post"])
    def evacuate(self, request, name=None):
        host = self.get_object()
        return self._call(request, EvacuateSerializer,
                          lambda d: accepted(request, services.evacuate_host(request.user, host, online=d["online"])))

    @extend_schema(request=None, responses={200: HostSerializer})
    @action(detail=True, methods=["post"])
    def token(self, request, name=None):
        """A new agent token, returned once as `token`; the old one stops working."""
        host = self.get_object()
        return self._call(request, None, lambda d: self._host_response(
            host, token=services.issue_token(request.user, host)))

    @extend_schema(request=None, responses={200: HostSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request, name=None):
        host = self.get_object()

        def revoke(d):
            services.revoke_token(request.user, host)
            return self._host_response(host)
        return self._call(request, None, revoke)

    @extend_schema(request=SshSerializer, responses={200: HostSerializer})
    @action(detail=True, methods=["post"])
    def ssh(self, request, name=None):
        host = self.get_object()
        return self._call(request, SshSerializer, lambda d: self._host_response(
            services.set_ssh(request.user, host, d["ssh_address"], repin=d["repin"])))

    @extend_schema(request=PromiseSerializer, responses={200: HostSerializer})
    @action(detail=True, methods=["post"])
    def promise(self, request, name=None):
        """The host's promise policy: RAM, CPU (null: not a limit) and disk, as multiples of what it has."""
        host = self.get_object()
        return self._call(request, PromiseSerializer, lambda d: self._host_response(
            services.set_promise(request.user, host, **d)))

    @extend_schema(request=RemoveSerializer, responses={204: None})
    @action(detail=True, methods=["post"])
    def remove(self, request, name=None):
        host = self.get_object()

        def remove(d):
            services.remove_host(request.user, host, confirm=d["confirm"])
            return Response(status=status.HTTP_204_NO_CONTENT)
        return self._call(request, RemoveSerializer, remove)
