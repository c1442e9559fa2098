"""Portals: which visitors stand in one, and the gateway telling a socket once it steps in."""

import asyncio

import numpy as np
import pytest

from market.live import LiveMarket, PortalRegion, portal_regions
from market.services import DEMO_BOOTHS
from zones.core.mapgen import MapConfig, generate
from zones.core.ranges import floor_ranges
from zones.core.wire import ROW_DTYPE, RowFlag, rows_packet
from zones.gateway import Gateway, Link
from zones.portals import NO_PORTAL, portal_rects, portals_under

T0 = 1_800_000_000_000
MARKET = 43
DOOR = PortalRegion(index=0, id="portal.0", side="north", rect_m=(20, 10, 23, 11.5), target=7)
SHUT = PortalRegion(index=2, id="portal.2", side="west", rect_m=(4, 50, 5.5, 53), target=9)


def test_positions_are_matched_to_the_portal_they_stand_in() -> None:
    pos = np.array(
        [[21.0, 0, 10.5], [23.0, 0, 10.5], [19.99, 0, 11], [5.0, 0, 52.9], [60, 0, 60]],
        np.float32,
    )
    under = portals_under(pos, portal_rects([DOOR, SHUT]))
    assert under.tolist() == [0, NO_PORTAL, NO_PORTAL, 1, NO_PORTAL]  # upper edges are open
    assert portals_under(pos, portal_rects([])).tolist() == [NO_PORTAL] * 5


def test_a_generated_layouts_portals_with_a_target_are_the_doors() -> None:
    config = MapConfig.from_dict(
        {
            "market_id": 1,
            "seed": 5,
            "portals": [{"side": "north", "target": 2}, {"side": "south", "at": 300}],
        }
    )
    layout = generate(config)
    doors = portal_regions(layout)
    assert [(d.index, d.id, d.side, d.target) for d in doors] == [(0, "portal.0", "north", 2)]
    assert doors[0].rect_m == tuple(v / 100 for v in layout["portals"][0]["rect"])
    assert portal_regions(None) == ()


def test_arriving_through_a_portal_stands_clear_of_it_on_the_floor_side() -> None:
    for side, inward in (
        ("north", (0, 1)),
        ("south", (0, -1)),
        ("west", (1, 0)),
        ("east", (-1, 0)),
    ):
        portal = PortalRegion(0, "portal.0", side, (40.0, 40.0, 43.0, 43.0), 2)
        x, _, z = portal.arrival()
        assert portals_under(np.array([[x, 0, z]], np.float32), portal_rects([portal]))[0] == -1
        assert np.sign(x - 41.5) == inward[0] and np.sign(z - 41.5) == inward[1]
    live = LiveMarket(market_id=1, booths=(), starts=(), portals=(DOOR, SHUT))
    assert live.portal_leading_to(9) is SHUT and live.portal_leading_to(3) is None
    assert live.layout()["portals"][0] == {
        "id": "portal.0",
        "side": "north",
        "rect": [20, 10, 23, 11.5],
        "target": 7,
    }


class Sink:
    def __init__(self) -> None:
        self.portals: list[PortalRegion] = []

    def send_frame(self, frame: bytes) -> None:
        pass

    def send_event(self, event: dict) -> None:
        pass

    async def supersede(self) -> None:
        pass

    def portal_entered(self, portal: PortalRegion) -> None:
        self.portals.append(portal)

    async def transferred(self) -> None:
        pass


@pytest.fixture
async def gateway():
    starts = tuple(int(s) for s in floor_ranges(len(DEMO_BOOTHS)).starts.tolist())
    gw = Gateway(LiveMarket(MARKET, tuple(DEMO_BOOTHS), starts, portals=(DOOR,)))
    await gw.start()
    yield gw
    await gw.stop()


async def walk(gateway: Gateway, tick: int, at: tuple[float, float]) -> None:
    """Every zone delivers tick `tick`; zone 0 holds the visitor 1000 at `at` (x, z)."""
    for zone in range(len(DEMO_BOOTHS)):
        rows = np.zeros(1, ROW_DTYPE)
        rows["id"] = 1000 if zone == 0 else 2000 + zone
        rows["pos"] = [at[0], 0.0, at[1]] if zone == 0 else [90.0, 0.0, 90.0]
        rows["flags"] = RowFlag.AUTHORITATIVE | RowFlag.VISITOR_ROOT
        rows["zone"] = zone
        await gateway.bus.publish(MARKET, zone, rows_packet(zone, tick, T0 + 50 * tick, rows))
    deadline = asyncio.get_running_loop().time() + 2.0
    while gateway.view_tick_ms != T0 + 50 * tick:
        assert asyncio.get_running_loop().time() < deadline, "the tick never went out"
        await asyncio.sleep(0.002)


@pytest.mark.asyncio
async def test_stepping_into_a_portal_is_told_once_and_again_after_stepping_out(gateway) -> None:
    sink = Sink()
    gateway.links[1000] = Link(entity=1000, sink=sink, stagger=0, seq_taken=0, zone=0, booth=0)
    await walk(gateway, 1, (18.0, 10.5))
    assert sink.portals == []
    await walk(gateway, 2, (21.0, 10.5))
    await walk(gateway, 3, (21.5, 10.8))  # still inside: not told again
    assert sink.portals == [DOOR]
    await walk(gateway, 4, (21.5, 13.0))
    await walk(gateway, 5, (21.5, 11.0))
    assert sink.portals == [DOOR, DOOR]


@pytest.mark.asyncio
async def test_a_visitor_that_joined_inside_a_portal_must_step_in_to_use_it(gateway) -> None:
    sink = Sink()
    gateway.links[1000] = Link(
        entity=1000, sink=sink, stagger=0, seq_taken=0, zone=0, booth=0, portal=0
    )
    await walk(gateway, 1, (21.0, 10.5))
    assert sink.portals == []
