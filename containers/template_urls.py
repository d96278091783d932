"""/templates/...: the OS template catalogue and its actions (included at "templates/")."""
from django.urls import path

from . import template_views as views

urlpatterns = [
    path("", views.template_list, name="template-list"),
    path("build/", views.template_build, name="template-build"),
    path("download/", views.template_download, name="template-download"),
    path("download-index/", views.template_download_index, name="template-download-index"),
    path("upload/", views.template_upload, name="template-upload"),
    path("<int:pk>/copy/", views.template_copy, name="template-copy"),
    path("<int:pk>/delete/", views.template_delete, name="template-delete"),
    path("from-container/<str:ident>/", views.template_from_container, name="template-from-container"),
]
