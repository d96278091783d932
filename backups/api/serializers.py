"""Backup jobs over REST: what they are, and what a create/update may send."""
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from backups.jobs_service import describe_schedule, describe_selection
from backups.models import BackupJob, BackupMode, BackupRun, Compression
from backups.retention import RULES
from panel.fields import AsciiIntegerSerializerField


class BackupRunSerializer(serializers.ModelSerializer):
    tasks = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = BackupRun
        fields = ["id", "status", "started_at", "finished_at", "report_sent_at", "tasks"]
        read_only_fields = fields


class BackupJobSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api-backup-job-detail")
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    containers = serializers.SerializerMethodField(help_text="CTIDs listed (selection 'list')")
    excluded = serializers.SerializerMethodField(help_text="CTIDs left out")
    schedule_text = serializers.SerializerMethodField()
    selection_text = serializers.SerializerMethodField()
    last_run = serializers.SerializerMethodField()

    class Meta:
        model = BackupJob
        fields = ["id", "url", "name", "tenant", "owner", "schedule", "schedule_text", "selection",
                  "selection_text", "containers", "excluded", "mode", "compress", "storage", "mailto", "notify",
                  "enabled", "run_missed", *RULES, "last_run_at", "next_run_at", "last_run", "created_at"]
        read_only_fields = fields

    def get_containers(self, job) -> list[int]:
        return sorted(c.ctid for c in job.containers.all())

    def get_excluded(self, job) -> list[int]:
        return sorted(c.ctid for c in job.excluded.all())

    def get_schedule_text(self, job) -> str:
        return describe_schedule(job.schedule)

    def get_selection_text(self, job) -> str:
        return describe_selection(job)

    @extend_schema_field(BackupRunSerializer(allow_null=True))
    def get_last_run(self, job) -> dict | None:
        run = job.runs.order_by("-started_at").first()
        return BackupRunSerializer(run).data if run else None


class BackupJobWriteSerializer(serializers.Serializer):
    """The fields a create or update may send; the rules are checked by backups.jobs_service."""

    name = serializers.CharField(max_length=100)
    tenant = serializers.CharField(required=False, allow_null=True, allow_blank=True,
                                   help_text="slug of the tenant (empty: a global job; admins only)")
    schedule = serializers.CharField(max_length=100, help_text="cron: minute hour day month weekday")
    selection = serializers.ChoiceField(choices=BackupJob.Selection.choices, required=False)
    containers = serializers.ListField(child=AsciiIntegerSerializerField(min_value=1), required=False,
                                       help_text="CTIDs")
    excluded = serializers.ListField(child=AsciiIntegerSerializerField(min_value=1), required=False,
                                     help_text="CTIDs")
    mode = serializers.ChoiceField(choices=BackupMode.choices, required=False)
    compress = serializers.ChoiceField(choices=Compression.choices, required=False)
    storage = AsciiIntegerSerializerField(required=False, allow_null=True, help_text="storage id (empty: dump dir)")
    mailto = serializers.CharField(required=False, allow_blank=True, max_length=500)
    notify = serializers.ChoiceField(choices=BackupJob.Notify.choices, required=False)
    enabled = serializers.BooleanField(required=False)
    run_missed = serializers.BooleanField(required=False)
    keep_last = AsciiIntegerSerializerField(required=False, allow_null=True, min_value=0)
    keep_hourly = AsciiIntegerSerializerField(required=False, allow_null=True, min_value=0)
    keep_daily = AsciiIntegerSerializerField(required=False, allow_null=True, min_value=0)
    keep_weekly = AsciiIntegerSerializerField(required=False, allow_null=True, min_value=0)
    keep_monthly = AsciiIntegerSerializerField(required=False, allow_null=True, min_value=0)
    keep_yearly = AsciiIntegerSerializerField(required=False, allow_null=True, min_value=0)

    def to_fields(self) -> dict:
        data = dict(self.validated_data)
        if "tenant" in data and not data["tenant"]:
            data["tenant"] = None
        return data
