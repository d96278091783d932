"""Forms of the account pages: one-time codes, turning two-factor off, Bootstrap styling."""
from __future__ import annotations

from django import forms
from django.contrib.auth import forms as auth_forms
from django.core.validators import RegexValidator
from django.db import transaction


def bootstrap(form):
    """Give every widget of `form` Bootstrap's form-control class (and is-invalid where it has errors)."""
    for name, field in form.fields.items():
        css = field.widget.attrs.get("class", "")
        if "form-control" not in css:
            css = f"{css} form-control".strip()
        if form.is_bound and form.errors.get(name):
            css += " is-invalid"
        field.widget.attrs["class"] = css
    return form


class BootstrapMixin:
    """For Django's own auth forms: Bootstrap classes, also after validation."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        bootstrap(self)

    def full_clean(self):
        super().full_clean()
        bootstrap(self)


def token_field(label="Code from your authenticator app", required=True):
    return forms.CharField(
        label=label, required=required, max_length=6, min_length=6,
        validators=[RegexValidator(r"^[0-9]{6}\Z", "Enter the 6 digits your app shows.")],
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "one-time-code",
                                      "pattern": r"\d{6}", "autofocus": True}))


def check_token(device, token: str) -> bool:
    """Verify `token` on `device` under a row lock, so throttling and replay protection hold."""
    from django_otp.plugins.otp_totp.models import TOTPDevice
    with transaction.atomic():
        locked = TOTPDevice.objects.select_for_update().filter(pk=device.pk).first()
        if locked is None:
            return False
        ok = locked.verify_token(token)
    device.refresh_from_db()
    return ok


def throttle_message(device) -> str:
    allowed, info = device.verify_is_allowed()
    if allowed:
        return ""
    wait = ""
    if info and info.get("locked_until"):
        from django.utils import timezone
        seconds = max(1, int((info["locked_until"] - timezone.now()).total_seconds() + 0.999))
        wait = f" Wait {seconds} second{'s' if seconds != 1 else ''} and try again."
    return "Too many wrong codes." + wait


class TokenForm(forms.Form):
    """A 6-digit code checked against one TOTP device."""

    token = token_field()

    def __init__(self, device, *args, **kwargs):
        self.device = device
        super().__init__(*args, **kwargs)
        bootstrap(self)

    def clean_token(self):
        token = self.cleaned_data["token"]
        throttled = throttle_message(self.device)
        if throttled:
            raise forms.ValidationError(throttled)
        if not check_token(self.device, token):
            raise forms.ValidationError("That code is not valid. Check your device's clock and try a new code.")
        return token

    def full_clean(self):
        super().full_clean()
        bootstrap(self)


class DisableTwoFactorForm(forms.Form):
    """Turning two-factor off needs a current code or the account's password."""

    token = token_field(required=False)
    password = forms.CharField(label="or your password", required=False, strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))

    def __init__(self, user, device, *args, **kwargs):
        self.user = user
        self.device = device
        super().__init__(*args, **kwargs)
        self.fields["token"].widget.attrs.pop("autofocus", None)
        bootstrap(self)

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        token, password = data.get("token"), data.get("password")
        if not token and not password:
            raise forms.ValidationError("Enter a code from your authenticator app or your password.")
        if token:
            throttled = throttle_message(self.device)
            if throttled:
                raise forms.ValidationError(throttled)
            if not check_token(self.device, token):
                raise forms.ValidationError("That code is not valid.")
            data["method"] = "code"
        else:
            if not self.user.check_password(password):
                raise forms.ValidationError("Wrong password.")
            data["method"] = "password"
        return data

    def full_clean(self):
        super().full_clean()
        bootstrap(self)


class PasswordChangeForm(BootstrapMixin, auth_forms.PasswordChangeForm):
    pass


class PasswordResetForm(BootstrapMixin, auth_forms.PasswordResetForm):
    pass


class SetPasswordForm(BootstrapMixin, auth_forms.SetPasswordForm):
    pass


class ApiTokenForm(forms.Form):
    """A new API token: a name to tell it apart, and when it stops working."""

    name = forms.CharField(max_length=64, help_text="What uses it, e.g. “backup script on nas1”.")
    expires_in_days = forms.TypedChoiceField(
        label="Expires", coerce=int, empty_value=None, required=False, initial="90",
        choices=[("30", "in 30 days"), ("90", "in 90 days"), ("365", "in a year"), ("", "never")])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        bootstrap(self)


class UserActiveForm(forms.Form):
    """Enable or disable a user (the users page's button)."""

    active = forms.CharField(required=False, max_length=8)

    def clean_active(self) -> bool:
        return self.cleaned_data["active"].strip().lower() in ("1", "true", "on", "yes")
