"""The hub: one reader per stream, bounded resumable subscriptions, snapshots at a position."""

import asyncio

import pytest

from market.events.backends import Retention
from market.events.backends.memory import MemoryBackend
from market.events.envelope import envelope_new
from market.events.hub import EventHub, Gap, Position, PositionError, SubscriptionEnded
from market.events.subjects import visitor_subjects
from market.events.types import BoothEntered, MarketSummaryReported, ZoneChanged

MARKET = 1


def booth_entered(entity: int, zone: int) -> BoothEntered:
    return BoothEntered(entity=entity, zone=zone, name=f"booth {zone}", colour="#123456")


async def publish(log, *events) -> list[int]:
    envelopes = [envelope_new(MARKET, e) for e in events]
    return await log.append([(e.subject, e.to_bytes(), e.id) for e in envelopes])


async def drain(subscription, count: int, timeout: float = 2.0) -> list:
    got: list = []
    while len(got) < count:
        got.extend(await asyncio.wait_for(subscription.get(), timeout))
    return got


@pytest.fixture
def log():
    return MemoryBackend(Retention(max_len=50, max_age_s=3600)).log("market.1")


async def test_late_joiner_gets_a_snapshot_with_its_position_then_only_newer_events(log):
    await publish(log, booth_entered(7, 0), booth_entered(7, 1))
    hub = EventHub(log)
    subscription, resumed = await hub.subscribe(
        [visitor_subjects(MARKET, 7)], snapshot=lambda: {"booth": 1}
    )
    assert resumed.recovered is None
    assert resumed.position.offset == 2 and resumed.snapshot == {"booth": 1}
    await publish(log, booth_entered(7, 2))
    (item,) = await drain(subscription, 1)
    assert item.offset == 3 and item.envelope.event.zone == 2
    await hub.stop()


async def test_resume_replays_exactly_the_missed_events_in_order_then_continues_live(log):
    hub = EventHub(log)
    await hub.start()
    offsets = await publish(log, *[booth_entered(7, z % 4) for z in range(10)])
    await publish(log, booth_entered(8, 0))  # another visitor's: not replayed
    subscription, resumed = await hub.subscribe(
        [visitor_subjects(MARKET, 7)], after=Position(offsets[3], log.epoch)
    )
    assert resumed.recovered is True
    await publish(log, booth_entered(7, 3))
    items = await drain(subscription, 7)
    assert [i.offset for i in items] == [*offsets[4:], offsets[-1] + 2]
    assert subscription.position().offset == offsets[-1] + 2
    await hub.stop()


async def test_seam_between_replay_and_live_repeats_nothing_while_events_flow(log):
    hub = EventHub(log)
    await hub.start()
    first = await publish(log, booth_entered(7, 0))
    flowing = asyncio.create_task(publish(log, *[booth_entered(7, 1) for _ in range(30)]))
    subscription, _ = await hub.subscribe(
        [visitor_subjects(MARKET, 7)], after=Position(first[0], log.epoch)
    )
    await flowing
    items = await drain(subscription, 30)
    offsets = [i.offset for i in items]
    assert offsets == list(range(first[0] + 1, first[0] + 31))
    await hub.stop()


async def test_stale_epoch_gets_recovered_false_and_a_fresh_snapshot(log):
    await publish(log, booth_entered(7, 0))
    hub = EventHub(log)
    _, resumed = await hub.subscribe(
        [visitor_subjects(MARKET, 7)], after=Position(1, "another-epoch"), snapshot=lambda: "s"
    )
    assert resumed.recovered is False and resumed.reason == "epoch_changed"
    assert resumed.snapshot == "s" and resumed.position == Position(1, log.epoch)
    await hub.stop()


async def test_expired_offset_gets_recovered_false(log):
    await publish(log, *[booth_entered(7, 0) for _ in range(60)])  # retention keeps 50
    hub = EventHub(log)
    _, resumed = await hub.subscribe([visitor_subjects(MARKET, 7)], after=Position(3, log.epoch))
    assert resumed.recovered is False and resumed.reason == "expired"
    await hub.stop()


async def test_offset_in_the_future_is_refused_with_a_clear_error(log):
    await publish(log, booth_entered(7, 0))
    hub = EventHub(log)
    with pytest.raises(PositionError) as refused:
        await hub.subscribe([visitor_subjects(MARKET, 7)], after=Position(99, log.epoch))
    assert refused.value.code == "future_offset" and "99" in refused.value.message
    await hub.stop()


async def test_slow_consumer_is_cut_off_with_a_resumable_position_and_never_slows_others(log):
    hub = EventHub(log, queue_limit=5)
    slow, _ = await hub.subscribe([visitor_subjects(MARKET, 7)])
    quick, _ = await hub.subscribe([visitor_subjects(MARKET, 7)])
    got = []
    for _ in range(3):
        await publish(log, *[booth_entered(7, 0) for _ in range(3)])
        got.extend(await drain(quick, 3))
    assert len(got) == 9
    with pytest.raises(SubscriptionEnded) as ended:
        while True:
            await asyncio.wait_for(slow.get(), 2)
    assert ended.value.reason == "slow"
    # it resumes from where it stopped and gets the rest
    again, resumed = await hub.subscribe([visitor_subjects(MARKET, 7)], after=ended.value.position)
    assert resumed.recovered is True
    rest = await drain(again, 9 - ended.value.position.offset)
    assert rest[-1].offset == 9
    await hub.stop()


async def test_malformed_and_foreign_entries_are_skipped_and_counted(log):
    hub = EventHub(log)
    subscription, _ = await hub.subscribe(["market.1.>"])
    await log.append(
        [
            ("market.1.booth.0.visitor.7", b"not json", "x1"),
            ("market.1.booth.0.visitor.7", b'{"id": "x2", "type": "nope"}', "x2"),
            (
                "market.1.booth.0.visitor.7",
                b'{"id":"x3","type":"booth_entered","v":9,'
                b'"subject":"market.1.booth.0.visitor.7","at_ms":1,"data":{}}',
                "x3",
            ),
        ]
    )
    await publish(log, booth_entered(7, 0))
    (item,) = await drain(subscription, 1)
    assert item.offset == 4 and hub.malformed == 3
    await hub.stop()


async def test_new_epoch_sends_every_subscriber_a_gap_with_a_fresh_snapshot():
    backend = MemoryBackend()
    log = backend.log("market.1")
    hub = EventHub(log)
    subscription, _ = await hub.subscribe([visitor_subjects(MARKET, 7)], snapshot=lambda: "fresh")
    log.epoch = "lost-and-made-again"  # what a backend reports once it lost the stream
    await publish(log, booth_entered(7, 0))
    items = await drain(subscription, 1)
    assert isinstance(items[0], Gap) and items[0].snapshot == "fresh"
    assert items[0].position.epoch == "lost-and-made-again"
    await hub.stop()


async def test_hub_knows_every_zones_health_from_the_stream_when_it_starts(log):
    summary = {"zone": 3, "health": "ok", "entities": 5}
    await publish(log, MarketSummaryReported(tick=9, hlc=1, overruns=0, zones=[summary]))
    await publish(log, ZoneChanged(entity=7, from_zone=0, to_zone=1, tick_ms=50))
    hub = EventHub(log)
    await hub.start()
    assert hub.ops.snapshot()["zones"]["3"]["entities"] == 5
    await hub.stop()
