from rest_framework import viewsets

from accounts.permissions import visible_hosts

from .serializers import HostSerializer


class HostViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = HostSerializer
    lookup_field = "name"

    def get_queryset(self):
        return visible_hosts(self.request.user)
