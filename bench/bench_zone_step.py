"""Time of one zone tick, `zones.core.step.step`, for a zone holding about 1,800 entities.

    python bench/bench_zone_step.py                  measure, then profile
    python bench/bench_zone_step.py --ticks 1000     a longer measurement

Setup: three zones over the default 128 m market (`floor_ranges(3)`), on a
SimNetwork with a perfect network (no drop, no duplicate, 1-4 ticks of delay).
Every zone has the default ZoneParams (capacity ZONE_CAPACITY = 1,800) except
`spawn_cap`, raised from SPAWN_CAP (1,400) to ZONE_CAPACITY so that the zones
are filled by spawning rather than by waiting for migrations to pile entities
up: zone 0 gets --walkers-zone0 walkers (1,800, its capacity), the other zones
--walkers each (1,790). The walkers move at 0.5-4 m/s and turn at random
(crowd.Crowd), so entities cross booth borders all the time and migrate once
the hysteresis period has passed. The booths do not have equal floor areas
(the shares are printed); with room next door, zone 0 would drain into its
neighbours, so all three start nearly full: zone 0 admits an entity whenever
one leaves, and transfers into a full zone are refused and retried after a
backoff. The intents, acks and nacks zone 0 handles per tick are printed with
the times; --walkers 1750 gives a lighter load with zone 0 at about 1,740.

After --warmup ticks, zone 0's step is timed for --ticks ticks: perf_counter_ns
around the step call alone, excluding the network (wire forms, delivery,
snapshots). In the same ticks, interleaved, two more figures are taken:

* the same step on the same inputs, with zone 0's state packed into 1,800
  slots (the bench's network gives every zone twice its capacity in storage, as
  the simulator did before a zone's storage grew with its crowd; the native zone
  server had ZONE_CAPACITY slots);
* a second network with the same walkers standing still: no commands, no
  migrations, the step's floor cost.

Finally zone 0's step is run under cProfile for --profile-ticks more ticks;
the top 25 functions by cumulative time go to --profile-out.

The machine may be shared: medians are the figures to quote.
"""

import os

for _variable in (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "BLIS_NUM_THREADS",
):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import cProfile  # noqa: E402
import gc  # noqa: E402
import io  # noqa: E402
import pstats  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass, field, fields, replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import machine_info  # noqa: E402
from zones.core import simnet  # noqa: E402
from zones.core.constants import ZONE_CAPACITY  # noqa: E402
from zones.core.crowd import Crowd  # noqa: E402
from zones.core.hilbert import encode_positions  # noqa: E402
from zones.core.messages import Ack, Forward, Intent, Message, Nack  # noqa: E402
from zones.core.ranges import floor_ranges  # noqa: E402
from zones.core.simnet import Faults, SimNetwork  # noqa: E402
from zones.core.state import ZoneParams, ZoneState  # noqa: E402
from zones.core.step import StepInputs, StepOutput, step  # noqa: E402

ZONES = 3
MEASURED_ZONE = 0
NATIVE_BASELINE_MS = (2.5, 3.35)
"""The native zone server's time for this step, from the design."""
TARGET_MS = 1.0
SEED = 20240607


KINDS = (Intent, Ack, Nack, Forward)


@dataclass
class Load:
    """What one step of the measured zone handled and produced.

    `received` and `sent` count messages per kind, `rows_in` and `rows_out` the
    entities they carry, indexed like KINDS.
    """

    live: int
    commands: int
    received: list[int]
    rows_in: list[int]
    sent: list[int]
    rows_out: list[int]
    started: int
    retransmitted: int
    admitted: int
    promoted: int

    @classmethod
    def of(cls, inputs: StepInputs, state: ZoneState, out: StepOutput) -> "Load":
        received, rows_in = _tally(inputs.messages)
        sent, rows_out = _tally(out.messages)
        events = out.migration
        return cls(
            live=state.live_count(),
            commands=len(inputs.commands),
            received=received,
            rows_in=rows_in,
            sent=sent,
            rows_out=rows_out,
            started=sum(ids.size for ids in events.started),
            retransmitted=events.retransmitted,
            admitted=sum(ids.size for ids in events.admitted),
            promoted=sum(ids.size for ids in events.promoted),
        )


def _tally(messages: Sequence[Message]) -> tuple[list[int], list[int]]:
    count, rows = [0] * len(KINDS), [0] * len(KINDS)
    for message in messages:
        for i, kind in enumerate(KINDS):
            if isinstance(message, kind):
                count[i] += 1
                rows[i] += len(_payload(message))
    return count, rows


def _payload(message: Message) -> np.ndarray:
    if isinstance(message, Intent):
        return message.rows
    if isinstance(message, Ack | Nack):
        return message.replies
    if isinstance(message, Forward):
        return message.commands
    return np.zeros(0)


@dataclass
class Series:
    """Step times in nanoseconds and the load of each timed step."""

    name: str
    slots: int = 0
    ns: list[int] = field(default_factory=list)
    loads: list[Load] = field(default_factory=list)


def packed(state: ZoneState, slots: int) -> ZoneState:
    """The same zone with its live records moved, in slot order, into `slots` slots."""
    live = np.flatnonzero(state.status)
    if live.size > slots:
        raise ValueError(f"{live.size} live records do not fit in {slots} slots")
    fresh = ZoneState.empty(state.zone, state.ranges, slots, state.hlc)
    changes: dict[str, Any] = {}
    for f in fields(state):
        value = getattr(state, f.name)
        if isinstance(value, np.ndarray) and value.shape[:1] == (state.capacity,):
            array = getattr(fresh, f.name)
            array[: live.size] = value[live]
            changes[f.name] = array
        elif isinstance(value, np.ndarray):
            changes[f.name] = value.copy()
        elif isinstance(value, dict):
            changes[f.name] = dict(value)
    return replace(state, **changes)


class ZoneStepClock:
    """Stands in for `step` inside SimNetwork, timing the measured zone's calls.

    `series` names where the times of the current tick go (None: untimed);
    `packed_series`, when set, also times the step on a packed copy of the state.
    """

    def __init__(self, zone: int) -> None:
        self.zone = zone
        self.series: Series | None = None
        self.packed_series: Series | None = None
        self.profiler: cProfile.Profile | None = None
        self.calls = 0

    def __call__(
        self, state: ZoneState, inputs: StepInputs, params: ZoneParams
    ) -> tuple[ZoneState, StepOutput]:
        if state.zone != self.zone or (self.series is None and self.profiler is None):
            return step(state, inputs, params)
        if self.profiler is not None:
            self.profiler.enable()
            result = step(state, inputs, params)
            self.profiler.disable()
            return result
        assert self.series is not None
        self.calls += 1
        small = packed(state, params.capacity) if self.packed_series is not None else None
        if small is not None and self.calls % 2:
            self._time_packed(small, inputs, params)
        start = time.perf_counter_ns()
        result = step(state, inputs, params)
        elapsed = time.perf_counter_ns() - start
        self.series.ns.append(elapsed)
        self.series.slots = state.capacity
        self.series.loads.append(Load.of(inputs, result[0], result[1]))
        if small is not None and not self.calls % 2:
            self._time_packed(small, inputs, params)
        return result

    def _time_packed(self, small: ZoneState, inputs: StepInputs, params: ZoneParams) -> None:
        assert self.packed_series is not None
        start = time.perf_counter_ns()
        new, out = step(small, inputs, params)
        elapsed = time.perf_counter_ns() - start
        self.packed_series.ns.append(elapsed)
        self.packed_series.slots = small.capacity
        self.packed_series.loads.append(Load.of(inputs, new, out))


def spawn_rows(crowd: Crowd, counts: list[int]) -> dict[int, np.ndarray]:
    """Spawn requests for exactly `counts[z]` walkers inside each zone z."""
    chosen: dict[int, list[np.ndarray]] = {z: [] for z in range(crowd.net.n)}

    def missing(zone: int) -> int:
        return counts[zone] - sum(len(rows) for rows in chosen[zone])

    while any(missing(zone) > 0 for zone in chosen):
        for zone, rows in crowd.spawn(max(counts) * crowd.net.n).items():
            chosen[zone].append(rows[: max(0, missing(zone))])
    return {zone: np.concatenate(rows) for zone, rows in chosen.items()}


def build(counts: list[int], seed: int) -> tuple[SimNetwork, Crowd, dict[int, np.ndarray]]:
    params = [ZoneParams(zone=z, spawn_cap=ZONE_CAPACITY) for z in range(ZONES)]
    net = SimNetwork(
        ranges=floor_ranges(ZONES),
        params=params,
        rng=np.random.default_rng(seed),
        faults=Faults(drop=0.0, duplicate=0.0),
        storage=2 * ZONE_CAPACITY,  # the spare storage every zone had before it grew
    )
    crowd = Crowd(net, np.random.default_rng(seed + 1))
    return net, crowd, spawn_rows(crowd, counts)


def still(rows: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    standing = {zone: r.copy() for zone, r in rows.items()}
    for r in standing.values():
        r["vel"] = 0.0
    return standing


def floor_shares(net: SimNetwork, points: int = 256) -> list[float]:
    """Share of the market floor each zone owns, from a grid of positions 1 m up."""
    p = net.params[0]
    x, z = np.meshgrid(
        np.linspace(p.lo[0], p.hi[0], points, endpoint=False) + (p.hi[0] - p.lo[0]) / points / 2,
        np.linspace(p.lo[2], p.hi[2], points, endpoint=False) + (p.hi[2] - p.lo[2]) / points / 2,
    )
    positions = np.column_stack([x.ravel(), np.ones(x.size), z.ravel()]).astype(np.float32)
    zones = net.ranges.assign(encode_positions(positions, p.lo, p.hi))
    return [float(share) for share in np.bincount(zones, minlength=net.n) / zones.size]


def ms(ns: float) -> float:
    return ns / 1e6


def summary(series: Series) -> str:
    times = np.array(series.ns, dtype=np.float64)
    median = ms(float(np.median(times)))
    p90, p99 = (ms(float(v)) for v in np.percentile(times, [90, 99]))
    mean = ms(float(times.mean()))
    fastest = ms(float(times.min()))
    live = int(statistics.median(load.live for load in series.loads))
    baseline = NATIVE_BASELINE_MS[0]
    if median <= baseline:
        ratio = f"ratio {baseline / median:.1f}x faster than"
    else:
        ratio = f"ratio {median / baseline:.1f}x slower than"
    verdict = "met" if median <= TARGET_MS else "not met"
    return (
        f"{series.name:<26} {live:,} entities  {series.slots:,} slots"
        f"  median {median:.2f} ms  p90 {p90:.2f} ms  p99 {p99:.2f} ms  mean {mean:.2f} ms"
        f"  min {fastest:.2f} ms"
        f"  {ratio} the native {baseline} ms baseline  target <= {TARGET_MS:g} ms: {verdict}"
    )


def load_summary(series: Series) -> str:
    loads = series.loads
    n = len(loads)

    def mean(values: Sequence[float]) -> str:
        return f"{sum(values) / n:5.2f}"

    def traffic(counts: str, rows: str) -> str:
        parts = []
        for i, kind in enumerate(KINDS):
            messages = mean([getattr(load, counts)[i] for load in loads])
            carried = mean([getattr(load, rows)[i] for load in loads])
            parts.append(f"{kind.__name__.lower()} {messages} msgs / {carried} rows")
        return ",  ".join(parts)

    lives = [load.live for load in loads]
    return (
        f"  zone {MEASURED_ZONE}, {series.name}: mean per tick over {n} ticks\n"
        f"    live entities  min {min(lives):,}  median {int(statistics.median(lives)):,}"
        f"  max {max(lives):,};  commands {mean([load.commands for load in loads])}\n"
        f"    received       {traffic('received', 'rows_in')}\n"
        f"    sent           {traffic('sent', 'rows_out')}\n"
        f"    transfers      {mean([load.started for load in loads])} started,"
        f" {mean([load.retransmitted for load in loads])} retransmitted,"
        f" {mean([load.admitted for load in loads])} admitted,"
        f" {mean([load.promoted for load in loads])} promoted"
    )


@dataclass
class Measured:
    """What `measure` timed, and the walking network it left."""

    walking: Series
    walking_packed: Series
    standing: Series
    net: SimNetwork
    crowd: Crowd
    clock: ZoneStepClock


def measure(
    ticks: int = 400,
    warmup: int = 200,
    seed: int = SEED,
    walkers_zone0: int = ZONE_CAPACITY,
    walkers: int = 1790,
    say: Any = print,
) -> Measured:
    """Zone 0's step, walking, packed and still, interleaved tick by tick (the module's
    docstring); `say` hears of the set-up."""
    clock = ZoneStepClock(MEASURED_ZONE)
    simnet.step = clock  # type: ignore[attr-defined]  # SimNetwork calls step by this name

    counts = [walkers_zone0] + [walkers] * (ZONES - 1)
    walking_net, crowd, rows = build(counts, seed)
    still_net, _, still_rows = build(counts, seed)
    still_rows = still(still_rows)

    started = time.perf_counter()
    crowd.record_spawns(walking_net.run_tick(spawns=rows))
    still_net.run_tick(spawns=still_rows)
    refused = sum(r.size for r in rows.values()) - crowd.expected.size
    spread = ", ".join(f"{count:,} in zone {z}" for z, count in enumerate(counts))
    say(f"spawned {crowd.expected.size:,} walkers ({spread}; {refused} refused)")
    shares = ", ".join(f"zone {z} {share:.0%}" for z, share in enumerate(floor_shares(walking_net)))
    say(f"floor area per zone: {shares}")
    say(f"warming up {warmup} ticks")
    for _ in range(warmup):
        walking_net.run_tick(commands=crowd.commands())
    still_net.run_tick()
    say(f"warm-up done in {time.perf_counter() - started:.1f} s; timing {ticks} ticks\n")

    walking = Series("zone.step walking")
    walking_packed = Series("zone.step walking, packed")
    standing = Series("zone.step still")
    gc.collect()
    for tick in range(ticks):
        commands = crowd.commands()
        order = [(walking_net, walking), (still_net, standing)]
        for net, series in order if tick % 2 else reversed(order):
            clock.series = series
            clock.packed_series = walking_packed if series is walking else None
            if net is walking_net:
                net.run_tick(commands=commands)
            else:
                net.run_tick()
    clock.series = clock.packed_series = None
    return Measured(walking, walking_packed, standing, walking_net, crowd, clock)


def median_ms(series: Series) -> float:
    return ms(float(np.median(np.array(series.ns, dtype=np.float64))))


def run(args: argparse.Namespace) -> None:
    measured = measure(args.ticks, args.warmup, args.seed, args.walkers_zone0, args.walkers)
    walking, walking_packed, standing = measured.walking, measured.walking_packed, measured.standing
    walking_net = measured.net
    for series in (walking, walking_packed, standing):
        print(summary(series))
    baseline = " to ".join(f"{v} ms" for v in NATIVE_BASELINE_MS)
    print(f"native zone server: {baseline} per step; target <= {TARGET_MS:g} ms\n")
    print(load_summary(walking))
    print(load_summary(standing))
    held = walking_net.zones[MEASURED_ZONE]
    print(
        f"  zone {MEASURED_ZONE} decision table after {walking_net.tick} ticks:"
        f" {len(held.decisions):,} ids (copy-on-write, by bucket)"
    )
    others = ", ".join(f"zone {s.zone} {s.live_count():,}" for s in walking_net.zones[1:])
    print(f"  live entities in the other zones at the end: {others}")
    if any(sum(load.received) + sum(load.sent) for load in standing.loads):
        raise SystemExit("the still network migrated entities: its figure is not a floor")

    if args.profile_ticks:
        profile(measured.clock, walking_net, measured.crowd, args)


def profile(clock: ZoneStepClock, net: SimNetwork, crowd: Crowd, args: argparse.Namespace) -> None:
    profiler = cProfile.Profile()
    clock.profiler = profiler
    for _ in range(args.profile_ticks):
        net.run_tick(commands=crowd.commands())
    clock.profiler = None
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.strip_dirs().sort_stats("cumulative").print_stats(25)
    header = (
        f"cProfile of zone {MEASURED_ZONE}'s step, walking crowd, {args.profile_ticks} calls"
        f" (times include the profiler's overhead)\n"
    )
    Path(args.profile_out).write_text(header + text.getvalue(), encoding="utf-8")
    print(f"\nprofile of {args.profile_ticks} steps written to {args.profile_out}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--walkers-zone0",
        type=int,
        default=ZONE_CAPACITY,
        help="walkers spawned inside zone 0 (default: its capacity)",
    )
    parser.add_argument(
        "--walkers", type=int, default=1790, help="walkers spawned inside each other zone"
    )
    parser.add_argument("--warmup", type=int, default=200, help="untimed ticks first")
    parser.add_argument("--ticks", type=int, default=400, help="timed steps of zone 0")
    parser.add_argument("--profile-ticks", type=int, default=200, help="0: no profile")
    parser.add_argument("--profile-out", default="/tmp/step_profile.txt")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    if args.ticks < 1 or args.warmup < 0 or args.profile_ticks < 0:
        parser.error("--ticks must be at least 1, --warmup and --profile-ticks at least 0")
    machine_info(
        numpy=np.__version__,
        threads=f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, single-threaded step",
    )
    run(args)


if __name__ == "__main__":
    main()
