"""Visitors of a zone that crashes, then is quarantined, are told; others are not.

A distributed market on a Redis of this test's own: visitor A stands in zone 0, visitor
B in zone 1. Zone 0's worker is killed four times, each time the exact process that
`manage.py zonepid` names (never by matching command lines). A hears `zone_health`
`restarting`, and once the supervisor quarantines the zone, `quarantined` with when its
worker starts again: its SDK's `outage` says so while its socket stays open. B, in a
zone that kept running, hears nothing of zone 0.
"""

import asyncio
import os
import signal
import time

import pytest

from tests.live import live_market
from tests.zones.test_redis_outage import OwnRedis, own_redis  # noqa: F401  (fixture)
from zones.client.visitor import Visitor
from zones.supervisor import CRASH_LIMIT

WAIT_S = 60.0


@pytest.fixture
def market(tmp_path, own_redis: OwnRedis):  # noqa: F811
    with live_market(tmp_path / "market", args=["--walkers", "0"], REDIS_URL=own_redis.url) as m:
        yield m


def zone_pid(market, zone: int) -> int | None:
    found = market.manage("zonepid", "--market", "1", "--zone", str(zone))
    return int(found.stdout) if found.returncode == 0 else None


def kill_zone_worker(market, zone: int, previous: int | None) -> int:
    """SIGKILL the worker running `zone` once it is up (another pid than `previous`)."""
    deadline = time.monotonic() + WAIT_S
    while (pid := zone_pid(market, zone)) is None or pid == previous:
        assert time.monotonic() < deadline, f"zone {zone}'s worker did not start:\n{market.log()}"
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    return pid


async def joined(url: str, booth: int) -> Visitor:
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            return await Visitor.connect(url, 1, booth=booth, timeout=10)
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


def test_visitors_of_a_quarantined_zone_are_told_and_others_are_not(market):
    async def scenario() -> None:
        a, b = await joined(market.url, 0), await joined(market.url, 1)
        assert (a.zone, b.zone) == (0, 1)

        pid = None
        for _ in range(CRASH_LIMIT + 1):  # one crash more than the limit: quarantine
            pid = await asyncio.to_thread(kill_zone_worker, market, 0, pid)
            if _ == 0:
                await a.wait_for(lambda v: v.outage is not None, WAIT_S)
                assert a.outage["health"] == "restarting"

        await a.wait_for(
            lambda v: v.outage is not None and v.outage["health"] == "quarantined", WAIT_S
        )
        assert "its worker starts again in" in a.outage["reason"]
        assert not a.closed  # told, and still connected
        told_a = [e["health"] for e in a.events if e["type"] == "zone_health"]
        assert told_a[0] == "restarting" and told_a[-1] == "quarantined"
        assert all(x != y for x, y in zip(told_a, told_a[1:], strict=False))  # changes only
        assert not [e for e in b.events if e["type"] == "zone_health"]
        assert b.outage is None and not b.closed
        await a.close()
        await b.leave()

    asyncio.run(scenario())
