from django.apps import AppConfig


class ConsolesConfig(AppConfig):
    name = "consoles"
    verbose_name = "Browser consoles"

    def ready(self):
        from . import signals  # noqa: F401  (logging out closes the session's consoles)
