"""Forms for the container pages. Validation messages say what is wrong and how to fix it."""
from __future__ import annotations

import shlex

from django import forms

from containers.engine.units import MIN_DISK_MB, disk_too_small
from hosts.models import Host
from panel.forms import TypeNameToConfirmForm
from panel.fields import AsciiIntegerField
from panel.validators import validate_ctid, validate_hostname, validate_name_alias
from tenancy.models import Plan, Tenant

from .models import Container, OSTemplate


class TemplateOnHostMixin:
    """For forms with `host` and `ostemplate` fields: the template choices, and the check
    that the chosen template is in that host's cache."""

    def set_template_choices(self):
        names = OSTemplate.objects.order_by("name").values_list("name", flat=True).distinct()
        self.fields["ostemplate"].choices = [(n, n) for n in names]

    def clean(self):
        data = super().clean()
        host, tmpl = data.get("host"), data.get("ostemplate")
        if host and tmpl and not OSTemplate.objects.filter(host=host, name=tmpl).exists():
            self.add_error("ostemplate", f"Template {tmpl} is not on host {host.name}.")
        return data


class LimitFields(forms.Form):
    ram_mb = AsciiIntegerField(label="RAM (MiB)", min_value=16, max_value=1 << 22, required=False)
    swap_mb = AsciiIntegerField(label="Swap (MiB)", min_value=0, max_value=1 << 22, required=False)
    cpus = AsciiIntegerField(label="CPUs", min_value=1, max_value=1024, required=False)
    disk_mb = AsciiIntegerField(label="Disk (MiB)", min_value=MIN_DISK_MB, max_value=1 << 26, required=False,
                                error_messages={"min_value": disk_too_small("The disk")})

    CORE = ("ram_mb", "swap_mb", "cpus", "disk_mb")

    def limits(self) -> dict:
        return {k: self.cleaned_data[k] for k in self.CORE if self.cleaned_data.get(k) is not None}


class ContainerCreateForm(TemplateOnHostMixin, LimitFields):
    ctid = AsciiIntegerField(label="CTID", validators=[validate_ctid],
                              help_text="101 or above; 0-100 are reserved.")
    host = forms.ModelChoiceField(queryset=Host.objects.filter(drained_at__isnull=True), required=False,
                                  empty_label="Automatic (the host with the most room)")
    ostemplate = forms.ChoiceField(label="OS template")
    hostname = forms.CharField(max_length=253, strip=False, validators=[validate_hostname])
    name = forms.CharField(max_length=64, required=False, strip=False, validators=[validate_name_alias],
                           help_text="Optional alias usable wherever the CTID is.")
    onboot = forms.BooleanField(required=False, label="Start when the host starts (onboot)")
    start = forms.BooleanField(required=False, initial=True, label="Start after creating")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=2000)

    tenant = forms.ModelChoiceField(queryset=Tenant.objects.none(), required=False,
                                    help_text="Whose quota the container counts against.")
    plan = forms.ModelChoiceField(queryset=Plan.objects.none(), required=False,
                                  help_text="Named limits; the fields below override them (administrators only).")

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        from accounts.permissions import creatable_tenants, manages_all_containers, may_create_without_tenant
        from accounts.permissions import visible_plans
        self.set_template_choices()
        self.fields["tenant"].queryset = creatable_tenants(user)
        self.fields["plan"].queryset = visible_plans(user)  # only plans offered to the user's tenants
        if not may_create_without_tenant(user):
            self.fields["tenant"].required = True
            self.fields["tenant"].empty_label = None
            self.fields["plan"].required = True
        from panel.forms import add_capacity_override
        self.admin_limits = manages_all_containers(user)
        add_capacity_override(self, user, "create")
        if not self.admin_limits:
            for key in ("ram_mb", "swap_mb", "cpus", "disk_mb"):
                del self.fields[key]
        else:
            from django.conf import settings
            for key in ("ram_mb", "swap_mb", "cpus", "disk_mb"):
                self.fields[key].help_text = f"Empty: the plan's, or {settings.DEFAULT_LIMITS[key]} without one."
        self.plans = list(self.fields["plan"].queryset)
        self.add_storage_field(user)

    # Addresses, root's password and SSH keys (issue 18): checked by the service's own cleaners, so
    # the form and the API and vzctl refuse the same things in the same words.
    ipadd = forms.CharField(label="IP addresses", required=False, max_length=1200, strip=True,
                            help_text="Routed (venet) addresses, separated by spaces or commas; auto takes the "
                                      "next free one from the tenant's IP pool. Empty: none.")
    root_password = forms.CharField(label="Root password", required=False, strip=False, max_length=4096,
                                    widget=forms.PasswordInput(render_value=False),
                                    help_text="8 to 256 characters. Empty: the template's (root cannot log in "
                                              "with a password). Stored only as a hash, inside the container.")
    root_password_confirm = forms.CharField(label="Repeat the root password", required=False, strip=False,
                                            max_length=4096, widget=forms.PasswordInput(render_value=False))
    ssh_public_keys = forms.CharField(label="SSH public keys for root", required=False, max_length=300_000,
                                      widget=forms.Textarea(attrs={"rows": 3}),
                                      help_text="One per line, as in authorized_keys (ssh-ed25519 AAAA... comment), "
                                                "without options.")

    def clean_ipadd(self):
        from .services import InvalidRequest, clean_create_addresses
        from network.services import parse_address
        words = [w for w in self.cleaned_data["ipadd"].replace(",", " ").split() if w]
        try:
            for word in words:
                if word != "auto":
                    parse_address(word)  # its form; pools and holders are the service's, once placed
            return clean_create_addresses(words)
        except InvalidRequest as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_root_password(self):
        from .services import InvalidRequest, clean_root_password
        password = self.cleaned_data["root_password"]
        if password:
            try:
                clean_root_password(password)
            except InvalidRequest as exc:
                raise forms.ValidationError(str(exc)) from None
        return password or None

    def clean_ssh_public_keys(self):
        from .services import InvalidRequest, clean_ssh_public_keys
        # A textarea: every line is a key; a key with a line break in it is two lines, and the
        # second (command=..., or anything else) is refused as not a key.
        lines = [line for line in self.cleaned_data["ssh_public_keys"].replace("\r\n", "\n").split("\n")
                 if line.strip()]
        try:
            return clean_ssh_public_keys(lines) if lines else []
        except InvalidRequest as exc:
            raise forms.ValidationError(str(exc)) from None

    def add_storage_field(self, user):
        """Storage pool (issue 21): the names of the pools the user may create on, on any host; the
        service checks the chosen one against the host and the tenant."""
        from storage.models import PoolStatus, StoragePool
        from accounts.permissions import manages_all_containers
        pools = StoragePool.objects.filter(status=PoolStatus.READY)
        if not manages_all_containers(user):
            from accounts.permissions import creatable_tenants
            pools = pools.filter(tenants__isnull=True) | pools.filter(tenants__in=creatable_tenants(user))
        names = sorted(set(pools.values_list("name", flat=True)))
        self.fields["storage"] = forms.ChoiceField(
            label="Storage pool", required=False, choices=[("", "The host's default")] + [(n, n) for n in names],
            help_text="Where its root filesystem lives: a btrfs pool takes snapshots; see the host's page.")

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
        if (data.get("root_password") or "") != (self.cleaned_data.get("root_password_confirm") or "") \
                and "root_password" not in self.errors:
            self.add_error("root_password_confirm", "The two passwords differ.")
        return data

    def defaults(self) -> list[tuple[str, str]]:
        """What a container created here gets when a field is left empty and no plan says otherwise:
        shown on the form, so nothing is a surprise."""
        from django.conf import settings
        limits = settings.DEFAULT_LIMITS
        field = Container._meta.get_field
        if self.fields["plan"].required:  # everyone but administrators and operators takes a plan's limits
            sizes = [("RAM, swap, CPUs, disk", "the plan's (below)")]
        else:
            sizes = [("RAM", f"{limits['ram_mb']} MiB"), ("Swap", f"{limits['swap_mb']} MiB"),
                     ("CPUs", str(limits["cpus"])),
                     ("Disk", f"{limits['disk_mb']} MiB ({limits['disk_mb'] / 1024:g} GiB)")]
            sizes = [(what, value + (" (or the plan's)" if self.plans else "")) for what, value in sizes]
        return [
            *sizes,
            ("Inodes", str(field("diskinodes").default)), ("CPU units", str(field("cpuunits").default)),
            ("CPU limit", "none" if not field("cpulimit").default else f"{field('cpulimit').default} %"),
            ("Processes", "no limit"), ("I/O priority", str(field("ioprio").default)),
            ("Host", "the host with the most room that has the template"),
            ("Addresses", "none (auto: the next free one of the tenant's pool)"),
            ("Root password", "the template's (none set)"), ("Start when the host starts", "no"),
        ]


class ContainerSettingsForm(LimitFields):
    hostname = forms.CharField(max_length=253, strip=False, validators=[validate_hostname])
    name = forms.CharField(max_length=64, required=False, strip=False, validators=[validate_name_alias])
    onboot = forms.BooleanField(required=False, label="Start when the host starts (onboot)")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=2000)
    ram_barrier_mb = AsciiIntegerField(label="RAM barrier (MiB)", min_value=16, max_value=1 << 22, required=False,
                                        help_text="physpages barrier; empty for none")
    cpuunits = AsciiIntegerField(label="CPU units", min_value=8, max_value=500000, required=False,
                                  help_text="relative CPU weight; tenants may set up to 1000 (the default)")
    cpulimit = AsciiIntegerField(label="CPU limit (% of one CPU)", min_value=0, max_value=102400, required=False,
                                  help_text="0 for no limit; tenants may set up to 100 per CPU")
    numproc = AsciiIntegerField(label="Processes (numproc)", min_value=8, max_value=4_000_000, required=False,
                                 help_text="empty for no limit (administrators only); tenants may set up to 65536")
    disk_soft_mb = AsciiIntegerField(label="Disk soft limit (MiB)", min_value=64, max_value=1 << 26, required=False)
    diskinodes = AsciiIntegerField(label="Inodes", min_value=1000, max_value=1 << 31, required=False,
                                    help_text="tenants may set up to 256 per MiB of disk")
    diskinodes_soft = AsciiIntegerField(label="Inodes soft limit", min_value=1000, max_value=1 << 31, required=False)
    ioprio = AsciiIntegerField(label="I/O priority (0-7)", min_value=0, max_value=7, required=False,
                                help_text="tenants may set up to 4 (the default)")

    # Empty means "none" for these; for the others empty means "leave as it is".
    NULLABLE = ("ram_barrier_mb", "numproc", "disk_soft_mb", "diskinodes_soft")
    ALL_LIMITS = ("ram_mb", "ram_barrier_mb", "swap_mb", "cpus", "cpuunits", "cpulimit", "numproc", "disk_mb",
                  "disk_soft_mb", "diskinodes", "diskinodes_soft", "ioprio")

    def limits(self) -> dict:
        return {k: self.cleaned_data.get(k) for k in self.ALL_LIMITS
                if self.cleaned_data.get(k) is not None or k in self.NULLABLE}

    def __init__(self, *args, container: Container, **kwargs):
        self.container = container
        kwargs.setdefault("initial", {k: "" if getattr(container, k) is None else getattr(container, k)
                                      for k in self.base_fields})
        super().__init__(*args, **kwargs)

    def clean_name(self):
        name = self.cleaned_data["name"] or None
        if name and Container.objects.filter(name=name).exclude(pk=self.container.pk).exists():
            raise forms.ValidationError(f"The name {name!r} is already in use.")
        return name


class ExecForm(forms.Form):
    command = forms.CharField(max_length=8192, help_text="Split into words like a shell would; no shell runs it.")
    timeout = AsciiIntegerField(min_value=1, max_value=3600, initial=60, label="Timeout (s)")

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


class PasswordForm(forms.Form):
    user = forms.CharField(initial="root", max_length=32)
    password = forms.CharField(widget=forms.PasswordInput, min_length=8, max_length=512)
    confirm = forms.CharField(widget=forms.PasswordInput, label="Repeat the password")

    def clean(self):
        data = super().clean()
        if data.get("password") and data.get("password") != data.get("confirm"):
            self.add_error("confirm", "The two passwords differ.")
        return data


class SSHKeyForm(forms.Form):
    key = forms.CharField(label="SSH public key", widget=forms.Textarea(attrs={"rows": 3}), max_length=9000)
    user = forms.CharField(initial="root", max_length=32)


class MigrateForm(forms.Form):
    """vzmigrate [--online] [-r yes|no] [--keep-dst] DEST CTID, from the container page."""

    destination = forms.ModelChoiceField(queryset=Host.objects.filter(drained_at__isnull=True), required=False,
                                         empty_label="Automatic (the host with the most room)")
    online = forms.BooleanField(required=False, initial=True,
                                label="Online: keep it running (copy, freeze, copy what changed, start there)")
    remove_source = forms.BooleanField(required=False, initial=True, label="Remove it from this host afterwards")
    keep_dst = forms.BooleanField(required=False, label="On failure, keep the copied files for the next attempt")
    bwlimit_kib = AsciiIntegerField(required=False, min_value=0, max_value=100_000_000, label="Bandwidth limit (KiB/s)")

    def __init__(self, *args, container=None, **kwargs):
        super().__init__(*args, **kwargs)
        if container is not None:
            self.fields["destination"].queryset = self.fields["destination"].queryset.exclude(pk=container.host_id)


class TemplateNameForm(forms.Form):
    """Make a template from a stopped container: its name (ostemplates checks it)."""

    name = forms.CharField(max_length=100, label="Template name")


# -- the OS template catalogue's forms (ostemplates checks every value again) -------------------
class TemplateHostForm(forms.Form):
    """A catalogue form that names a host: one of `hosts` (those the user may place on), by name."""

    host = forms.ModelChoiceField(queryset=Host.objects.none(), to_field_name="name", label="Host",
                                  error_messages={"invalid_choice": "No host %(value)r; choose one of the list.",
                                                  "required": "Choose a host."})

    def __init__(self, data=None, files=None, *, hosts, **kwargs):
        super().__init__(data, files, **kwargs)
        self.fields["host"].queryset = hosts


class TemplateBuildForm(TemplateHostForm):
    """debootstrap; a field left empty takes its initial value."""

    distribution = forms.CharField(max_length=32, required=False, initial="debian")
    release = forms.CharField(max_length=64, required=False, initial="bookworm")
    architecture = forms.CharField(max_length=32, required=False, initial="amd64")
    mirror = forms.CharField(max_length=2000, required=False, label="Mirror")
    name = forms.CharField(max_length=100, required=False)


class TemplateDownloadForm(TemplateHostForm):
    url = forms.CharField(max_length=2000, label="URL")
    sha256 = forms.CharField(max_length=64, required=False, label="SHA-256")
    name = forms.CharField(max_length=100, required=False)


class TemplateIndexForm(TemplateHostForm):
    index_url = forms.CharField(max_length=2000, label="Server URL", initial="https://images.linuxcontainers.org/")
    distribution = forms.CharField(max_length=32, initial="debian")
    release = forms.CharField(max_length=64, initial="bookworm")
    architecture = forms.CharField(max_length=32, required=False, initial="amd64")
    variant = forms.CharField(max_length=32, required=False, initial="default")
    name = forms.CharField(max_length=100, required=False)


class TemplateUploadForm(TemplateHostForm):
    """An uploaded root filesystem: a tarball by its suffix, a valid name no template on the host has.
    `refused` is why panel.uploads stopped reading the file (too big), if it did."""

    name = forms.CharField(max_length=100, required=False)
    file = forms.FileField(label="Root filesystem tarball", error_messages={"required": "Choose a tarball to upload."})

    def __init__(self, data=None, files=None, *, hosts, refused: str | None = None, **kwargs):
        super().__init__(data, files, hosts=hosts, **kwargs)
        self.refused = refused

    def clean(self):
        from .engine.templates import NAME_RE, SUFFIXES
        data = super().clean()
        if self.refused:
            raise forms.ValidationError(self.refused)
        upload, host = data.get("file"), data.get("host")
        if upload is None:
            return data
        filename = upload.name or ""
        suffix = next((s for s in SUFFIXES if filename.endswith(s)), None)
        if suffix is None:
            self.add_error("file", f"{filename!r} is not a tarball ({', '.join(SUFFIXES)}).")
            return data
        name = data.get("name") or filename[: -len(suffix)]
        if not NAME_RE.match(name):
            self.add_error("name", f"{name!r} is not a template name: letters, digits, '.', '_', '+' and '-', "
                                   "starting with a letter or digit.")
        elif host is not None and OSTemplate.objects.filter(host=host, name=name).exists():
            self.add_error("name", f"Host {host.name} already has a template {name}; delete it first or pick "
                                   "another name.")
        data["name"], data["suffix"] = name, suffix
        return data


class TemplateDeleteForm(TypeNameToConfirmForm):
    what = "the template's name"

    def __init__(self, template: OSTemplate, data=None):
        super().__init__(template.name, data)
        self.template = template
