from django.apps import AppConfig
from django.db.models.signals import post_save


def give_new_host_its_default_pool(sender, instance, created, raw=False, **kwargs):
    """A new host gets the pool every host had before pools existed (storage 0001 gave it to the
    hosts there were): containers in images, or plain directories, in its lxcpath."""
    if created and not raw:
        from .models import PoolType, StoragePool
        StoragePool.objects.get_or_create(host=instance, name="default",
                                          defaults={"type": PoolType.IMAGE, "is_default": True})


class StorageConfig(AppConfig):
    name = "storage"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        post_save.connect(give_new_host_its_default_pool, sender="hosts.Host",
                          dispatch_uid="storage.default_pool")
