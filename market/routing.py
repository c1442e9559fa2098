"""Websocket routes of the market app, composed in fabric_site.asgi."""

from django.urls import path

from market.consumers import MarketSummaryConsumer

websocket_urlpatterns = [
    path("ws/markets/<int:market_id>/summary/", MarketSummaryConsumer.as_asgi()),
]
