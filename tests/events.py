"""Watching a market's events from a test, as a socket's subscription would."""

import asyncio
import time

from market.events.hub import Delivered, Subscription
from market.events.streams import event_hub
from market.events.types import Event


class EventWatch:
    """A subscription to `pattern` on this loop's hub; `next()` gives the next event."""

    def __init__(self, market_id: int, pattern: str) -> None:
        self.market_id, self.pattern = market_id, pattern
        self.subscription: Subscription | None = None
        self._pending: list[Delivered] = []

    async def __aenter__(self) -> "EventWatch":
        self.subscription, _ = await event_hub(self.market_id).subscribe([self.pattern])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.subscription is not None
        self.subscription.close()

    async def next_delivered(self, timeout: float = 2.0) -> Delivered:
        assert self.subscription is not None
        deadline = time.monotonic() + timeout
        while not self._pending:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no event on {self.pattern} within {timeout} s"
            items = await asyncio.wait_for(self.subscription.get(), remaining)
            self._pending.extend(i for i in items if isinstance(i, Delivered))
        return self._pending.pop(0)

    async def next(self, timeout: float = 2.0) -> Event:
        return (await self.next_delivered(timeout)).envelope.event
