from django.urls import path

from . import views

urlpatterns = [
    path("", views.host_list, name="host-list"),
    path("<str:name>/", views.host_detail, name="host-detail"),
]
