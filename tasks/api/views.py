from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.permissions import can_cancel_task, get_task_for_user, visible_tasks
from panel.validators import is_ascii_number
from tasks.services import TaskError, cancel_task

from .serializers import TaskDetailSerializer, TaskSerializer


class TaskViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Tasks the caller may see; the detail includes the log."""

    def get_queryset(self):
        qs = visible_tasks(self.request.user)
        if self.request.query_params.get("status"):
            qs = qs.filter(status=self.request.query_params["status"])
        if is_ascii_number(self.request.query_params.get("ctid", "")):
            qs = qs.filter(ctid=int(self.request.query_params["ctid"]))
        return qs

    def get_object(self):
        return get_task_for_user(self.request.user, self.kwargs["pk"])

    def get_serializer_class(self):
        return TaskSerializer if self.action == "list" else TaskDetailSerializer

    @extend_schema(request=None, responses=TaskDetailSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        task = self.get_object()
        if not can_cancel_task(request.user, task):
            return Response({"detail": f"You may not cancel task #{task.pk}."}, status=status.HTTP_403_FORBIDDEN)
        try:
            cancel_task(task, request.user)
        except TaskError as exc:
            return Response({"detail": str(exc)}, status=exc.http_status)
        return Response(TaskDetailSerializer(task, context={"request": request}).data)
