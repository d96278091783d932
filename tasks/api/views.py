from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.permissions import can_cancel_task, get_task_for_user, visible_tasks
from containers.validators import CTID_MAX
from panel.pagination import checked_query_choice, checked_query_number, ctid_query_parameter
from panel.schema import EMPTY_MEANS_ANY
from tasks.choices import TaskStatus
from tasks.services import TaskError, cancel_task

from .serializers import TaskDetailSerializer, TaskSerializer


class TaskViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Tasks the caller may see; the detail includes the log."""

    def get_queryset(self):
        qs = visible_tasks(self.request.user)
        if self.action != "list":
            return qs
        if status_filter := checked_query_choice(self.request, "status", TaskStatus.values):
            qs = qs.filter(status=status_filter)
        if (ctid := checked_query_number(self.request, "ctid", 0, CTID_MAX)) is not None:
            qs = qs.filter(ctid=ctid)
        return qs

    @extend_schema(parameters=[OpenApiParameter("status", str, enum=TaskStatus.values,
                                               extensions=EMPTY_MEANS_ANY),
                               ctid_query_parameter()])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

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
