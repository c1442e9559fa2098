"""A live market on Redis splits a crowded zone and merges it back when the crowd leaves.

`runmarket --booths 2 --spare-zones 1 --zones-per-worker 1` on the real Redis (a channel
prefix of the test's own): three zone worker processes, the planner (zone 0) in one,
the spare in another, so loads, plans and maps travel between processes. The
thresholds are lowered to the test's crowd (split at 40 slots, merge under 10, a 3 s
dwell). 60 visitors join on booth 0's floor: zone 0 splits, the spare serving the
upper part of the booth; they leave: the spare's part goes back.

An observer on the rows bus checks every tick: no entity has two authoritative rows
of one epoch (two owners), and, while the crowd stands, every visitor has an
authoritative row in a tick every serving zone delivered (none lost). The ops feed (what
the dashboard and the load harness read) carries both changes, planned and done.
"""

import asyncio
import contextlib
import json
import time
from collections import defaultdict

import numpy as np
import pytest
import websockets

from tests.live import free_port, splitting_market
from tests.subprocesses import embedded_environment, run_manage
from zones.bus import RedisBus
from zones.client.burst import connect_retrying
from zones.core.constants import TICK_MS
from zones.core.wire import RowFlag, rows_unpack
from zones.load.observe import summary_url

MARKET = 1
VISITORS = 60
SPARE = 2
START_TIMEOUT_S = 60
CHANGE_TIMEOUT_S = 45


class Observer:
    """Every packet of zones 0..2 on the bus, filed by tick; the ops feed's repartitions."""

    def __init__(self) -> None:
        self.ticks: dict[int, dict[int, np.ndarray]] = defaultdict(dict)
        self.changes: list[dict] = []

    def take(self, packet: bytes) -> None:
        zone, _, tick_ms, rows = rows_unpack(packet)
        self.ticks[tick_ms][zone] = rows

    async def follow_ops(self, base_url: str) -> None:
        url, origin = summary_url(base_url, MARKET)
        while True:
            with contextlib.suppress(OSError, websockets.WebSocketException):
                async with websockets.connect(url, origin=origin) as socket:
                    async for text in socket:
                        message = json.loads(text)
                        if message.get("type") == "zones_repartitioned":
                            self.changes.append(message)
            await asyncio.sleep(0.5)

    def seen(self, kind: str, phase: str) -> bool:
        return any(c["kind"] == kind and c["phase"] == phase for c in self.changes)

    def owners(self, since_ms: int = 0) -> list[str]:
        """Ticks where an entity had two authoritative rows of one epoch."""
        problems = []
        for tick_ms, zones in self.ticks.items():
            if tick_ms < since_ms:
                continue
            rows = np.concatenate(list(zones.values()))
            mine = rows[(rows["flags"] & RowFlag.AUTHORITATIVE) != 0]
            pairs = np.stack([mine["id"], mine["epoch"].astype(np.uint64)], axis=1)
            unique, counts = np.unique(pairs, axis=0, return_counts=True)
            for ident, epoch in unique[counts > 1].tolist():
                problems.append(f"tick {tick_ms}: entity {ident} has two owners at epoch {epoch}")
        return problems

    def lost(self, ids: set[int], first_ms: int, last_ms: int) -> list[str]:
        """Ticks in [first_ms, last_ms] missing a visitor, among those delivered by every
        zone that delivered the tick before or after (the spare speaks once it serves)."""
        problems = []
        for tick_ms, zones in self.ticks.items():
            near = set(self.ticks.get(tick_ms - TICK_MS, {})) | set(
                self.ticks.get(tick_ms + TICK_MS, {})
            )
            if not first_ms <= tick_ms <= last_ms or not near <= set(zones):
                continue
            rows = np.concatenate(list(zones.values()))
            held = set(rows["id"][(rows["flags"] & RowFlag.AUTHORITATIVE) != 0].tolist())
            missing = ids - held
            if missing:
                problems.append(f"tick {tick_ms}: {len(missing)} visitors with no owner")
        return problems

    def holding(self, zone: int) -> int:
        """Visitors the zone holds with authority in its newest packet."""
        for tick_ms in sorted(self.ticks, reverse=True):
            rows = self.ticks[tick_ms].get(zone)
            if rows is not None:
                mine = (rows["flags"] & RowFlag.AUTHORITATIVE) != 0
                return int(np.count_nonzero(mine & ((rows["flags"] & RowFlag.VISITOR_ROOT) != 0)))
        return 0


async def until(predicate, what: str, timeout: float = CHANGE_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        await asyncio.sleep(0.1)


@pytest.fixture
def market(tmp_path, redis_url, channel_prefix):
    with splitting_market(tmp_path, redis_url, channel_prefix) as running:
        yield running


async def test_a_crowd_splits_a_zone_across_processes_and_it_merges_back(
    market, redis_url, channel_prefix
):
    assert "1 spare zones to split crowded ones" in market.log()
    observer = Observer()
    bus = RedisBus(redis_url, channel_prefix)
    subscription = await bus.subscribe(MARKET, range(3), observer.take)
    follower = asyncio.create_task(observer.follow_ops(market.url))
    visitors = []
    try:
        probe = await connect_retrying(market.url, MARKET, retry_s=START_TIMEOUT_S)
        layout = probe.layout
        await probe.leave()
        points = layout.floor_points(step=1.5)
        spots = points[layout.zone_at(points) == 0][::3][:VISITORS]
        assert len(spots) == VISITORS
        visitors = list(
            await asyncio.gather(
                *(connect_retrying(market.url, MARKET, retry_s=30, at=s.tolist()) for s in spots)
            )
        )
        ids = {v.entity for v in visitors}
        joined_ms = int(time.time() * 1000) + 500
        await until(lambda: observer.seen("split", "done"), "the crowded zone did not split")
        await until(lambda: observer.holding(SPARE) >= 10, "the spare took no visitor")
        assert observer.holding(0) >= 10, "the split left zone 0 without visitors"
        standing_until_ms = int(time.time() * 1000) - 500
        lost = observer.lost(ids, joined_ms, standing_until_ms)
        assert not lost, lost[:5]
        # a visitor joining where the spare now serves is spawned there, on booth 0
        moved = [v for v in visitors if v.zone == SPARE]
        assert moved, "no visitor was told its zone changed to the spare"
        late = await connect_retrying(market.url, MARKET, retry_s=30, at=moved[0].position.tolist())
        visitors.append(late)
        assert (late.zone, late.booth) == (SPARE, 0), late.welcome
        assert late.welcome["booth"]["name"] == layout.booths[0]["name"]
        ids.add(late.entity)
        split = next(c for c in observer.changes if c["kind"] == "split")
        assert (split["source"], split["target"], split["booth"]) == (0, SPARE, 0)
        assert split["owners"] == [0, SPARE, 1]
        await asyncio.gather(*(v.leave() for v in visitors))
        visitors = []
        await until(lambda: observer.seen("merge", "done"), "the spare's part did not merge back")
        merge = next(c for c in observer.changes if c["kind"] == "merge")
        assert (merge["source"], merge["target"], merge["owners"]) == (SPARE, 0, [0, 1])
        assert observer.ticks, "the observer saw no rows"
        two_owners = observer.owners()
        assert not two_owners, two_owners[:5]
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        await subscription.close()
        await asyncio.gather(*(v.leave() for v in visitors), return_exceptions=True)


def test_runmarket_refuses_spare_zones_it_cannot_run_with_the_reason(tmp_path):
    env = embedded_environment(tmp_path)
    assert run_manage("migrate", "--noinput", env=env).returncode == 0

    def refused(*args: str, **settings: str) -> str:
        ran = run_manage(
            "runmarket", "--port", str(free_port()), *args, env={**env, **settings}, timeout=60
        )
        assert ran.returncode != 0 and "Traceback" not in ran.stderr, ran.stderr
        return ran.stderr

    assert "--spare-zones cannot be negative" in refused("--booths", "2", "--spare-zones", "-1")
    too_many = refused("--booths", "2", "--spare-zones", "31")
    assert "it would have 33 zones" in too_many and "ask for 30 or fewer" in too_many
    closed_gap = refused("--booths", "2", "--spare-zones", "1", FABRIC_MERGE_SLOTS="600")
    assert "must stay under the split threshold 1050" in closed_gap
    assert "FABRIC_MERGE_SLOTS='600'" in closed_gap
