"""URLs of the chat example: the page, and the WebSocket route."""

from __future__ import annotations

from chat import views
from django.urls import path

urlpatterns = [
    path("", views.index),
    path("ws/", views.chat),
]
