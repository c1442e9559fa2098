"""This process's event backend and hubs, chosen by the settings.

`FABRIC_EVENTS_BACKEND` picks the backend: `memory` (the embedded default), `redis`
(Redis Streams on REDIS_URL, the default when REDIS_URL is set) or `nats` (NATS
JetStream on NATS_URL). Clients of Redis and NATS belong to one event loop, so there
is one backend, and one hub per market, per running loop; the in-process backend is
one for the whole process, so that every loop and thread sees the same streams.
"""

import asyncio

from django.conf import settings

from market.events.backends import EventBackend, EventLog, Retention
from market.events.backends.memory import MemoryBackend
from market.events.hub import EventHub
from market.events.subjects import stream_name

_memory: MemoryBackend | None = None
_backends: dict[int, EventBackend] = {}
_hubs: dict[tuple[int, int], EventHub] = {}


def retention() -> Retention:
    return Retention(
        max_len=settings.FABRIC_EVENTS_MAX_LEN, max_age_s=settings.FABRIC_EVENTS_MAX_AGE_S
    )


def memory_backend() -> MemoryBackend:
    """The process's in-memory streams (created on first use)."""
    global _memory
    if _memory is None:
        _memory = MemoryBackend(retention())
    return _memory


def memory_backend_reset() -> None:
    """Forget every in-memory stream, as a restarted process would (tests)."""
    global _memory
    _memory = None
    _hubs.clear()


def backend_create(kind: str) -> EventBackend:
    """A new backend of `kind` from the settings' URLs."""
    if kind == "memory":
        return memory_backend()
    if kind == "redis":
        from market.events.backends.redis_streams import RedisStreamsBackend

        return RedisStreamsBackend(
            settings.REDIS_URL, retention(), prefix=settings.FABRIC_CHANNEL_PREFIX
        )
    if kind == "nats":
        from market.events.backends.jetstream import JetStreamBackend

        return JetStreamBackend(settings.NATS_URL, retention())
    raise ValueError(f"FABRIC_EVENTS_BACKEND is memory, redis or nats, not {kind!r}")


def event_backend() -> EventBackend:
    """This loop's backend (the in-memory one is shared by the whole process)."""
    kind = settings.FABRIC_EVENTS_BACKEND
    if kind == "memory":
        return memory_backend()
    key = id(asyncio.get_running_loop())
    backend = _backends.get(key)
    if backend is None:
        backend = _backends[key] = backend_create(kind)
    return backend


def event_log(market_id: int) -> EventLog:
    """The stream of market `market_id` on this loop's backend."""
    return event_backend().log(stream_name(market_id))


def event_hub(market_id: int) -> EventHub:
    """This loop's hub for market `market_id`, created on first use (start it before use)."""
    key = (id(asyncio.get_running_loop()), market_id)
    hub = _hubs.get(key)
    if hub is None:
        hub = _hubs[key] = EventHub(event_log(market_id), queue_limit=settings.FABRIC_EVENTS_QUEUE)
    return hub
