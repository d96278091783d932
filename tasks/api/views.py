from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.permissions import can_cancel_task, get_task_for_user, visible_tasks
from panel.lists import sort_choices
from panel.pagination import ctid_query_parameter
from panel.filters import SEARCH_MAX
from panel.schema import EMPTY_MEANS_ANY, text_filter
from tasks.choices import TaskStatus, TaskType
from tasks.tables import TaskTable
from tasks.services import TaskError, cancel_task

from .serializers import TaskDetailSerializer, TaskSerializer


class TaskViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Tasks the caller may see; the detail includes the log."""

    def get_queryset(self):
        if self.action != "list":
            return visible_tasks(self.request.user)
        # The page's filterset (tasks/filters.py) and sort (its table's columns).
        from panel.lists import filtered_for_api
        from tasks.filters import TaskFilterSet
        from tasks.tables import TaskTable
        from tasks.views import listed_tasks
        return filtered_for_api(self.request, TaskFilterSet, TaskTable, listed_tasks(self.request.user))

    @extend_schema(parameters=[OpenApiParameter("status", str, enum=TaskStatus.values,
                                               extensions=EMPTY_MEANS_ANY),
                               OpenApiParameter("type", str, enum=TaskType.values, extensions=EMPTY_MEANS_ANY),
                               text_filter("q", SEARCH_MAX, "search: a task number, a CTID, a user's name, an error"),
                               OpenApiParameter("sort", str, enum=sort_choices(TaskTable),
                                                description="a column; - before it for descending"),
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
