"""A load run: join the visitors over the ramp-up, drive them, sample every second.

One event loop (uvloop under `manage.py loadtest`) holds every visitor. The visitors
are the harness's lean ones (lean.py: frame headers only, tickets over keep-alive HTTP),
their interest frames read and counted by one compiled thread (rawsocket.py, reader.py;
`compiled=False`: picows sockets, a Python callback a frame), so the harness's own CPU,
which the server competes with on a small machine, stays low; it is measured and
reported beside the server's all the same. The SDK joins the probe visitor that reads
the layout.
"""

import asyncio
import contextlib
import datetime
import gc
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from zones.client.burst import connect_retrying
from zones.client.layout import Layout
from zones.client.visitor import JoinRefused, VisitorClosed
from zones.core.constants import ZONE_CAPACITY

from .contributors import POLL_S, ContributorFleet, FleetSettings
from .drive import Pacer, follow
from .lean import LeanFleet, LeanVisitor
from .observe import (
    LoopLag,
    ProcessTreeCpu,
    RedisCpu,
    SummaryWatcher,
    machine_busy_s,
    own_cpu_s,
)
from .record import MigrationSample, RunRecord, ScenarioSecond, Second, VisitorOutcome, ZoneSecond
from .scenarios import VisitorPlan, plan_scenario

SAMPLE_S = 1.0
LEAVE_TIMEOUT_S = 5.0
HISTOGRAM_MS = 60_000  # frame ages kept for the progress line's p99, 0.1 ms bins
LIVE_JOIN_EVERY_S = 2.0  # a visitor joins then leaves this often during the steady phase
JOIN_GRACE_S = 20.0  # joins still under way this long after the ramp-up are given up
CLOSE_LEAVE = 1000  # the server's answer to `leave`
CLOSED_UNKNOWN = 1006  # a socket that ended without a close frame


class LoadError(Exception):
    """The run could not happen; the message says why and what to do."""


@dataclass(frozen=True)
class RunSettings:
    """What to run against which market; `server_pid` and `redis_url` only add CPU figures."""

    url: str
    market_id: int
    visitors: int
    scenario: str
    duration_s: float
    ramp_up_s: float
    seed: int = 1
    join_concurrency: int = 32
    compiled: bool = True  # the visitors' frames read by the compiled reader (rawsocket.py)
    join_retry_s: float = 10.0
    probe_retry_s: float = 30.0
    server_pid: int | None = None
    redis_url: str | None = None
    contributors: FleetSettings | None = None  # contributor agents beside the visitors

    def describe(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "market": self.market_id,
            "visitors": self.visitors,
            "scenario": self.scenario,
            "duration_s": self.duration_s,
            "ramp_up_s": self.ramp_up_s,
            "seed": self.seed,
            "join_concurrency": self.join_concurrency,
            "contributors": self.contributors.describe() if self.contributors else None,
        }


@dataclass
class Slot:
    """One planned visitor: its plan, its socket once joined, and counters already sampled."""

    plan: VisitorPlan
    visitor: LeanVisitor | None = None
    join_error: str = ""
    refused: str = ""  # why the last attempt to join failed, while it is retried
    join_ms: float | None = None  # join request to welcome, retries included
    frames: int = 0
    bytes: int = 0
    rows: int = 0
    bodies: int = 0
    latencies: int = 0
    steady_frames: int = 0
    steady_bytes: int = 0
    driver: asyncio.Task[None] | None = None
    run_close_code: int | None = None  # how the server closed it before the run was over

    @property
    def connected(self) -> bool:
        return self.visitor is not None and not self.visitor.closed


@dataclass
class Progress:
    """The figures of the progress line, kept up to date by the sampler."""

    visitors: int
    histogram: np.ndarray = field(default_factory=lambda: np.zeros(HISTOGRAM_MS * 10 + 1, np.int64))
    top: int = 0  # bins above this one are empty (only they are summed for the p99)

    def add_latencies(self, latencies: np.ndarray) -> None:
        if not latencies.size:
            return
        bins = np.clip((latencies * 10).astype(np.int64), 0, self.histogram.size - 1)
        counts = np.bincount(bins)  # up to the highest bin of this second, not all 600,001
        self.histogram[: counts.size] += counts
        self.top = max(self.top, counts.size - 1)

    def p99(self) -> float:
        used = self.histogram[: self.top + 1]
        total = used.sum()
        if not total:
            return math.nan
        return float(np.searchsorted(np.cumsum(used), 0.99 * total)) / 10

    def line(self, second: Second, errors: int) -> str:
        frames = sum(s.frames for s in second.scenarios.values())
        fullest = max((z.entities for z in second.zones.values()), default=0)
        phase = "steady" if second.steady else "ramp-up"
        return (
            f"[{second.t_s:4.0f} s {phase}] visitors {second.connected}/{self.visitors}"
            f" | frames/s {frames:,} | p99 so far {self.p99():.1f} ms"
            f" | fullest zone {fullest} | overruns {second.overruns} | errors {errors}"
        )


class LoadRun:
    """One run against a live market at `settings.url`."""

    def __init__(self, settings: RunSettings, say: Callable[[str], None]) -> None:
        self.settings = settings
        self.say = say
        self.watcher = SummaryWatcher(settings.url, settings.market_id)
        self.lag = LoopLag()
        self.server_cpu = ProcessTreeCpu(settings.server_pid) if settings.server_pid else None
        self.redis_cpu = RedisCpu(settings.redis_url) if settings.redis_url else None
        self.slots: list[Slot] = []
        self.seconds: list[Second] = []
        self.progress = Progress(settings.visitors)
        self.booths = 1  # the market's, once the probe has read its layout
        self.live_join_ms: list[float] = []
        self.live_join_errors: list[str] = []
        self.started = 0.0
        self.fleet = (
            ContributorFleet(settings.url, settings.market_id, settings.contributors)
            if settings.contributors
            else None
        )

    async def probe(self) -> Layout:
        """The market's layout, from one visitor that joins and leaves; LoadError if none can."""
        s = self.settings
        try:
            visitor = await connect_retrying(s.url, s.market_id, retry_s=s.probe_retry_s)
        except JoinRefused as refused:
            raise LoadError(
                f"market {s.market_id} at {s.url} refuses visitors: {refused.status}"
                f" {refused.code}: {refused.detail}"
            ) from None
        except (VisitorClosed, OSError) as error:
            raise LoadError(
                f"no visitor could join market {s.market_id} at {s.url}: {error}"
            ) from None
        await visitor.leave(LEAVE_TIMEOUT_S)
        assert visitor.layout is not None
        return visitor.layout

    async def run(self) -> RunRecord:
        s = self.settings
        layout = await self.probe()
        self.booths = layout.zones
        plans = plan_scenario(layout, s.scenario, s.visitors, np.random.default_rng(s.seed))
        self.slots = [Slot(plan) for plan in plans]
        started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        # first, before anything runs: the compiled reader may be compiled now (seconds, once)
        fleet = LeanFleet(s.url, s.market_id, connections=s.join_concurrency, compiled=s.compiled)
        helpers = [
            asyncio.create_task(self.watcher.run(), name="load-summary"),
            asyncio.create_task(self.lag.run(), name="load-lag"),
        ]
        if self.fleet is not None:  # they connect while the visitors join
            try:
                await self.fleet.start()
            except BaseException:
                await self.fleet.stop()
                await fleet.aclose()
                raise
        self.started = time.monotonic()
        cpu_start = self._cpu_sample()  # the baseline of the first second
        try:
            joining = asyncio.create_task(self._join_all(fleet), name="load-join")
            join_deadline = self.started + s.ramp_up_s + JOIN_GRACE_S
            while not joining.done() and time.monotonic() < join_deadline:
                await self._sample(steady=False)
            if not joining.done():
                joining.cancel()
                for slot in self.slots:
                    if slot.visitor is None and not slot.join_error:
                        slot.join_error = f"still joining {JOIN_GRACE_S:g} s after the ramp-up"
                        if slot.refused:
                            slot.join_error += f", refused until then: {slot.refused}"
            await asyncio.gather(joining, return_exceptions=True)
            if not any(slot.visitor for slot in self.slots):
                first = next((slot.join_error for slot in self.slots), "")
                raise LoadError(f"none of the {len(self.slots)} visitors could join: {first}")
            # what exists now lives for the whole run: the collector need not scan it again
            gc.freeze()
            steady_s = await self._steady(fleet)
        finally:
            gc.unfreeze()
            if self.fleet is not None:
                await self.fleet.stop()
            await self._leave_all()
            await fleet.aclose()
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
        return RunRecord(
            # an https:// market is read by picows whatever was asked
            settings={**s.describe(), "reader": "compiled" if fleet.compiled else "picows"},
            booths=layout.zones,
            started_at=started_at,
            steady_s=steady_s,
            seconds=self.seconds,
            visitors=[self._outcome(slot) for slot in self.slots],
            cpu_start_s=cpu_start,
            migrations=self._migrations(),
            degraded_windows={z: t.degraded_windows for z, t in self.watcher.zones.items()},
            health_windows=dict(sum((t.health for t in self.watcher.zones.values()), Counter())),
            summary_messages=self.watcher.messages,
            summary_error=self.watcher.last_error,
            live_join_ms=self.live_join_ms,
            live_join_errors=self.live_join_errors,
            decisions=[(round(t - self.started, 3), stats) for t, stats in self.fleet.samples]
            if self.fleet
            else [],
            contributors=self.fleet.outcome(self.started) if self.fleet else None,
            repartitions=[
                (round(t - self.started, 3), event) for t, event in self.watcher.repartitions
            ],
        )

    # --- phases --------------------------------------------------------------------------

    async def _join_all(self, fleet: LeanFleet) -> None:
        """Each visitor at its planned moment of the ramp-up, at most join_concurrency at once."""
        s = self.settings
        gate = asyncio.Semaphore(s.join_concurrency)
        spacing = s.ramp_up_s / max(1, len(self.slots))

        async def join(index: int, slot: Slot) -> None:
            await asyncio.sleep(max(0.0, self.started + index * spacing - time.monotonic()))

            def refused(error: Exception) -> None:
                slot.refused = f"{type(error).__name__}: {error}"

            async with gate:
                asked = time.monotonic()
                try:
                    slot.visitor = await fleet.connect_retrying(
                        retry_s=s.join_retry_s, refused=refused, at=slot.plan.start.tolist()
                    )
                    slot.join_ms = (time.monotonic() - asked) * 1000
                except Exception as error:  # every failure is a figure of the run
                    slot.join_error = f"{type(error).__name__}: {error}"

        await asyncio.gather(*(join(i, slot) for i, slot in enumerate(self.slots)))

    async def _live_joins(self, fleet: LeanFleet, until: float) -> None:
        """One more visitor joins (then leaves) every LIVE_JOIN_EVERY_S while the run's
        visitors are all live: how long a join waits behind everyone's frames."""
        rng = np.random.default_rng(self.settings.seed + 1)
        while time.monotonic() + LIVE_JOIN_EVERY_S < until:
            await asyncio.sleep(LIVE_JOIN_EVERY_S)
            asked = time.monotonic()
            try:
                visitor = await fleet.connect(booth=int(rng.integers(self.booths)))
            except Exception as error:  # a figure of the run, like any failed join
                self.live_join_errors.append(f"{type(error).__name__}: {error}")
                continue
            self.live_join_ms.append((time.monotonic() - asked) * 1000)
            with contextlib.suppress(Exception):
                await visitor.leave(LEAVE_TIMEOUT_S)

    async def _steady(self, fleet: LeanFleet) -> float:
        """The scenarios, for duration_s after everyone has joined; the seconds measured."""
        go = time.monotonic()
        joins = asyncio.create_task(
            self._live_joins(fleet, go + self.settings.duration_s), name="load-live-joins"
        )
        failover = self._failover(go)
        pacer = Pacer(fleet.motions)
        for slot in self.slots:
            if slot.visitor is not None:
                stats = slot.visitor.stats
                slot.steady_frames, slot.steady_bytes = stats.frames, stats.bytes
                slot.driver = asyncio.create_task(follow(slot.visitor, slot.plan, go, pacer))
        try:
            while time.monotonic() < go + self.settings.duration_s:
                await self._sample(steady=True)
        finally:
            drivers = [slot.driver for slot in self.slots if slot.driver is not None]
            for driver in drivers:
                driver.cancel()
            await asyncio.gather(*drivers, return_exceptions=True)
            joins.cancel()
            failover.cancel()
            await asyncio.gather(joins, failover, return_exceptions=True)
            pacer.close()
        for slot in self.slots:
            slot.steady_frames = _steady_delta(slot, "frames", slot.steady_frames)
            slot.steady_bytes = _steady_delta(slot, "bytes", slot.steady_bytes)
            if slot.visitor is not None and slot.visitor.closed:
                slot.run_close_code = slot.visitor.close_code or CLOSED_UNKNOWN
        return time.monotonic() - go

    def _failover(self, go: float) -> asyncio.Future[None]:
        """With contributors to kill: their process is killed kill_at_s after `go`."""
        fleet, contributors = self.fleet, self.settings.contributors
        if fleet is None or contributors is None or not contributors.kill:
            return asyncio.ensure_future(asyncio.sleep(0))

        async def kill() -> None:
            await asyncio.sleep(max(0.0, go + contributors.kill_at_s - POLL_S - time.monotonic()))
            await fleet.kill()

        return asyncio.ensure_future(kill())

    async def _leave_all(self) -> None:
        async def leave(visitor: LeanVisitor) -> None:
            if visitor.closed:
                return
            try:
                await visitor.leave(LEAVE_TIMEOUT_S)
            except Exception:
                with contextlib.suppress(Exception):
                    await visitor.close()

        await asyncio.gather(*(leave(s.visitor) for s in self.slots if s.visitor is not None))

    # --- sampling ------------------------------------------------------------------------

    async def _sample(self, *, steady: bool) -> None:
        """Sleep to the end of the current second, then record it."""
        elapsed = time.monotonic() - self.started
        await asyncio.sleep(SAMPLE_S - elapsed % SAMPLE_S)
        scenarios: dict[str, ScenarioSecond] = {}
        visitors_in: Counter[int] = Counter()
        for slot in self.slots:
            second = scenarios.setdefault(slot.plan.scenario, ScenarioSecond())
            if slot.visitor is None:
                continue
            self._take(slot, second)
            if slot.connected and slot.visitor.zone is not None:
                visitors_in[slot.visitor.zone] += 1
        for second in scenarios.values():
            self.progress.add_latencies(second.ages())
        record = Second(
            t_s=round(time.monotonic() - self.started, 3),
            steady=steady,
            scenarios=scenarios,
            zones=self._zones(visitors_in),
            overruns=self.watcher.overruns,
            cpu_s=self._cpu_sample(),
            loop_lag_ms=round(self.lag.take(), 3),
        )
        self.seconds.append(record)
        self.say(self.progress.line(record, self._errors()))

    def _take(self, slot: Slot, second: ScenarioSecond) -> None:
        """Add what the slot's visitor received since the last sample to `second`."""
        assert slot.visitor is not None
        stats = slot.visitor.stats
        second.connected += slot.connected
        second.frames += stats.frames - slot.frames
        second.bytes += stats.bytes - slot.bytes
        second.rows += stats.rows - slot.rows
        second.bodies += stats.bodies - slot.bodies
        second.latencies_ms.extend(stats.latencies_ms[slot.latencies :])
        slot.frames, slot.bytes = stats.frames, stats.bytes
        slot.rows, slot.bodies = stats.rows, stats.bodies
        slot.latencies = len(stats.latencies_ms)

    def _zones(self, visitors_in: Counter[int]) -> dict[int, ZoneSecond]:
        peaks = self.watcher.take_peaks()
        zones = {}
        for index, track in sorted(self.watcher.zones.items()):
            latest = track.latest
            entities, in_flight = peaks.get(index, (0, 0))
            zones[index] = ZoneSecond(
                entities=entities,
                in_flight=in_flight,
                capacity=int(latest.get("capacity") or ZONE_CAPACITY),
                visitors=visitors_in.get(index, 0),
                health=str(latest.get("health", "")),
                tick_p99_ms=latest.get("tick_p99_ms"),
                subscribers=latest.get("subscribers"),
                booth=latest.get("booth"),
            )
        return zones

    def _cpu_sample(self) -> dict[str, float | None]:
        server: dict[str, float | None] = dict.fromkeys(("server", "web", "workers"))
        if self.server_cpu is not None:
            server.update(self.server_cpu.seconds())
        harness, harness_system = own_cpu_s()
        return {
            "harness": harness,
            "harness_system": harness_system,
            **server,
            "redis": self.redis_cpu.seconds() if self.redis_cpu else None,
            "contributors": self.fleet.cpu_s() if self.fleet else None,
            "machine": machine_busy_s(),
        }

    def _errors(self) -> int:
        count = 0
        for slot in self.slots:
            visitor = slot.visitor
            if visitor is None:
                count += bool(slot.join_error)
            else:
                count += len(visitor.errors) + visitor.closed
        return count

    # --- the end ---------------------------------------------------------------------------

    def _outcome(self, slot: Slot) -> VisitorOutcome:
        visitor = slot.visitor
        if visitor is None:
            return VisitorOutcome(slot.plan.scenario, joined=False, join_error=slot.join_error)
        return VisitorOutcome(
            scenario=slot.plan.scenario,
            joined=True,
            join_ms=slot.join_ms,
            close_code=slot.run_close_code,
            left_cleanly=slot.run_close_code is not None or visitor.close_code == CLOSE_LEAVE,
            error_codes=[str(e.get("code")) for e in visitor.errors],
            bad_frames=visitor.stats.bad_frames,
            zone_changes=sum(e.get("type") == "zone_changed" for e in visitor.events),
            handoff_ms=handoff_times(visitor.events),
            steady_frames=slot.steady_frames,
            steady_bytes=slot.steady_bytes,
        )

    def _migrations(self) -> list[MigrationSample]:
        return [
            MigrationSample(
                t_s=round(w.received_s - self.started, 3),
                zone=w.zone,
                per_s=w.per_s,
                count=w.count,
                p50_ms=w.p50_ms,
                p99_ms=w.p99_ms,
            )
            for w in self.watcher.migrations
            if w.received_s >= self.started
        ]


def _steady_delta(slot: Slot, counter: str, at_go: int) -> int:
    """How much of `counter` the visitor received since the steady phase began."""
    if slot.visitor is None:
        return 0
    return int(getattr(slot.visitor.stats, counter)) - at_go


def handoff_times(events: list[dict[str, Any]]) -> list[float]:
    """ms from each booth_entered to the zone_changed into that booth (hysteresis included)."""
    times, entered = [], {}
    for event in events:
        if event.get("type") == "booth_entered":
            entered[int(event["zone"])] = float(event["received_ms"])
        elif event.get("type") == "zone_changed":
            since = entered.pop(int(event["to"]), None)
            if since is not None:
                times.append(round(float(event["received_ms"]) - since, 1))
    return times
