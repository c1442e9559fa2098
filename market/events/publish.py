"""The one way to publish a market event.

    await event_publish(market_id, event, …)   from async code, for what touches no database
                                               (visitors' zone changes, zone summaries,
                                               the supervisor's health reports)
    event_publish_on_commit(market_id, event)  from inside a database write: the event is
                                               written to the outbox in the same
                                               transaction and reaches the stream after
                                               the commit (market/events/outbox.py)

Every event is typed (market/events/types.py) and lands on its subject in the market's
one stream; consumers follow subjects through a hub (market/events/hub.py).
"""

import asyncio
import contextlib
import logging

from market.events.backends import StreamLost
from market.events.envelope import envelope_new
from market.events.streams import event_log
from market.events.types import Event
from zones.logthrottle import LogThrottle

log = logging.getLogger(__name__)
_failures = LogThrottle(log)  # summaries fail twice a second while the stream is away


async def event_publish(market_id: int, *events: Event) -> list[int]:
    """Append `events` to the market's stream, in order; their offsets.

    StreamLost when the backend cannot be reached: the caller decides whether the event
    can be lost (a summary is replaced a moment later) or must be retried.
    """
    envelopes = [envelope_new(market_id, event) for event in events]
    items = [(e.subject, e.to_bytes(), e.id) for e in envelopes]
    return await event_log(market_id).append(items)


async def event_publish_or_count(market_id: int, *events: Event) -> bool:
    """`event_publish` for events the next tick or report replaces: a failure is logged."""
    try:
        await event_publish(market_id, *events)
    except (StreamLost, OSError) as exc:
        _failures.warning(
            f"publish {market_id}",
            "events: %d events of market %d not published: %s",
            len(events),
            market_id,
            exc,
        )
        return False
    if _failures.failing(f"publish {market_id}"):
        _failures.clear(f"publish {market_id}", "events: market %d publishes again", market_id)
    return True


def event_publish_on_commit(market_id: int, event: Event) -> str:
    """Write `event` to the outbox in the current transaction; its id.

    It reaches the stream after the commit, or never if the transaction rolls back.
    """
    from market.events.outbox import outbox_write

    return outbox_write(market_id, envelope_new(market_id, event))


class EventQueue:
    """Events published from a hot path without waiting: queued, then appended in order.

    One task appends everything queued in one call, so the caller (the gateway's flush)
    never waits for the stream, and a visitor's events keep their order across ticks.
    A failed append is logged and its events dropped: these are events the next tick
    or report would contradict or repeat, never the outcome of a database write.
    """

    def __init__(self, market_id: int, limit: int = 10_000) -> None:
        self.market_id, self.limit = market_id, limit
        self.pending: list[Event] = []
        self.dropped = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def put(self, *events: Event) -> None:
        if len(self.pending) + len(events) > self.limit:
            self.dropped += len(events)
            return
        self.pending.extend(events)
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name="event-queue")

    async def _drain(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            events, self.pending = self.pending, []
            if events and not await event_publish_or_count(self.market_id, *events):
                self.dropped += len(events)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
