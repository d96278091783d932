from rest_framework import serializers

from tasks.models import Task


class TaskSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api-task-detail")
    host = serializers.SlugRelatedField(slug_field="name", read_only=True)
    user = serializers.SlugRelatedField(slug_field="username", read_only=True)
    agent_status = serializers.SerializerMethodField()

    class Meta:
        model = Task
        fields = ["id", "url", "type", "ctid", "host", "user", "status", "progress", "params", "result",
                  "error", "rq_job_id", "created_at", "started_at", "finished_at", "agent_status"]
        read_only_fields = fields

    def get_agent_status(self, task) -> str:
        return task.host.agent_status_text


class TaskDetailSerializer(TaskSerializer):
    class Meta(TaskSerializer.Meta):
        fields = TaskSerializer.Meta.fields + ["log"]
        read_only_fields = fields
