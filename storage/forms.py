"""The host page's form for adding a storage pool."""
from __future__ import annotations

from django import forms

from panel.fields import AsciiIntegerField
from panel.validators import validate_name
from tenancy.models import Tenant

from .models import PoolType, validate_device


class PoolAddForm(forms.Form):
    name = forms.CharField(max_length=64, validators=[validate_name])
    type = forms.ChoiceField(choices=PoolType.choices, initial=PoolType.BTRFS)
    device = forms.CharField(max_length=128, required=False, validators=[validate_device],
                             help_text="btrfs on a block device: it must hold no filesystem (nothing is forced)")
    loop_size_mb = AsciiIntegerField(label="Loop file size (MiB)", min_value=256, max_value=1 << 26, required=False,
                                     help_text="btrfs without a device: a sparse file in the lxcpath, for trying it out")
    make_default = forms.BooleanField(required=False, label="make it the host's default")
    tenants = forms.ModelMultipleChoiceField(queryset=Tenant.objects.all(), required=False,
                                             help_text="who may create containers on it; none: every tenant")


class SnapshotForm(forms.Form):
    name = forms.CharField(max_length=64, required=False, help_text="letters, digits, '.', '_', '-'; "
                                                                  "empty: snap-DATE-TIME")
    description = forms.CharField(max_length=500, required=False)
