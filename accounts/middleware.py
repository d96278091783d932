"""Request-wide concerns of accounts: the audit address, and two-factor enforcement."""
from django.http import JsonResponse
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
    """A session whose user has a confirmed TOTP device reaches nothing but the code page and
    logout until the code is entered: web pages redirect there, the API answers 403.
    (API calls with a token carry no session: a token is made only by a verified session.)"""

    EXEMPT_PREFIXES = ("/accounts/verify/", "/accounts/logout/", "/static/")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith(self.EXEMPT_PREFIXES) and needs_second_factor(request.user):
            if request.path.startswith("/api/"):
                return JsonResponse({"detail": "Enter your two-factor code first (/accounts/verify/)."},
                                    status=403)
            return redirect(f"{reverse('otp-verify')}?next={request.path}")
        return self.get_response(request)


def needs_second_factor(user) -> bool:
    """A signed-in user with a confirmed TOTP device whose session has not passed the code."""
    if not user.is_authenticated or getattr(user, "is_verified", lambda: False)():
        return False
    # Asked twice per API request (this middleware, then the API's session authentication) of the
    # same request's user object: one query, remembered on it. A device confirmed later in the
    # request changes nothing before the next request.
    has_device = getattr(user, "_has_confirmed_totp", None)
    if has_device is None:
        from django_otp.plugins.otp_totp.models import TOTPDevice
        has_device = user._has_confirmed_totp = TOTPDevice.objects.filter(user=user, confirmed=True).exists()
    return has_device
