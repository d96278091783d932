"""Forms of the host pages. hosts.services and backups.services check every value again."""
from __future__ import annotations

from django import forms


class HostAddForm(forms.Form):
    """A new host; a path left empty is its usual place (the field's initial value)."""

    name = forms.CharField(max_length=63, help_text="Lower-case letters, digits and hyphens; the agent's queue "
                                                    "is named after it.")
    ssh_address = forms.CharField(max_length=255, required=False, label="SSH address",
                                  help_text="Where other hosts' agents copy migrating containers to. Empty: this "
                                            "same machine (local copies).")
    lxcpath = forms.CharField(max_length=255, required=False, initial="/var/lib/lxc")
    template_dir = forms.CharField(max_length=255, required=False, initial="/var/lib/vz/template/cache", label="Template cache")
    dump_dir = forms.CharField(max_length=255, required=False, initial="/var/lib/vz/dump", label="Dump directory")

    def host_fields(self) -> dict:
        return {k: (v.strip() or self.fields[k].initial or "") for k, v in self.cleaned_data.items()}


class PromiseForm(forms.Form):
    """The host's promise policy; hosts.services.set_promise checks the ranges."""

    ram_promise = forms.FloatField(label="RAM promise", help_text="× the host's RAM (1 = no overcommit)")
    cpu_promise = forms.FloatField(required=False, label="CPU promise",
                                   help_text="× the host's cores; empty: CPUs are never refused, as on OpenVZ")
    disk_promise = forms.FloatField(label="Disk promise", help_text="× the host's disk (1 = no overcommit)")


class DrainForm(forms.Form):
    reason = forms.CharField(max_length=200, required=False, label="Drain reason")


class EvacuateForm(forms.Form):
    online = forms.BooleanField(required=False)


class SSHForm(forms.Form):
    ssh_address = forms.CharField(max_length=255, required=False, label="SSH address")
    repin = forms.BooleanField(required=False, label="forget the pinned host key")


class RemoveHostForm(forms.Form):
    confirm = forms.CharField(max_length=63, label="Type the host's name to confirm")


class StorageForm(forms.Form):
    name = forms.CharField(max_length=64)
    path = forms.CharField(max_length=255)