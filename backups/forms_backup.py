"""Forms of the backup pages: make, restore, annotate, delete, prune and upload archives.
(Backup jobs have their own forms in backups/forms.py.)"""
from __future__ import annotations

from django import forms

from accounts.permissions import creatable_tenants, placeable_hosts, visible_plans

from hosts.models import Host
from panel.fields import AsciiIntegerField
from panel.forms import add_capacity_override
from tenancy.models import Plan, Tenant

from .models import DEFAULT_MODE, MODE_HELP, BackupMode, BackupStorage, Compression

from panel.uploads import MAX_UPLOAD_BYTES  # noqa: E402,F401  (one limit for every upload)
KEEP_FIELDS = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")


class BackupCreateForm(forms.Form):
    """vzdump CTID: how, where, what to leave out."""

    mode = forms.ChoiceField(choices=BackupMode.choices, initial=DEFAULT_MODE, help_text=MODE_HELP)
    compress = forms.ChoiceField(label="Compression", choices=Compression.choices, initial=Compression.ZSTD)
    storage = forms.ModelChoiceField(queryset=BackupStorage.objects.none(), required=False,
                                     empty_label="dump directory")
    notes = forms.CharField(max_length=200, required=False)
    stdexcludes = forms.BooleanField(label="Standard excludes (/tmp, /var/tmp, /var/run/*.pid)", required=False,
                                     initial=True)
    exclude_paths = forms.CharField(label="Exclude paths", required=False, widget=forms.Textarea,
                                    help_text="one glob per line, e.g. /var/cache/*")
    bwlimit_kbps = AsciiIntegerField(label="Bandwidth limit (KiB/s)", required=False, min_value=1,
                                      max_value=10_000_000)
    protected = forms.BooleanField(required=False, help_text="protected backups are never pruned nor deleted")

    def __init__(self, *args, host=None, **kwargs):
        super().__init__(*args, **kwargs)
        if host is not None:
            self.fields["storage"].queryset = BackupStorage.objects.filter(host=host, enabled=True)

    def clean_exclude_paths(self) -> list[str]:
        lines = [line.strip() for line in self.cleaned_data["exclude_paths"].splitlines()]
        paths = [line for line in lines if line]
        for path in paths:
            if len(path) > 500 or "\x00" in path:
                raise forms.ValidationError(f"Bad exclude path {path[:60]!r}.")
        if len(paths) > 100:
            raise forms.ValidationError("At most 100 exclude paths.")
        return paths


class RestoreForm(forms.Form):
    """vzrestore ARCHIVE CTID: to a new container, or over the backup's own (stopped) container."""

    target = forms.ChoiceField(choices=[("new", "a new container"), ("overwrite", "overwrite this container")],
                               initial="new", widget=forms.RadioSelect)
    ctid = AsciiIntegerField(label="New CTID", required=False, min_value=100, max_value=999_999_999)
    confirm = forms.CharField(label="Type the CTID to overwrite", required=False, max_length=20)
    host = forms.ModelChoiceField(queryset=Host.objects.none(), to_field_name="name")
    hostname = forms.CharField(max_length=253, required=False, help_text="empty: the original's")
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.none(), required=False,
                                    empty_label="the backup's tenant", to_field_name="slug")
    plan = forms.ModelChoiceField(queryset=Plan.objects.none(), required=False,
                                  empty_label="the original's plan and limits", to_field_name="name")
    start = forms.BooleanField(label="Start after restore", required=False)

    def __init__(self, *args, user=None, backup=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.backup = backup
        # The backup's own host too: a member restoring over their own container places nothing new.
        own = Host.objects.filter(pk=backup.host_id) if backup is not None else Host.objects.none()
        self.fields["host"].queryset = (placeable_hosts(user) | own).distinct()
        self.fields["tenant"].queryset = creatable_tenants(user)
        self.fields["plan"].queryset = visible_plans(user)
        if backup is None or backup.container is None:
            self.fields["target"].choices = [("new", "a new container")]
        add_capacity_override(self, user, "restore")

    def clean(self):
        data = super().clean()
        if data.get("target") == "overwrite":
            if self.backup is None or self.backup.container is None:
                raise forms.ValidationError("The container of this backup no longer exists; restore to a new CTID.")
            data["ctid"] = self.backup.container.ctid
        elif data.get("target") == "new" and not data.get("ctid"):
            self.add_error("ctid", "Give the CTID of the new container.")
        return data


class NotesForm(forms.Form):
    notes = forms.CharField(max_length=200, required=False)


class DeleteForm(forms.Form):
    confirm = forms.CharField(label="Type the archive's file name", max_length=200)


class ProtectForm(forms.Form):
    protected = forms.BooleanField(required=False)


class PruneForm(forms.Form):
    """vzdump --prune-backups keep-*=N: at least one."""

    keep_last = AsciiIntegerField(label="keep-last", required=False, min_value=1, max_value=10_000)
    keep_hourly = AsciiIntegerField(label="keep-hourly", required=False, min_value=1, max_value=10_000)
    keep_daily = AsciiIntegerField(label="keep-daily", required=False, min_value=1, max_value=10_000)
    keep_weekly = AsciiIntegerField(label="keep-weekly", required=False, min_value=1, max_value=10_000)
    keep_monthly = AsciiIntegerField(label="keep-monthly", required=False, min_value=1, max_value=10_000)
    keep_yearly = AsciiIntegerField(label="keep-yearly", required=False, min_value=1, max_value=10_000)

    def clean(self):
        data = super().clean()
        if not self.errors and all(data.get(k) is None for k in KEEP_FIELDS):
            raise forms.ValidationError("Give at least one keep-* option.")
        return data

    def retention(self) -> dict:
        return {k: self.cleaned_data[k] for k in KEEP_FIELDS if self.cleaned_data.get(k) is not None}


class UploadForm(forms.Form):
    archive = forms.FileField(help_text="vzdump-lxc|openvz-CTID-YYYY_MM_DD-HH_MM_SS.tar[.gz|.zst], "
                                                 "or OpenVZ's .tgz and vzdump-CTID.tar names, up to 64 GiB")
    host = forms.ModelChoiceField(queryset=Host.objects.none(), to_field_name="name")
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.none(), required=False, empty_label="no tenant",
                                    to_field_name="slug")

    def __init__(self, *args, user=None, refused: str | None = None, **kwargs):
        """`refused`: why the upload was not read (too big, no space left), if it was not."""
        super().__init__(*args, **kwargs)
        self.user, self.refused = user, refused
        self.fields["host"].queryset = placeable_hosts(user)
        self.fields["tenant"].queryset = creatable_tenants(user)

    def clean(self):
        import os
        from accounts.permissions import manages_hosts
        from .services import InvalidRequest, archive_name
        data = super().clean()
        if self.refused:
            raise forms.ValidationError(self.refused)
        upload = data.get("archive")
        name = os.path.basename(upload.name or "") if upload is not None else None
        if name is not None:
            try:
                archive_name(name)
            except InvalidRequest as exc:
                self.add_error("archive", str(exc))
        if not self.has_error("tenant") and data.get("tenant") is None and not manages_hosts(self.user):
            self.add_error("tenant", "Choose the tenant the archive belongs to.")
        return data
