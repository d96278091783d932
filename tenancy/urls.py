"""Tenant, class and plan pages (included at the site root: /tenants/, /classes/, /plans/)."""
from django.urls import path

from . import views

urlpatterns = [
    path("tenants/", views.tenant_list, name="tenant-list"),
    path("tenants/new/", views.tenant_create, name="tenant-create"),
    path("tenants/<str:slug>/", views.tenant_detail, name="tenant-detail"),
    path("tenants/<str:slug>/quotas/", views.tenant_quotas, name="tenant-quotas"),
    path("tenants/<str:slug>/members/add/", views.member_add, name="tenant-member-add"),
    path("tenants/<str:slug>/members/new/", views.member_create, name="tenant-member-create"),
    path("tenants/<str:slug>/members/<int:user_id>/remove/", views.member_remove, name="tenant-member-remove"),
    path("tenants/<str:slug>/classes/new/", views.class_create, name="class-create"),
    path("classes/<str:slug>/", views.class_detail, name="class-detail"),
    path("classes/<str:slug>/import/", views.class_import, name="class-import"),
    path("classes/<str:slug>/bulk/", views.class_bulk, name="class-bulk"),
    path("plans/", views.plan_list, name="plan-list"),
    path("plans/new/", views.plan_create, name="plan-create"),
    path("plans/<int:pk>/edit/", views.plan_edit, name="plan-edit"),
]
