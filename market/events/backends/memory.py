"""The in-process backend: streams in this process's memory.

For the embedded default (one process runs the whole market) and for tests. Appends
may come from any thread (Django's sync views relay the outbox from theirs); readers
wait on their own event loops and are woken thread-safely. The epoch is new for every
backend object, so a restarted process tells its consumers their offsets are void.
"""

import asyncio
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence

from market.events.backends import Batch, Entry, Head, Retention
from market.events.subjects import subject_matches


class MemoryLog:
    """One stream held in a deque, trimmed by length and age on every append."""

    def __init__(self, name: str, epoch: str, retention: Retention) -> None:
        self.name, self.epoch, self.retention = name, epoch, retention
        self._entries: deque[tuple[Entry, float]] = deque()
        self._ids: dict[str, tuple[int, float]] = {}
        self._last = 0
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    async def append(self, items: Sequence[tuple[str, bytes, str]]) -> list[int]:
        return self.append_now(items)

    def append_now(self, items: Sequence[tuple[str, bytes, str]]) -> list[int]:
        """`append` for callers outside an event loop."""
        now = time.monotonic()
        offsets = []
        with self._lock:
            for subject, data, event_id in items:
                known = self._ids.get(event_id)
                if known is not None:
                    offsets.append(known[0])
                    continue
                self._last += 1
                self._entries.append((Entry(self._last, subject, data), now))
                self._ids[event_id] = (self._last, now)
                offsets.append(self._last)
            self._trim(now)
            waiters = list(self._waiters)
        for loop, event in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)
        return offsets

    def _trim(self, now: float) -> None:
        cutoff = now - self.retention.max_age_s
        while self._entries and (
            len(self._entries) > self.retention.max_len or self._entries[0][1] < cutoff
        ):
            self._entries.popleft()
        if len(self._ids) > 2 * max(len(self._entries), 1024):
            oldest = self._entries[0][0].offset if self._entries else self._last + 1
            self._ids = {k: v for k, v in self._ids.items() if v[0] >= oldest}

    async def head(self) -> Head:
        with self._lock:
            first = self._entries[0][0].offset if self._entries else self._last + 1
            return Head(self.epoch, first, self._last)

    async def read(self, after: int, limit: int, patterns: Sequence[str] = ()) -> Batch:
        with self._lock:
            if not self._entries:
                return Batch(self.epoch, [])
            start = max(0, after + 1 - self._entries[0][0].offset)
            picked: list[Entry] = []
            for i in range(start, len(self._entries)):
                entry = self._entries[i][0]
                if not patterns or any(subject_matches(p, entry.subject) for p in patterns):
                    picked.append(entry)
                    if len(picked) >= limit:
                        break
            return Batch(self.epoch, picked)

    async def wait(self, after: int, timeout_s: float) -> Batch:
        batch = await self.read(after, 1000)
        if batch.entries:
            return batch
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.add(waiter)
        try:
            batch = await self.read(after, 1000)  # appended between the read and the add
            if not batch.entries:
                try:
                    await asyncio.wait_for(waiter[1].wait(), timeout_s)
                except TimeoutError:
                    return Batch(self.epoch, [])
                batch = await self.read(after, 1000)
            return batch
        finally:
            with self._lock:
                self._waiters.discard(waiter)

    async def close(self) -> None:
        """Nothing to release: the stream lives as long as its backend."""


class MemoryBackend:
    """Streams in this process, one epoch for the life of the object."""

    def __init__(self, retention: Retention | None = None) -> None:
        self.retention = retention or Retention()
        self.epoch = uuid.uuid4().hex[:16]
        self._logs: dict[str, MemoryLog] = {}
        self._lock = threading.Lock()

    def log(self, stream: str) -> MemoryLog:
        with self._lock:
            log = self._logs.get(stream)
            if log is None:
                log = self._logs[stream] = MemoryLog(stream, self.epoch, self.retention)
            return log

    async def close(self) -> None:
        """Streams stay readable until the object is dropped."""
