"""What the zones' health events say: a resumed zone says it runs again, and the
supervisor says when a crashed or quarantined worker starts again (docs/events.md)."""

import asyncio
import time

import pytest

from market.events.subjects import ops_health_subject
from market.events.types import ZoneHealthChanged
from tests.events import EventWatch
from tests.zones.test_supervisor import CRASH, supervisor
from tests.zones.test_zone_restart import T0, kill, zone_worker


async def test_a_zone_that_resumed_from_its_snapshot_says_it_runs_again(tmp_path):
    first = zone_worker(tmp_path, walkers=0, market_id=41)
    await first.tick(T0)
    kill(first)  # a crash

    resumed = zone_worker(tmp_path, walkers=0, market_id=41)
    async with EventWatch(41, ops_health_subject(41)) as watch:
        await resumed.tick(T0 + 50)
        event = await watch.next()
        await resumed.tick(T0 + 100)
        with pytest.raises((AssertionError, TimeoutError)):
            await watch.next(0.3)  # said once, not every tick
    kill(resumed)

    assert isinstance(event, ZoneHealthChanged)
    assert (event.zones, event.health) == ([0], "ok")


async def test_a_zone_that_starts_fresh_says_nothing(tmp_path):
    fresh = zone_worker(tmp_path, walkers=0, market_id=42)
    async with EventWatch(42, ops_health_subject(42)) as watch:
        await fresh.tick(T0)
        with pytest.raises((AssertionError, TimeoutError)):
            await watch.next(0.3)
    kill(fresh)


async def test_the_supervisor_says_when_the_worker_starts_again():
    boss = supervisor(CRASH, quarantine_s=30, backoff_first_s=0.05)
    stop = asyncio.Event()
    async with EventWatch(5, ops_health_subject(5)) as watch:
        task = asyncio.create_task(boss.run(stop))
        reasons: dict[str, str] = {}
        try:
            deadline = time.monotonic() + 10
            while "quarantined" not in reasons:
                event = await watch.next(max(0.1, deadline - time.monotonic()))
                reasons.setdefault(event.health, event.reason)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)

    assert reasons["restarting"].startswith("the worker exited; it starts again in 0.")
    assert reasons["quarantined"] == (
        "more than 3 crashes within 60 s; its worker starts again in 30 s"
    )
