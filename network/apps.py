from django.apps import AppConfig


class NetworkConfig(AppConfig):
    name = "network"

    def ready(self):
        from tenancy.quotas import register_usage

        from .models import IPAddress

        register_usage("ips", lambda tenant: IPAddress.objects.filter(container__tenant=tenant).count())
