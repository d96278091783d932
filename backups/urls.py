"""Backup pages. Included at the site's root (before containers.urls, whose catch-all
<ident>/<action>/ would otherwise take /containers/<ident>/backups/...)."""
from django.urls import path, re_path

from . import views

urlpatterns = [
    path("backups/", views.backup_list, name="backup-list"),
    path("backups/upload/", views.backup_upload, name="backup-upload"),
    re_path(r"^backups/(?P<pk>[0-9]+)/download/?\Z", views.backup_download, name="backup-download"),
    re_path(r"^backups/(?P<pk>[0-9]+)/log/?\Z", views.backup_log, name="backup-log"),
    path("backups/<int:pk>/verify/", views.backup_verify, name="backup-verify"),
    path("backups/<int:pk>/restore/", views.backup_restore, name="backup-restore"),
    path("backups/<int:pk>/protect/", views.backup_protect, name="backup-protect"),
    path("backups/<int:pk>/notes/", views.backup_notes, name="backup-notes"),
    path("backups/<int:pk>/delete/", views.backup_delete, name="backup-delete"),
    path("containers/<str:ident>/backups/new/", views.container_backup_create, name="container-backup-create"),
    path("containers/<str:ident>/backups/prune/", views.container_backup_prune, name="container-backup-prune"),
]
