"""Websocket routes of the operator dashboard, composed in fabric_site.asgi."""

from django.urls import path

from operator_ui.consumers import OperatorFeedConsumer

websocket_urlpatterns = [
    path("ws/markets/<int:market_id>/operate/", OperatorFeedConsumer.as_asgi()),
]
