from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def record_lives(apps, schema_editor):
    """Tasks of containers that still exist belong to their life; those of destroyed containers
    stay unknown (NULL): which life they were for was never written down."""
    Task = apps.get_model("tasks", "Task")
    Container = apps.get_model("containers", "Container")
    Task.objects.filter(container__isnull=False).update(container_created_at=Subquery(
        Container.objects.filter(pk=OuterRef("container_id")).values("created_at")[:1]))


class Migration(migrations.Migration):

    dependencies = [
        ('containers', '0003_container_unmounted'),
        ('tasks', '0005_alter_task_type'),
    ]

    operations = [
        migrations.AddField(
            model_name='task',
            name='container_created_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(record_lives, migrations.RunPython.noop),
    ]
