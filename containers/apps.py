from django.apps import AppConfig


class ContainersConfig(AppConfig):
    name = "containers"

    def ready(self):
        # Registers the agent-side handlers for container task types.
        from . import jobs  # noqa: F401
