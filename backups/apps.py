from django.apps import AppConfig


class BackupsConfig(AppConfig):
    name = "backups"

    def ready(self):
        from django.db.models import Sum

        from tenancy.quotas import register_usage

        from .models import Backup

        register_usage("backups", lambda tenant: Backup.objects.filter(tenant=tenant).count())
        register_usage("backup_mb", lambda tenant: -(-(Backup.objects.filter(tenant=tenant)
                                                       .aggregate(n=Sum("size"))["n"] or 0) // (1024 * 1024)))
