"""The web process as an ASGI application: Django's pages over HTTP, and the browser consoles'
WebSockets (consoles/consumers.py) and the live task logs (tasks/consumers.py) with the same login (the session cookie). A WebSocket from
another site's page is refused by its Origin (AllowedHostsOriginValidator); a console needs a
ticket that only a page of the panel gets (a POST with the CSRF token)."""
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "panel.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_application = get_asgi_application()  # sets Django up before the consumers are imported

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from consoles.routing import websocket_urlpatterns as console_urls  # noqa: E402
from tasks.routing import websocket_urlpatterns as task_log_urls  # noqa: E402

application = ProtocolTypeRouter({
    "http": django_application,
    "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(console_urls + task_log_urls))),
})
