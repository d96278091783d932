from django.urls import path

from storage import views as pool_views

from . import views

urlpatterns = [
    path("", views.host_list, name="host-list"),
    path("add/", views.host_add, name="host-add"),
    path("<str:name>/", views.host_detail, name="host-detail"),
    path("<str:name>/storages/", views.storage_create, name="storage-create"),
    path("<str:name>/do/<str:action>/", views.host_action, name="host-action"),
    path("<str:name>/storages/<int:pk>/delete/", views.storage_delete, name="storage-delete"),
    path("<str:name>/pools/", pool_views.pool_add, name="pool-add"),
    path("<str:name>/pools/<int:pk>/default/", pool_views.pool_default, name="pool-default"),
]
