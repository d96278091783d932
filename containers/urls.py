from django.urls import path

from . import views

urlpatterns = [
    path("", views.container_list, name="container-list"),
    path("new/", views.container_create, name="container-create"),
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
    path("<str:ident>/<str:action>/", views.container_action, name="container-action"),
]
