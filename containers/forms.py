"""Forms for the container pages. Validation messages say what is wrong and how to fix it."""
from __future__ import annotations

import shlex

from django import forms

from hosts.models import Host

from .models import Container, OSTemplate
from .validators import validate_ctid, validate_hostname, validate_name_alias


class ContainerCreateForm(forms.Form):
    ctid = forms.IntegerField(label="CTID", validators=[validate_ctid],
                              help_text="101 or above; 0-100 are reserved.")
    host = forms.ModelChoiceField(queryset=Host.objects.all(), empty_label=None)
    ostemplate = forms.ChoiceField(label="OS template")
    hostname = forms.CharField(max_length=253, validators=[validate_hostname])
    name = forms.CharField(max_length=64, required=False, validators=[validate_name_alias],
                           help_text="Optional alias usable wherever the CTID is.")
    onboot = forms.BooleanField(required=False, label="Start when the host starts (onboot)")
    start = forms.BooleanField(required=False, initial=True, label="Start after creating")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=2000)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        names = OSTemplate.objects.order_by("name").values_list("name", flat=True).distinct()
        self.fields["ostemplate"].choices = [(n, n) for n in names]

    def clean_ctid(self):
        ctid = self.cleaned_data["ctid"]
        if Container.objects.filter(ctid=ctid).exists():
            raise forms.ValidationError(f"CTID {ctid} is already in use.")
        return ctid

    def clean_name(self):
        name = self.cleaned_data["name"] or None
        if name and Container.objects.filter(name=name).exists():
            raise forms.ValidationError(f"The name {name!r} is already in use.")
        return name

    def clean(self):
        data = super().clean()
        host, tmpl = data.get("host"), data.get("ostemplate")
        if host and tmpl and not OSTemplate.objects.filter(host=host, name=tmpl).exists():
            self.add_error("ostemplate", f"Template {tmpl} is not on host {host.name}.")
        return data


class ContainerSettingsForm(forms.Form):
    hostname = forms.CharField(max_length=253, validators=[validate_hostname])
    name = forms.CharField(max_length=64, required=False, validators=[validate_name_alias])
    onboot = forms.BooleanField(required=False, label="Start when the host starts (onboot)")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=2000)

    def __init__(self, *args, container: Container, **kwargs):
        self.container = container
        kwargs.setdefault("initial", {k: getattr(container, k) or "" for k in self.base_fields})
        super().__init__(*args, **kwargs)

    def clean_name(self):
        name = self.cleaned_data["name"] or None
        if name and Container.objects.filter(name=name).exclude(pk=self.container.pk).exists():
            raise forms.ValidationError(f"The name {name!r} is already in use.")
        return name


class ExecForm(forms.Form):
    command = forms.CharField(max_length=8192, help_text="Split into words like a shell would; no shell runs it.")
    timeout = forms.IntegerField(min_value=1, max_value=3600, initial=60, label="Timeout (s)")

    def clean_command(self):
        try:
            argv = shlex.split(self.cleaned_data["command"])
        except ValueError as exc:
            raise forms.ValidationError(f"Cannot split the command into words: {exc}.") from None
        if not argv:
            raise forms.ValidationError("Give a command to run.")
        return argv


class DestroyForm(forms.Form):
    confirm = forms.CharField(label="Type the CTID to confirm", max_length=16)
