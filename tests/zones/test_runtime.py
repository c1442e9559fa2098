import asyncio

import pytest
from channels.layers import get_channel_layer

from market.events import MARKET_SUMMARY_GROUP
from zones.core.simnet import ownership_violations
from zones.runtime import EmbeddedMarket, run_embedded_zones


def test_demo_market_walkers_cross_booths_and_stay_owned():
    market = EmbeddedMarket(walkers=200, seed=5)
    released = 0
    for t in range(600):
        outputs = market.tick(now_ms=1_000_000 + 50 * t)
        released += sum(ids.size for o in outputs if o for ids in o.migration.released)
        assert not ownership_violations(market.net.zones, market.crowd.expected)
    assert market.crowd.expected.size == 200
    assert released > 0
    summary = market.summary()
    assert [z["name"] for z in summary["zones"]] == ["Loom & Thread", "Glass Garden", "Pixel Forge"]
    # an entity in flight holds a slot in both zones until its source hears the ack
    slots = sum(z["entities"] for z in summary["zones"])
    assert 200 <= slots <= 200 + sum(z["in_flight"] for z in summary["zones"])


@pytest.mark.asyncio
async def test_runtime_publishes_summaries_to_the_channel_layer():
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(MARKET_SUMMARY_GROUP, channel)
    stop = asyncio.Event()
    task = asyncio.create_task(run_embedded_zones(stop, EmbeddedMarket(walkers=30)))
    try:
        event = await asyncio.wait_for(layer.receive(channel), timeout=5)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)
    assert event["type"] == "market.summary"
    zones = event["summary"]["zones"]
    assert len(zones) == 3 and 30 <= sum(z["entities"] for z in zones) <= 30 + sum(
        z["in_flight"] for z in zones
    )
