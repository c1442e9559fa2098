"""The supervisor restarts crashed zone workers with backoff and quarantines crash loops."""

import asyncio
import sys
import time

import numpy as np
import pytest
from channels.layers import get_channel_layer

from market.events.subjects import ops_health_subject
from market.services import DEMO_BOOTHS
from tests.events import EventWatch
from zones.channels import bundled, zone_channel
from zones.core.messages import Intent, message_from_wire, message_to_wire
from zones.core.wire import MIGRANT_DTYPE, SPAWN_DTYPE, ReplyReason
from zones.supervisor import Supervisor

CRASH = [sys.executable, "-c", "import sys; sys.exit(3)"]
SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


def supervisor(argv, **options):
    return Supervisor(
        market_id=5,
        booths=DEMO_BOOTHS,
        groups=[[0], [1, 2]],
        launcher=lambda zones: argv if zones == (0,) else SLEEP,
        **options,
    )


async def healths(watch, until, timeout=10.0):
    """The supervisor's health events, per zone, until `until(reports)` holds."""
    seen: list[tuple[int, str]] = []
    deadline = time.monotonic() + timeout
    while not until(seen):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"gave up waiting; saw {seen}"
        event = await watch.next(remaining)
        seen += [(zone, event.health) for zone in event.zones]
    return seen


@pytest.mark.asyncio
async def test_a_crashing_worker_restarts_with_growing_backoff_then_is_quarantined():
    layer = get_channel_layer()
    watcher = EventWatch(5, ops_health_subject(5))
    await watcher.__aenter__()
    # a quarantine long enough for the refusals below on a loaded machine
    boss = supervisor(CRASH, quarantine_s=6.0, backoff_first_s=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(boss.run(stop))
    try:
        seen = await healths(watcher, lambda s: (0, "quarantined") in s)
        crashing = boss.slots[0]
        assert crashing.starts == 4  # the first start and three restarts, then quarantine
        assert [z for z, h in seen if h == "restarting"].count(0) >= 3
        assert crashing.backoff_s == pytest.approx(0.05 * 2**3)  # doubled after each crash
        assert boss.slots[1].starts == 1 and boss.pids()[(1, 2)] is not None  # others untouched

        # While quarantined, the supervisor answers for the zone: joins and migrations
        # are refused with the reason instead of meeting silence.
        gateway = await layer.new_channel()
        spawn = np.zeros(1, SPAWN_DTYPE)
        spawn["id"] = 1 << 41
        await layer.send(
            zone_channel(5, 0), {"type": "zone.spawn", "gateway": gateway, "rows": spawn.tobytes()}
        )
        answer = await asyncio.wait_for(layer.receive(gateway), 2)
        assert answer["reason"] == "quarantined"
        assert np.frombuffer(answer["refused"], "<u8").tolist() == [1 << 41]
        migrant = np.zeros(2, MIGRANT_DTYPE)
        migrant["id"], migrant["epoch"] = [10, 11], [4, 7]
        await layer.send(
            zone_channel(5, 0), message_to_wire(Intent(src=1, dst=0, hlc=99, rows=migrant))
        )
        nack = message_from_wire(await asyncio.wait_for(layer.receive(zone_channel(5, 1)), 2))
        assert nack.type == "zone.nack" and (nack.src, nack.dst) == (0, 1)
        assert nack.replies["id"].tolist() == [10, 11]
        assert nack.replies["epoch"].tolist() == [4, 7]
        assert set(nack.replies["reason"].tolist()) == {ReplyReason.QUARANTINED}
        # Intents bundled by a worker hosting several zones are each refused too.
        first, second = (
            message_to_wire(Intent(src=src, dst=0, hlc=100, rows=migrant[i : i + 1]))
            for i, src in enumerate((1, 2))
        )
        await layer.send(zone_channel(5, 0), bundled([first, second]))
        for src, entity in ((1, 10), (2, 11)):
            refused = await asyncio.wait_for(layer.receive(zone_channel(5, src)), 2)
            assert message_from_wire(refused).replies["id"].tolist() == [entity]

        # When the quarantine is over, the worker gets another chance.
        await healths(watcher, lambda s: s[-1:] == [(0, "restarting")], timeout=30)
        assert crashing.starts >= 5
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


@pytest.mark.asyncio
async def test_stopping_the_supervisor_stops_every_worker():
    boss = supervisor(SLEEP)
    stop = asyncio.Event()
    task = asyncio.create_task(boss.run(stop))
    for _ in range(100):
        if all(pid is not None for pid in boss.pids().values()):
            break
        await asyncio.sleep(0.05)
    processes = [slot.process for slot in boss.slots]
    stop.set()
    await asyncio.wait_for(task, 10)
    assert all(p is not None and p.returncode is not None for p in processes)
    assert all(pid is None for pid in boss.pids().values())
