"""Splits and merges in zone workers on the in-memory layer (zones/repartitions.py).

A market of two booths and one spare zone, with the thresholds lowered to the crowd
(split at 60 slots, merge under 15, a 2 s dwell): a crowd packed in booth 0 splits its
zone, the spare taking the upper part; once the crowd leaves, the spare's part goes
back. At every tick exactly one owner per entity, none lost; every zone ends on the
newest map, the events say what was planned and when it was over, the gateways hear
the map on the bus, and the summaries say which booth each zone serves.
"""

import asyncio

import numpy as np
import pytest

from market.events.subjects import ops_zones_subject
from market.events.types import EventError, ZonesRepartitioned
from tests.events import EventWatch
from zones import repartitions
from zones.bus import map_packet, map_unpacked, rows_bus
from zones.core.crowd import floor_points
from zones.core.ranges import floor_ranges
from zones.core.relay_messages import Load
from zones.core.repartition import RepartitionError, thresholds
from zones.core.simnet import ownership_violations
from zones.core.state import Status, ZoneParams
from zones.core.wire import SPAWN_DTYPE, RowFlag
from zones.worker import ZoneWorker

T0 = 1_900_000_000_000
BOOTHS = (("Looms", "#aa3355"), ("Dyes", "#3355aa"))
SPARE = 2
LIMITS = thresholds(split_slots=60, merge_slots=15, dwell_ticks=40)
CROWD = 90


@pytest.fixture
def lowered(monkeypatch):
    monkeypatch.setattr(repartitions, "market_thresholds", lambda: LIMITS)


def market(spares: int = 1, market_id: int = 31) -> ZoneWorker:
    return ZoneWorker(
        market_id=market_id,
        zones=range(len(BOOTHS) + spares),
        booths=BOOTHS,
        data_dir=None,
        spares=spares,
        seed=3,
    )


def crowd_in_booth_0(worker: ZoneWorker, count: int = CROWD) -> np.ndarray:
    """`count` standing entities on booth 0's floor, spawned into zone 0."""
    hz = worker.hosted[0]
    rows = np.zeros(count, SPAWN_DTYPE)
    rows["id"] = np.arange(count, dtype=np.uint64) + np.uint64(1 << 40)
    p = ZoneParams(zone=0)
    rows["pos"] = floor_points(worker.ranges, 0, np.random.default_rng(9), count, p.lo, p.hi)
    rows["kind"] = RowFlag.NPC
    hz.spawns.append(("", rows))
    return rows["id"]


def states(worker: ZoneWorker):
    return [hz.state for hz in worker.hosted.values()]


def owned(worker: ZoneWorker, zone: int) -> int:
    s = worker.hosted[zone].state
    return int(np.count_nonzero(s.status == Status.OWNED))


async def run_ticks(worker, first: int, count: int, expected: np.ndarray, problems: list[str]):
    for t in range(first, first + count):
        await worker.tick(T0 + 50 * t)
        problems.extend(f"tick {t}: {p}" for p in ownership_violations(states(worker), expected))


@pytest.mark.asyncio
async def test_a_crowd_splits_its_zone_and_the_split_part_merges_back_when_it_leaves(lowered):
    worker = market()
    maps: list[bytes] = []
    subscription = await rows_bus().subscribe_maps(worker.market_id, maps.append)
    expected = crowd_in_booth_0(worker)
    problems: list[str] = []
    async with EventWatch(worker.market_id, ops_zones_subject(worker.market_id)) as watch:
        await run_ticks(worker, 0, 200, expected, problems)
        assert not problems, problems[:5]
        split = [await watch.next(), await watch.next()]
        assert all(isinstance(e, ZonesRepartitioned) for e in split)
        assert [(e.kind, e.phase) for e in split] == [("split", "planned"), ("split", "done")]
        assert (split[0].source, split[0].target, split[0].booth) == (0, SPARE, 0)
        assert split[1].took_s is not None and split[1].took_s >= 0
        views = {hz.state.ranges for hz in worker.hosted.values()}
        assert len(views) == 1 and next(iter(views)).version == 1  # every zone on the new map
        shared = (owned(worker, 0), owned(worker, SPARE))
        assert sum(owned(worker, z) for z in worker.hosted) == CROWD  # some walked to booth 1
        assert min(shared) >= CROWD * 0.3, shared
        # the crowd leaves: the spare's part goes back to zone 0 once the dwell is over
        for hz in worker.hosted.values():
            hz.despawns.append(expected)
        gone = np.zeros(0, np.uint64)
        await run_ticks(worker, 200, 200, gone, problems)
        assert not problems, problems[:5]
        merge = [await watch.next(), await watch.next()]
        assert [(e.kind, e.phase) for e in merge] == [("merge", "planned"), ("merge", "done")]
        assert (merge[0].source, merge[0].target) == (SPARE, 0)
    await subscription.close()
    final = {hz.state.ranges for hz in worker.hosted.values()}
    assert len(final) == 1
    (ranges,) = final
    assert ranges.version == 2 and ranges.zones.tolist() == [0, 1]
    assert ranges.range_of(0) == floor_ranges(2).range_of(0)  # booth 0 whole again
    # the gateways heard every map on the bus, the newest last
    heard = [map_unpacked(p, "test") for p in maps]
    assert heard and heard[-1] == ranges and {m.version for m in heard} == {0, 1, 2}
    # the retired spare said it holds nothing once; from then on it is quiet again
    packets: list[bytes] = []
    spare_rows = await rows_bus().subscribe(worker.market_id, [SPARE], packets.append)
    for t in range(400, 420):
        await worker.tick(T0 + 50 * t)
    await spare_rows.close()
    assert packets == [] and worker.hosted[SPARE].silent


@pytest.mark.asyncio
async def test_the_summary_names_the_booth_each_zone_serves_and_the_spare(lowered):
    worker = market()
    crowd_in_booth_0(worker)
    for t in range(120):
        await worker.tick(T0 + 50 * t)
    zones = {z["zone"]: z for z in worker.summary()["zones"]}
    assert zones[SPARE]["booth"] == 0 and zones[SPARE]["name"] == "Looms"  # serving booth 0
    assert zones[0]["hi"] == zones[SPARE]["lo"] and zones[SPARE]["hi"] > zones[SPARE]["lo"]
    assert {z["map_version"] for z in zones.values()} == {1}
    idle = market(market_id=32).summary()["zones"]
    assert [(z["zone"], z["booth"], z["name"]) for z in idle] == [
        (0, 0, "Looms"),
        (1, 1, "Dyes"),
        (2, -1, "spare zone 2"),
    ]


@pytest.mark.asyncio
async def test_a_market_without_spares_sends_no_gossip_and_never_splits():
    worker = market(spares=0, market_id=33)
    maps: list[bytes] = []
    subscription = await rows_bus().subscribe_maps(worker.market_id, maps.append)
    crowd_in_booth_0(worker, 120)
    for t in range(60):
        await worker.tick(T0 + 50 * t)
    await asyncio.sleep(0)
    await subscription.close()
    assert maps == [] and worker.repartition is None
    assert all(hz.state.ranges.version == 0 for hz in worker.hosted.values())
    with pytest.raises(ValueError, match="never splits"):
        worker.accept(
            worker.hosted[0],
            {"type": "zone.load", "zone": 1, "version": 0, "slots": 0, "tick_us": 0}
            | {"worker_us": 0, "codes": b""},
        )


@pytest.mark.asyncio
async def test_the_spare_keeps_quiet_on_the_bus_until_it_serves(lowered):
    worker = market(market_id=34)
    packets: list[bytes] = []
    subscription = await rows_bus().subscribe(worker.market_id, [SPARE], packets.append)
    for t in range(30):
        await worker.tick(T0 + 50 * t)
    await asyncio.sleep(0)
    await subscription.close()
    assert packets == []


def test_spare_zones_beyond_max_zones_or_negative_are_refused():
    with pytest.raises(ValueError, match="at most MAX_ZONES=32"):
        market(spares=31)
    with pytest.raises(ValueError, match="spares are not negative"):
        ZoneWorker(market_id=1, zones=[0], booths=BOOTHS, data_dir=None, spares=-1)
    with pytest.raises(ValueError, match=r"zone 3 is not a zone of this market \(0\.\.2"):
        ZoneWorker(market_id=1, zones=[3], booths=BOOTHS, data_dir=None, spares=1)


def test_the_planner_refuses_a_load_from_a_zone_the_market_does_not_have():
    planner = repartitions.Planner(booths=2, zones=3, limits=LIMITS)
    load = Load(zone=5, version=0, slots=1, tick_us=1, worker_us=1, codes=np.zeros(0, np.uint32))
    with pytest.raises(ValueError, match="zone 5, not a zone of this market"):
        planner.heard(load, 0)


def test_a_spare_goes_to_the_least_loaded_worker_first():
    planner = repartitions.Planner(booths=1, zones=3, limits=LIMITS)
    codes = np.sort(np.random.default_rng(1).integers(0, 1 << 20, 80).astype(np.uint32))
    planner.heard(Load(zone=0, version=0, slots=80, tick_us=900, worker_us=900, codes=codes), 20)
    empty = np.zeros(0, np.uint32)
    planner.heard(Load(zone=1, version=0, slots=0, tick_us=5, worker_us=700, codes=empty), 19)
    planner.heard(Load(zone=2, version=0, slots=0, tick_us=5, worker_us=300, codes=empty), 18)
    (event,) = planner.step(floor_ranges(1), 20)
    assert (event.kind, event.target) == ("split", 2)
    # a load older than LOAD_STALE_TICKS is a zone that is down: not a spare to hand to
    planner = repartitions.Planner(booths=1, zones=3, limits=LIMITS)
    planner.heard(Load(zone=0, version=0, slots=80, tick_us=900, worker_us=900, codes=codes), 200)
    planner.heard(Load(zone=2, version=0, slots=0, tick_us=5, worker_us=300, codes=empty), 100)
    assert planner.step(floor_ranges(1), 200) == []


def test_thresholds_come_from_the_settings_and_bad_ones_name_the_setting(settings):
    settings.FABRIC_SPLIT_SLOTS, settings.FABRIC_MERGE_SLOTS = "60", "15"
    settings.FABRIC_REPARTITION_DWELL_S = "2"
    limits = repartitions.market_thresholds()
    assert (limits.split_slots, limits.merge_slots, limits.dwell_ticks) == (60, 15, 40)
    settings.FABRIC_SPLIT_SLOTS = "many"
    with pytest.raises(RepartitionError, match="FABRIC_SPLIT_SLOTS must be a number"):
        repartitions.market_thresholds()
    settings.FABRIC_SPLIT_SLOTS = "20"
    with pytest.raises(RepartitionError, match="FABRIC_MERGE_SLOTS='15'"):
        repartitions.market_thresholds()


def test_a_map_packet_round_trips_and_garbage_is_dropped():
    ranges = floor_ranges(2)
    assert map_unpacked(map_packet(ranges), "test") == ranges
    assert map_unpacked(b"\xff not json", "test") is None
    assert map_unpacked(b'{"version": 1, "starts": [5, 2]}', "test") is None
    assert map_unpacked(b"[1, 2]", "test") is None


def test_a_repartition_event_of_an_unknown_kind_or_a_lopsided_map_is_refused():
    fields = {"version": 1, "source": 0, "target": 2, "lo": 1, "hi": 2, "booth": 0}
    fields["took_s"], fields["at_ms"] = None, 0
    with pytest.raises(EventError, match="kind is one of split, merge"):
        ZonesRepartitioned(kind="shuffle", phase="planned", starts=[0], owners=[0], **fields)
    with pytest.raises(EventError, match="phase one of planned, done"):
        ZonesRepartitioned(kind="split", phase="maybe", starts=[0], owners=[0], **fields)
    with pytest.raises(EventError, match="as many owners as starts"):
        ZonesRepartitioned(kind="split", phase="done", starts=[0, 1], owners=[0], **fields)


def test_a_spare_has_every_booth_s_items_sorted_by_id_and_a_booth_zone_its_own():
    worker = market(market_id=35)
    own = [worker.hosted[z].params.items for z in range(len(BOOTHS))]
    spare = worker.hosted[SPARE].params.items
    assert spare.size == sum(items.size for items in own) > 0
    assert sorted(spare.id.tolist()) == spare.id.tolist()
    assert set(spare.id.tolist()) == {i for items in own for i in items.id.tolist()}
    for items in own:  # every field goes with its id
        index = spare.index_of(items.id)
        assert np.array_equal(spare.pos[index], items.pos)
        assert np.array_equal(spare.slots[index], items.slots)
