"""Snapshots over REST: /api/containers/<ctid or name>/snapshots/ (vzctl snapshot-list, snapshot),
.../snapshots/<name>/switch/ (snapshot-switch) and DELETE .../snapshots/<name>/ (snapshot-delete).
A container the caller may not see is 404; read-only callers get 403 on changes; a snapshot is
looked up within its container only."""
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.permissions import get_container_for_user
from containers.api.views import accepted, refused
from network.api.views import invalid
from storage import services
from tasks.api.serializers import TaskAcceptedSerializer
from tasks.services import TaskError

from .serializers import SnapshotCreateSerializer, SnapshotSerializer


@extend_schema(parameters=[OpenApiParameter("ctid", str, OpenApiParameter.PATH, description="CTID or name")])
class SnapshotViewSet(viewsets.ViewSet):
    serializer_class = SnapshotSerializer
    lookup_field = "name"
    lookup_value_regex = "[^/]+"

    def _container(self, request, ctid):
        return get_container_for_user(request.user, ctid, manage=request.method not in ("GET", "HEAD", "OPTIONS"))

    @extend_schema(responses=SnapshotSerializer(many=True))
    def list(self, request, ctid=None):
        ct = self._container(request, ctid)
        return Response(SnapshotSerializer(services.visible_snapshots(ct), many=True).data)

    @extend_schema(request=SnapshotCreateSerializer, responses={202: TaskAcceptedSerializer})
    def create(self, request, ctid=None):
        ct = self._container(request, ctid)
        ser = SnapshotCreateSerializer(data=request.data)
        if not ser.is_valid():
            return invalid(ser)
        try:
            task = services.take_snapshot(ct, request.user, ser.validated_data.get("name") or None,
                                          ser.validated_data.get("description", ""))
        except TaskError as exc:
            return refused(exc)
        return accepted(request, task)

    @extend_schema(request=None, responses={202: TaskAcceptedSerializer})
    def destroy(self, request, ctid=None, name=None):
        return self._on(request, ctid, name, services.delete_snapshot)

    @extend_schema(request=None, responses={202: TaskAcceptedSerializer},
                   description="vzctl snapshot-switch: roll the stopped container back to this snapshot.")
    @action(detail=True, methods=["post"])
    def switch(self, request, ctid=None, name=None):
        return self._on(request, ctid, name, services.switch_snapshot)

    def _on(self, request, ctid, name, func):
        ct = self._container(request, ctid)
        try:
            task = func(ct, request.user, name)
        except TaskError as exc:
            return refused(exc)
        return accepted(request, task)
