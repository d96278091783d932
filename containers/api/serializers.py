from rest_framework import serializers

from backups.models import Compression
from containers.engine.units import MIN_DISK_MB, disk_too_small
from containers.models import Container, OSTemplate
from hosts.models import Host
from panel.fields import AsciiIntegerSerializerField
from panel.validators import validate_ctid, validate_hostname, validate_name as validate_pool_name, validate_name_alias
from tenancy.models import Plan, Tenant


def _django(validator):
    """Run a Django validator and report its message as a DRF validation error."""
    from django.core.exceptions import ValidationError

    def check(value):
        try:
            validator(value)
        except ValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None
    return check


class ContainerSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api-container-detail", lookup_field="ctid")
    host = serializers.SlugRelatedField(slug_field="name", read_only=True)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    locked_by_task = serializers.IntegerField(source="lock_task_id", read_only=True, allow_null=True)
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    plan = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    ip = serializers.SerializerMethodField(help_text="the container's addresses, venet's and veth's, as vzlist -j")
    storage = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)

    class Meta:
        model = Container
        fields = ["ctid", "url", "name", "hostname", "ostemplate", "host", "ip", "onboot", "description", "owner",
                  "tenant", "plan", "ram_mb", "ram_barrier_mb", "swap_mb", "cpus", "cpuunits", "cpulimit", "numproc",
                  "disk_mb", "disk_soft_mb", "diskinodes", "diskinodes_soft", "ioprio", "expires_at", "storage",
                  "status", "unmounted", "nproc", "locked_by_task", "status_changed_at", "created_at", "updated_at"]
        read_only_fields = fields

    def get_ip(self, ct) -> list[str]:
        # From the list's prefetch (containers.views.listed_containers), else one query for one container.
        return [a.address for a in sorted(ct.addresses.all(), key=lambda a: a.interface != "venet0")]


def _default(key: str) -> str:
    from django.conf import settings
    return f"{settings.DEFAULT_LIMITS[key]} without one"


class ContainerCreateSerializer(serializers.Serializer):
    ctid = AsciiIntegerSerializerField(validators=[_django(validate_ctid)])
    ostemplate = serializers.CharField(max_length=128)
    hostname = serializers.CharField(max_length=253, trim_whitespace=False, validators=[_django(validate_hostname)])
    host = serializers.SlugRelatedField(slug_field="name", queryset=Host.objects.all(), required=False,
                                        help_text="default: the online host with the most room that has the template")
    name = serializers.CharField(max_length=64, required=False, allow_null=True, allow_blank=True,
                                 trim_whitespace=False, validators=[_django(validate_name_alias)])
    onboot = serializers.BooleanField(default=False)
    start = serializers.BooleanField(default=False)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    # Looked up among what the caller may use (see __init__): a tenant or plan they may not use
    # answers exactly like one that does not exist, so names do not leak.
    tenant = serializers.SlugRelatedField(slug_field="slug", queryset=Tenant.objects.none(), required=False,
                                          allow_null=True)
    plan = serializers.SlugRelatedField(slug_field="name", queryset=Plan.objects.none(), required=False,
                                        allow_null=True)
    ram_mb = AsciiIntegerSerializerField(min_value=16, required=False,
                                         help_text="MiB (administrators); default: the plan's, or "
                                                   + _default("ram_mb"))
    swap_mb = AsciiIntegerSerializerField(min_value=0, required=False,
                                          help_text="MiB (administrators); default: the plan's, or "
                                                    + _default("swap_mb"))
    cpus = AsciiIntegerSerializerField(min_value=1, max_value=1024, required=False,
                                       help_text="(administrators) default: the plan's, or " + _default("cpus"))
    disk_mb = AsciiIntegerSerializerField(min_value=MIN_DISK_MB, required=False,
                                          error_messages={"min_value": disk_too_small()},
                                          help_text="MiB (administrators); default: the plan's, or "
                                                    + _default("disk_mb"))
    override_capacity = serializers.BooleanField(default=False, help_text="administrators only")
    # Issue 18: what vzctl create --ipadd, --userpasswd root:... and --ssh-public-keys give. The
    # service checks them (containers.services.clean_*, network.services.assign_addresses).
    ipadd = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, max_length=16, default=list,
        help_text="Routed (venet) addresses, as vzctl create --ipadd: each an IPv4/IPv6 address or `auto` (the next "
                  "free address of `ip_pool`, or of the first IP pool the tenant may use). Tenants' people may give "
                  "only addresses their tenant's pools hand out; an address another container holds is refused. "
                  "Default: none.")
    ip_pool = serializers.CharField(max_length=64, required=False, allow_null=True, allow_blank=True, default=None,
                                    help_text="The IP pool `auto` takes from (default: the first the tenant may use).")
    root_password = serializers.CharField(
        write_only=True, required=False, allow_null=True, allow_blank=True, default=None, trim_whitespace=False,
        max_length=4096, style={"input_type": "password"},
        help_text="Root's password inside the container, 8 to 256 characters (511 bytes) without line breaks or NUL. Hashed "
                  "(SHA-512 crypt) before anything is stored; never returned, logged or kept in the task. "
                  "Default: the template's (none).")
    ssh_public_keys = serializers.ListField(
        child=serializers.CharField(max_length=9000, trim_whitespace=False), required=False, max_length=32,
        default=list,
        help_text="Public keys for root's ~/.ssh/authorized_keys, one key each ('ssh-ed25519 AAAA... comment'; no "
                  "options such as command=, no line breaks). Default: none.")
    # The host's storage pool by name (default: the host's default pool); checked by the service
    # against the pools the caller may use for the tenant.
    storage = serializers.CharField(max_length=64, required=False, allow_null=True, allow_blank=True,
                                    validators=[_django(validate_pool_name)])

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        from accounts.permissions import creatable_tenants, visible_plans
        self.fields["tenant"].queryset = creatable_tenants(user)
        self.fields["plan"].queryset = visible_plans(user)


class ContainerUpdateSerializer(serializers.Serializer):
    hostname = serializers.CharField(max_length=253, required=False, trim_whitespace=False,
                                     validators=[_django(validate_hostname)])
    name = serializers.CharField(max_length=64, required=False, allow_null=True, allow_blank=True,
                                 trim_whitespace=False)
    onboot = serializers.BooleanField(required=False)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    ram_mb = AsciiIntegerSerializerField(min_value=16, required=False)
    swap_mb = AsciiIntegerSerializerField(min_value=0, required=False)
    cpus = AsciiIntegerSerializerField(min_value=1, max_value=1024, required=False)
    disk_mb = AsciiIntegerSerializerField(min_value=MIN_DISK_MB, required=False,
                                          error_messages={"min_value": disk_too_small()})
    ram_barrier_mb = AsciiIntegerSerializerField(min_value=16, required=False, allow_null=True)
    cpuunits = AsciiIntegerSerializerField(min_value=8, max_value=500000, required=False)
    cpulimit = AsciiIntegerSerializerField(min_value=0, max_value=102400, required=False)
    numproc = AsciiIntegerSerializerField(min_value=8, required=False, allow_null=True)
    disk_soft_mb = AsciiIntegerSerializerField(min_value=64, required=False, allow_null=True)
    diskinodes = AsciiIntegerSerializerField(min_value=1000, required=False)
    diskinodes_soft = AsciiIntegerSerializerField(min_value=1000, required=False, allow_null=True)
    ioprio = AsciiIntegerSerializerField(min_value=0, max_value=7, required=False)
    override_capacity = serializers.BooleanField(required=False, help_text="administrators only")

    def validate_name(self, value):
        if value:
            _django(validate_name_alias)(value)
        return value or None


# Seconds an exec request may wait for its command's end: below gunicorn's worker timeout (30 s),
# which would kill a sync worker kept longer.
MAX_EXEC_WAIT = 20


class ExecSerializer(serializers.Serializer):
    command = serializers.ListField(child=serializers.CharField(max_length=8192, trim_whitespace=False),
                                    min_length=1, max_length=1024)
    timeout = AsciiIntegerSerializerField(min_value=1, max_value=3600, default=60)
    wait = AsciiIntegerSerializerField(
        min_value=0, max_value=MAX_EXEC_WAIT, default=0,
        help_text="Seconds to wait for the command to end: 200 with the ended task (its result has the exit "
                  "code and output) if it ended by then, else 202 as without (0, the default: 202 at once).")


class DestroySerializer(serializers.Serializer):
    confirm = serializers.CharField(help_text="The container's CTID, repeated to confirm.")


class TemplateSerializer(serializers.ModelSerializer):
    host = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = OSTemplate
        fields = ["id", "name", "filename", "host", "size", "sha256", "modified_at", "seen_at"]
        read_only_fields = fields


class PasswordSerializer(serializers.Serializer):
    user = serializers.CharField(max_length=32, default="root")
    password = serializers.CharField(min_length=8, max_length=512, write_only=True, trim_whitespace=False)


class SSHKeySerializer(serializers.Serializer):
    key = serializers.CharField(max_length=9000)
    user = serializers.CharField(max_length=32, default="root")


class BackupRequestSerializer(serializers.Serializer):
    compress = serializers.ChoiceField(choices=Compression.choices, default=Compression.ZSTD)
    notes = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class MigrateSerializer(serializers.Serializer):
    """vzmigrate: `host` empty or absent lets the panel pick the host with the most room."""

    host = serializers.SlugRelatedField(slug_field="name", queryset=Host.objects.all(), required=False, allow_null=True)
    online = serializers.BooleanField(default=False)
    remove_source = serializers.BooleanField(default=True)
    keep_dst = serializers.BooleanField(default=False)
    bwlimit_kib = AsciiIntegerSerializerField(default=0, min_value=0, max_value=100_000_000)
