"""The rows bus: in process (embedded) and over Redis Pub/Sub (distributed)."""

import asyncio
import threading
import uuid

import numpy as np
import pytest

from tests.waiting import until
from zones.bus import LocalBus, RedisBus, rows_bus, rows_channel
from zones.core.wire import ROW_DTYPE, rows_packet, rows_unpack

T0 = 1_800_000_000_000


def packet(zone: int, tick: int, n: int = 3) -> bytes:
    rows = np.zeros(n, ROW_DTYPE)
    rows["id"] = np.arange(n) + 100 * zone
    rows["zone"] = zone
    return rows_packet(zone, tick, T0 + 50 * tick, rows)


def test_channels_carry_prefix_market_and_zone():
    assert rows_channel("asgi", 3, 17) == "asgi:fabric.m3.rows.17"


def test_the_embedded_default_is_the_process_bus(settings):
    settings.REDIS_URL = ""
    assert isinstance(rows_bus(), LocalBus)
    settings.REDIS_URL, settings.FABRIC_CHANNEL_PREFIX = "redis://127.0.0.1:6379/15", "p1"
    bus = rows_bus()
    assert isinstance(bus, RedisBus) and bus.prefix == "p1" and rows_bus() is bus


@pytest.mark.asyncio
async def test_local_bus_delivers_each_zone_to_its_subscribers_only():
    bus = LocalBus()
    near: list[bytes] = []
    everything: list[bytes] = []
    a = await bus.subscribe(1, [0, 1], near.append)
    b = await bus.subscribe(1, range(3), everything.append)
    for zone in range(3):
        await bus.publish(1, zone, packet(zone, 1))
    await bus.publish(2, 0, packet(0, 1))  # another market: nobody here
    assert [rows_unpack(p)[0] for p in near] == [0, 1]
    assert [rows_unpack(p)[0] for p in everything] == [0, 1, 2]
    await a.close()
    await bus.publish(1, 0, packet(0, 2))
    assert len(near) == 2 and len(everything) == 4
    await b.close()
    await a.close()  # closing twice is harmless


@pytest.mark.asyncio
async def test_local_bus_reaches_a_subscriber_on_another_threads_loop():
    bus = LocalBus()
    got: list[tuple[bytes, int]] = []
    ready = threading.Event()
    done = threading.Event()
    loop = asyncio.new_event_loop()

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def main() -> None:
            await bus.subscribe(
                1, [0], lambda p: (got.append((p, threading.get_ident())), done.set())
            )
            ready.set()
            while not done.is_set():
                await asyncio.sleep(0.01)

        loop.run_until_complete(main())

    thread = threading.Thread(target=run)
    thread.start()
    assert ready.wait(2)
    await bus.publish(1, 0, packet(0, 1))
    thread.join(2)
    loop.close()
    assert len(got) == 1 and got[0][1] == thread.ident  # run on the subscriber's own loop
    await bus.publish(1, 0, packet(0, 2))  # a closed loop is skipped, not an error
    assert bus.subscribers[rows_channel("local", 1, 0)] == []  # and its subscriber forgotten


@pytest.mark.asyncio
async def test_redis_bus_round_trip_with_prefixes_kept_apart(redis_url):
    mine = RedisBus(redis_url, f"t{uuid.uuid4().hex[:8]}")
    theirs = RedisBus(redis_url, f"t{uuid.uuid4().hex[:8]}")
    got: list[bytes] = []
    foreign: list[bytes] = []
    subscription = await mine.subscribe(1, range(2), got.append)
    other = await theirs.subscribe(1, range(2), foreign.append)
    try:
        for tick in range(1, 4):
            await mine.publish(1, tick % 2, packet(tick % 2, tick, n=tick))
        await until(lambda: len(got) == 3)
        unpacked = [rows_unpack(p) for p in got]
        assert [(z, t, rows.size) for z, t, _, rows in unpacked] == [
            (1, 1, 1),
            (0, 2, 2),
            (1, 3, 3),
        ]
        assert np.array_equal(unpacked[2][3]["id"], [100, 101, 102])
        await asyncio.sleep(0.1)
        assert foreign == []  # another prefix is another market's Redis
    finally:
        await subscription.close()
        await other.close()
    await mine.publish(1, 0, packet(0, 9))
    await asyncio.sleep(0.1)
    assert len(got) == 3  # closed: nothing more arrives


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["local", "redis"])
async def test_a_workers_packets_of_one_tick_go_out_together_in_order(kind, redis_url):
    bus = LocalBus() if kind == "local" else RedisBus(redis_url, f"t{uuid.uuid4().hex[:8]}")
    got: list[bytes] = []
    subscription = await bus.subscribe(1, [0, 2], got.append)
    try:
        await bus.publish_many(1, [(0, packet(0, 5)), (1, packet(1, 5)), (2, packet(2, 5, n=2))])
        await until(lambda: len(got) == 2)
        await asyncio.sleep(0.05)
        assert [(z, t, rows.size) for z, t, _, rows in map(rows_unpack, got)] == [
            (0, 5, 3),
            (2, 5, 2),
        ]  # zone 1 has no subscriber here
        await bus.publish_many(1, [])
    finally:
        await subscription.close()


@pytest.mark.asyncio
async def test_redis_bus_subscription_to_no_zones_is_empty(redis_url):
    subscription = await RedisBus(redis_url, "t-empty").subscribe(1, [], lambda p: None)
    assert subscription.task is None
    await subscription.close()
