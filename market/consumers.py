"""Websocket consumers of the market app."""

import json
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from market.events.feed import EventFeed, ops_feed_start
from market.events.hub import Position, PositionError

CLOSE_BAD_POSITION = 4400
CLOSE_SLOW = 4408


class MarketSummaryConsumer(AsyncWebsocketConsumer):
    """`/ws/markets/<id>/summary/`: the market's ops events for the landing page's table.

    Opens with `{"type": "snapshot", "offset", "epoch", "recovered", "state"}` (every
    zone's newest summary and health), then every `market_summary` and `zone_health`
    event in order (market/events/feed.py). A page that reconnects with its last
    offset and epoch misses nothing.
    """

    feed: EventFeed | None = None

    async def connect(self) -> None:
        await self.accept()
        market_id = int(self.scope["url_route"]["kwargs"]["market_id"])
        try:
            self.feed = await ops_feed_start(
                market_id,
                self.scope.get("query_string", b""),
                send=self.send_text,
                on_slow=self.slow,
            )
        except PositionError as exc:
            await self.send_json({"type": "error", "code": exc.code, "message": exc.message})
            await self.close(CLOSE_BAD_POSITION)

    async def disconnect(self, code: int) -> None:
        if self.feed is not None:
            await self.feed.close()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Browsers only listen on this socket; whatever they send is ignored."""

    async def send_text(self, text: str) -> None:
        await self.send(text_data=text)

    async def send_json(self, content: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(content))

    async def slow(self, position: Position) -> None:
        await self.send_json(
            {
                "type": "error",
                "code": "slow_consumer",
                "message": "this socket fell too far behind; reconnect from `resume`",
                "resume": position.to_json(),
            }
        )
        await self.close(CLOSE_SLOW)
