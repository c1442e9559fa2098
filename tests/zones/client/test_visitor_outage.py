"""The SDK keeps what the market says of the zone holding its visitor (`Visitor.outage`)."""

import pytest

from tests.zones.client.fake_market import FakeMarket, _send
from zones.client import Visitor


@pytest.fixture
async def market():
    async with FakeMarket() as market:
        yield market


def health(zones: list[int], state: str, offset: int) -> dict:
    reason = "more than 3 crashes within 60 s; its worker starts again in 60 s"
    return {
        "type": "zone_health",
        "v": 1,
        "offset": offset,
        "zones": zones,
        "health": state,
        "reason": reason if state != "ok" else "the zone worker is running",
    }


async def test_outage_says_why_the_visitor_s_zone_stopped_until_it_runs_again(market):
    visitor = await Visitor.connect(market.base_url, 1, booth=1)
    entity = market.entities[visitor.entity]
    assert visitor.zone == 1 and visitor.outage is None

    await _send(entity, health([0, 2], "quarantined", 101))  # other zones: not ours
    await _send(entity, health([1], "restarting", 102))
    await visitor.wait_for(lambda v: v.outage is not None, 5)
    assert visitor.outage["health"] == "restarting"

    await _send(entity, health([1], "quarantined", 103))
    await visitor.wait_for(lambda v: v.outage["health"] == "quarantined", 5)
    assert "starts again in 60 s" in visitor.outage["reason"]
    assert (await visitor.wait_event("zone_health", 5))["zones"] == [0, 2]  # kept as events too

    await _send(entity, health([1], "ok", 104))
    await visitor.wait_for(lambda v: v.outage is None, 5)
    await visitor.close()
