"""The gateway's relay: each tick's frames once every live zone delivered, stale ticks skipped."""

import asyncio

import numpy as np
import pytest
from channels.layers import get_channel_layer

from market.live import LiveMarket
from market.services import DEMO_BOOTHS
from tests.waiting import until
from zones import gateway as gateway_module
from zones.bus import map_packet
from zones.channels import zone_channel
from zones.core import views
from zones.core.crowd import floor_points
from zones.core.hilbert import encode_positions
from zones.core.ranges import floor_ranges
from zones.core.relay_messages import Despawn, Spawned, to_zone_from_wire
from zones.core.repartition import split_plan
from zones.core.wire import ROW_DTYPE, RowFlag, frame_decode, rows_packet
from zones.gateway import Gateway, Link

T0 = 1_800_000_000_000
MARKET = 41


class Sink:
    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.events: list[dict] = []

    def send_frame(self, frame: bytes) -> None:
        self.frames.append(frame)

    def send_event(self, event: dict) -> None:
        self.events.append(event)

    async def supersede(self) -> None:
        pass

    def portal_entered(self, portal: object) -> None:
        pass

    async def transferred(self) -> None:
        pass


def live() -> LiveMarket:
    starts = tuple(int(s) for s in floor_ranges(len(DEMO_BOOTHS)).starts.tolist())
    return LiveMarket(market_id=MARKET, booths=tuple(DEMO_BOOTHS), starts=starts)


def zone_rows(zone: int, tick: int) -> np.ndarray:
    rows = np.zeros(2, ROW_DTYPE)
    rows["id"] = [1000 + zone, 2000 + zone]
    rows["pos"] = [[20.0 + zone, 0.0, 20.0], [20.5 + zone, 0.0, 20.0]]
    rows["flags"] = RowFlag.AUTHORITATIVE | RowFlag.VISITOR_ROOT
    rows["zone"] = zone
    rows["hlc"] = tick
    return rows


async def publish(gateway: Gateway, zones, tick: int) -> None:
    for zone in zones:
        await gateway.bus.publish(
            MARKET, zone, rows_packet(zone, tick, T0 + 50 * tick, zone_rows(zone, tick))
        )


@pytest.fixture
async def gateway():
    gw = Gateway(live())
    await gw.start()
    yield gw
    await gw.stop()


@pytest.mark.asyncio
async def test_a_tick_goes_out_once_every_zone_delivered_it(gateway, monkeypatch):
    monkeypatch.setattr(gateway_module, "FLUSH_WAIT_S", 1.0)
    sink = Sink()
    gateway.links[1000] = Link(entity=1000, sink=sink, stagger=0, seq_taken=0, zone=0, booth=0)
    await publish(gateway, range(3), 1)
    await until(lambda: gateway.frames == 1)
    await publish(gateway, [0, 1], 2)
    await asyncio.sleep(0.05)
    assert gateway.frames == 1  # zone 2 has not delivered tick 2 yet
    started = asyncio.get_running_loop().time()
    await publish(gateway, [2], 2)
    await until(lambda: gateway.frames == 2)
    assert asyncio.get_running_loop().time() - started < 0.5  # at once, not at the deadline
    assert gateway.view_tick_ms == T0 + 100 and gateway.view.size == 6
    header, rows, _ = frame_decode(sink.frames[-1])
    assert int(header["tick_ms"]) == T0 + 100 and 1000 in rows["id"]


@pytest.mark.asyncio
async def test_a_gateway_that_fell_behind_skips_to_the_newest_tick(gateway):
    await publish(gateway, range(3), 1)
    await until(lambda: gateway.frames == 1)
    for tick in (2, 3, 4):  # three ticks arrive while the relay is busy elsewhere
        await publish(gateway, range(3), tick)
    await until(lambda: gateway.view_tick_ms == T0 + 200)
    await asyncio.sleep(0.05)
    assert gateway.frames == 2 and gateway.skipped == 2  # ticks 2 and 3 were never sent
    assert set(gateway.view["hlc"].tolist()) == {4}


@pytest.mark.asyncio
async def test_a_lagging_zone_holds_a_tick_back_only_briefly(gateway, monkeypatch):
    monkeypatch.setattr(gateway_module, "FLUSH_WAIT_S", 0.05)
    await publish(gateway, range(3), 1)
    await until(lambda: gateway.frames == 1)
    started = asyncio.get_running_loop().time()
    await publish(gateway, [0, 1], 2)  # zone 2 is late with tick 2
    await until(lambda: gateway.frames == 2)
    waited = asyncio.get_running_loop().time() - started
    assert waited >= 0.04
    assert gateway.view_tick_ms == T0 + 100
    assert sorted(gateway.view["hlc"].tolist()) == [1, 1, 2, 2, 2, 2]  # zone 2's last rows


@pytest.mark.asyncio
async def test_malformed_or_foreign_rows_are_counted_and_dropped(gateway):
    gateway.take_rows(b"garbage")
    gateway.take_rows(rows_packet(40, 1, T0, zone_rows(40, 1)))  # beyond MAX_ZONES
    await asyncio.sleep(0.02)
    assert gateway.bad_packets == 2 and gateway.frames == 0 and not gateway.latest


@pytest.mark.asyncio
async def test_visitors_leaving_together_make_one_despawn_per_zone(gateway):
    from channels.layers import get_channel_layer

    from zones.channels import zone_channel

    await publish(gateway, range(3), 1)
    await until(lambda: gateway.frames == 1)
    for entity in (1000, 2000, 1001, 2001):  # zone 0's and zone 1's two visitors
        gateway.links[entity] = Link(
            entity=entity, sink=Sink(), stagger=0, seq_taken=0, zone=entity % 1000, booth=0
        )
        gateway.leave(entity)
    assert not gateway.links
    await publish(gateway, range(3), 2)
    await until(lambda: gateway.frames == 2)
    layer = get_channel_layer()
    for zone, ids in ((0, [1000, 2000]), (1, [1001, 2001])):
        message = to_zone_from_wire(
            await asyncio.wait_for(layer.receive(zone_channel(MARKET, zone)), 1)
        )
        assert isinstance(message, Despawn) and message.ids.tolist() == ids
    with pytest.raises(TimeoutError):  # nothing more: one message per zone, nothing for zone 2
        await asyncio.wait_for(layer.receive(zone_channel(MARKET, 2)), 0.1)


def crowd_rows(zone: int, n: int, rng: np.random.Generator) -> np.ndarray:
    rows = np.zeros(n, ROW_DTYPE)
    rows["id"] = np.arange(n, dtype=np.uint64) + 10_000 * (zone + 1)
    angle, radius = rng.uniform(0, 2 * np.pi, n), np.sqrt(rng.uniform(0, 1, n)) * 4.0
    rows["pos"][:, 0] = 20.0 + radius * np.cos(angle)
    rows["pos"][:, 2] = 20.0 + radius * np.sin(angle)
    rows["flags"] = RowFlag.AUTHORITATIVE | RowFlag.VISITOR_ROOT
    rows["zone"] = zone
    return rows


@pytest.mark.asyncio
async def test_in_a_dense_crowd_frames_keep_to_their_level_of_detail(gateway):
    """150 visitors within 4 m of each other: each frame holds the nearest rows and bodies only."""
    rows = crowd_rows(0, 150, np.random.default_rng(3))
    sinks = {}
    for stagger, entity in enumerate(rows["id"][:40].tolist()):
        sinks[entity] = Sink()
        gateway.links[entity] = Link(
            entity=entity, sink=sinks[entity], stagger=stagger, seq_taken=0, zone=0, booth=0
        )
    for tick in range(1, 5):  # every phase of the far rows and the bodies, for everyone
        await gateway.bus.publish(MARKET, 0, rows_packet(0, tick, T0 + 50 * tick, rows))
        await until(lambda t=tick: gateway.frames == t)
    pos = {int(i): p for i, p in zip(rows["id"], rows["pos"], strict=True)}
    for entity, sink in sinks.items():
        assert len(sink.frames) == 4
        kinds = set()
        for data in sink.frames:
            header, got, bodies = frame_decode(data)
            far = bool(header["flags"] & 1)
            assert entity in got["id"].tolist()  # your own row, always
            assert got.size == (views.FAR_ROWS if far else views.NEAR_ROWS)
            assert len(data) <= 24 + 96 * 24 + 4 * 338
            distances = np.linalg.norm(
                np.array([pos[int(i)] for i in got["id"]]) - pos[entity], axis=1
            )
            others = np.linalg.norm(rows["pos"] - pos[entity], axis=1)
            assert distances.max() <= np.sort(others)[got.size - 1] + 1e-4  # the nearest ones
            if bodies.size:
                assert not far and bodies.size == views.NEAR_BODIES
                assert entity in bodies["id"].tolist()
            kinds.add("far" if far else "bodies" if bodies.size else "near")
        assert kinds == {"far", "bodies", "near"}


def handoff_rows(zone: int, tick: int, entity: int, flags: int, epoch: int) -> np.ndarray:
    """`zone`'s rows with `entity` among them, flagged and fenced as in a handoff."""
    rows = np.concatenate([zone_rows(zone, tick), np.zeros(1, ROW_DTYPE)])
    rows[-1]["id"], rows[-1]["pos"], rows[-1]["zone"] = entity, (21.2, 0.0, 20.0), zone
    rows[-1]["flags"], rows[-1]["epoch"] = flags | RowFlag.VISITOR_ROOT, epoch
    return rows


@pytest.mark.asyncio
async def test_a_visitor_leaving_mid_handoff_is_despawned_in_both_zones(gateway):
    """Staging in zone 0 and incoming in zone 1: both zones hear of the leave at once."""
    from channels.layers import get_channel_layer

    from zones.channels import zone_channel

    visitor = 3000

    async def mid_handoff(tick: int) -> None:
        source = handoff_rows(0, tick, visitor, RowFlag.AUTHORITATIVE | RowFlag.STAGING, 2)
        target = handoff_rows(1, tick, visitor, RowFlag.GHOST | RowFlag.INCOMING, 2)
        for zone, rows in ((0, source), (1, target), (2, zone_rows(2, tick))):
            await gateway.bus.publish(MARKET, zone, rows_packet(zone, tick, T0 + 50 * tick, rows))
        await until(lambda: gateway.frames == tick)

    await mid_handoff(1)
    assert int(gateway.row_of(visitor)["zone"]) == 0  # the merged view names the source only
    gateway.links[visitor] = Link(
        entity=visitor, sink=Sink(), stagger=0, seq_taken=0, zone=0, booth=0
    )
    gateway.leave(visitor)
    await mid_handoff(2)
    layer = get_channel_layer()
    for zone in (0, 1):
        message = to_zone_from_wire(
            await asyncio.wait_for(layer.receive(zone_channel(MARKET, zone)), 1)
        )
        assert isinstance(message, Despawn) and message.ids.tolist() == [visitor]
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(zone_channel(MARKET, 2)), 0.1)


@pytest.mark.asyncio
async def test_frames_acknowledge_what_the_rows_show_taken_and_never_less(gateway, monkeypatch):
    monkeypatch.setattr(gateway_module, "FLUSH_WAIT_S", 1.0)
    sink = Sink()
    gateway.links[1000] = Link(entity=1000, sink=sink, stagger=0, seq_taken=9, zone=0, booth=0)
    for tick, seq in ((1, 5), (2, 7), (3, 6)):  # tick 3: the target's row after a handoff
        for zone in range(3):
            rows = zone_rows(zone, tick)
            rows["seq"][rows["id"] == 1000] = seq
            await gateway.bus.publish(MARKET, zone, rows_packet(zone, tick, T0 + 50 * tick, rows))
        await until(lambda tick=tick: gateway.frames == tick)
    acks = [int(frame_decode(f)[0]["ack_seq"]) for f in sink.frames]
    # the rows', not the 9 this web process passed on; and not back to 6
    assert acks == [5, 7, 7]


@pytest.mark.asyncio
async def test_a_visitor_joining_again_right_after_leaving_is_spawned_anew(gateway, monkeypatch):
    """Until the zone has taken the despawn the view still holds the entity that left; a join
    in between must wait for it to go, not attach to it (it vanishes, the socket goes silent)."""
    spawned = []

    async def spawn(entity, booth, at, reply_to):
        spawned.append(entity)
        return 0, np.array(at, np.float32)

    monkeypatch.setattr(gateway._spawner, "spawn", spawn)
    await publish(gateway, range(3), 1)
    await until(lambda: gateway.frames == 1)
    gateway.links[1000] = Link(entity=1000, sink=Sink(), stagger=0, seq_taken=0, zone=0, booth=0)
    gateway.leave(1000)
    joining = asyncio.create_task(
        gateway.join(Sink(), 1000, booth=None, at=(20.0, 0.0, 22.0), last_seq=0)
    )
    await asyncio.sleep(0.05)
    assert not joining.done()  # the row that left is still in the view
    rows = zone_rows(0, 2)
    await gateway.bus.publish(MARKET, 0, rows_packet(0, 2, T0 + 100, rows[rows["id"] != 1000]))
    await publish(gateway, [1, 2], 2)
    welcome = await asyncio.wait_for(joining, 2)
    assert not welcome.resumed and spawned == [1000]


@pytest.mark.asyncio
async def test_a_newer_range_map_from_the_bus_routes_spawns_to_the_zone_serving_there(gateway):
    """A split gave the upper part of booth 0 to spare zone 5: the booth stays booth 0, the
    spawn goes to zone 5; an older map changes nothing; a garbage map is counted."""
    booths = floor_ranges(len(DEMO_BOOTHS))
    points = floor_points(
        booths, 0, np.random.default_rng(1), 400, views.MARKET_LO, views.MARKET_HI
    )
    codes = np.sort(encode_positions(points, views.MARKET_LO, views.MARKET_HI))
    split = split_plan(ranges=booths, zone=0, codes=codes, new_zone=5)
    await gateway.bus.publish_map(MARKET, map_packet(split.ranges))
    await until(lambda: gateway.ranges.version == 1)
    await gateway.bus.publish_map(MARKET, map_packet(booths))  # version 0: older
    gateway.take_map(b"{not a map")
    assert gateway.ranges == split.ranges and gateway.bad_packets == 1
    # a point of booth 0 that the new map gives to zone 5
    zones = split.ranges.assign_positions(points, views.MARKET_LO, views.MARKET_HI)
    at = points[np.flatnonzero(zones == 5)[0]]
    layer = get_channel_layer()
    spawning = asyncio.create_task(
        gateway._spawner.spawn(4242, None, tuple(at.tolist()), gateway.channel)
    )
    wire = await asyncio.wait_for(layer.receive(zone_channel(MARKET, 5)), 2)
    request = to_zone_from_wire(wire)
    assert request.rows["id"].tolist() == [4242]
    gateway._spawner.answered(
        Spawned(
            zone=5, spawned=np.array([4242], np.uint64), refused=np.zeros(0, np.uint64), reason=""
        )
    )
    zone, position = await asyncio.wait_for(spawning, 2)
    assert zone == 5
    assert int(views.booths_under(position[None, :], gateway.booth_ranges)[0]) == 0
