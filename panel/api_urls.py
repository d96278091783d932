"""The REST API under /api/: one router for every app's viewsets."""
from django.http import JsonResponse
from django.urls import re_path
from django.views.decorators.csrf import csrf_exempt
from rest_framework.routers import DefaultRouter

from backups.api_backups import BackupViewSet
from backups.api.views import BackupJobViewSet
from containers.api.template_api import TemplateAdminViewSet
from containers.api.views import ContainerViewSet
from hosts.api.views import HostViewSet
from storage.api.views import SnapshotViewSet
from network.api.views import ContainerNetworkViewSet, HostBridgeViewSet, PoolViewSet, TenantBridgeViewSet
from tasks.api.views import TaskViewSet
from tenancy.api.views import AuditEventViewSet, PlanViewSet, TenantViewSet, UserViewSet

class Router(DefaultRouter):
    # No ".json" suffix routes: the API answers JSON anyway, and not every view takes a `format` argument.
    include_format_suffixes = False


router = Router()
router.register("containers", ContainerViewSet, basename="api-container")
router.register("tasks", TaskViewSet, basename="api-task")
router.register("templates", TemplateAdminViewSet, basename="api-template")
router.register("hosts", HostViewSet, basename="api-host")
router.register("tenants", TenantViewSet, basename="api-tenant")
router.register("plans", PlanViewSet, basename="api-plan")
router.register("audit", AuditEventViewSet, basename="api-audit")
router.register("users", UserViewSet, basename="api-user")
router.register(r"containers/(?P<ctid>[^/]+)/network", ContainerNetworkViewSet, basename="api-ct-network")
router.register(r"containers/(?P<ctid>[^/]+)/snapshots", SnapshotViewSet, basename="api-ct-snapshots")
router.register("pools", PoolViewSet, basename="api-pool")
router.register("backup-jobs", BackupJobViewSet, basename="api-backup-job")
router.register("backups", BackupViewSet, basename="api-backup")
router.register(r"hosts/(?P<name>[^/.]+)/bridges", HostBridgeViewSet, basename="api-host-bridges")
router.register(r"tenants/(?P<slug>[^/.]+)/bridges", TenantBridgeViewSet, basename="api-tenant-bridges")



@csrf_exempt  # it changes nothing; a POST to a wrong path is a 404, not a CSRF 403 page
def api_not_found(request, *args, **kwargs):
    """No API route matched (an id with a slash or dot, a misspelt collection): answer in JSON like
    every other API refusal, not with the web's HTML page."""
    return JsonResponse({"detail": "Not found."}, status=404)


# Last, and only for paths ending in "/": a path without one still gets Django's redirect to it.
urlpatterns = router.urls + [re_path(r"^.*/$", api_not_found)]
