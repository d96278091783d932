"""Containers over REST. Long operations answer 202 with the task's URL."""
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.reverse import reverse

from accounts.decorators import api_page_for
from accounts.permissions import get_container_for_user, placeable_hosts, sees_templates, visible_containers
from containers import services
from containers.choices import ContainerStatus
from containers.models import OSTemplate
from panel.filters import SEARCH_MAX
from panel.schema import EMPTY_MEANS_ANY, text_filter
from tasks.api.serializers import TaskAcceptedSerializer, TaskSerializer
from tasks.services import TaskError, wait_for_end

from backups.services import backup_container

from .serializers import (BackupRequestSerializer, ContainerCreateSerializer, ContainerSerializer,
                          ContainerUpdateSerializer, DestroySerializer, ExecSerializer, PasswordSerializer,
                          MigrateSerializer, SSHKeySerializer, TemplateSerializer)

LIMIT_KEYS = ("ram_mb", "swap_mb", "cpus", "disk_mb")


def _sorts() -> list[str]:
    from containers.tables import ContainerTable
    from panel.lists import sort_choices
    return sort_choices(ContainerTable)


SORTS = _sorts()


def accepted(request, task, answer_status=status.HTTP_202_ACCEPTED):
    url = reverse("api-task-detail", args=[task.pk], request=request)
    data = TaskSerializer(task, context={"request": request}).data
    return Response({"task": data, "task_url": url}, status=answer_status, headers={"Location": url})


def refused(exc: TaskError):
    return Response({"detail": str(exc)}, status=exc.http_status)


# The list reads plain values, not model instances: at 100 rows a page, building Container, Host,
# Tenant, User and Plan objects and passing each through the serializer's fields took 40x the time
# of the SQL (bench/bench_lists.py). list_rows gives exactly what ContainerSerializer gives
# (tests/test_lists.py compares them field by field), so the list and a container's own page agree.
RELATED = {"host": "host__name", "owner": "owner__username", "tenant": "tenant__slug", "plan": "plan__name",
           "locked_by_task": "lock_task_id", "storage": "storage__name"}
COMPUTED = ("url", "ip")
DATETIMES = ("expires_at", "status_changed_at", "created_at", "updated_at")


def list_values(queryset):
    plain = [f for f in ContainerSerializer.Meta.fields if f not in RELATED and f not in COMPUTED]
    return queryset.prefetch_related(None).values("id", *plain, *RELATED.values())


def datetime_representation():
    """DRF's DateTimeField.to_representation for aware datetimes (what the database gives with USE_TZ),
    with the current time zone looked up once per page instead of once per value."""
    from django.utils import timezone
    zone = timezone.get_current_timezone()

    def represent(value):
        text = value.astimezone(zone).isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    return represent


def list_rows(values: list[dict], request) -> list[dict]:
    """ContainerSerializer's output for rows of list_values: the addresses in one query for the page."""
    from containers.tables import address_order
    from network.models import IPAddress
    addresses: dict[int, list[str]] = {}
    for container_id, address in IPAddress.objects.filter(container_id__in=[v["id"] for v in values]) \
            .order_by(*address_order()).values_list("container_id", "address"):
        addresses.setdefault(container_id, []).append(address)
    sentinel = 4294967295  # no CTID is this: its place in the URL is where each row's goes
    url = reverse("api-container-detail", kwargs={"ctid": sentinel}, request=request).replace(str(sentinel), "{}")
    when = datetime_representation()
    fields = ContainerSerializer.Meta.fields
    rows = []
    for v in values:
        for name, source in RELATED.items():
            v[name] = v[source]
        for name in DATETIMES:
            v[name] = when(v[name]) if v[name] is not None else None
        v["url"] = url.format(v["ctid"])
        v["ip"] = addresses.get(v["id"], [])
        rows.append({name: v[name] for name in fields})
    return rows


class ContainerViewSet(viewsets.GenericViewSet):
    """Containers the caller may see, addressed by CTID or name alias."""

    serializer_class = ContainerSerializer
    lookup_field = "ctid"
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        return visible_containers(self.request.user)

    def list_queryset(self):
        """The list: the same filterset as the page (containers/filters.py), sorted by the page's
        column names (`sort`), with the addresses in one query."""
        from containers.filters import ContainerFilterSet
        from containers.tables import ContainerTable
        from containers.tables import listed_containers
        from panel.lists import filtered_for_api
        return filtered_for_api(self.request, ContainerFilterSet, ContainerTable, listed_containers(self.request.user))

    def get_object(self):
        # Reading needs visibility; every other method needs the right to manage (403 if only visible).
        return get_container_for_user(self.request.user, self.kwargs["ctid"],
                                      manage=self.request.method not in ("GET", "HEAD", "OPTIONS"))

    @extend_schema(parameters=[
        OpenApiParameter("status", str, enum=ContainerStatus.values, extensions=EMPTY_MEANS_ANY),
        text_filter("q", SEARCH_MAX, "search: CTID, hostname, name, description, an address or its beginning"),
        text_filter("host", 64, "a host's name"),
        text_filter("tenant", 40, "a tenant's slug"),
        text_filter("ostemplate", 128, "an OS template's name"),
        OpenApiParameter("sort", str, enum=SORTS, description="a column; - before it for descending"),
    ])
    def list(self, request):
        page = self.paginate_queryset(list_values(self.list_queryset()))
        return self.get_paginated_response(list_rows(page, request))

    def retrieve(self, request, ctid=None):
        return Response(ContainerSerializer(self.get_object(), context={"request": request}).data)

    @extend_schema(request=ContainerCreateSerializer, responses={202: TaskAcceptedSerializer})
    def create(self, request):
        ser = ContainerCreateSerializer(data=request.data, user=request.user)
        ser.is_valid(raise_exception=True)
        data = ser.validated_data
        host = data.get("host")  # None: the panel places it by capacity
        if host is None and not placeable_hosts(request.user).exists():
            return Response({"host": ["No host is registered."]}, status=400)
        limits = {k: data.pop(k) for k in LIMIT_KEYS if k in data}
        data["addresses"] = data.pop("ipadd", None) or []
        try:
            task = services.create_container(user=request.user, host=host, limits=limits,
                                             **{k: v for k, v in data.items() if k != "host"})
        except TaskError as exc:
            return refused(exc)
        return accepted(request, task)

    @extend_schema(request=ContainerUpdateSerializer, responses={200: ContainerSerializer, 202: TaskAcceptedSerializer})
    def partial_update(self, request, ctid=None):
        ct = self.get_object()
        ser = ContainerUpdateSerializer(data=request.data, partial=True)
        ser.is_valid(raise_exception=True)
        try:
            task = services.update_container(ct, request.user, **ser.validated_data)
        except TaskError as exc:
            return refused(exc)
        if task:
            return accepted(request, task)
        return Response(ContainerSerializer(ct, context={"request": request}).data)

    @extend_schema(request=DestroySerializer, responses={202: TaskAcceptedSerializer},
                   parameters=[OpenApiParameter("confirm", str, description="the CTID again")])
    def destroy(self, request, ctid=None):
        ct = self.get_object()
        confirm = request.data.get("confirm") if hasattr(request.data, "get") else None
        confirm = confirm or request.query_params.get("confirm")
        try:
            task = services.destroy_container(ct, request.user, confirm)
        except TaskError as exc:
            return refused(exc)
        return accepted(request, task)

    def _action(self, request, func):
        try:
            task = func(self.get_object(), request.user)
        except TaskError as exc:
            return refused(exc)
        return accepted(request, task)

    @extend_schema(request=None, responses={202: TaskAcceptedSerializer})
    @action(detail=True, methods=["post"])
    def start(self, request, ctid=None):
        return self._action(request, services.start_container)

    @extend_schema(request=None, responses={202: TaskAcceptedSerializer})
    @action(detail=True, methods=["post"])
    def stop(self, request, ctid=None):
        return self._action(request, services.stop_container)

    @extend_schema(request=None, responses={202: TaskAcceptedSerializer})
    @action(detail=True, methods=["post"])
    def restart(self, request, ctid=None):
        return self._action(request, services.restart_container)

    @extend_schema(request=None, responses={202: TaskAcceptedSerializer},
                   description="vzctl mount: mount the root filesystem; the agent keeps it mounted again.")
    @action(detail=True, methods=["post"])
    def mount(self, request, ctid=None):
        return self._action(request, services.mount_container)

    @extend_schema(request=None, responses={202: TaskAcceptedSerializer},
                   description="vzctl umount: unmount a stopped container's root filesystem, until mount or start.")
    @action(detail=True, methods=["post"])
    def umount(self, request, ctid=None):
        return self._action(request, services.umount_container)

    @extend_schema(request=ExecSerializer, responses={200: TaskAcceptedSerializer, 202: TaskAcceptedSerializer})
    @action(detail=True, methods=["post"], url_path="exec")
    def exec_command(self, request, ctid=None):
        ct = self.get_object()
        ser = ExecSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        try:
            task = services.exec_in_container(ct, request.user, ser.validated_data["command"],
                                              ser.validated_data["timeout"])
        except TaskError as exc:
            return refused(exc)
        if ser.validated_data["wait"]:
            # Blocked on the task's end in Redis, not polling; the client gets the exit status in
            # this answer instead of asking for the task again and again.
            task = wait_for_end(task, ser.validated_data["wait"])
            if not task.is_active:
                return accepted(request, task, status.HTTP_200_OK)
        return accepted(request, task)


    def _with(self, request, serializer_class, func):
        ct = self.get_object()
        ser = serializer_class(data=request.data)
        ser.is_valid(raise_exception=True)
        try:
            task = func(ct, ser.validated_data)
        except TaskError as exc:
            return refused(exc)
        return accepted(request, task)

    @extend_schema(request=PasswordSerializer, responses={202: TaskAcceptedSerializer})
    @action(detail=True, methods=["post"])
    def userpasswd(self, request, ctid=None):
        return self._with(request, PasswordSerializer, lambda ct, d: services.set_user_password(
            ct, request.user, d["user"], d["password"]))

    @extend_schema(request=SSHKeySerializer, responses={202: TaskAcceptedSerializer})
    @action(detail=True, methods=["post"])
    def sshkey(self, request, ctid=None):
        return self._with(request, SSHKeySerializer, lambda ct, d: services.set_ssh_key(
            ct, request.user, d["key"], d["user"]))

    @extend_schema(request=DestroySerializer, responses={202: TaskAcceptedSerializer})
    @action(detail=True, methods=["post"])
    def reset(self, request, ctid=None):
        return self._with(request, DestroySerializer, lambda ct, d: services.reset_container(
            ct, request.user, d["confirm"]))

    @extend_schema(request=MigrateSerializer, responses={202: TaskAcceptedSerializer})
    @action(detail=True, methods=["post"])
    def migrate(self, request, ctid=None):
        return self._with(request, MigrateSerializer, lambda ct, d: services.migrate_container(
            ct, request.user, d.get("host"), online=d["online"], remove_source=d["remove_source"],
            keep_dst=d["keep_dst"], bwlimit_kib=d["bwlimit_kib"]))

    @extend_schema(request=BackupRequestSerializer, responses={202: TaskAcceptedSerializer})
    @action(detail=True, methods=["post"])
    def backup(self, request, ctid=None):
        return self._with(request, BackupRequestSerializer, lambda ct, d: backup_container(
            ct, request.user, compress=d["compress"], notes=d["notes"]))


class TemplateViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = TemplateSerializer
    permission_classes = [api_page_for(sees_templates, "OS templates")]

    def get_queryset(self):
        return OSTemplate.objects.filter(host__in=placeable_hosts(self.request.user)).select_related("host")
