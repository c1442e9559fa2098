"""Where market events are kept: the stream backends, behind one interface.

A backend keeps streams. A stream (one per market, `market.<id>`) is an append-only
log of entries, each a subject and the bytes of one event envelope, numbered by an
**offset**: 1, 2, 3… in append order, with no gaps. Every stream also has an
**epoch**, a string that changes when the backend lost the stream (Redis restarted
without persistence, a JetStream stream was deleted and made again): an offset means
nothing under another epoch, and a consumer that resumes with a stale epoch is told
`recovered: false` (market/events/hub.py).

Appends are idempotent by event id: appending an id the stream already holds (within
its retention) appends nothing and answers the offset it already has, so an outbox
relay that retries after a crash duplicates nothing.

Backends (docs/events.md compares them, bench/bench_streams.py measures them):

  * `memory`: in this process, for the embedded default and tests;
  * `redis`: Redis Streams, the offset and the append made atomic by one script;
  * `nats`: NATS JetStream, a stream per market with duplicate detection, durable
    consumers and a republish rule.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class StreamLost(RuntimeError):
    """The backend cannot be reached or answered in a way that loses the stream's thread."""


@dataclass(frozen=True)
class Retention:
    """How much a stream keeps: at most `max_len` entries, none older than `max_age_s`."""

    max_len: int = 100_000
    max_age_s: float = 24 * 3600.0


@dataclass(frozen=True)
class Entry:
    """One stored event: its offset, its subject and its envelope's bytes."""

    offset: int
    subject: str
    data: bytes


@dataclass(frozen=True)
class Head:
    """Where a stream stands: its epoch, its oldest retained offset and its newest one.

    An empty stream has `last` = the newest offset ever given (0 when none) and
    `first` = last + 1.
    """

    epoch: str
    first: int
    last: int


@dataclass(frozen=True)
class Batch:
    """Entries read from a stream, with the epoch they were read under."""

    epoch: str
    entries: list[Entry]


class EventLog(Protocol):
    """One stream of one backend."""

    name: str

    async def append(self, items: Sequence[tuple[str, bytes, str]]) -> list[int]:
        """Append (subject, data, event_id) items in order; the offset of each.

        An event id the stream already holds is not appended again: its offset is its
        original one.
        """

    async def head(self) -> Head:
        """The stream's epoch, oldest and newest offsets."""

    async def read(self, after: int, limit: int, patterns: Sequence[str] = ()) -> Batch:
        """Up to `limit` entries with offsets above `after`, oldest first.

        With `patterns`, a backend may leave out entries none of them match (the caller
        filters again); an empty batch then means nothing matched up to the head.
        """

    async def wait(self, after: int, timeout_s: float) -> Batch:
        """Entries above `after` as soon as there are any, or an empty batch at the timeout."""

    async def close(self) -> None: ...


class EventBackend(Protocol):
    """A set of streams on one server (or in this process)."""

    def log(self, stream: str) -> EventLog: ...

    async def close(self) -> None: ...
