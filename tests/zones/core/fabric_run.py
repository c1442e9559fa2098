"""Drive a crowd over a lossy SimNetwork and collect every broken promise."""

from dataclasses import dataclass, field

import numpy as np

from zones.core.constants import HLC_LOGICAL_BITS, IN_FLIGHT_EVERY_TICKS, TICK_MS
from zones.core.crowd import Crowd
from zones.core.ranges import floor_ranges
from zones.core.simnet import (
    Faults,
    HysteresisWatch,
    SimNetwork,
    leftover_records,
    ownership_violations,
)
from zones.core.state import Status, ZoneParams, ZoneState
from zones.core.wire import SPAWN_DTYPE

SMALL_MARKET = np.array([32.0, 64.0, 32.0], np.float32)  # borders a few seconds' walk apart


@dataclass(frozen=True)
class Run:
    seed: int
    zones: int = 3
    walkers: int = 200
    ticks: int = 500
    capacity: int = 120
    spawn_cap: int = 90
    crashes: dict[int, tuple[int, int]] = field(default_factory=dict)  # tick → (zone, downtime)
    faults: Faults = Faults()
    write_ahead: bool = True
    quiet_ticks: int = 450
    extra_spawns: int = 0  # spawn requests per tick into zone 0, to push it at its cap


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    migrations: int = 0
    nacks: int = 0
    peak_live: int = 0
    spawn_cap_breaches: list[str] = field(default_factory=list)
    leftovers: int = 0
    forgotten: int = 0  # decisions zones forgot, the reports having shown them needless
    remembered: int = 0  # decisions no intent can need, still held once the network went quiet


def run_fabric(run: Run) -> Report:
    """Run `run` and report every violated property (empty problems = all held)."""
    params = [
        ZoneParams(zone=z, hi=SMALL_MARKET, capacity=run.capacity, spawn_cap=run.spawn_cap)
        for z in range(run.zones)
    ]
    net = SimNetwork(
        ranges=floor_ranges(run.zones),
        params=params,
        rng=np.random.default_rng(run.seed),
        faults=run.faults,
        write_ahead=run.write_ahead,
    )
    crowd = Crowd(net, np.random.default_rng(run.seed + 1))
    watch = HysteresisWatch(params)
    report = Report()

    def tick(spawns=None, commands=None, crashes=None) -> None:
        before = [s.live_count() for s in net.zones]
        outputs = net.run_tick(spawns=spawns, commands=commands, crashes=crashes)
        crowd.record_spawns(outputs)
        started = {}
        for z, out in enumerate(outputs):
            if out is None:
                continue
            if out.migration.started:
                started[z] = np.concatenate(out.migration.started)
                report.migrations += started[z].size
            report.nacks += out.migration.nacks_sent
            report.forgotten += out.migration.forgotten
            if out.spawned.size and before[z] + out.spawned.size > params[z].spawn_cap:
                report.spawn_cap_breaches.append(
                    f"zone {z} spawned {out.spawned.size} at {before[z]} live (cap {params[z].spawn_cap})"
                )
        states = net.held_states()
        for s in states:
            report.peak_live = max(report.peak_live, s.live_count())
            if s.live_count() > params[s.zone].capacity:
                report.problems.append(
                    f"zone {s.zone} holds {s.live_count()} > capacity {params[s.zone].capacity}"
                )
        report.problems.extend(ownership_violations(states, crowd.expected))
        report.problems.extend(watch.observe(states, started, [o is not None for o in outputs]))

    tick(spawns=crowd.spawn(run.walkers))
    for t in range(run.ticks):
        if report.problems:
            break
        spawns = None
        if run.extra_spawns:
            spawns = {0: _spawn_rows(crowd, run.extra_spawns, zone=0)}
        crash = run.crashes.get(t)
        tick(
            spawns=spawns,
            commands=crowd.commands(),
            crashes={crash[0]: crash[1]} if crash else None,
        )
    report.problems.extend(report.spawn_cap_breaches)
    if report.problems:
        return report
    # A quiet period on a perfect network: every transfer must settle.
    net.faults = Faults(drop=0.0, duplicate=0.0, max_skew_ms=0)
    tick(commands=crowd.stop_all())
    for _ in range(run.quiet_ticks):
        tick()
    report.leftovers = leftover_records(net.held_states())
    report.remembered = needless_decisions(net.held_states())
    if report.remembered:
        report.problems.append(
            f"{report.remembered} transfer decisions remembered after the network went quiet,"
            f" older than {FORGET_WITHIN_MS} ms with no transfer of their entity in flight"
        )
    if report.leftovers:
        report.problems.append(
            f"{report.leftovers} duplicate records remain after the network went quiet"
        )
    return report


FORGET_WITHIN_MS = 3 * IN_FLIGHT_EVERY_TICKS * TICK_MS
"""A decision outlives the need for it by at most this long on a quiet network: the
reports after it come within a second and a few ticks, the sweep within another."""


def needless_decisions(states: list[ZoneState]) -> int:
    """Decisions older than FORGET_WITHIN_MS about entities no zone has in flight to the
    zone remembering them: what a table that grows for ever would hold."""
    in_flight = {
        (int(s.id[i]), int(s.peer[i]))
        for s in states
        for i in np.flatnonzero(s.status == Status.STAGING)
    }
    needless = 0
    for s in states:
        table = s.decisions.to_arrays()
        old = (table["decided_at"] >> HLC_LOGICAL_BITS) < (s.hlc >> HLC_LOGICAL_BITS) - (
            FORGET_WITHIN_MS
        )
        ids = table["decision_ids"][old].tolist()
        needless += sum((ident, s.zone) not in in_flight for ident in ids)
    return needless


def _spawn_rows(crowd: Crowd, count: int, zone: int) -> np.ndarray:
    """Spawn requests placed inside `zone` (by rejection sampling over the market)."""
    rows = np.concatenate(list(crowd.spawn(count * 4).values()))
    p = crowd.net.params[zone]
    from zones.core.hilbert import encode_positions

    mine = rows[crowd.net.ranges.assign(encode_positions(rows["pos"], p.lo, p.hi)) == zone][:count]
    return mine.astype(SPAWN_DTYPE)
