from django.urls import path

from storage import views as snapshot_views

from . import views

urlpatterns = [
    path("", views.container_list, name="container-list"),
    path("new/", views.container_create, name="container-create"),
    # Two segments, so no container's name can take it; "bulk" is no container action.
    path("actions/bulk/", views.container_bulk, name="container-bulk"),
    path("<str:ident>/", views.container_detail, name="container-detail"),
    path("<str:ident>/settings/", views.container_settings, name="container-settings"),
    path("<str:ident>/exec/", views.container_exec, name="container-exec"),
    path("<str:ident>/destroy/", views.container_destroy, name="container-destroy"),
    path("<str:ident>/reset/", views.container_reset, name="container-reset"),
    path("<str:ident>/migrate/", views.container_migrate, name="container-migrate"),
    path("<str:ident>/password/", views.container_password, name="container-password"),
    path("<str:ident>/sshkey/", views.container_sshkey, name="container-sshkey"),
    path("<str:ident>/history/", views.container_history, name="container-history"),
    path("<str:ident>/console/ticket/", views.container_console_ticket, name="container-console-ticket"),
    path("<str:ident>/snapshots/", snapshot_views.snapshot_take, name="container-snapshot"),
    path("<str:ident>/snapshots/<str:name>/<str:action>/", snapshot_views.snapshot_action,
         name="container-snapshot-action"),
    path("<str:ident>/<str:action>/", views.container_action, name="container-action"),
]
