from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from . import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("accounts/", include("accounts.urls")),
    path("", include("metrics.urls")),        # series.json, user_beancounters, /metrics
    path("", include("network.urls")),       # /containers/<id>/network/..., /hosts/<name>/bridges/, /pools/
    path("", include("backups.urls")),        # /backups/..., /containers/<id>/backups/{new,prune}/
    path("containers/", include("containers.urls")),
    path("tasks/", include("tasks.urls")),
    path("backups/jobs/", include("backups.job_urls")),  # backup jobs (before any /backups/<...>/)
    path("hosts/", include("hosts.urls")),
    path("templates/", include("containers.template_urls")),  # template-list and its actions
    path("", include("tenancy.urls")),        # /tenants/, /classes/, /plans/
    path("", include("accounts.admin_urls")),  # /users/, /audit/
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),  # before the API's JSON 404 for the rest
    path("api/", include("panel.api_urls")),
    path("admin/", admin.site.urls),
]
