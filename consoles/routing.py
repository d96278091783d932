from django.urls import path

from .consumers import ConsoleConsumer

websocket_urlpatterns = [
    path("ws/containers/<int:ctid>/console/<str:mode>/", ConsoleConsumer.as_asgi()),
]
