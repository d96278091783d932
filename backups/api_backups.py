"""Backups over REST: list, look at, annotate, protect, verify, restore, download, delete.
Long operations answer 202 with the task's URL; invisible backups 404; read-only users 403."""
import os

from django.core.exceptions import PermissionDenied
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import renderers, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from accounts.permissions import (creatable_tenants, get_backup_for_user, manageable_backups, manages_hosts,
                                  visible_backups)
from containers.api.views import accepted, refused
from hosts.models import Host
from panel.pagination import ctid_query_parameter
from panel.filters import SEARCH_MAX
from panel.schema import EMPTY_MEANS_ANY, text_filter
from panel.uploads import MAX_UPLOAD_BYTES, UploadRefused, stream_uploads_to_disk
from tasks.api.serializers import TaskAcceptedSerializer
from panel.fields import AsciiIntegerSerializerField
from tasks.services import TaskError
from tenancy.models import Tenant

from . import services
from .models import Backup
from .views import archive_response, upload_allowance


class BackupSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api-backup-detail")
    download_url = serializers.HyperlinkedIdentityField(view_name="api-backup-download")
    container = serializers.SlugRelatedField(slug_field="ctid", read_only=True, allow_null=True)
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    host = serializers.SlugRelatedField(slug_field="name", read_only=True)
    storage = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    task = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    job = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)

    class Meta:
        model = Backup
        fields = ["id", "url", "download_url", "ctid", "container", "tenant", "owner", "host", "storage",
                  "storage_path", "filename", "size", "sha256", "mode", "compress", "kind", "notes", "protected",
                  "created_at", "verified_at", "task", "job"]
        read_only_fields = fields


class BackupUpdateSerializer(serializers.Serializer):
    notes = serializers.CharField(max_length=200, required=False, allow_blank=True)
    protected = serializers.BooleanField(required=False)


class BackupDeleteSerializer(serializers.Serializer):
    confirm = serializers.CharField(required=False, help_text="the archive's file name, repeated to confirm")


class RestoreSerializer(serializers.Serializer):
    ctid = AsciiIntegerSerializerField(min_value=100, max_value=999_999_999)
    host = serializers.SlugRelatedField(slug_field="name", queryset=Host.objects.all(), required=False,
                                        allow_null=True, help_text="default: the backup's host")
    force = serializers.BooleanField(default=False, help_text="overwrite the existing, stopped container `ctid`")
    confirm = serializers.CharField(required=False, allow_blank=True, allow_null=True,
                                    help_text="with force: the CTID again")
    start = serializers.BooleanField(default=False)
    override_capacity = serializers.BooleanField(default=False, help_text="administrators only: restore even if "
                                                 "the host's promise policy has no room")


class ImportSerializer(serializers.Serializer):
    """An archive to import, as the Backups page's upload takes it (multipart/form-data)."""

    archive = serializers.FileField(help_text="vzdump-lxc|openvz-CTID-YYYY_MM_DD-HH_MM_SS.tar[.gz|.zst], OpenVZ's "
                                              ".tgz or vzdump-CTID.tar names; up to 64 GiB")
    host = serializers.SlugRelatedField(slug_field="name", queryset=Host.objects.none(),
                                        help_text="the host whose agent checks and keeps it")
    tenant = serializers.SlugRelatedField(slug_field="slug", queryset=Tenant.objects.none(), required=False,
                                          allow_null=True, help_text="whose backup space it counts against")

    def __init__(self, *args, user=None, **kwargs):
        from accounts.permissions import creatable_tenants, placeable_hosts
        super().__init__(*args, **kwargs)
        self.fields["host"].queryset = placeable_hosts(user)
        self.fields["tenant"].queryset = creatable_tenants(user)


class ArchiveRenderer(renderers.JSONRenderer):
    """Lets clients ask for the archive by its type; refusals still come out as JSON."""

    media_type = "application/octet-stream"
    format = "archive"


class BackupViewSet(viewsets.GenericViewSet):
    """Backups the caller may see."""

    serializer_class = BackupSerializer

    def get_queryset(self):
        qs = visible_backups(self.request.user).select_related("owner", "job", "task")
        if self.action != "list":
            return qs
        # The page's filterset and sort (backups/filters.py).
        from .filters import BackupFilterSet
        filterset = BackupFilterSet(self.request.query_params, qs, request=self.request)
        if not filterset.is_valid():
            raise ValidationError(filterset.errors)
        return filterset.qs

    def get_object(self):
        # Reading needs visibility (404); changing needs the right to manage (403 if only visible).
        backup = get_backup_for_user(self.request.user, self.kwargs["pk"])
        if self.request.method not in ("GET", "HEAD", "OPTIONS") or self.action == "download":
            if not manageable_backups(self.request.user).filter(pk=backup.pk).exists():
                raise PermissionDenied(f"You may look at backup {backup.filename} but not change it.")
        return backup

    def initialize_request(self, request, *args, **kwargs):
        drf_request = super().initialize_request(request, *args, **kwargs)
        if self.action == "import_archive":  # the archive streams into the uploads directory, never memory
            stream_uploads_to_disk(request, MAX_UPLOAD_BYTES, "The archive")
        return drf_request

    def finalize_response(self, request, response, *args, **kwargs):
        # A refusal of an archive download is JSON, and says so (not application/octet-stream).
        if response.status_code >= 400 and isinstance(getattr(request, "accepted_renderer", None), ArchiveRenderer):
            request.accepted_renderer, request.accepted_media_type = renderers.JSONRenderer(), "application/json"
        return super().finalize_response(request, response, *args, **kwargs)

    def _data(self, backup):
        return BackupSerializer(backup, context={"request": self.request}).data

    @extend_schema(parameters=[
        ctid_query_parameter(), text_filter("host", 64, "a host's name"),
        text_filter("q", SEARCH_MAX, "search: file name, notes, CTID"),
        OpenApiParameter("storage", {"type": "string", "pattern": "^(dump|[0-9]{1,10})$"},
                         description="a storage's number, or dump", extensions=EMPTY_MEANS_ANY),
        text_filter("tenant", 40, "a tenant's slug"),
        OpenApiParameter("sort", str, enum=[f"{s}{k}" for k in ("ctid", "host", "tenant", "size", "created", "verified")
                                            for s in ("", "-")], description="- before it for descending"),
    ])
    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(BackupSerializer(page, many=True, context={"request": request}).data)

    def retrieve(self, request, pk=None):
        return Response(self._data(self.get_object()))

    @extend_schema(request=BackupUpdateSerializer, responses={200: BackupSerializer})
    def partial_update(self, request, pk=None):
        backup = self.get_object()
        ser = BackupUpdateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        try:
            services.update_backup(backup, request.user, **ser.validated_data)
        except TaskError as exc:
            return refused(exc)
        return Response(self._data(backup))

    @extend_schema(request=BackupDeleteSerializer, responses={202: TaskAcceptedSerializer},
                   parameters=[OpenApiParameter("confirm", str, description="the file name again")])
    def destroy(self, request, pk=None):
        backup = self.get_object()
        confirm = request.data.get("confirm") if hasattr(request.data, "get") else None
        confirm = confirm or request.query_params.get("confirm")
        try:
            task = services.delete_backup(backup, request.user, confirm=confirm)
        except TaskError as exc:
            return refused(exc)
        return accepted(request, task)

    @extend_schema(request=None, responses={202: TaskAcceptedSerializer})
    @action(detail=True, methods=["post"])
    def verify(self, request, pk=None):
        backup = self.get_object()
        try:
            task = services.verify_backup(backup, request.user)
        except TaskError as exc:
            return refused(exc)
        return accepted(request, task)

    @extend_schema(request=RestoreSerializer, responses={202: TaskAcceptedSerializer})
    @action(detail=True, methods=["post"])
    def restore(self, request, pk=None):
        backup = self.get_object()
        ser = RestoreSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        try:
            task = services.restore_backup(backup, request.user, ctid=d["ctid"], host=d.get("host"),
                                           force=d["force"], confirm=d.get("confirm"), start=d["start"],
                                           override_capacity=d["override_capacity"])
        except TaskError as exc:
            return refused(exc)
        return accepted(request, task)

    @extend_schema(request={"multipart/form-data": ImportSerializer}, responses={202: TaskAcceptedSerializer})
    @action(detail=False, methods=["post"], url_path="import", parser_classes=[MultiPartParser])
    def import_archive(self, request):
        """Import an uploaded archive (ours or OpenVZ's), as the Backups page's upload does: the
        host's agent checks it, reads its configuration and lists it as a backup."""
        if not (manages_hosts(request.user) or creatable_tenants(request.user).exists()):
            raise PermissionDenied("You may not import archives.")
        if getattr(request, "upload_refused", None):  # past 64 GiB: the stream was stopped and removed
            return Response({"detail": request.upload_refused}, status=413)
        ser = ImportSerializer(data=request.data, user=request.user)
        ser.is_valid(raise_exception=True)
        upload = ser.validated_data["archive"]
        if upload.size > upload_allowance(request.user):
            return Response({"detail": "The archive is larger than the backup space you have left."}, status=413)
        try:
            task = services.import_upload(request.user, ser.validated_data["host"], upload,
                                          os.path.basename(upload.name or ""), tenant=ser.validated_data.get("tenant"))
        except TaskError as exc:
            return refused(exc)
        except UploadRefused as exc:
            return Response({"detail": str(exc)}, status=409)
        return accepted(request, task)

    @extend_schema(responses={(200, "application/*"): bytes})  # zstd, gzip or tar, by the archive
    @action(detail=True, methods=["get"], renderer_classes=[renderers.JSONRenderer, ArchiveRenderer])
    def download(self, request, pk=None):
        return archive_response(self.get_object())
