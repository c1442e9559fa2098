"""Zones running inside the web process: the embedded default.

The market's zones step at SIM_TICK_HZ on the in-process network (lossless,
one tick of latency) with a demo crowd walking between the booths, so the
market is alive the moment it starts. Every SUMMARY_EVERY_TICKS ticks a summary
of each zone goes to the channel-layer group `market_summary` (market/events.py), which the
landing page shows live. A tick that takes longer than its 50 ms is counted as
an overrun and reported, never silently absorbed.
"""

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from market.events import MarketSummary, ZoneSummary, market_summary_publish
from market.services import DEMO_BOOTHS
from zones.core.constants import SIM_TICK_HZ, TICK_MS, ZONE_CAPACITY
from zones.core.crowd import Crowd
from zones.core.ranges import floor_ranges
from zones.core.simnet import Faults, SimNetwork
from zones.core.state import Status, ZoneParams
from zones.core.step import StepOutput

log = logging.getLogger(__name__)

SUMMARY_EVERY_TICKS = SIM_TICK_HZ // 2  # twice a second
DEMO_WALKERS = 300
LOSSLESS = Faults(drop=0.0, min_delay=1, max_delay=1, duplicate=0.0, max_skew_ms=0)


@dataclass
class ZoneStats:
    """Rolling figures for one zone, for the summary."""

    tick_ms: float = 0.0
    migrations: int = 0
    window_ticks: int = 0


@dataclass
class EmbeddedMarket:
    """The demo market's zones, crowd and statistics."""

    booths: tuple[tuple[str, str], ...] = DEMO_BOOTHS  # (name, colour) of zone 0, 1, …
    walkers: int = DEMO_WALKERS
    seed: int = 2026
    zones: int = field(init=False)
    net: SimNetwork = field(init=False)
    crowd: Crowd = field(init=False)
    stats: list[ZoneStats] = field(init=False)
    overruns: int = 0

    def __post_init__(self) -> None:
        self.zones = len(self.booths)
        params = [ZoneParams(zone=z) for z in range(self.zones)]
        self.net = SimNetwork(
            ranges=floor_ranges(self.zones),
            params=params,
            rng=np.random.default_rng(self.seed),
            faults=LOSSLESS,
        )
        self.crowd = Crowd(self.net, np.random.default_rng(self.seed + 1))
        self.stats = [ZoneStats() for _ in range(self.zones)]
        self._pending_spawns = self.crowd.spawn(self.walkers)

    def tick(self, now_ms: int) -> list[StepOutput | None]:
        """Step every zone once, timing each."""
        spawns, self._pending_spawns = self._pending_spawns, None
        started = time.perf_counter()
        outputs = self.net.run_tick(spawns=spawns, commands=self.crowd.commands(), now_ms=now_ms)
        elapsed_ms = (time.perf_counter() - started) * 1000
        self.crowd.record_spawns(outputs)
        for z, out in enumerate(outputs):
            if out is None:
                continue
            stat = self.stats[z]
            stat.tick_ms = elapsed_ms / self.zones
            stat.migrations += sum(ids.size for ids in out.migration.released)
            stat.window_ticks += 1
        return outputs

    def summary(self) -> MarketSummary:
        """The market_summary payload, and reset the per-window counters."""
        zones: list[ZoneSummary] = []
        for z, state in enumerate(self.net.zones):
            stat = self.stats[z]
            name, colour = self.booths[z]
            seconds = max(stat.window_ticks, 1) / SIM_TICK_HZ
            zones.append(
                {
                    "zone": z,
                    "name": name,
                    "colour": colour,
                    "entities": state.live_count(),  # slots in use, what capacity limits
                    "in_flight": int(np.count_nonzero(state.status >= Status.STAGING)),
                    "capacity": ZONE_CAPACITY,
                    "tick_ms": round(stat.tick_ms, 3),
                    "migrations_per_s": round(stat.migrations / seconds, 2),
                }
            )
            stat.migrations = stat.window_ticks = 0
        return {
            "tick": self.net.tick,
            "hlc": int(self.net.zones[0].hlc),
            "overruns": self.overruns,
            "zones": zones,
        }


async def run_embedded_zones(stop: asyncio.Event, market: EmbeddedMarket | None = None) -> None:
    """Run the market's zones as a task of the current event loop until `stop` is set."""
    market = market or EmbeddedMarket()
    period = TICK_MS / 1000
    next_tick = time.monotonic()
    log.info("embedded market: %d zones, %d walkers", market.zones, market.walkers)
    while not stop.is_set():
        market.tick(now_ms=time.time_ns() // 1_000_000)
        if market.net.tick % SUMMARY_EVERY_TICKS == 0:
            await market_summary_publish(market.summary())
        next_tick += period
        delay = next_tick - time.monotonic()
        if delay < 0:
            market.overruns += 1
            next_tick = time.monotonic()  # do not try to catch up with a burst of ticks
            delay = 0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
