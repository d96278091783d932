"""How the API knows who is calling: a named API token (accounts/tokens.py), or the browser's
session, which counts only once it has passed the second factor."""
from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from .tokens import user_for_key


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Token vzpt_…` (or `Bearer vzpt_…`)."""

    keywords = ("token", "bearer")

    def authenticate(self, request):
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].decode("latin-1").lower() not in self.keywords:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Give exactly one token after the keyword.")
        try:
            key = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        found = user_for_key(key)
        if found is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        return found

    def authenticate_header(self, request):
        return "Token"


class VerifiedSessionAuthentication(authentication.SessionAuthentication):
    """The browser's session, refused while its user still owes a two-factor code
    (the OTP middleware refuses such sessions too; this keeps the API safe without it)."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is not None:
            from .middleware import needs_second_factor
            if needs_second_factor(result[0]):
                raise exceptions.PermissionDenied("Enter your two-factor code first (/accounts/verify/).")
        return result


# How the OpenAPI schema describes the two (registered when this module is imported).
class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = ApiTokenAuthentication
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "`Token vzpt_…`: a token made on My account"}


class VerifiedSessionScheme(OpenApiAuthenticationExtension):
    target_class = VerifiedSessionAuthentication
    name = "session"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": "sessionid",
                "description": "the browser's session, after the two-factor code where the user has one"}
