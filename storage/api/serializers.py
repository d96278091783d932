from rest_framework import serializers

from storage.models import Snapshot


class SnapshotSerializer(serializers.ModelSerializer):
    class Meta:
        model = Snapshot
        fields = ["name", "description", "created_at", "frozen_ms"]
        read_only_fields = fields


class SnapshotCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64, required=False, allow_blank=True,
                                 help_text="letters, digits, '.', '_', '-' (default: snap-DATE-TIME)")
    description = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
