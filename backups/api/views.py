"""Backup jobs over REST (/api/backup-jobs/), scoped by accounts.permissions: a job the caller may
not see answers 404; one they may see but not change, 403."""
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from accounts.permissions import visible_backup_jobs
from backups import jobs_service as jobs
from tasks.services import TaskError

from .serializers import BackupJobSerializer, BackupJobWriteSerializer, BackupRunSerializer


def refused(exc: TaskError):
    field = getattr(exc, "field", None)
    body = {field: [str(exc)]} if field else {"detail": str(exc)}
    return Response(body, status=exc.http_status)


class BackupJobViewSet(viewsets.GenericViewSet):
    """Backup jobs the caller may see. Admins make global jobs and any tenant's; tenant admins their
    tenants' jobs; members and auditors only look."""

    serializer_class = BackupJobSerializer

    def get_queryset(self):
        return visible_backup_jobs(self.request.user).prefetch_related("containers", "excluded")

    def get_object(self):
        return jobs.get_job_for_user(self.request.user, self.kwargs["pk"],
                                     manage=self.request.method not in ("GET", "HEAD", "OPTIONS"))

    def _out(self, job, code=status.HTTP_200_OK):
        return Response(BackupJobSerializer(job, context={"request": self.request}).data, status=code)

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(BackupJobSerializer(page, many=True, context={"request": request}).data)

    def retrieve(self, request, pk=None):
        return self._out(self.get_object())

    @extend_schema(request=BackupJobWriteSerializer, responses={201: BackupJobSerializer})
    def create(self, request):
        if not jobs.may_create_jobs(request.user):
            raise PermissionDenied("Only administrators and tenant administrators make backup jobs.")
        ser = BackupJobWriteSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        try:
            job = jobs.create_job(request.user, **ser.to_fields())
        except TaskError as exc:
            return refused(exc)
        return self._out(job, status.HTTP_201_CREATED)

    def _update(self, request, partial):
        job = self.get_object()
        ser = BackupJobWriteSerializer(data=request.data, partial=partial)
        ser.is_valid(raise_exception=True)
        try:
            job = jobs.update_job(job, request.user, **ser.to_fields())
        except TaskError as exc:
            return refused(exc)
        return self._out(job)

    @extend_schema(request=BackupJobWriteSerializer, responses={200: BackupJobSerializer})
    def update(self, request, pk=None):
        return self._update(request, partial=False)

    @extend_schema(request=BackupJobWriteSerializer, responses={200: BackupJobSerializer})
    def partial_update(self, request, pk=None):
        return self._update(request, partial=True)

    def destroy(self, request, pk=None):
        job = self.get_object()
        try:
            jobs.delete_job(job, request.user)
        except TaskError as exc:
            return refused(exc)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={202: BackupRunSerializer})
    @action(detail=True, methods=["post"], url_path="run-now")
    def run_now(self, request, pk=None):
        job = self.get_object()
        try:
            run = jobs.run_now(job, request.user)
        except TaskError as exc:
            return refused(exc)
        return Response(BackupRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={200: BackupRunSerializer(many=True)})
    @action(detail=True, methods=["get"], pagination_class=None)  # the last 50, not paged
    def runs(self, request, pk=None):
        job = self.get_object()
        return Response(BackupRunSerializer(job.runs.all()[:50], many=True).data)
