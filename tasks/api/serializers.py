from rest_framework import serializers

from tasks.models import Task


class TaskSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api-task-detail")
    host = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    user = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    agent_status = serializers.SerializerMethodField()

    class Meta:
        model = Task
        fields = ["id", "url", "type", "ctid", "host", "user", "status", "progress", "params", "result",
                  "error", "rq_job_id", "created_at", "started_at", "finished_at", "agent_status"]
        read_only_fields = fields

    def get_agent_status(self, task) -> str | None:
        # A removed host leaves its tasks without one.
        return task.host.agent_status_text if task.host else None


class TaskDetailSerializer(TaskSerializer):
    class Meta(TaskSerializer.Meta):
        fields = TaskSerializer.Meta.fields + ["log"]
        read_only_fields = fields


class TaskAcceptedSerializer(serializers.Serializer):
    """What every 202 answer carries (containers.api.views.accepted); `Location` is `task_url` too."""

    task = TaskSerializer(help_text="the queued task")
    task_url = serializers.URLField(help_text="where to follow it")
