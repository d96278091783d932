from rest_framework import serializers

from backups.models import Compression
from containers.models import Container, OSTemplate
from hosts.models import Host
from panel.fields import AsciiIntegerSerializerField
from panel.validators import validate_ctid, validate_hostname, validate_name_alias
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

    class Meta:
        model = Container
        fields = ["ctid", "url", "name", "hostname", "ostemplate", "host", "onboot", "description", "owner",
                  "tenant", "plan", "ram_mb", "ram_barrier_mb", "swap_mb", "cpus", "cpuunits", "cpulimit", "numproc",
                  "disk_mb", "disk_soft_mb", "diskinodes", "diskinodes_soft", "ioprio", "expires_at",
                  "status", "unmounted", "nproc", "locked_by_task", "status_changed_at", "created_at", "updated_at"]
        read_only_fields = fields


class ContainerCreateSerializer(serializers.Serializer):
    ctid = AsciiIntegerSerializerField(validators=[_django(validate_ctid)])
    ostemplate = serializers.CharField(max_length=128)
    hostname = serializers.CharField(max_length=253, trim_whitespace=False, validators=[_django(validate_hostname)])
    host = serializers.SlugRelatedField(slug_field="name", queryset=Host.objects.all(), required=False)
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
    ram_mb = AsciiIntegerSerializerField(min_value=16, required=False)
    swap_mb = AsciiIntegerSerializerField(min_value=0, required=False)
    cpus = AsciiIntegerSerializerField(min_value=1, max_value=1024, required=False)
    disk_mb = AsciiIntegerSerializerField(min_value=300, required=False)
    override_capacity = serializers.BooleanField(default=False, help_text="administrators only")

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
    disk_mb = AsciiIntegerSerializerField(min_value=300, required=False)
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
