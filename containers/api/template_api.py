"""/api/templates/: the catalogue (GET, as before) and, for administrators and operators, build,
download, copy and delete. Each answers 202 with the task's URL; a refusal answers {"detail": ...}
with the service's status, and nothing changes."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.permissions import manages_hosts, visible_hosts
from containers import ostemplates
from tasks.api.serializers import TaskAcceptedSerializer
from tasks.services import TaskError

from .serializers import TemplateSerializer
from .views import TemplateViewSet, accepted, refused

FORBIDDEN = "Only administrators and operators change the OS template catalogue."


class TemplateDetailSerializer(TemplateSerializer):
    class Meta(TemplateSerializer.Meta):
        fields = TemplateSerializer.Meta.fields + ["distribution", "version", "architecture", "source"]
        read_only_fields = fields


class TemplateBuildSerializer(serializers.Serializer):
    host = serializers.CharField(required=False, max_length=64)
    distribution = serializers.CharField(default="debian", max_length=40)
    release = serializers.CharField(default="bookworm", max_length=40)
    architecture = serializers.CharField(default="amd64", max_length=32)
    mirror = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=300)
    name = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=128)


class TemplateDownloadSerializer(serializers.Serializer):
    """Either `url` (with an optional `sha256`) or `index_url` with the image's coordinates."""
    host = serializers.CharField(required=False, max_length=64)
    url = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    sha256 = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=64)
    index_url = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    distribution = serializers.CharField(required=False, max_length=40)
    release = serializers.CharField(required=False, max_length=40)
    architecture = serializers.CharField(default="amd64", max_length=32)
    variant = serializers.CharField(default="default", max_length=40)
    name = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=128)

    def validate(self, data):
        if bool(data.get("url")) == bool(data.get("index_url")):
            raise serializers.ValidationError("Give either url (a tarball) or index_url (an image server).")
        if data.get("index_url"):
            missing = [f for f in ("distribution", "release") if not data.get(f)]
            if missing:
                raise serializers.ValidationError({f: ["This field is required with index_url."] for f in missing})
        return data


class TemplateCopySerializer(serializers.Serializer):
    host = serializers.CharField(max_length=64)


class TemplateAdminViewSet(TemplateViewSet):
    """OS templates of the visible hosts; changes for administrators and operators only (403 otherwise)."""

    serializer_class = TemplateDetailSerializer

    def _forbidden(self):
        return None if manages_hosts(self.request.user) else Response({"detail": FORBIDDEN}, status=403)

    def _host(self, name):
        """(host, None) or (None, a 400 response)."""
        hosts = visible_hosts(self.request.user)
        if not name:
            if hosts.count() == 1:
                return hosts.first(), None
            return None, Response({"host": ["Name the host."]}, status=400)
        host = hosts.filter(name=name).first()
        if host is None:
            return None, Response({"host": [f"No host {name!r}."]}, status=400)
        return host, None

    def _on_host(self, request, serializer_class, operation):
        """Guard, validate, find the named host, run `operation(host, data)`: 202 or the refusal."""
        if (denied := self._forbidden()) is not None:
            return denied
        ser = serializer_class(data=request.data)
        ser.is_valid(raise_exception=True)
        data = ser.validated_data
        host, error = self._host(data.get("host"))
        if error is not None:
            return error
        try:
            task = operation(host, data)
        except TaskError as exc:
            return refused(exc)
        return accepted(request, task)

    @extend_schema(request=TemplateBuildSerializer, responses={202: TaskAcceptedSerializer})
    @action(detail=False, methods=["post"])
    def build(self, request):
        return self._on_host(request, TemplateBuildSerializer, lambda host, data: ostemplates.build_template(
            request.user, host, distribution=data["distribution"], release=data["release"],
            architecture=data["architecture"], mirror=data.get("mirror") or None, name=data.get("name") or None))

    @extend_schema(request=TemplateDownloadSerializer, responses={202: TaskAcceptedSerializer})
    @action(detail=False, methods=["post"])
    def download(self, request):
        def operation(host, data):
            if data.get("url"):
                return ostemplates.download_template(request.user, host, url=data["url"],
                                                     sha256=data.get("sha256") or None, name=data.get("name") or None)
            return ostemplates.download_from_index(
                request.user, host, index_url=data["index_url"], distribution=data["distribution"],
                release=data["release"], architecture=data["architecture"], variant=data["variant"],
                name=data.get("name") or None)
        return self._on_host(request, TemplateDownloadSerializer, operation)

    @extend_schema(request=TemplateCopySerializer, responses={202: TaskAcceptedSerializer})
    @action(detail=True, methods=["post"])
    def copy(self, request, pk=None):
        template = self.get_object()
        if (denied := self._forbidden()) is not None:
            return denied
        ser = TemplateCopySerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        target = visible_hosts(request.user).filter(name=ser.validated_data["host"]).first()
        if target is None:
            return Response({"host": [f"No host {ser.validated_data['host']!r}."]}, status=400)
        try:
            task = ostemplates.copy_template(request.user, template, target)
        except TaskError as exc:
            return refused(exc)
        return accepted(request, task)

    @extend_schema(request=None, responses={202: TaskAcceptedSerializer})
    def destroy(self, request, pk=None):
        template = self.get_object()
        if (denied := self._forbidden()) is not None:
            return denied
        try:
            task = ostemplates.delete_template(request.user, template)
        except TaskError as exc:
            return refused(exc)
        return accepted(request, task)
