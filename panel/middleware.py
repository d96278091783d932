"""The client's address behind the panel's reverse proxy."""
from __future__ import annotations

import ipaddress

from django.conf import settings


class ProxiedClientAddressMiddleware:
    """Behind the production proxy every request comes from its socket, so REMOTE_ADDR says nothing:
    take the address the proxy wrote (settings.PROXY_CLIENT_ADDRESS_HEADER, X-Real-IP), so that the
    audit log and django-axes' lock-outs see the browser's address. Off in development, where a
    client could send that header itself."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        header = settings.PROXY_CLIENT_ADDRESS_HEADER
        if header:
            value = request.META.get(header, "")
            try:
                request.META["REMOTE_ADDR"] = str(ipaddress.ip_address(value))
            except ValueError:
                pass  # not set, or not an address: keep what the server said
        return self.get_response(request)
