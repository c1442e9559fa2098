"""The rows bus: how each zone's rows reach the gateways every tick.

Rows are state, not requests: a subscriber needs the newest rows of each zone, and a
packet that is lost or late is replaced 50 ms later. So they travel publish/subscribe,
as one binary packet per zone per tick (`zones.core.wire.rows_packet`), however many
subscribers there are:

  * with REDIS_URL, over Redis Pub/Sub: one PUBLISH per zone per tick (a worker's
    zones' PUBLISHes go in one pipeline, one round trip a tick), no queue that
    could fill up and no per-member cost. A channels-redis group send costs several
    round trips per member plus msgpack on both ends; at 32 zones × 20 Hz
    that alone kept 32 idle zones at 0.9 cores;
  * in the embedded default, in process: the packet's bytes are handed to each
    subscriber's callback.

The same bus carries the market's range map to the gateways (`publish_map`): a worker
whose zone pushes its map by gossip (zones/repartitions.py) publishes the newest map it
holds, at most once a tick, as JSON. Like rows, a lost map is repeated a second later.

Everything else a zone receives (migration messages, inputs, spawns, despawns) must
not be lost while a worker restarts, and stays on the channel layer's queues.

A subscriber's callback runs on the subscriber's event loop and must not block: it
files the packet for the next tick.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import numpy as np
import redis.asyncio as redis
from django.conf import settings

from zones.channels import cancel_and_wait
from zones.core.ranges import RangeMap
from zones.core.wire import rows_unpack
from zones.logthrottle import LogThrottle

log = logging.getLogger(__name__)
_failures = LogThrottle(log)  # a Redis outage fails every read

RETRY_S = 0.2

RowsHandler = Callable[[bytes], None]


def rows_channel(prefix: str, market_id: int, zone: int) -> str:
    """The bus channel zone `zone` of market `market_id` publishes its rows on."""
    return f"{prefix}:fabric.m{market_id}.rows.{zone}"


def map_channel(prefix: str, market_id: int) -> str:
    """The bus channel the zones of market `market_id` publish their range map on."""
    return f"{prefix}:fabric.m{market_id}.map"


def map_packet(ranges: RangeMap) -> bytes:
    """A range map as the bus carries it."""
    return json.dumps(ranges.to_wire(), separators=(",", ":")).encode()


def map_unpacked(packet: bytes, receiver: str) -> RangeMap | None:
    """The range map of a packet from the bus, or None, logged, if it is not a valid one."""
    try:
        return RangeMap.from_wire(json.loads(packet))
    except (ValueError, TypeError, KeyError) as exc:  # JSON and map errors are ValueErrors
        log.warning("%s: dropped a malformed map packet: %s", receiver, exc)
        return None


def packet_unpacked(packet: bytes, receiver: str) -> tuple[int, int, int, np.ndarray] | None:
    """(zone, tick, tick_ms, rows) of a packet from the bus, or None, logged, if malformed."""
    try:
        return rows_unpack(packet)
    except ValueError as exc:
        log.warning("%s: dropped a malformed rows packet: %s", receiver, exc)
        return None


class Subscription(Protocol):
    async def close(self) -> None: ...


class RowsBus(Protocol):
    """Publish zones' packets; subscribe a callback to some zones' packets."""

    async def publish(self, market_id: int, zone: int, packet: bytes) -> None: ...

    async def publish_many(self, market_id: int, packets: Sequence[tuple[int, bytes]]) -> None:
        """Publish (zone, packet) pairs: a worker's zones' packets of one tick."""

    async def subscribe(
        self, market_id: int, zones: Iterable[int], handler: RowsHandler
    ) -> Subscription: ...

    async def publish_map(self, market_id: int, packet: bytes) -> None: ...

    async def subscribe_maps(self, market_id: int, handler: RowsHandler) -> Subscription: ...


class LocalSubscription:
    def __init__(self, bus: "LocalBus", channels: list[str], entry: tuple[Any, RowsHandler]):
        self.bus, self.channels, self.entry = bus, channels, entry

    async def close(self) -> None:
        for channel in self.channels:
            with contextlib.suppress(ValueError):
                self.bus.subscribers.get(channel, []).remove(self.entry)


class LocalBus:
    """The bus inside one process: zones and gateways share the process's memory."""

    def __init__(self) -> None:
        self.prefix = "local"
        self.subscribers: dict[str, list[tuple[asyncio.AbstractEventLoop, RowsHandler]]] = {}

    async def publish(self, market_id: int, zone: int, packet: bytes) -> None:
        await self.publish_many(market_id, [(zone, packet)])

    async def publish_many(self, market_id: int, packets: Sequence[tuple[int, bytes]]) -> None:
        for zone, packet in packets:
            self._deliver(rows_channel(self.prefix, market_id, zone), packet)

    async def publish_map(self, market_id: int, packet: bytes) -> None:
        self._deliver(map_channel(self.prefix, market_id), packet)

    def _deliver(self, channel: str, packet: bytes) -> None:
        here = asyncio.get_running_loop()
        entries = self.subscribers.get(channel, [])
        for entry in list(entries):
            loop, handler = entry
            if loop is here:
                handler(packet)
            elif loop.is_closed():  # its subscriber went with its loop, unsubscribed or not
                entries.remove(entry)
            else:
                loop.call_soon_threadsafe(handler, packet)

    async def subscribe(
        self, market_id: int, zones: Iterable[int], handler: RowsHandler
    ) -> LocalSubscription:
        return self._subscribe([rows_channel(self.prefix, market_id, z) for z in zones], handler)

    async def subscribe_maps(self, market_id: int, handler: RowsHandler) -> LocalSubscription:
        return self._subscribe([map_channel(self.prefix, market_id)], handler)

    def _subscribe(self, channels: list[str], handler: RowsHandler) -> LocalSubscription:
        entry = (asyncio.get_running_loop(), handler)
        for channel in channels:
            self.subscribers.setdefault(channel, []).append(entry)
        return LocalSubscription(self, channels, entry)


class RedisSubscription:
    """One Pub/Sub connection and the task that reads it."""

    def __init__(self, client: redis.Redis, channels: list[str], handler: RowsHandler) -> None:
        self.client, self.channels, self.handler = client, channels, handler
        self.pubsub = client.pubsub()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.channels:
            await self.pubsub.subscribe(*self.channels)
            self.task = asyncio.create_task(self._read(), name="rows-bus-read")

    async def _read(self) -> None:
        while True:
            try:
                message = await self.pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=None
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis restarting: redis-py reconnects and resubscribes
                _failures.warning("read", "rows bus: read failed (%r); retrying", exc)
                await asyncio.sleep(RETRY_S)
                continue
            if _failures.failing("read"):
                _failures.clear("read", "rows bus: reads work again")
            if message is not None and message.get("type") == "message":
                self.handler(message["data"])

    async def close(self) -> None:
        if self.task is not None:
            await cancel_and_wait([self.task])
        with contextlib.suppress(Exception):
            await self.pubsub.aclose()


class RedisBus:
    """The bus over Redis Pub/Sub, for zones and gateways in different processes."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url, self.prefix = url, prefix
        self._clients: dict[asyncio.AbstractEventLoop, redis.Redis] = {}

    def _client(self) -> redis.Redis:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            for old in [old for old in self._clients if old.is_closed()]:
                del self._clients[old]
            client = self._clients[loop] = redis.Redis.from_url(self.url)
        return client

    async def publish(self, market_id: int, zone: int, packet: bytes) -> None:
        await self._client().publish(rows_channel(self.prefix, market_id, zone), packet)

    async def publish_many(self, market_id: int, packets: Sequence[tuple[int, bytes]]) -> None:
        """One round trip for all: the PUBLISHes go in one pipeline."""
        pipe = self._client().pipeline(transaction=False)
        for zone, packet in packets:
            pipe.publish(rows_channel(self.prefix, market_id, zone), packet)
        await pipe.execute()

    async def publish_map(self, market_id: int, packet: bytes) -> None:
        await self._client().publish(map_channel(self.prefix, market_id), packet)

    async def subscribe(
        self, market_id: int, zones: Iterable[int], handler: RowsHandler
    ) -> RedisSubscription:
        channels = [rows_channel(self.prefix, market_id, z) for z in zones]
        return await self._subscribe(channels, handler)

    async def subscribe_maps(self, market_id: int, handler: RowsHandler) -> RedisSubscription:
        return await self._subscribe([map_channel(self.prefix, market_id)], handler)

    async def _subscribe(self, channels: list[str], handler: RowsHandler) -> RedisSubscription:
        subscription = RedisSubscription(self._client(), channels, handler)
        await subscription.start()
        return subscription


_local = LocalBus()
_redis: dict[tuple[str, str], RedisBus] = {}


def rows_bus() -> RowsBus:
    """The Redis bus when REDIS_URL is set, else the process's own."""
    url, prefix = settings.REDIS_URL, settings.FABRIC_CHANNEL_PREFIX
    if not url:
        return _local
    bus = _redis.get((url, prefix))
    if bus is None:
        bus = _redis[url, prefix] = RedisBus(url, prefix)
    return bus
