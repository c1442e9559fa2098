"""Zone workers on the in-memory layer: ticking, handoffs, snapshots, leases, summaries."""

import asyncio

import numpy as np
import pytest
from channels.layers import get_channel_layer

from market.events.subjects import ops_subjects
from market.events.types import MarketSummaryReported
from market.services import DEMO_BOOTHS
from tests.events import EventWatch
from zones import worker as worker_module
from zones.bus import rows_bus
from zones.channels import bundled, zone_channel
from zones.core.constants import IN_FLIGHT_EVERY_TICKS, TICK_MS
from zones.core.messages import InFlight, message_to_wire
from zones.core.relay_messages import Despawn, Spawn, relay_to_wire
from zones.core.simnet import ownership_violations
from zones.core.state import Status
from zones.core.wire import SPAWN_DTYPE, TRANSFER_DTYPE, RowFlag, rows_unpack
from zones.snapshots import ZoneLocked
from zones.worker import ZoneWorker, zone_walkers

T0 = 1_800_000_000_000


def demo_worker(tmp_path=None, walkers=200, market_id=7):
    return ZoneWorker(
        market_id=market_id,
        zones=range(3),
        booths=DEMO_BOOTHS,
        data_dir=tmp_path,
        walkers=walkers,
        seed=5,
    )


def states(worker):
    return [hz.state for hz in worker.hosted.values()]


def all_ids(worker):
    ids = np.concatenate([s.id[s.status != 0] for s in states(worker)])
    return np.unique(ids)


def test_walkers_are_shared_out_between_the_zones():
    assert [zone_walkers(200, z, 3) for z in range(3)] == [67, 67, 66]
    assert sum(zone_walkers(7, z, 32) for z in range(32)) == 7


@pytest.mark.asyncio
async def test_walkers_cross_booths_with_exactly_one_owner_each_tick():
    worker = demo_worker()
    await worker.tick(T0)
    expected = all_ids(worker)
    assert expected.size == 200
    released = 0
    for t in range(1, 600):
        await worker.tick(T0 + 50 * t)
        released += sum(hz.migrations for hz in worker.hosted.values())
        for hz in worker.hosted.values():
            hz.migrations = 0
        assert not ownership_violations(states(worker), expected)
    assert released > 0, "nobody crossed a border in 30 s of walking"
    assert np.array_equal(all_ids(worker), expected)


@pytest.mark.asyncio
async def test_rows_go_once_per_tick_on_each_zones_bus_channel():
    worker = demo_worker(walkers=30)
    packets: list[bytes] = []
    subscription = await rows_bus().subscribe(7, range(3), packets.append)
    try:
        await worker.tick(T0)
        await asyncio.sleep(0.01)
    finally:
        await subscription.close()
    unpacked = [rows_unpack(p) for p in packets]
    assert sorted(zone for zone, _, _, _ in unpacked) == [0, 1, 2]  # one packet per zone
    assert {tick_ms for _, _, tick_ms, _ in unpacked} == {T0}
    assert {tick for _, tick, _, _ in unpacked} == {1}
    rows = np.concatenate([rows for _, _, _, rows in unpacked])
    assert rows.size == 30 and np.all(rows["flags"] & RowFlag.NPC)


@pytest.mark.asyncio
async def test_summary_reports_every_hosted_zone():
    worker = demo_worker(walkers=30)
    async with EventWatch(worker.market_id, ops_subjects(worker.market_id)) as watch:
        for t in range(worker_module.SUMMARY_EVERY_TICKS):
            await worker.tick(T0 + 50 * t)
        event = await watch.next()
    assert isinstance(event, MarketSummaryReported)
    zones = event.zones
    assert [z["name"] for z in zones] == [name for name, _ in DEMO_BOOTHS]
    assert sum(z["entities"] for z in zones) >= 30
    assert all(z["health"] == "ok" and z["tick_p99_ms"] > 0 for z in zones)


@pytest.mark.asyncio
async def test_a_restarted_worker_resumes_from_its_snapshots(tmp_path):
    first = demo_worker(tmp_path, walkers=90)
    for t in range(45):
        await first.tick(T0 + 50 * t)
    before = {z: hz.state.copy() for z, hz in first.hosted.items()}
    with pytest.raises(ZoneLocked):
        demo_worker(tmp_path)  # one writer per zone while the first still runs
    for hz in first.hosted.values():
        hz.store.write(hz.state)
        hz.store.close()
    second = demo_worker(tmp_path, walkers=90)
    for z, hz in second.hosted.items():
        assert hz.state.tick == before[z].tick
        assert np.array_equal(hz.state.id, before[z].id)
        assert np.array_equal(hz.state.pos, before[z].pos)
        assert not hz.spawns, "a resumed zone must not spawn its walkers again"
    await second.tick(T0 + 50 * 45)
    assert all_ids(second).size == 90


@pytest.mark.asyncio
async def test_visitors_nobody_vouches_for_leave_after_their_lease(monkeypatch):
    monkeypatch.setattr(worker_module, "VISITOR_LEASE_TICKS", 40)
    worker = demo_worker(walkers=0)
    layer = get_channel_layer()
    gateway = await layer.new_channel()
    spawn = np.zeros(2, SPAWN_DTYPE)
    spawn["id"] = [1 << 41, (1 << 41) + 1]
    spawn["pos"] = [[10, 1, 10], [10, 1, 11]]
    spawn["kind"] = RowFlag.VISITOR_ROOT
    hz = worker.hosted[int(worker.ranges.assign_positions(spawn["pos"][:1], *_bounds())[0])]
    worker.accept(hz, {"type": "zone.spawn", "gateway": gateway, "rows": spawn.tobytes()})
    await worker.tick(T0)
    answer = await asyncio.wait_for(layer.receive(gateway), 1)
    assert answer["type"] == "zone.spawned"
    assert sorted(np.frombuffer(answer["spawned"], "<u8").tolist()) == spawn["id"].tolist()
    vouched = np.array([spawn["id"][0]], "<u8").tobytes()
    for t in range(1, 120):
        worker.accept(
            hz, {"type": "zone.inputs", "gateway": gateway, "commands": b"", "alive": vouched}
        )
        await worker.tick(T0 + 50 * t)
    assert all_ids(worker).tolist() == [spawn["id"][0]]


@pytest.mark.asyncio
async def sent_to_zone_0(worker, messages, bad):
    """Send `messages` to the worker's zone 0; return once `bad` of them were dropped."""
    layer = get_channel_layer()
    task = asyncio.create_task(worker._receive())
    try:
        for message in messages:
            await layer.send(zone_channel(7, 0), message)
        for _ in range(50):
            if worker.hosted[0].bad_messages == bad:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert worker.hosted[0].bad_messages == bad


async def test_malformed_messages_are_counted_and_dropped():
    worker = demo_worker(walkers=0)
    malformed = [
        {"type": "zone.intent", "src": "x"},
        {"type": "zone.spawn", "gateway": "g", "rows": b"123"},
    ]
    await sent_to_zone_0(worker, malformed, bad=2)
    assert not worker.hosted[0].inbox and not worker.hosted[0].spawns


async def test_a_bundle_files_each_message_and_a_malformed_one_is_dropped_whole():
    worker = demo_worker(walkers=0)
    transfers = np.zeros(0, TRANSFER_DTYPE)
    reports = [message_to_wire(InFlight(src=s, dst=0, hlc=5, transfers=transfers)) for s in (1, 2)]
    messages = [
        bundled(reports),
        {"type": "zone.bundle", "messages": "not a list"},
        bundled([reports[0], bundled(reports)]),
    ]
    await sent_to_zone_0(worker, messages, bad=2)
    assert [(m.type, m.src) for m in worker.hosted[0].inbox] == [
        ("zone.in_flight", 1),
        ("zone.in_flight", 2),
    ]


async def test_messages_for_a_zone_of_another_process_go_in_one_send_a_tick(monkeypatch):
    """Zones 0 and 1 here, zone 2 elsewhere: their once-a-second reports to zone 2, made
    in the same tick, share one channel message."""
    worker = ZoneWorker(
        market_id=7, zones=[0, 1], booths=DEMO_BOOTHS, data_dir=None, walkers=0, seed=5
    )
    layer = get_channel_layer()
    for i in range(IN_FLIGHT_EVERY_TICKS):  # zone 2's turn comes once in the period
        await worker.tick(T0 + i * TICK_MS)
    received = []
    while True:
        try:
            received.append(await asyncio.wait_for(layer.receive(zone_channel(7, 2)), 0.2))
        except TimeoutError:
            break
    bundles = [m for m in received if m["type"] == "zone.bundle"]
    assert bundles, [m["type"] for m in received]
    assert all(m["type"] != "zone.in_flight" for m in received)  # none sent on its own
    assert sorted(inner["src"] for inner in bundles[0]["messages"]) == [0, 1]


def test_a_worker_refuses_zones_the_market_does_not_have():
    with pytest.raises(ValueError, match="zone 3 is not a zone of this market"):
        ZoneWorker(market_id=1, zones=[3], booths=DEMO_BOOTHS, data_dir=None)


def _bounds():
    from zones.core.views import MARKET_HI, MARKET_LO

    return MARKET_LO, MARKET_HI


@pytest.mark.asyncio
async def test_summary_times_handoffs_and_counts_subscribers_and_visitors():
    worker = demo_worker(walkers=300)
    for hz in worker.hosted.values():  # a gateway vouching for nobody yet
        worker.accept(hz, {"type": "zone.inputs", "gateway": "gw!1", "commands": b"", "alive": b""})
    windows = []
    async with EventWatch(worker.market_id, ops_subjects(worker.market_id)) as watch:
        for t in range(400):
            await worker.tick(T0 + 50 * t)
            if (t + 1) % worker_module.SUMMARY_EVERY_TICKS == 0:
                windows.append((await watch.next()).zones)
    zones = [z for window in windows for z in window]
    assert sum(z["migrations"] for z in zones) > 0
    timed = [z for z in zones if z["migrations"]]
    assert timed and all(0 <= z["migration_ms_p50"] <= z["migration_ms_p99"] for z in timed)
    assert all(z["migration_ms_p50"] is None for z in zones if not z["migrations"])
    # the gateway counts in the first window only: it did not send again
    assert [z["subscribers"] for z in windows[0]] == [1, 1, 1]
    assert [z["subscribers"] for z in windows[1]] == [0, 0, 0]
    assert all(z["visitors"] == 0 and z["overruns"] == 0 for z in zones)


def visitor_spawned_on_zone_1_by_zone_0(worker: ZoneWorker) -> np.ndarray:
    """A visitor's spawn row standing on zone 1's floor: spawned by zone 0, it must hand over."""
    lo, hi = _bounds()
    spawn = np.zeros(1, SPAWN_DTYPE)
    spawn["id"], spawn["kind"] = 1 << 42, RowFlag.VISITOR_ROOT
    floor = np.array([(x, 1.0, z) for x in range(2, 128, 4) for z in range(2, 128, 4)], np.float32)
    spawn["pos"] = floor[worker.ranges.assign_positions(floor, lo, hi) == 1][0]
    return spawn


def status_of(worker, entity):
    """Zone → status of every record of `entity` in the worker's zones."""
    found = {}
    for z, hz in worker.hosted.items():
        slot = int(hz.state.slots_of(np.array([entity], np.uint64))[0])
        if slot >= 0:
            found[z] = int(hz.state.status[slot])
    return found


@pytest.mark.asyncio
async def test_a_despawn_in_the_middle_of_a_handoff_removes_the_entity_from_both_zones():
    """The step keeps an entity in flight; the worker asks again until it can go."""
    worker = demo_worker(walkers=0)
    spawn = visitor_spawned_on_zone_1_by_zone_0(worker)
    worker.accept(worker.hosted[0], relay_to_wire(Spawn(gateway="", rows=spawn)))
    entity = int(spawn["id"][0])
    for t in range(200):
        await worker.tick(T0 + 50 * t)
        if status_of(worker, entity) == {0: Status.STAGING, 1: Status.INCOMING}:
            break
    else:
        pytest.fail(f"no handoff seen: {status_of(worker, entity)}")
    for zone in (0, 1):  # what the gateway sends when the visitor leaves now
        worker.accept(worker.hosted[zone], relay_to_wire(Despawn(ids=spawn["id"])))
    for t in range(200, 206):
        await worker.tick(T0 + 50 * t)
    assert status_of(worker, entity) == {}
    assert not any(hz.despawns for hz in worker.hosted.values())  # nothing left to ask


@pytest.mark.asyncio
async def test_a_despawn_before_the_target_took_the_entity_follows_it_to_the_target():
    """The gateway knows only the source: the despawn held back there goes on to the target."""
    worker = demo_worker(walkers=0)
    spawn = visitor_spawned_on_zone_1_by_zone_0(worker)
    worker.accept(worker.hosted[0], relay_to_wire(Spawn(gateway="", rows=spawn)))
    entity = int(spawn["id"][0])
    for t in range(200):
        await worker.tick(T0 + 50 * t)
        if status_of(worker, entity) == {0: Status.STAGING}:  # the intent is on its way
            break
    else:
        pytest.fail(f"no handoff started: {status_of(worker, entity)}")
    worker.accept(worker.hosted[0], relay_to_wire(Despawn(ids=spawn["id"])))
    for t in range(200, 210):
        await worker.tick(T0 + 50 * t)
    assert status_of(worker, entity) == {}  # not left owned by zone 1 until its lease ran out
    assert not any(hz.despawns or hz.despawn_follows for hz in worker.hosted.values())
