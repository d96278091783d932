"""Forms of the tenant, class, plan, user and audit pages.

Validation messages say what is wrong and how to fix it; permission checks and the
rules of each operation stay in tenancy.services.
"""
from __future__ import annotations

from django import forms
from django.db.models import QuerySet

from accounts.models import GlobalRole, User
from containers.forms import TemplateOnHostMixin
from panel.fields import AsciiIntegerField

from .models import QUOTA_FIELDS, Plan, StudentClass, Tenant, TenantRole, slug_validator
from .services import BULK_ACTIONS, MAX_STUDENTS, InvalidRequest, validate_username

DATETIME_LOCAL_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"]


class DateTimeLocalInput(forms.DateTimeInput):
    """The browser's date and time picker (<input type="datetime-local">)."""

    input_type = "datetime-local"

    def __init__(self, attrs=None):
        super().__init__(attrs, format="%Y-%m-%dT%H:%M")


def datetime_local_field(label: str, required: bool = False, help_text: str = "") -> forms.DateTimeField:
    return forms.DateTimeField(
        label=label, required=required, help_text=help_text, input_formats=DATETIME_LOCAL_FORMATS,
        widget=DateTimeLocalInput(),
        error_messages={"invalid": "Enter a date and time like 2030-06-30 18:00."})


def quota_field(field: str) -> forms.IntegerField:
    label, unit = QUOTA_FIELDS[field]
    return AsciiIntegerField(
        label=f"Max {label}" + (f" ({unit})" if unit else ""), required=False, min_value=0,
        help_text="Empty: no limit.",
        error_messages={"invalid": f"The {label} quota is a whole number, or empty for no limit.",
                        "min_value": f"The {label} quota cannot be negative; leave it empty for no limit."})


class QuotaFieldsMixin:
    def quotas(self) -> dict:
        return {f: self.cleaned_data.get(f) for f in QUOTA_FIELDS}

    def quota_fields(self):
        return [self[f] for f in QUOTA_FIELDS]


def _add_quota_fields(form_class):
    """Append one optional whole-number field per quota (QUOTA_FIELDS order) to `form_class`."""
    for f in QUOTA_FIELDS:
        form_class.base_fields[f] = quota_field(f)
    return form_class


@_add_quota_fields
class QuotaForm(QuotaFieldsMixin, forms.Form):
    """The quotas, and the bridges granted to the tenant (network.services.set_bridge_grants)."""

    bridges = forms.CharField(required=False, max_length=500, label="Granted bridges",
                              help_text="Bridges its members may put interfaces in besides each host's default "
                                        "bridge, separated by spaces.")

    @classmethod
    def for_tenant(cls, tenant: Tenant, data=None) -> "QuotaForm":
        from network.services import granted_bridges
        return cls(data, initial={**{f: getattr(tenant, f) for f in QUOTA_FIELDS},
                                  "bridges": " ".join(granted_bridges(tenant))})


@_add_quota_fields
class TenantForm(QuotaFieldsMixin, forms.Form):
    slug = forms.CharField(max_length=40, validators=[slug_validator],
                           help_text="1-40 lower-case letters, digits and inner hyphens; used in URLs.")
    name = forms.CharField(max_length=100)
    description = forms.CharField(widget=forms.Textarea, required=False)

    def clean_slug(self):
        slug = self.cleaned_data["slug"]
        if Tenant.objects.filter(slug=slug).exists():
            raise forms.ValidationError(f"A tenant with the slug {slug} exists already; pick another.")
        return slug


def _clean_username(value: str) -> str:
    value = (value or "").strip()
    try:
        validate_username(value)
    except InvalidRequest as exc:
        raise forms.ValidationError(str(exc)) from None
    return value


class AddMemberForm(forms.Form):
    username = forms.CharField(max_length=150, help_text="Someone already in one of your tenants.")
    role = forms.ChoiceField(choices=TenantRole.choices, initial=TenantRole.MEMBER)

    def __init__(self, *args, **kwargs):
        # The tenant page shows this form beside CreateMemberForm: both have username and role, and
        # element ids must stay unique (labels, screen readers). The field names do not change.
        kwargs.setdefault("auto_id", "id_add_%s")
        super().__init__(*args, **kwargs)


class CreateMemberForm(forms.Form):
    username = forms.CharField(max_length=32)
    email = forms.EmailField(error_messages={"invalid": "Enter a valid email address, like ann@example.org.",
                                             "required": "An email address is needed for the welcome link."})
    first_name = forms.CharField(max_length=150, required=False)
    last_name = forms.CharField(max_length=150, required=False)
    role = forms.ChoiceField(choices=TenantRole.choices, initial=TenantRole.MEMBER, label="Tenant role")

    def clean_username(self):
        username = _clean_username(self.cleaned_data["username"])
        if User.objects.filter(username=username).exists():
            raise forms.ValidationError(f"The username {username} is taken; add the existing user above instead.")
        return username


class UserCreateForm(forms.Form):
    username = forms.CharField(max_length=32)
    email = forms.EmailField(required=False,
                             error_messages={"invalid": "Enter a valid email address, like ann@example.org."})
    first_name = forms.CharField(max_length=150, required=False)
    last_name = forms.CharField(max_length=150, required=False)
    role = forms.ChoiceField(choices=GlobalRole.choices, required=False, label="Global role")
    password = forms.CharField(required=False, strip=False, widget=forms.PasswordInput,
                               help_text="Optional; without one the user cannot log in until a password is set.")

    def clean_username(self):
        username = _clean_username(self.cleaned_data["username"])
        if User.objects.filter(username=username).exists():
            raise forms.ValidationError(f"The username {username} is taken.")
        return username

    def clean_password(self):
        password = self.cleaned_data.get("password")
        if password:
            from django.contrib.auth.password_validation import validate_password
            validate_password(password, User(username=self.data.get("username", ""),
                                             email=self.data.get("email", "")))
        return password or None


class StudentClassForm(TemplateOnHostMixin, forms.Form):
    slug = forms.CharField(max_length=40, validators=[slug_validator],
                           help_text="Used in container names: SLUG-USERNAME.")
    name = forms.CharField(max_length=100)
    host = forms.ModelChoiceField(queryset=None, empty_label=None)
    ostemplate = forms.ChoiceField(label="OS template")
    plan = forms.ModelChoiceField(queryset=None, empty_label=None,
                                  error_messages={"invalid_choice": "Pick one of the plans offered to this tenant."})
    expires_at = datetime_local_field("Expires at", help_text="Optional. When it passes, the containers are stopped.")
    grace_days = AsciiIntegerField(min_value=0, max_value=3650, initial=14, label="Grace days",
                                    help_text="Days after expiry before the containers are destroyed.")
    backup_before_destroy = forms.BooleanField(required=False, initial=True, label="Back up before destroying")

    def __init__(self, *args, hosts: QuerySet, plans: QuerySet, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["host"].queryset = hosts
        self.fields["plan"].queryset = plans
        self.set_template_choices()

    def clean_slug(self):
        slug = self.cleaned_data["slug"]
        if StudentClass.objects.filter(slug=slug).exists():
            raise forms.ValidationError(f"A class with the slug {slug} exists already; pick another.")
        return slug


MAX_CSV_BYTES = 1024 * 1024


class ImportForm(forms.Form):
    csv_text = forms.CharField(widget=forms.Textarea, required=False, label="CSV",
                               help_text="One student a line: username, email, optional name. A header line is "
                                         f"allowed. At most {MAX_STUDENTS} students.")
    csv_file = forms.FileField(required=False, label="or a CSV file")
    start = forms.BooleanField(required=False, label="Start the containers once created")

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        from panel.forms import add_capacity_override
        add_capacity_override(self, user, "import")

    def clean_csv_file(self):
        upload = self.cleaned_data.get("csv_file")
        if not upload:
            return ""
        if upload.size > MAX_CSV_BYTES:
            raise forms.ValidationError(f"The file is {upload.size} bytes; at most {MAX_CSV_BYTES} are accepted.")
        raw = upload.read()
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise forms.ValidationError("The file is not UTF-8 text; save it as CSV (UTF-8) and try again.") from None

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        text, from_file = (data.get("csv_text") or "").strip(), data.get("csv_file") or ""
        if text and from_file.strip():
            raise forms.ValidationError("Paste the CSV or upload a file, not both.")
        if not text and not from_file.strip():
            raise forms.ValidationError("Paste the CSV into the text box or choose a file.")
        data["csv"] = text or from_file
        return data


class BulkActionForm(forms.Form):
    action = forms.ChoiceField(choices=[(a, a) for a in BULK_ACTIONS],
                               error_messages={"invalid_choice": "Pick one of: " + ", ".join(BULK_ACTIONS) + "."})
    confirm = forms.CharField(required=False, max_length=40, label="Confirm (reset and destroy)",
                              help_text="Type the class slug to reset or destroy every container.")
    expires_at = datetime_local_field("New expiry (extend)")

    def clean(self):
        data = super().clean()
        if data.get("action") == "extend" and not data.get("expires_at") and "expires_at" not in self.errors:
            self.add_error("expires_at", "Give the new expiry date and time to extend the class.")
        return data


class PlanForm(forms.ModelForm):
    tenants = forms.ModelMultipleChoiceField(queryset=Tenant.objects.all(), required=False,
                                             help_text="None selected: offered to every tenant.")

    class Meta:
        model = Plan
        fields = ["name", "description", "ram_mb", "swap_mb", "cpus", "disk_mb", "tenants"]
        error_messages = {
            "name": {"unique": "A plan with this name exists already; pick another name."},
            "ram_mb": {"min_value": "RAM must be at least 16 MiB."},
            "disk_mb": {"min_value": "Disk must be at least 64 MiB."},
            "cpus": {"min_value": "A plan needs at least 1 CPU."},
        }
