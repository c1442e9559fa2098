"""The transactional outbox: events of database writes reach the stream after the commit.

A service that changes the database calls `event_publish_on_commit` inside its
transaction; the event's row (`OutboxEvent`) commits or rolls back with the change.
After the commit the relay appends pending rows to their market's stream, in the
order they were written, then stamps them relayed. The relay may die at any point:

  * between the commit and the append, the row is still pending and the next relay
    run (on the next commit's nudge, or within RELAY_INTERVAL_S) appends it;
  * between the append and the stamp, the next run appends it again, and the stream
    answers the offset it already has (appends are idempotent by event id).

So a committed event is published exactly once, and a rolled-back one never. The
main job runs the relay (zones/serve.py), and `zoneworker --outbox-relay` does where
processes run on their own; any process may run `outbox_relay_once`.
Relayed rows are deleted after settings.FABRIC_OUTBOX_KEEP_S (an hour by default).
"""

import asyncio
import contextlib
import logging
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from market.events.backends import StreamLost
from market.events.envelope import Envelope
from market.events.streams import event_log
from market.models import OutboxEvent
from zones.logthrottle import LogThrottle

log = logging.getLogger(__name__)
_failures = LogThrottle(log)  # the relay tries again every second while the stream is away

RELAY_BATCH = 500
RELAY_INTERVAL_S = 1.0

_nudges: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()


def outbox_write(market_id: int, envelope: Envelope) -> str:
    """Store `envelope` in the current transaction and nudge the relay after the commit."""
    OutboxEvent.objects.create(
        id=envelope.id,
        market_id=market_id,
        subject=envelope.subject,
        envelope=envelope.to_bytes(),
    )
    transaction.on_commit(outbox_nudge)
    return envelope.id


def outbox_nudge() -> None:
    """Wake every relay in this process (safe from any thread)."""
    for loop, wake in list(_nudges):
        if not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)


def outbox_pending(limit: int = RELAY_BATCH) -> list[OutboxEvent]:
    """The oldest rows not relayed yet."""
    return list(OutboxEvent.objects.filter(relayed_at=None).order_by("created_at", "id")[:limit])


def outbox_mark_relayed(offsets: dict[str, int]) -> None:
    """Stamp rows relayed with the offset each got; forget those relayed long ago."""
    now = timezone.now()
    with transaction.atomic():
        for event_id, offset in offsets.items():
            OutboxEvent.objects.filter(pk=event_id).update(relayed_at=now, offset=offset)
    kept_since = now - timedelta(seconds=settings.FABRIC_OUTBOX_KEEP_S)
    OutboxEvent.objects.filter(relayed_at__lt=kept_since).delete()


async def outbox_relay_once(limit: int = RELAY_BATCH) -> int:
    """Append pending rows to their streams, in order; how many were relayed."""
    rows = await sync_to_async(outbox_pending)(limit)
    if not rows:
        return 0
    by_market: dict[int, list[OutboxEvent]] = {}
    for row in rows:
        by_market.setdefault(row.market_id, []).append(row)
    offsets: dict[str, int] = {}
    for market_id, market_rows in by_market.items():
        items = [(r.subject, bytes(r.envelope), r.id) for r in market_rows]
        appended = await event_log(market_id).append(items)
        offsets.update(zip([r.id for r in market_rows], appended, strict=True))
    await sync_to_async(outbox_mark_relayed)(offsets)
    return len(offsets)


async def outbox_relay_forever(interval_s: float = RELAY_INTERVAL_S) -> None:
    """Relay after every commit's nudge, and every `interval_s` whatever happens."""
    wake = asyncio.Event()
    entry = (asyncio.get_running_loop(), wake)
    _nudges.add(entry)
    try:
        while True:
            try:
                while await outbox_relay_once() == RELAY_BATCH:
                    pass
                if _failures.failing("relay"):
                    _failures.clear("relay", "outbox: relay resumed")
            except (StreamLost, OSError) as exc:
                _failures.warning(
                    "relay", "outbox: relay paused, the stream is unreachable: %s", exc
                )
            except Exception:
                log.exception("outbox: relay failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), interval_s)
            wake.clear()
    finally:
        _nudges.discard(entry)
