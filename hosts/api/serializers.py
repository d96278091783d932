from rest_framework import serializers

from hosts.models import Host


class HostStoragePoolSerializer(serializers.Serializer):
    """A host's storage pool as vzctl create --storage and the API's storage field name it."""
    name = serializers.CharField()
    type = serializers.CharField()
    status = serializers.CharField()
    is_default = serializers.BooleanField()
    size_bytes = serializers.IntegerField(allow_null=True)
    used_bytes = serializers.IntegerField(allow_null=True)
    free_bytes = serializers.IntegerField(allow_null=True)


class HostSerializer(serializers.ModelSerializer):
    agent_online = serializers.BooleanField(read_only=True)
    agent_status = serializers.CharField(source="agent_status_text", read_only=True)
    drained = serializers.BooleanField(source="is_drained", read_only=True)
    has_token = serializers.SerializerMethodField()
    container_count = serializers.SerializerMethodField()
    storage_pools = HostStoragePoolSerializer(many=True, read_only=True)

    class Meta:
        model = Host
        fields = ["id", "name", "lxcpath", "template_dir", "dump_dir", "agent_online", "agent_status",
                  "agent_started_at", "agent_seen_at", "drained", "drained_at", "drain_reason", "has_token",
                  "ssh_address", "ssh_host_key", "capabilities", "container_count", "stats", "unmanaged",
                  "ram_promise", "cpu_promise", "disk_promise", "storage_pools", "created_at"]
        read_only_fields = fields

    def get_has_token(self, host) -> bool:
        return bool(host.token_hash)

    def get_container_count(self, host) -> int:
        return host.containers.count()


class HostCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=63)
    lxcpath = serializers.CharField(max_length=255, default="/var/lib/lxc")
    template_dir = serializers.CharField(max_length=255, default="/var/lib/vz/template/cache")
    dump_dir = serializers.CharField(max_length=255, default="/var/lib/vz/dump")
    ssh_address = serializers.CharField(max_length=255, default="", allow_blank=True)


class PromiseSerializer(serializers.Serializer):
    """The host's promise policy (hosts.services.set_promise checks the ranges)."""
    ram_promise = serializers.FloatField(help_text="× the host's RAM")
    cpu_promise = serializers.FloatField(allow_null=True, help_text="× the host's cores; null: CPUs are never refused")
    disk_promise = serializers.FloatField(help_text="× the host's disk")


class DrainSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=200, default="", allow_blank=True)


class EvacuateSerializer(serializers.Serializer):
    online = serializers.BooleanField(default=True)


class SshSerializer(serializers.Serializer):
    ssh_address = serializers.CharField(max_length=255, allow_blank=True)
    repin = serializers.BooleanField(default=False)


class RemoveSerializer(serializers.Serializer):
    confirm = serializers.CharField(max_length=63)
