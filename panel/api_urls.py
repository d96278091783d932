"""The REST API under /api/: one router for every app's viewsets."""
from rest_framework.routers import DefaultRouter

from containers.api.views import ContainerViewSet, TemplateViewSet
from hosts.api.views import HostViewSet
from tasks.api.views import TaskViewSet

router = DefaultRouter()
router.register("containers", ContainerViewSet, basename="api-container")
router.register("tasks", TaskViewSet, basename="api-task")
router.register("templates", TemplateViewSet, basename="api-template")
router.register("hosts", HostViewSet, basename="api-host")

urlpatterns = router.urls
