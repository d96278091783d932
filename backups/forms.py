"""Forms of the backup job pages. They offer only what the user may pick; the rules themselves
(and the final word) are in backups.jobs_service."""
from __future__ import annotations

from django import forms

from panel.forms import TypeNameToConfirmForm
from panel.fields import AsciiIntegerField

from .jobs_service import (JobInvalid, StorageChoice, job_containers, job_storages, job_tenants, parse_mailto,
                          validate_schedule)
from .models import DEFAULT_MODE, MODE_HELP, BackupJob, BackupMode, Compression
from .retention import RULES


class ContainerChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, ct):
        label = f"{ct.ctid}" + (f" {ct.name}" if ct.name else f" {ct.hostname}")
        return label + (f" ({ct.tenant.slug})" if ct.tenant_id else "")


class BackupJobForm(forms.Form):
    name = forms.CharField(max_length=100)
    tenant = forms.ModelChoiceField(queryset=None, required=False, to_field_name="slug",
                                    help_text="The tenant the job belongs to and whose containers it may back up.")
    schedule = forms.CharField(max_length=100, initial="30 2 * * *",
                               help_text="Cron syntax: minute hour day-of-month month day-of-week, "
                                         "e.g. 30 2 * * * (02:30 every day) or 0 3 * * 6 (Saturdays 03:00).")
    selection = forms.ChoiceField(choices=BackupJob.Selection.choices, initial=BackupJob.Selection.LIST)
    containers = ContainerChoiceField(queryset=None, required=False, to_field_name="ctid",
                                      help_text="Backed up when the selection is the containers listed.")
    excluded = ContainerChoiceField(queryset=None, required=False, to_field_name="ctid", label="Exclude",
                                    help_text="Left out when the selection is all containers or a tenant's.")
    mode = forms.ChoiceField(choices=BackupMode.choices, initial=DEFAULT_MODE, help_text=MODE_HELP)
    compress = forms.ChoiceField(choices=Compression.choices, initial=Compression.ZSTD, label="Compression")
    storage = forms.ModelChoiceField(queryset=None, required=False, empty_label="the host's dump directory")
    mailto = forms.CharField(max_length=500, required=False, label="Send email to",
                             help_text="Addresses for the report, separated by commas. Empty: no report.")
    notify = forms.ChoiceField(choices=BackupJob.Notify.choices, initial=BackupJob.Notify.ALWAYS,
                               label="Send the report")
    enabled = forms.BooleanField(required=False, initial=True)
    run_missed = forms.BooleanField(required=False, label="Run once on return if a run was missed while the "
                                                          "panel was down")

    def __init__(self, user, data=None, job: BackupJob | None = None):
        initial = None
        if job is not None:
            initial = {f: getattr(job, f) for f in ("name", "schedule", "selection", "mode", "compress", "mailto",
                                                    "notify", "enabled", "run_missed", *RULES)}
            initial.update(tenant=job.tenant, storage=job.storage,
                           containers=[c.ctid for c in job.containers.all()],
                           excluded=[c.ctid for c in job.excluded.all()])
        super().__init__(data, initial=initial)
        self.user, self.job = user, job
        tenants = job_tenants(user)
        self.fields["tenant"].queryset = tenants
        if self._tenant_required():
            self.fields["tenant"].required = True
            self.fields["tenant"].empty_label = None
        else:
            self.fields["tenant"].empty_label = "none (a global job)"
        cts = job_containers(user).select_related("tenant").order_by("ctid")
        self.fields["containers"].queryset = cts
        self.fields["excluded"].queryset = cts
        self.fields["storage"].queryset = job_storages()
        self.fields["storage"].label_from_instance = StorageChoice(user)
        for key in RULES:
            self.fields[key] = AsciiIntegerField(
                label=key.replace("_", "-"), required=False, min_value=0,
                error_messages={"invalid": "A whole number, or empty.", "min_value": "It cannot be negative."})
            if initial:
                self.initial[key] = getattr(job, key)

    def _tenant_required(self) -> bool:
        from accounts.permissions import manages_all_containers
        return not manages_all_containers(self.user)

    def clean_schedule(self):
        try:
            return validate_schedule(self.cleaned_data["schedule"])
        except JobInvalid as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_mailto(self):
        try:
            return ", ".join(parse_mailto(self.cleaned_data["mailto"]))
        except JobInvalid as exc:
            raise forms.ValidationError(str(exc)) from None

    def job_fields(self) -> dict:
        data = dict(self.cleaned_data)
        data["containers"] = list(data.get("containers") or [])
        data["excluded"] = list(data.get("excluded") or [])
        return data

    def retention_fields(self):
        return [self[k] for k in RULES]


class DeleteJobForm(TypeNameToConfirmForm):
    what = "the job's name"

    def __init__(self, job: BackupJob, data=None):
        super().__init__(job.name, data)
        self.job = job
