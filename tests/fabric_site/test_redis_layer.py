"""The market's channel layer over Redis: channels-redis's, with a one-round-trip send."""

import asyncio
import time

import pytest
import redis
from channels.exceptions import ChannelFull
from channels_redis.core import RedisChannelLayer

from fabric_site.redis_layer import FabricRedisChannelLayer


@pytest.fixture
async def layer(redis_url, channel_prefix):
    made = []

    def make(**config):
        one = FabricRedisChannelLayer(hosts=[redis_url], prefix=channel_prefix, **config)
        made.append(one)
        return one

    yield make
    for one in made:
        await one.close_pools()


async def test_a_message_sent_is_received_once_in_order(layer):
    one = layer()
    for n in range(3):
        await one.send("fabric.m1.zone.0", {"type": "zone.inputs", "n": n, "data": b"\x00\xff"})
    got = [await asyncio.wait_for(one.receive("fabric.m1.zone.0"), 5) for _ in range(3)]
    assert got == [{"type": "zone.inputs", "n": n, "data": b"\x00\xff"} for n in range(3)]
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(one.receive("fabric.m1.zone.0"), 0.3)


async def test_a_process_channel_reaches_its_receiver(layer):
    one = layer()
    channel = await one.new_channel()
    await one.send(channel, {"type": "zone.spawned", "ids": [1, 2]})
    assert await asyncio.wait_for(one.receive(channel), 5) == {
        "type": "zone.spawned",
        "ids": [1, 2],
    }


async def test_channels_redis_reads_what_it_sends_and_the_other_way(
    layer, redis_url, channel_prefix
):
    ours = layer()
    theirs = RedisChannelLayer(hosts=[redis_url], prefix=channel_prefix)
    try:
        await ours.send("fabric.m1.zone.1", {"type": "a"})
        assert await asyncio.wait_for(theirs.receive("fabric.m1.zone.1"), 5) == {"type": "a"}
        await theirs.send("fabric.m1.zone.1", {"type": "b"})
        assert await asyncio.wait_for(ours.receive("fabric.m1.zone.1"), 5) == {"type": "b"}
    finally:
        await theirs.close_pools()


async def test_a_full_channel_refuses_and_keeps_what_it_holds(layer):
    one = layer(capacity=2)
    await one.send("fabric.m1.zone.2", {"type": "x", "n": 1})
    await one.send("fabric.m1.zone.2", {"type": "x", "n": 2})
    with pytest.raises(ChannelFull):
        await one.send("fabric.m1.zone.2", {"type": "x", "n": 3})
    got = [await asyncio.wait_for(one.receive("fabric.m1.zone.2"), 5) for _ in range(2)]
    assert [m["n"] for m in got] == [1, 2]
    await one.send("fabric.m1.zone.2", {"type": "x", "n": 4})  # room again


async def test_expired_messages_make_room_and_the_key_expires(layer, redis_url, channel_prefix):
    one = layer(capacity=1, expiry=1)
    await one.send("fabric.m1.zone.3", {"type": "old"})
    key = f"{channel_prefix}fabric.m1.zone.3"
    client = redis.Redis.from_url(redis_url)
    try:
        assert 0 < client.ttl(key) <= 1  # a channel nobody reads goes with its messages
        client.persist(key)  # kept: only the messages' own expiry can make room now
        time.sleep(2.1)  # the old message is past its expiry (scores are whole seconds)
        await one.send("fabric.m1.zone.3", {"type": "new"})
        assert client.zcard(key) == 1
    finally:
        client.close()
    assert await asyncio.wait_for(one.receive("fabric.m1.zone.3"), 5) == {"type": "new"}


# --- receiving many channels at once -----------------------------------------------------

ZONES = [f"fabric.m1.zone.{z}" for z in range(10, 14)]


async def burst(layer, channels=ZONES, timeout=2.0):
    """The next non-empty burst (the first call of a receiver may come back empty)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        got = await layer.receive_many(channels, timeout=timeout)
        if got:
            return got
    raise AssertionError("no burst within 5 s")


async def test_one_burst_holds_every_channel_s_queue_oldest_first(layer):
    sender, receiver = layer(), layer()
    assert receiver.receives_many()
    for n in range(3):
        for z in (1, 3):
            await sender.send(ZONES[z], {"type": "zone.inputs", "z": z, "n": n})
    got = await burst(receiver)
    assert [(i, m["n"]) for i, m in got] == [(1, 0), (1, 1), (1, 2), (3, 0), (3, 1), (3, 2)]
    assert all(m["z"] == i for i, m in got)
    assert await receiver.receive_many(ZONES, timeout=0.3) == []  # each message once


async def test_a_waiting_receiver_wakes_for_a_message_on_any_channel(layer):
    sender, receiver = layer(), layer()
    assert await receiver.receive_many(ZONES, timeout=0.2) == []  # the first call: nothing left
    waiting = asyncio.create_task(receiver.receive_many(ZONES, timeout=5))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    await sender.send(ZONES[2], {"type": "zone.spawn", "n": 7})
    assert await asyncio.wait_for(waiting, 5) == [(2, {"type": "zone.spawn", "n": 7})]


async def test_a_burst_a_receiver_died_handling_goes_to_the_next_receiver(layer):
    sender, dying, next_one = layer(), layer(), layer()
    await sender.send(ZONES[0], {"type": "a"})
    assert await burst(dying) == [(0, {"type": "a"})]
    # it dies here, before it asks again: the burst is still in flight, and comes again
    await sender.send(ZONES[0], {"type": "b"})
    got = await burst(next_one)
    assert got == [(0, {"type": "a"}), (0, {"type": "b"})]


async def test_a_handled_burst_leaves_flight_before_the_receiver_waits(layer):
    sender, first, second = layer(), layer(), layer()
    await sender.send(ZONES[1], {"type": "a"})
    assert await burst(first) == [(1, {"type": "a"})]
    # asking again means handled: the burst is dropped, then the receiver waits
    assert await first.receive_many(ZONES, timeout=0.2) == []
    await sender.send(ZONES[1], {"type": "b"})
    assert await burst(second) == [(1, {"type": "b"})]  # nothing of the first comes twice


async def test_channels_redis_receives_what_receive_many_left_in_flight_and_the_other_way(
    layer, redis_url, channel_prefix
):
    ours = layer()
    theirs = RedisChannelLayer(hosts=[redis_url], prefix=channel_prefix)
    try:
        await ours.send(ZONES[3], {"type": "a"})
        assert await burst(ours) == [(3, {"type": "a"})]  # then this receiver stops
        # channels-redis puts a dead receiver's flight back before it receives
        assert await asyncio.wait_for(theirs.receive(ZONES[3]), 5) == {"type": "a"}
        await theirs.send(ZONES[0], {"type": "b"})
        assert await burst(layer()) == [(0, {"type": "b"})]
    finally:
        await theirs.close_pools()


def failing_script(receiver, *, after_running: bool):
    """Make the receiver's next script call fail once: after the server ran it (its answer
    lost on the way back) or before it reached the server."""
    real = receiver._receive_script

    async def once(*args, **kwargs):
        receiver._receive_script = real
        if after_running:
            await real(*args, **kwargs)
        raise ConnectionError("the connection dropped")

    receiver._receive_script = once


async def test_a_burst_whose_answer_was_lost_comes_with_the_next_call(layer):
    sender, receiver = layer(), layer()
    await sender.send(ZONES[0], {"type": "a"})
    assert await burst(receiver) == [(0, {"type": "a"})]
    await sender.send(ZONES[0], {"type": "c"})
    failing_script(receiver, after_running=True)  # it drops `a` and moves `c` into flight
    with pytest.raises(ConnectionError):
        await receiver.receive_many(ZONES, timeout=1)
    assert await burst(receiver) == [(0, {"type": "c"})]


async def test_a_first_call_that_failed_still_puts_a_predecessors_flight_back(layer):
    sender, dying, next_one = layer(), layer(), layer()
    await sender.send(ZONES[1], {"type": "a"})
    assert await burst(dying) == [(1, {"type": "a"})]  # then it dies, `a` in flight
    await next_one.receive_many(ZONES, timeout=0.1)  # registers the script
    next_one._restored.clear()  # as a new receiver
    failing_script(next_one, after_running=False)
    with pytest.raises(ConnectionError):
        await next_one.receive_many(ZONES, timeout=1)
    await sender.send(ZONES[1], {"type": "b"})
    assert await burst(next_one) == [(1, {"type": "a"}), (1, {"type": "b"})]


async def test_the_message_a_wait_took_goes_back_when_the_script_fails(layer):
    sender, receiver = layer(), layer()
    assert await receiver.receive_many(ZONES, timeout=0.1) == []  # restored, nothing in flight
    waiting = asyncio.create_task(receiver.receive_many(ZONES, timeout=5))
    await asyncio.sleep(0.1)
    failing_script(receiver, after_running=False)
    await sender.send(ZONES[2], {"type": "d"})
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(waiting, 5)
    assert await burst(receiver) == [(2, {"type": "d"})]


async def test_a_message_its_handler_cannot_take_does_not_end_the_receiving(layer):
    from zones.channels import receive_many_forever

    sender, receiver = layer(), layer()
    got = []

    def handle(index, message):
        if message["type"] == "bad":
            raise RuntimeError("a handler's bug")
        got.append((index, message["type"]))

    receiving = asyncio.create_task(receive_many_forever(receiver, ZONES, handle))
    try:
        await sender.send(ZONES[0], {"type": "bad"})
        await asyncio.sleep(0.2)
        await sender.send(ZONES[3], {"type": "good"})
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert got == [(3, "good")] and not receiving.done()
    finally:
        receiving.cancel()
        await asyncio.gather(receiving, return_exceptions=True)
