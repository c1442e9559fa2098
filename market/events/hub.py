"""One process's reader of a market's stream, fanning events out to its consumers.

A process reads each market's stream once (`EventHub`), whatever number of sockets
follow it, and hands each event to the subscriptions whose patterns match its
subject. A subscription is a bounded queue: a consumer that does not keep up is cut
off with the position it can resume from, and neither the hub, the publisher nor any
other consumer ever waits for it.

Resuming: a consumer that comes back sends the (offset, epoch) of the last event it
got. If the stream still holds everything after it under that epoch, the subscription
replays exactly those events, in order, then continues live with no repeat (offsets
dedupe the seam between replay and live). If not (another epoch, or the offset has
expired) the answer is `recovered: false` with a fresh snapshot taken at the
subscription's position, so the consumer is never left with a silent gap. An offset
beyond the stream's head is an error (PositionError). A late joiner sends nothing and
gets the snapshot with its position.
"""

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from market.events.backends import EventLog, StreamLost
from market.events.envelope import Envelope, envelope_parse
from market.events.projections import OpsProjection
from market.events.subjects import SubjectIndex, subject_matches
from market.events.types import EventError

log = logging.getLogger(__name__)

QUEUE_LIMIT = 1000  # events waiting for one consumer before it is cut off as too slow
REPLAY_PAGE = 1000
WAIT_S = 1.0
RETRY_S = 0.5
WARN_EVERY_S = 30.0
STOP_GRACE_S = 1.0
OPS_WARMUP = 2000  # newest entries a new hub reads to know every zone's health at once


@dataclass(frozen=True)
class Position:
    """Where a consumer stands in a stream: the last offset it got, under this epoch."""

    offset: int
    epoch: str

    def to_json(self) -> dict[str, Any]:
        return {"offset": self.offset, "epoch": self.epoch}


@dataclass(frozen=True)
class Delivered:
    """One event for one consumer, with its offset."""

    offset: int
    envelope: Envelope


@dataclass(frozen=True)
class Gap:
    """The stream was lost under the consumer (a new epoch): it needs a fresh snapshot."""

    position: Position
    snapshot: Any


@dataclass(frozen=True)
class Resumed:
    """How a subscription started: `recovered` True (replayed), False (snapshot instead of a
    lost range) or None (a late joiner: snapshot, no resume asked)."""

    recovered: bool | None
    position: Position  # the snapshot's position: events after it follow
    snapshot: Any
    reason: str = ""


class PositionError(ValueError):
    """A resume position the stream cannot have given: `code` and a sentence."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class SubscriptionEnded(Exception):
    """The subscription is over: `reason` ("slow", "closed") and where to resume."""

    def __init__(self, reason: str, position: Position) -> None:
        super().__init__(reason)
        self.reason, self.position = reason, position


Snapshot = Callable[[], Any]


class Subscription:
    """A consumer's bounded queue of events whose subjects match its patterns."""

    def __init__(
        self,
        hub: "EventHub",
        patterns: Sequence[str],
        limit: int,
        snapshot: Snapshot | None = None,
    ) -> None:
        self.hub, self.patterns, self.limit = hub, tuple(patterns), limit
        self.snapshot = snapshot
        self.queue: deque[Delivered | Gap] = deque()
        self.epoch = ""
        self.last = 0  # newest offset queued (replayed or live)
        self.taken = 0  # newest offset the consumer has taken out of the queue
        self.ended: str | None = None
        self.closed = asyncio.Event()  # set when the subscription ends, whatever the reason
        self._catching_up = True
        self._live: list[Delivered] = []
        self._wake = asyncio.Event()

    def matches(self, subject: str) -> bool:
        return any(subject_matches(p, subject) for p in self.patterns)

    def position(self) -> Position:
        """Where the consumer can resume: the last event it took."""
        return Position(self.taken, self.epoch)

    def offer(self, item: Delivered) -> None:
        if self.ended:
            return
        if self._catching_up:
            self._live.append(item)
        elif item.offset > self.last:
            self._push(item)

    def _push(self, item: Delivered) -> None:
        if len(self.queue) >= self.limit:
            self.end("slow")
            return
        self.queue.append(item)
        self.last = item.offset
        self._wake.set()

    def caught_up(self) -> None:
        """Replay is done: live events held meanwhile follow, those replayed are dropped."""
        live, self._live, self._catching_up = self._live, [], False
        for item in live:
            if item.offset > self.last:
                self._push(item)

    def reset(self, position: Position, snapshot: Any) -> None:
        self.queue.clear()
        self.queue.append(Gap(position, snapshot))
        self.epoch, self.last, self.taken = position.epoch, position.offset, position.offset
        self._wake.set()

    def end(self, reason: str) -> None:
        if self.ended is None:
            self.ended = reason
            self.hub.unsubscribe(self)
            self._wake.set()
            self.closed.set()

    async def get(self) -> list[Delivered | Gap]:
        """Everything queued, waiting for at least one; SubscriptionEnded when cut off."""
        while not self.queue:
            if self.ended:
                raise SubscriptionEnded(self.ended, self.position())
            self._wake.clear()
            await self._wake.wait()
        items = list(self.queue)
        self.queue.clear()
        for item in items:
            self.taken = item.position.offset if isinstance(item, Gap) else item.offset
        return items

    def close(self) -> None:
        self.end("closed")

    def take_snapshot(self) -> Any:
        return self.snapshot() if self.snapshot is not None else None


class EventHub:
    """Reads one stream and fans its events out to this process's subscriptions."""

    def __init__(self, log_: EventLog, *, queue_limit: int = QUEUE_LIMIT) -> None:
        self.log = log_
        self.queue_limit = queue_limit
        self.epoch = ""
        self.offset = 0  # the newest offset this hub has dispatched
        self.malformed = 0
        self.ops = OpsProjection()
        self._subscriptions: set[Subscription] = set()
        self._index = SubjectIndex()  # pattern → the subscriptions that follow it
        self._task: asyncio.Task[None] | None = None
        self._started = asyncio.Lock()
        self._warned_at = 0.0
        self._stopping = False

    async def start(self) -> None:
        """Join the stream at its head; later calls return at once."""
        async with self._started:
            if self._task is not None:
                return
            head = await self.log.head()
            self.epoch, self.offset = head.epoch, head.last
            await self._warm_up(head.first, head.last)
            self._task = asyncio.create_task(self._tail(), name=f"events-{self.log.name}")

    async def _warm_up(self, first: int, last: int) -> None:
        """Build the ops projection from the stream's newest entries, up to `last`."""
        cursor = max(first - 1, last - OPS_WARMUP)
        while cursor < last:
            batch = await self.log.read(cursor, REPLAY_PAGE, ("market.*.ops.>",))
            if batch.epoch != self.epoch or not batch.entries:
                return
            for entry in batch.entries:
                if entry.offset > last:
                    return
                cursor = entry.offset
                item = self._parse(entry.offset, entry.data)
                if item is not None and subject_matches("market.*.ops.>", entry.subject):
                    self.ops.observe(item.envelope.event)

    async def stop(self) -> None:
        if self._task is not None:
            # A cancel that lands inside a client library's read may be swallowed by it; the
            # flag ends the loop at its next turn (every WAIT_S at most) whatever happens.
            self._stopping = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), WAIT_S + STOP_GRACE_S)
            self._task = None
        for subscription in list(self._subscriptions):
            subscription.close()

    def _register(self, subscription: Subscription) -> None:
        self._subscriptions.add(subscription)
        for pattern in subscription.patterns:
            self._index.add(pattern, subscription)

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.discard(subscription)
            for pattern in subscription.patterns:
                self._index.discard(pattern, subscription)

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)

    # --- reading the stream ----------------------------------------------------------------

    async def _tail(self) -> None:
        task = asyncio.current_task()
        while not self._stopping:
            # asyncio.wait_for of Python 3.11 returns the result when it completes in the
            # same moment as a cancellation, and the request would be lost with it
            if task is not None and task.cancelling():
                raise asyncio.CancelledError
            try:
                batch = await self.log.wait(self.offset, WAIT_S)
            except StreamLost as exc:
                self._warn(f"events: stream {self.log.name} unreachable: {exc}")
                await asyncio.sleep(RETRY_S)
                continue
            except Exception:
                log.exception("events: reading stream %s failed", self.log.name)
                await asyncio.sleep(RETRY_S)
                continue
            if batch.epoch != self.epoch:
                self._new_epoch(batch.epoch)
                continue
            for entry in batch.entries:
                if entry.offset > self.offset:
                    self.offset = entry.offset
                    self._dispatch(entry.offset, entry.data)

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_S:
            self._warned_at = now
            log.warning(message)

    def _parse(self, offset: int, data: bytes) -> Delivered | None:
        try:
            return Delivered(offset, envelope_parse(data))
        except EventError as exc:
            self.malformed += 1
            self._warn(f"events: skipped malformed entry {offset} of {self.log.name}: {exc}")
            return None

    def _dispatch(self, offset: int, data: bytes) -> None:
        item = self._parse(offset, data)
        if item is None:
            return
        if ".ops." in item.envelope.subject:
            self.ops.observe(item.envelope.event)
        for subscription in self._index.match(item.envelope.subject):
            subscription.offer(item)

    def _new_epoch(self, epoch: str) -> None:
        """The backend lost the stream: everyone starts over from a fresh snapshot."""
        log.warning("events: stream %s has a new epoch; consumers resynchronise", self.log.name)
        self.epoch, self.offset = epoch, 0
        self.ops.observe(None)
        for subscription in list(self._subscriptions):
            subscription.reset(Position(0, epoch), subscription.take_snapshot())

    # --- subscribing -----------------------------------------------------------------------

    async def subscribe(
        self,
        patterns: Sequence[str],
        *,
        after: Position | None = None,
        snapshot: Snapshot | None = None,
    ) -> tuple[Subscription, Resumed]:
        """A subscription to `patterns`, resumed after `after` when the stream allows it.

        `snapshot` is called at the subscription's position whenever the consumer needs
        one (a late joiner, an unrecoverable resume, a new epoch later on).
        """
        await self.start()
        subscription = Subscription(self, patterns, self.queue_limit, snapshot)
        if after is None:
            return subscription, self._fresh(subscription, None, "")
        head = await self.log.head()
        if after.epoch != head.epoch:
            return subscription, self._fresh(subscription, False, "epoch_changed")
        if after.offset > head.last:
            raise PositionError(
                "future_offset",
                f"offset {after.offset} is beyond the stream's newest, {head.last}",
            )
        if after.offset < head.first - 1:
            return subscription, self._fresh(subscription, False, "expired")
        subscription.epoch, subscription.last, subscription.taken = (
            after.epoch,
            after.offset,
            after.offset,
        )
        self._register(subscription)
        if not await self._replay(subscription, after):
            subscription.close()
            return subscription, self._fresh(
                Subscription(self, patterns, self.queue_limit, snapshot), False, "epoch_changed"
            )
        subscription.caught_up()
        return subscription, Resumed(True, after, None)

    def _fresh(self, subscription: Subscription, recovered: bool | None, reason: str) -> Resumed:
        """Start `subscription` at this hub's position, with a snapshot taken right there."""
        position = Position(self.offset, self.epoch)
        subscription.epoch, subscription.last, subscription.taken = (
            self.epoch,
            self.offset,
            self.offset,
        )
        subscription.caught_up()
        self._register(subscription)
        return Resumed(recovered, position, subscription.take_snapshot(), reason)

    async def _replay(self, subscription: Subscription, after: Position) -> bool:
        """Queue every stored event after `after` that the subscription wants; False if the
        epoch changed under the replay."""
        cursor = after.offset
        while True:
            batch = await self.log.read(cursor, REPLAY_PAGE, subscription.patterns)
            if batch.epoch != after.epoch:
                return False
            if not batch.entries:
                return True
            for entry in batch.entries:
                cursor = entry.offset
                if not subscription.matches(entry.subject):
                    continue
                item = self._parse(entry.offset, entry.data)
                if item is not None:
                    subscription.queue.append(item)
                    subscription.last = entry.offset
            subscription._wake.set()
