from django.urls import path

from .consumers import TaskLogConsumer

websocket_urlpatterns = [
    path("ws/tasks/<int:pk>/log/", TaskLogConsumer.as_asgi()),
]
