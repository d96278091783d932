"""My account: two-factor (TOTP) on and off, the code after login, password change and reset."""
from __future__ import annotations

from base64 import b32encode

import segno
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.tokens import default_token_generator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from panel.forms import ActionForm, FormErrorStatus, form_response
from panel.redirects import local_path

from .audit import record
from .forms import (ApiTokenForm, DisableTwoFactorForm, PasswordChangeForm, PasswordResetForm, SetPasswordForm,
                    TokenForm)
from .models import ApiToken
from .tokens import create_token, revoke_token

DEVICE_NAME = "default"


def confirmed_device(user) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()


def safe_next(request, value: str | None, default="dashboard") -> str:
    """`value` if it is a local path (panel.redirects.local_path), else the URL of `default`."""
    return local_path(value) or reverse(default)


def password_setup_link(user) -> str:
    """The absolute link with which `user` chooses a password (for welcome emails)."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return settings.PANEL_URL.rstrip("/") + reverse("password-set", kwargs={"uidb64": uid, "token": token})


# -- my account -----------------------------------------------------------------
@login_required
def account(request, token_form=None, new_key=None, status=200, revoke_form=None):
    user = request.user
    return render(request, "accounts/account.html", {
        "account": user,
        "role": user.get_role_display() if not user.is_superuser else "admin (superuser)",
        "memberships": user.memberships.select_related("tenant").order_by("tenant__name"),
        "device": confirmed_device(user),
        "tokens": ApiToken.objects.filter(user=user),
        "token_form": token_form or ApiTokenForm(),
        "revoke_form": revoke_form,
        "new_key": new_key,
    }, status=status)


# -- API tokens -----------------------------------------------------------------
@never_cache
@login_required
@require_http_methods(["POST"])
def token_create(request):
    def act(form):
        row, key = create_token(request.user, form.cleaned_data["name"], form.cleaned_data["expires_in_days"])
        # Shown on this answer only: never stored, never shown again.
        return account(request, new_key={"name": row.name, "key": key})
    return form_response(request, ApiTokenForm(request.POST), act,
                         lambda form, status: account(request, token_form=form, status=status))


@login_required
@require_http_methods(["POST"])
def token_revoke(request, pk):
    from .permissions import manages_users
    tokens = ApiToken.objects.all() if manages_users(request.user) else ApiToken.objects.filter(user=request.user)
    token = tokens.select_related("user").filter(pk=pk).first()
    if token is None:
        raise Http404("No such token")

    def act(form):
        revoke_token(request.user, token)
        messages.success(request, f"Token {token.name} ({token.prefix}…) of {token.user.username} revoked.")
        return redirect(safe_next(request, request.POST.get("next"), default="account"))
    return form_response(request, ActionForm(request.POST), act,
                         lambda form, status: account(request, revoke_form=form, status=status))


# -- two-factor -----------------------------------------------------------------
@login_required
@require_http_methods(["GET", "POST"])
def twofactor_setup(request):
    user = request.user
    if confirmed_device(user):
        messages.info(request, "Two-factor authentication is already on.")
        return redirect("account")
    device = TOTPDevice.objects.filter(user=user, confirmed=False, name=DEVICE_NAME).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=False)
    form = TokenForm(device, request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if form.is_valid():
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            TOTPDevice.objects.filter(user=user, confirmed=False).delete()
            otp_login(request, device)
            record(user, "2fa.enable", detail=f"TOTP device {device.name!r}")
            messages.success(request, "Two-factor authentication is on. You will need a code at every login.")
            return redirect("account")
        record(user, "2fa.enable", result="failed", detail="wrong code while setting up")
    uri = device.config_url
    return render(request, "accounts/2fa_setup.html", {
        "form": form,
        "qr_svg": segno.make(uri, error="m").svg_inline(scale=4),
        "secret": b32encode(device.bin_key).decode(),
        "secret_grouped": " ".join(b32encode(device.bin_key).decode()[i:i + 4] for i in range(0, 32, 4)),
        "otpauth_uri": uri,
    }, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def twofactor_disable(request):
    user = request.user
    device = confirmed_device(user)
    if device is None:
        messages.info(request, "Two-factor authentication is not on.")
        return redirect("account")
    form = DisableTwoFactorForm(user, device, request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if form.is_valid():
            TOTPDevice.objects.filter(user=user).delete()
            record(user, "2fa.disable", detail=f"confirmed with {form.cleaned_data['method']}")
            messages.success(request, "Two-factor authentication is off.")
            return redirect("account")
        record(user, "2fa.disable", result="failed", detail="; ".join(form.non_field_errors()) or "invalid input")
    return render(request, "accounts/2fa_disable.html", {"form": form}, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def otp_verify(request):
    user = request.user
    next_url = safe_next(request, request.POST.get("next") or request.GET.get("next"))
    if user.is_verified():
        return redirect(next_url)
    device = confirmed_device(user)
    if device is None:
        return redirect(next_url)
    form = TokenForm(device, request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if form.is_valid():
            otp_login(request, device)
            request.session.cycle_key()  # a session fixed before the code must not become a verified one
            record(user, "2fa.verify")
            return redirect(next_url)
        record(user, "2fa.verify", result="failed", detail="; ".join(form.errors.get("token", [])))
    return render(request, "accounts/verify.html", {"form": form, "next": next_url},
                  status=400 if form.errors else 200)


# -- passwords ------------------------------------------------------------------
class LoginView(FormErrorStatus, auth_views.LoginView):
    template_name = "accounts/login.html"


class PasswordChangeView(FormErrorStatus, auth_views.PasswordChangeView):
    template_name = "accounts/password_change.html"
    form_class = PasswordChangeForm
    success_url = reverse_lazy("account")

    def form_valid(self, form):
        response = super().form_valid(form)
        record(self.request.user, "password.change")
        messages.success(self.request, "Your password has been changed.")
        return response


class PasswordResetView(FormErrorStatus, auth_views.PasswordResetView):
    template_name = "accounts/password_reset.html"
    form_class = PasswordResetForm
    email_template_name = "accounts/email/password_reset.txt"
    subject_template_name = "accounts/email/password_reset_subject.txt"
    success_url = reverse_lazy("password_reset_done")

    def form_valid(self, form):
        # Links in the email start with PANEL_URL, not with whatever Host the request named.
        self.extra_email_context = {"panel_url": settings.PANEL_URL.rstrip("/"), "site_name": "vzpanel"}
        email = form.cleaned_data["email"]
        users = list(form.get_users(email))
        response = super().form_valid(form)  # same answer whether or not the address is known
        for user in users:
            record(user, "password.reset.request", detail=f"reset link sent to {email}")
        if not users:
            record(None, "password.reset.request", result="failed",
                   detail=f"no active account with a password for {email}")
        return response


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "accounts/password_reset_done.html"


class PasswordResetConfirmView(FormErrorStatus, auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    form_class = SetPasswordForm
    success_url = reverse_lazy("password_reset_complete")
    audit_action = "password.reset.done"
    title = "Choose a new password"

    def form_valid(self, form):
        response = super().form_valid(form)
        record(form.user, self.audit_action, username=form.user.get_username())
        return response

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["title"] = self.title if context.get("validlink") else "Link not valid"
        return context


class PasswordSetView(PasswordResetConfirmView):
    """The link of the welcome email: the same as a reset, worded for a first password."""

    audit_action = "password.set"
    title = "Choose your password"


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "accounts/password_reset_complete.html"
