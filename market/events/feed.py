"""Feeding one websocket from a market's events: resume, snapshot, order, slow consumers.

Every socket that shows events (a visitor's, an operator's, the landing page's) asks
for them the same way: it opens with `?offset=N&epoch=E` (the last event it got)
to resume, or with neither to start from a snapshot. It then receives, as JSON:

    {"type": "<event type>", "v": 1, "offset": N, …the event's payload…}   each event, in order
    {"type": "events_reset", "recovered": false, "offset": N, "epoch": E, "snapshot": …}
                                                     the stream was lost: start over from this

Events are sent one at a time and awaited, so a socket that cannot keep up fills its
subscription's bounded queue and is cut off at once (`on_slow`), even while a send is
stuck, with the position of the last event it was actually sent; no one else waits for it.
"""

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import parse_qs

from market.events.hub import (
    Delivered,
    EventHub,
    Gap,
    Position,
    PositionError,
    Resumed,
    Snapshot,
    Subscription,
    SubscriptionEnded,
)

MAX_EPOCH_LENGTH = 64

Render = Callable[[Delivered], dict[str, Any] | None]
SendText = Callable[[str], Awaitable[None]]
OnSlow = Callable[[Position], Awaitable[None]]


def position_from_query(query_string: bytes) -> Position | None:
    """The resume position a socket asked for in its query string, or None for none.

    PositionError("bad_position") when only one of the two is given or either is malformed.
    """
    query = parse_qs(query_string.decode("latin-1"))
    offset, epoch = (query.get("offset") or [None])[0], (query.get("epoch") or [None])[0]
    if offset is None and epoch is None:
        return None
    if offset is None or epoch is None:
        raise PositionError("bad_position", "resume with both offset and epoch, or neither")
    if not offset.isdigit() or len(offset) > 19:
        raise PositionError("bad_position", f"offset is a whole number, not {offset[:40]!r}")
    if not 0 < len(epoch) <= MAX_EPOCH_LENGTH:
        raise PositionError("bad_position", f"epoch has 1 to {MAX_EPOCH_LENGTH} characters")
    return Position(int(offset), epoch)


def event_message(item: Delivered) -> dict[str, Any]:
    """An event as a client receives it."""
    event = item.envelope.event
    return {"type": event.TYPE, "v": event.VERSION, "offset": item.offset, **event.payload()}


def position_message(resumed: Resumed) -> dict[str, Any]:
    """What a socket says about its events when it opens (welcome, hello, snapshot)."""
    return {
        **resumed.position.to_json(),
        "recovered": resumed.recovered,
        "reason": resumed.reason,
    }


class EventFeed:
    """One socket's subscription and the task that writes its events out."""

    def __init__(
        self,
        hub: EventHub,
        patterns: Sequence[str],
        *,
        send: SendText,
        on_slow: OnSlow,
        render: Render = event_message,
    ) -> None:
        self.hub, self.patterns = hub, tuple(patterns)
        self.send, self.on_slow, self.render = send, on_slow, render
        self.subscription: Subscription | None = None
        self.task: asyncio.Task[None] | None = None
        self.sent: Position | None = None  # the last event written to the socket

    async def open(
        self, after: Position | None, snapshot: Snapshot
    ) -> tuple[Resumed, PositionError | None]:
        """Subscribe, resuming after `after` when possible; the start and any refusal of
        `after` (the socket then starts from the snapshot, and should say why)."""
        refused = None
        try:
            self.subscription, resumed = await self.hub.subscribe(
                self.patterns, after=after, snapshot=snapshot
            )
        except PositionError as exc:
            refused = exc
            self.subscription, resumed = await self.hub.subscribe(self.patterns, snapshot=snapshot)
            resumed = dataclasses.replace(resumed, recovered=False, reason=exc.code)
        return resumed, refused

    def start(self) -> None:
        """Begin writing events out (after the socket's opening message went)."""
        assert self.subscription is not None
        self.sent = self.subscription.position()
        self.task = asyncio.create_task(self._run(), name="event-feed")

    async def _run(self) -> None:
        """Write events until the subscription ends; a slow end cuts a stuck write short."""
        assert self.subscription is not None
        pump = asyncio.create_task(self._pump())
        ended = asyncio.create_task(self.subscription.closed.wait())
        try:
            await asyncio.wait({pump, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, ended):
                task.cancel()
            await asyncio.gather(pump, ended, return_exceptions=True)
        if self.subscription.ended == "slow" and self.sent is not None:
            await self.on_slow(self.sent)

    async def _pump(self) -> None:
        assert self.subscription is not None
        with contextlib.suppress(SubscriptionEnded):
            while True:
                for item in await self.subscription.get():
                    message = self._message(item)
                    if message is not None:
                        await self.send(json.dumps(message))
                    self.sent = (
                        item.position
                        if isinstance(item, Gap)
                        else Position(item.offset, self.subscription.epoch)
                    )

    def _message(self, item: Delivered | Gap) -> dict[str, Any] | None:
        if isinstance(item, Gap):
            return {
                "type": "events_reset",
                "recovered": False,
                **item.position.to_json(),
                "snapshot": item.snapshot,
            }
        return self.render(item)

    async def close(self) -> None:
        if self.subscription is not None:
            self.subscription.close()
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task


async def ops_feed_start(
    market_id: int, query_string: bytes, *, send: SendText, on_slow: OnSlow
) -> EventFeed:
    """Open a socket's feed of the market's ops events (the landing page's, an operator's):
    a `snapshot` of every zone's summary and health at its position, then the events.

    PositionError("bad_position") when the query's position is malformed; a position the
    stream cannot resume is said in an error frame, then served from the snapshot.
    """
    from market.events.streams import event_hub
    from market.events.subjects import ops_subjects

    after = position_from_query(query_string)
    hub = event_hub(market_id)
    feed = EventFeed(hub, [ops_subjects(market_id)], send=send, on_slow=on_slow)
    resumed, refused = await feed.open(after, hub.ops.snapshot)
    if refused is not None:
        await send(json.dumps({"type": "error", "code": refused.code, "message": refused.message}))
    snapshot = {"type": "snapshot", **position_message(resumed), "state": resumed.snapshot}
    await send(json.dumps(snapshot))
    feed.start()
    return feed
