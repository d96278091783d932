"""Request-wide concerns of accounts: the audit address, and two-factor enforcement."""
from django.shortcuts import redirect
from django.urls import reverse

from .audit import current_address


def client_address(request) -> str:
    return request.META.get("REMOTE_ADDR", "")


class AuditContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = current_address.set(client_address(request))
        try:
            return self.get_response(request)
        finally:
            current_address.reset(token)


class RequireOTPMiddleware:
    """A user with a confirmed TOTP device must enter a code before anything else."""

    EXEMPT_PREFIXES = ("/accounts/verify/", "/accounts/logout/", "/static/", "/api/")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        if (user.is_authenticated and not request.path.startswith(self.EXEMPT_PREFIXES)
                and not user.is_verified() and _has_confirmed_device(user)):
            return redirect(f"{reverse('otp-verify')}?next={request.path}")
        return self.get_response(request)


def _has_confirmed_device(user) -> bool:
    from django_otp.plugins.otp_totp.models import TOTPDevice
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()
