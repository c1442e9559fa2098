"""CPU of one zone step for a lightly loaded zone, against the step before it was trimmed.

    python bench/bench_zone_idle.py              measure (7 runs of each step)
    python bench/bench_zone_idle.py --runs 11    more runs

Three zones with the default ZoneParams (ZONE_CAPACITY = 1,800 slots), each
stepped --ticks times after a warm-up:

* idle: no entities and no inputs, only the tick's wall time;
* 15 visitors: 15 visitor roots (their bones hold no authority and are no
  entities of the zone) spawned at tick 0, each sent a velocity command every
  tick, as a gateway does for visitors who keep moving;
* 50 visitors: the same with 50.

The baseline is zones/core as of BASELINE_COMMIT, the commit before the step
was trimmed, taken out of git into a temporary directory at run time. Each run
starts one fresh interpreter per step, baseline and current alternately, so
both see the same machine; each measures every load with the calling thread's
CPU time (time.thread_time_ns) over all its ticks. The figures are the median
over --runs runs; the ratio is the baseline's median over the current one.

Each load is also stepped with storage for ZONE_CAPACITY (1,800) slots from the start,
as every zone had before its storage grew with its crowd: a second table sets the current
step with that storage beside the current step with the zone's own (STORAGE_START slots,
64, enough for these loads).
"""

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.baseline import alternating_runs, child_figures, imported_from  # noqa: E402

BASELINE_COMMIT = "d1bfbd30ac8cb87e48ec29460e70b8ce4be45292"
"""The last commit whose zones/core has the step as it was before it was trimmed."""
LOADS = (0, 15, 50)
"""Visitors per zone in each measured load."""
T0 = 1_800_000_000_000
TARGET_IDLE_MS = 0.1  # step + persistence of an idle zone, per tick


def measure(root: str, ticks: int, warmup: int) -> dict[str, float]:
    """µs of thread CPU per step for each load, with zones.core imported from `root`."""
    sys.path.insert(0, root)
    import time

    import numpy as np

    from zones.core import step as step_module
    from zones.core.constants import TICK_MS, ZONE_CAPACITY
    from zones.core.ranges import floor_ranges
    from zones.core.state import ZoneParams, ZoneState
    from zones.core.step import StepInputs, step
    from zones.core.wire import COMMAND_DTYPE, SPAWN_DTYPE, CommandKind, RowFlag

    imported_from(step_module, root)

    def inputs(t: int, visitors: int) -> StepInputs:
        if visitors == 0:
            return StepInputs(now_ms=T0 + TICK_MS * t)
        ids = np.arange(1, visitors + 1, dtype=np.uint64) + np.uint64(1 << 41)
        spawns = np.zeros(visitors if t == 0 else 0, SPAWN_DTYPE)
        if t == 0:
            spawns["id"], spawns["kind"] = ids, RowFlag.VISITOR_ROOT
            # 10 m in x, up to 20 m in z: inside zone 0 of the default three booths
            spawns["pos"] = np.column_stack([np.full(visitors, 10.0), np.ones(visitors), ids % 20])
        commands = np.zeros(visitors, COMMAND_DTYPE)
        angle = t / 10 + np.arange(visitors)
        commands["id"], commands["kind"] = ids, CommandKind.VELOCITY
        commands["vec"] = np.column_stack([np.cos(angle), np.zeros(visitors), np.sin(angle)])
        return StepInputs(now_ms=T0 + TICK_MS * t, commands=commands, spawns=spawns)

    params = ZoneParams(zone=0)
    result = {}
    for visitors in LOADS:
        # the zone's own storage, and storage for the whole capacity from the start
        full = {"capacity": ZONE_CAPACITY}
        for key, storage in ((str(visitors), {}), (f"{visitors} full", full)):
            state = ZoneState.empty(0, floor_ranges(3), **storage)
            for t in range(warmup):
                state, _ = step(state, inputs(t, visitors), params)
            if state.live_count() != visitors:
                raise SystemExit(f"{state.live_count()} live entities, {visitors} expected")
            timed = [inputs(t, visitors) for t in range(warmup, warmup + ticks)]
            started = time.thread_time_ns()
            for tick_inputs in timed:
                state, _ = step(state, tick_inputs, params)
            result[key] = (time.thread_time_ns() - started) / ticks / 1e3
    return result


def child(root: Path, args: argparse.Namespace) -> dict[str, float]:
    figures: dict[str, float] = child_figures(
        __file__, root, "--ticks", str(args.ticks), "--warmup", str(args.warmup)
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7, help="runs of each step (median)")
    parser.add_argument("--ticks", type=int, default=2000, help="timed steps per load and run")
    parser.add_argument("--warmup", type=int, default=100, help="untimed steps first")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.ticks, args.warmup)))
        return
    if args.runs < 5 or args.ticks < 1 or args.warmup < 1:
        parser.error("--runs must be at least 5, --ticks and --warmup at least 1")

    import numpy as np

    from bench.machine import machine_info

    machine_info(
        numpy=np.__version__,
        threads="OMP_NUM_THREADS=1, single-threaded step",
        baseline=f"zones/core at {BASELINE_COMMIT[:12]}",
    )
    runs = alternating_runs(BASELINE_COMMIT, args.runs, lambda root, _run: child(root, args))
    print(
        f"zone step CPU per call, median of {args.runs} runs of {args.ticks:,} steps"
        f" (after {args.warmup} untimed), default ZoneParams"
    )
    print(f"{'load':<26}{'before':>12}{'after':>12}{'ratio':>9}   after, all runs (us)")
    for visitors in LOADS:
        key = str(visitors)
        before = statistics.median(r[key] for r in runs["baseline"])
        after = statistics.median(r[key] for r in runs["current"])
        name = "idle (no entities)" if visitors == 0 else f"{visitors} visitors, roots moving"
        spread = " ".join(f"{r[key]:.1f}" for r in runs["current"])
        print(f"{name:<26}{before:>9.1f} us{after:>9.1f} us{before / after:>8.1f}x   {spread}")
    from zones.core.constants import ZONE_CAPACITY
    from zones.core.state import STORAGE_START

    print(
        f"\ncurrent step, storage of {ZONE_CAPACITY:,} slots from the start against the"
        f" zone's own ({STORAGE_START} slots, doubling when full)"
    )
    print(f"{'load':<26}{'full':>12}{'own':>12}{'ratio':>9}")
    for visitors in LOADS:
        full = statistics.median(r[f"{visitors} full"] for r in runs["current"])
        own = statistics.median(r[str(visitors)] for r in runs["current"])
        name = "idle (no entities)" if visitors == 0 else f"{visitors} visitors, roots moving"
        print(f"{name:<26}{full:>9.1f} us{own:>9.1f} us{full / own:>8.2f}x")
    idle_ms = statistics.median(r["0"] for r in runs["current"]) / 1e3
    verdict = "met" if idle_ms <= TARGET_IDLE_MS else "not met"
    print(
        f"\nidle zone: step {idle_ms:.3f} ms a tick; target <= {TARGET_IDLE_MS} ms with"
        f" persistence (bench/bench_zone_persist.py): step alone {verdict}"
    )


if __name__ == "__main__":
    main()
