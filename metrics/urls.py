"""Resource figures: mounted at the site root by panel/urls.py, as they live under /containers/ and /hosts/."""
from django.urls import path

from . import views

urlpatterns = [
    path("containers/<str:ident>/series.json", views.container_series, name="container-series"),
    path("containers/<str:ident>/user_beancounters", views.container_beancounters, name="container-beancounters"),
    path("hosts/<str:name>/user_beancounters", views.host_beancounters, name="host-beancounters"),
    path("metrics", views.prometheus_metrics, name="metrics"),
]
