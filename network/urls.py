"""Network pages, included at the site root: container network actions, host bridges, IP pools."""
from django.urls import path

from . import views

urlpatterns = [
    path("containers/<str:ident>/network/ipadd/", views.ct_ipadd, name="ct-net-ipadd"),
    path("containers/<str:ident>/network/ipdel/", views.ct_ipdel, name="ct-net-ipdel"),
    path("containers/<str:ident>/network/netif_add/", views.ct_netif_add, name="ct-net-netif-add"),
    path("containers/<str:ident>/network/netif_del/", views.ct_netif_del, name="ct-net-netif-del"),
    path("containers/<str:ident>/network/dns/", views.ct_dns, name="ct-net-dns"),
    path("hosts/<str:name>/bridges/", views.host_bridge_create, name="host-bridge-create"),
    path("pools/", views.pool_list, name="pool-list"),
    path("pools/new/", views.pool_create, name="pool-create"),
    path("pools/<int:pk>/edit/", views.pool_edit, name="pool-edit"),
]
