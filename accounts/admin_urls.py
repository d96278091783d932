"""User administration and the audit log (included at the site root: /users/, /audit/)."""
from django.urls import path

from . import admin_views

urlpatterns = [
    path("users/", admin_views.user_list, name="user-list"),
    path("users/new/", admin_views.user_create, name="user-create"),
    path("users/<int:pk>/active/", admin_views.user_active, name="user-active"),
    path("audit/", admin_views.audit_list, name="audit-list"),
]
