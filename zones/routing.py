"""Websocket routes of the zones app, composed in fabric_site.asgi."""

from django.urls import path

from zones.consumers import VisitorConsumer
from zones.contribute import ContributorConsumer

websocket_urlpatterns = [
    path("ws/markets/<int:market_id>/visit/", VisitorConsumer.as_asgi()),
    path("ws/markets/<int:market_id>/contribute/", ContributorConsumer.as_asgi()),
]
