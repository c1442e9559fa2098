"""The operators' feed: `/ws/markets/<market_id>/operate/` (docs/dashboard.md).

A signed-in operator of the market receives, on one socket:

  * a `hello` with the booth layout: names, colours and which booth owns each
    floor column, so the page can draw the booths without asking anything else;
  * a `snapshot` of every zone's newest summary and health with its stream position,
    then the market's ops events in order (each zone worker's summary twice a second,
    the supervisor's health reports), as JSON; a page that reconnects with the last
    offset and epoch it got resumes without loss (market/events/feed.py);
  * the overview frame (zones/core/overview.py) ten times a second: every
    visitor and NPC, built once per web process and shared by every operator;
  * each zone worker's NPC status frame (zones/core/npcview.py) once a second: what
    every NPC does and which need presses it most, relayed as the worker sent it (the
    socket is a member of the market's status group, zones/npcbus.py);
  * among the ops events, the contributors' figures (`npc_decisions`, every 10 s) and
    their bans (`contributor_banned`), which the snapshot holds too.

Nothing here runs in a zone's tick. A slow browser loses overview frames; one that
falls too far behind on events is cut off with the position to resume from, and never
holds up anyone else.
"""

import asyncio
import contextlib
import json
from typing import Any

import numpy as np
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from market.consumers import CLOSE_SLOW
from market.events.feed import EventFeed, ops_feed_start
from market.events.hub import Position, PositionError
from market.live import LiveMarket, live_market
from operator_ui.access import may_operate
from zones import npcbus
from zones.channels import cancel_and_wait
from zones.consumers import CLOSE_NOT_LIVE, Outbox
from zones.core.constants import SIM_TICK_HZ, ZONE_CAPACITY
from zones.core.ranges import RangeMap, column_booths
from zones.gateway import OVERVIEW_EVERY, Gateway, gateway_for

CLOSE_BAD_POSITION = 4400
CLOSE_SIGN_IN = 4401
CLOSE_NOT_OPERATOR = 4403


class OperatorFeedConsumer(AsyncWebsocketConsumer):
    """One operator's dashboard socket."""

    gateway: Gateway | None = None
    writer: asyncio.Task[None] | None = None
    feed: EventFeed | None = None
    status_group = ""
    renewing: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        await self.accept()  # first, so that a refusal can say why
        self.outbox = Outbox(self.base_send)
        self.writer = asyncio.create_task(self.outbox.run())
        market_id = int(self.scope["url_route"]["kwargs"]["market_id"])
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.refuse("sign_in", "sign in as an operator of this market", CLOSE_SIGN_IN)
            return
        if not await database_sync_to_async(may_operate)(user, market_id):
            await self.refuse(
                "not_operator", "you are not an operator of this market", CLOSE_NOT_OPERATOR
            )
            return
        live = live_market()
        if live is None or live.market_id != market_id:
            await self.refuse(
                "market_not_live", "this market has no zones running here", CLOSE_NOT_LIVE
            )
            return
        await self.send(text_data=json.dumps(hello(live)))
        try:
            self.feed = await ops_feed_start(
                market_id,
                self.scope.get("query_string", b""),
                send=self.send_text,
                on_slow=self.slow,
            )
        except PositionError as exc:
            await self.refuse(exc.code, exc.message, CLOSE_BAD_POSITION)
            return
        self.gateway = gateway_for(live)
        await self.gateway.watch(self)
        if self.channel_layer is not None:
            self.status_group = npcbus.status_group(market_id)
            await self.channel_layer.group_add(self.status_group, self.channel_name)
            self.renewing = asyncio.create_task(self._renew())

    async def _renew(self) -> None:
        """Stay in the status group: the layer forgets members it has not heard from."""
        while True:
            await asyncio.sleep(npcbus.STATUS_RENEW_S)
            try:
                await self.channel_layer.group_add(self.status_group, self.channel_name)
            except Exception:  # the layer away for now: the next renewal tries again
                continue

    async def npc_status(self, message: dict[str, Any]) -> None:
        """A zone worker's NPC status frame, to the page as it is."""
        frame = message.get("frame")
        if isinstance(frame, bytes):
            await self.send(bytes_data=frame)

    async def refuse(self, code: str, message: str, close_code: int) -> None:
        await self.send(text_data=json.dumps({"type": "error", "code": code, "message": message}))
        await self.close(close_code)

    async def disconnect(self, code: int) -> None:
        if self.gateway is not None:
            self.gateway.unwatch(self)
        if self.renewing is not None:
            await cancel_and_wait([self.renewing])
        if self.status_group and self.channel_layer is not None:
            with contextlib.suppress(Exception):
                await self.channel_layer.group_discard(self.status_group, self.channel_name)
        if self.feed is not None:
            await self.feed.close()
        if self.writer is not None:
            await cancel_and_wait([self.writer])

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The page only listens on this socket; whatever it sends is ignored."""

    def send_frame(self, frame: bytes) -> None:
        """The gateway's overview frame: queued, the newest one only."""
        self.outbox.frame(frame)

    async def send_text(self, text: str) -> None:
        await self.send(text_data=text)

    async def send_json(self, content: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(content))

    async def slow(self, position: Position) -> None:
        await self.refuse(
            "slow_consumer",
            "this page fell too far behind the market's events; it resumes on reconnect",
            CLOSE_SLOW,
        )


def hello(live: LiveMarket) -> dict[str, Any]:
    """What the page needs before the first frame: the market and its booths from above."""
    layout = live.layout()
    grid = column_booths(RangeMap(starts=np.array(live.starts, dtype=np.int64)))
    return {
        "type": "hello",
        "market": live.market_id,
        "layout": layout,
        "columns": {"count": int(grid.shape[0]), "booth": grid.tolist()},  # [x column][z column]
        "capacity": ZONE_CAPACITY,
        "overview_hz": SIM_TICK_HZ / OVERVIEW_EVERY,
    }
