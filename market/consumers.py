"""Websocket consumers of the market app."""

from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from market.events import MARKET_SUMMARY_GROUP


class MarketSummaryConsumer(AsyncJsonWebsocketConsumer):
    """Relays each market summary event to the browser as a JSON frame.

    Frames have the event's own shape: {"type": "market.summary", "summary": {...}}.
    """

    groups = [MARKET_SUMMARY_GROUP]

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Browsers only listen on this socket; whatever they send is ignored."""

    async def market_summary(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": event["type"], "summary": event["summary"]})
