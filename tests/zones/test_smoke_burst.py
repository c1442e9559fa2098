"""The smoke burst: 144 visitors cross booth borders at once on a real server.

Distributed: `runmarket` with REDIS_URL, so the 3 zones run in 3 worker
processes under the supervisor, and visitors connect through the SDK over real
websockets. While they cross, an observer in this process subscribes to every
zone's rows on the Redis rows bus, exactly as a gateway does, and checks every
tick that all three zones published: each visitor has an
authoritative record (nothing lost) and at most one owned one (nothing
duplicated). The kill variant SIGKILLs a zone worker mid-burst; the
supervisor restarts it from its snapshot and the same checks hold from then
on. A short run of the embedded default closes the file.
"""

import asyncio
import os
import signal
import time
import uuid
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from tests.live import live_market
from zones.bus import RedisBus, RedisSubscription
from zones.client.burst import run_burst
from zones.core.wire import RowFlag, rows_unpack

VISITORS = 144
ZONES = 3


class RowsObserver:
    """Every zone's rows of every tick, straight from Redis, grouped by tick time."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        self.bus = RedisBus(redis_url, prefix)
        self.ticks: dict[int, dict[int, np.ndarray]] = defaultdict(dict)
        self.zone_ticks: dict[int, list[tuple[int, int]]] = defaultdict(list)  # zone → (ms, tick)
        self.subscription: RedisSubscription | None = None

    async def start(self) -> None:
        self.subscription = await self.bus.subscribe(1, range(ZONES), self._collect)

    def _collect(self, packet: bytes) -> None:
        zone, tick, tick_ms, rows = rows_unpack(packet)
        self.ticks[tick_ms][zone] = rows
        self.zone_ticks[zone].append((tick_ms, tick))

    async def stop(self) -> None:
        assert self.subscription is not None
        await self.subscription.close()

    def violations(
        self, visitors: list[int], since_ms: int = 0, until_ms: int | None = None
    ) -> tuple[int, list[str]]:
        """(complete ticks checked, problems) over the ticks every zone published.

        Checking starts at the first tick in which every visitor had joined.
        """
        wanted = np.array(sorted(visitors), dtype=np.uint64)
        checked, problems = 0, []
        for tick_ms in sorted(self.ticks):
            zones = self.ticks[tick_ms]
            if tick_ms < since_ms or len(zones) < ZONES:
                continue
            if until_ms is not None and tick_ms > until_ms:
                break  # the visitors are leaving: their entities go, as they should
            rows = np.concatenate(list(zones.values()))
            rows = rows[np.isin(rows["id"], wanted)]
            if not checked and np.unique(rows["id"]).size < wanted.size:
                continue  # still joining
            checked += 1
            flags = rows["flags"]
            authoritative = rows["id"][(flags & RowFlag.AUTHORITATIVE) != 0]
            owned = rows["id"][
                ((flags & RowFlag.AUTHORITATIVE) != 0) & ((flags & RowFlag.STAGING) == 0)
            ]
            lost = np.setdiff1d(wanted, authoritative)
            ids, counts = np.unique(owned, return_counts=True)
            if lost.size:
                problems.append(
                    f"tick {tick_ms}: {lost.size} visitors have no authoritative record"
                )
            if (counts > 1).any():
                problems.append(f"tick {tick_ms}: {ids[counts > 1].size} visitors owned twice")
        return checked, problems

    def first_tick_after(self, zone: int, ms: int) -> tuple[int, int] | None:
        later = [t for t in self.zone_ticks[zone] if t[0] > ms]
        return min(later) if later else None

    def last_tick_before(self, zone: int, ms: int) -> tuple[int, int] | None:
        earlier = [t for t in self.zone_ticks[zone] if t[0] <= ms]
        return max(earlier) if earlier else None


def worker_pids(server_pid: int) -> dict[str, int]:
    """zone list → pid of each zone worker the server's supervisor runs."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            status = (entry / "status").read_text()
        except OSError:
            continue
        parent = next(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("PPid:")
        )
        if parent == server_pid and b"zoneworker" in argv:
            found[argv[argv.index(b"--zones") + 1].decode()] = int(entry.name)
    return found


@pytest.fixture
def distributed(tmp_path, redis_url):
    prefix = f"smoke{uuid.uuid4().hex[:8]}"
    with live_market(
        tmp_path,
        args=["--walkers", "30"],
        REDIS_URL=redis_url,
        FABRIC_CHANNEL_PREFIX=prefix,
    ) as market:
        yield market, prefix


def burst_with_observer(market, redis_url, prefix, during=None):
    async def go():
        observer = RowsObserver(redis_url, prefix)
        await observer.start()
        try:
            report = await run_burst(market.url, 1, VISITORS, during=during, timeout_s=60)
        finally:
            await observer.stop()
        return report, observer

    return asyncio.run(go())


def test_144_visitors_cross_at_once_across_three_worker_processes(distributed, redis_url):
    market, prefix = distributed
    assert len(worker_pids(market.process.pid)) == ZONES, market.log()
    report, observer = burst_with_observer(market, redis_url, prefix)
    assert report.missing == [], f"{len(report.missing)} never reached their destination zone"
    assert report.jumps == [], f"positions jumped: {report.jumps[:5]}"
    checked, problems = observer.violations(report.entities, until_ms=report.ended_ms)
    assert checked >= 100, f"only {checked} complete ticks observed"
    assert problems == []
    assert "Traceback" not in market.log()


def test_a_zone_worker_killed_mid_burst_restarts_and_nothing_is_lost(distributed, redis_url):
    market, prefix = distributed
    pids = worker_pids(market.process.pid)
    assert set(pids) == {"0", "1", "2"}, market.log()
    killed_at = {}

    async def kill_zone_one():
        killed_at["ms"] = _now_ms()
        os.kill(pids["1"], signal.SIGKILL)

    report, observer = burst_with_observer(market, redis_url, prefix, during=kill_zone_one)
    restarted = worker_pids(market.process.pid)
    assert restarted["1"] != pids["1"], "the supervisor did not restart the killed worker"
    assert "zones (1,): worker exited with -9" in market.log()
    assert report.missing == [], f"{len(report.missing)} never reached their destination zone"
    # The restart is a gap (no rows from zone 1), never a jump between two sightings.
    assert report.jumps == [], f"positions jumped: {report.jumps[:5]}"
    before = observer.last_tick_before(1, killed_at["ms"])
    after = observer.first_tick_after(1, killed_at["ms"])
    assert before is not None and after is not None, "zone 1 never came back"
    # It resumed from a snapshot at most a second old: no mass rollback.
    assert after[1] >= before[1] - 20, (before, after)
    checked, problems = observer.violations(
        report.entities, since_ms=after[0], until_ms=report.ended_ms
    )
    assert checked >= 50 and problems == []


def test_a_short_burst_in_the_embedded_default(tmp_path):
    with live_market(tmp_path, args=["--walkers", "30"]) as market:
        report = asyncio.run(run_burst(market.url, 1, 48, timeout_s=60))
        log = market.log()
    assert report.visitors == 48 and report.missing == [] and report.jumps == []
    assert report.frames > 48 * 20 * 3
    assert "Traceback" not in log


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_zone_workers_stop_when_the_main_job_is_killed_outright(distributed):
    market, _ = distributed
    deadline = time.monotonic() + 20
    while len(pids := worker_pids(market.process.pid)) < ZONES:
        assert time.monotonic() < deadline, market.log()
        time.sleep(0.2)
    market.process.kill()  # no chance to stop its workers itself
    market.process.wait()
    # each notices within half a second, then stops as on SIGTERM (a last snapshot of each
    # zone); on a loaded machine that has taken more than 10 s
    deadline = time.monotonic() + 30
    alive = set(pids.values())
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if Path(f"/proc/{pid}").exists() and _running(pid)}
        time.sleep(0.2)
    assert not alive, f"zone workers {sorted(alive)} outlived their supervisor"


def _running(pid: int) -> bool:
    """True unless the process is gone or a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
