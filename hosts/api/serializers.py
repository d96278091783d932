from rest_framework import serializers

from hosts.models import Host


class HostSerializer(serializers.ModelSerializer):
    agent_online = serializers.BooleanField(read_only=True)
    agent_status = serializers.CharField(source="agent_status_text", read_only=True)

    class Meta:
        model = Host
        fields = ["id", "name", "lxcpath", "template_dir", "agent_online", "agent_status",
                  "agent_started_at", "agent_seen_at", "stats", "unmanaged", "created_at"]
        read_only_fields = fields
