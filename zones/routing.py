"""Websocket routes of the zones app, composed in fabric_site.asgi."""

from django.urls import path

from zones.consumers import VisitorConsumer

websocket_urlpatterns = [
    path("ws/markets/<int:market_id>/visit/", VisitorConsumer.as_asgi()),
]
