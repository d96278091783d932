from rest_framework import serializers

from containers.models import Container, OSTemplate
from containers.validators import validate_ctid, validate_hostname, validate_name_alias
from hosts.models import Host


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
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    locked_by_task = serializers.IntegerField(source="lock_task_id", read_only=True)

    class Meta:
        model = Container
        fields = ["ctid", "url", "name", "hostname", "ostemplate", "host", "onboot", "description", "owner",
                  "status", "nproc", "locked_by_task", "status_changed_at", "created_at", "updated_at"]
        read_only_fields = fields


class ContainerCreateSerializer(serializers.Serializer):
    ctid = serializers.IntegerField(validators=[_django(validate_ctid)])
    ostemplate = serializers.CharField(max_length=128)
    hostname = serializers.CharField(max_length=253, validators=[_django(validate_hostname)])
    host = serializers.SlugRelatedField(slug_field="name", queryset=Host.objects.all(), required=False)
    name = serializers.CharField(max_length=64, required=False, allow_null=True, allow_blank=True,
                                 validators=[_django(validate_name_alias)])
    onboot = serializers.BooleanField(default=False)
    start = serializers.BooleanField(default=False)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class ContainerUpdateSerializer(serializers.Serializer):
    hostname = serializers.CharField(max_length=253, required=False, validators=[_django(validate_hostname)])
    name = serializers.CharField(max_length=64, required=False, allow_null=True, allow_blank=True)
    onboot = serializers.BooleanField(required=False)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)

    def validate_name(self, value):
        if value:
            _django(validate_name_alias)(value)
        return value or None


class ExecSerializer(serializers.Serializer):
    command = serializers.ListField(child=serializers.CharField(max_length=8192, trim_whitespace=False),
                                    min_length=1, max_length=1024)
    timeout = serializers.IntegerField(min_value=1, max_value=3600, default=60)


class DestroySerializer(serializers.Serializer):
    confirm = serializers.CharField(help_text="The container's CTID, repeated to confirm.")


class TemplateSerializer(serializers.ModelSerializer):
    host = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = OSTemplate
        fields = ["id", "name", "filename", "host", "size", "sha256", "modified_at", "seen_at"]
        read_only_fields = fields
