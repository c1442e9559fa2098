"""Transfer decisions held by the zones of a churning market, against a table kept for ever.

    python bench/bench_decisions.py              measure (5 runs of each core)
    python bench/bench_decisions.py --runs 7     more runs

Three zones (`floor_ranges(3)`, default ZoneParams) over a 32 m × 32 m floor, so
that walkers cross booth borders every few seconds, on a SimNetwork with a
perfect network (no drop, no duplicate, 1-4 ticks of delay). 600 walkers at
0.5-4 m/s turn at random; every --churn-every ticks one of them leaves (a
despawn to its owner) and a visitor with a new id joins, as visitors come and go.
After --ticks ticks (50 ms each) the figures are the decisions the three zones
hold between them at each quarter of the run, and the thread CPU time of a tick
of the whole network (three steps and the network's wire forms).

The baseline is zones/core as of BASELINE_COMMIT, the commit before zones forgot
decisions (bench/baseline.py): its table keeps one entry per entity that ever
crossed into the zone. Each run starts one fresh interpreter per core, baseline
and current alternately; the figures are the median over --runs runs, and the
ratio is the baseline's over the current one.
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

BASELINE_COMMIT = "839ae976452b4e9e78041c10370d0b3a34e257f7"
"""The last commit whose zones kept every transfer decision for good."""
WALKERS = 600
QUARTERS = 4


def measure(root: str, ticks: int, churn_every: int, seed: int) -> dict[str, list[float]]:
    """Decisions held at each quarter of the run, and µs of thread CPU per network tick."""
    sys.path.insert(0, root)
    import time

    import numpy as np

    from zones.core import step as step_module
    from zones.core.crowd import Crowd
    from zones.core.ranges import floor_ranges
    from zones.core.simnet import Faults, SimNetwork
    from zones.core.state import ZoneParams

    imported_from(step_module, root)
    floor = np.array([32.0, 64.0, 32.0], np.float32)
    params = [ZoneParams(zone=z, hi=floor) for z in range(3)]
    net = SimNetwork(
        floor_ranges(3),
        params,
        np.random.default_rng(seed),
        Faults(drop=0.0, duplicate=0.0, max_skew_ms=0),
    )
    crowd = Crowd(net, np.random.default_rng(seed + 1))
    crowd.record_spawns(net.run_tick(spawns=crowd.spawn(WALKERS)))
    held: list[float] = []
    cpu_ns = 0
    for t in range(1, ticks + 1):
        spawns = despawns = None
        if t % churn_every == 0:  # one visitor leaves, another joins
            owners = crowd.owners()
            leaving = min(owners)
            despawns = {owners[leaving]: np.array([leaving], np.uint64)}
            spawns = crowd.spawn(1)
        commands = crowd.commands()
        started = time.thread_time_ns()
        outputs = net.run_tick(spawns=spawns, commands=commands, despawns=despawns)
        cpu_ns += time.thread_time_ns() - started
        crowd.record_spawns(outputs)
        if t % (ticks // QUARTERS) == 0:
            held.append(float(sum(len(zone.decisions) for zone in net.zones)))
    return {"held": held, "tick_us": [cpu_ns / ticks / 1e3]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="runs of each core (median)")
    parser.add_argument("--ticks", type=int, default=2400, help="ticks per run (20 a second)")
    parser.add_argument("--churn-every", type=int, default=4, help="ticks between departures")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.ticks, args.churn_every, args.seed)))
        return
    if args.runs < 3 or args.ticks < QUARTERS or args.churn_every < 1:
        parser.error("--runs must be at least 3, --ticks at least 4, --churn-every at least 1")

    import numpy as np

    from bench.machine import machine_info

    machine_info(
        numpy=np.__version__,
        threads="OMP_NUM_THREADS=1",
        baseline=f"zones/core at {BASELINE_COMMIT[:12]}",
    )
    flags = ["--ticks", str(args.ticks), "--churn-every", str(args.churn_every)]
    runs = alternating_runs(
        BASELINE_COMMIT,
        args.runs,
        lambda root, run: child_figures(__file__, root, *flags, "--seed", str(args.seed + run)),
    )
    seconds = args.ticks / 20
    joined = args.ticks // args.churn_every
    print(
        f"3 zones, {WALKERS} walkers, one leaving and one joining every {args.churn_every}"
        f" ticks ({joined:,} new ids in {seconds:g} s); median of {args.runs} runs"
    )
    print(f"{'figure':<40}{'before':>12}{'after':>12}{'ratio':>9}")
    for quarter in range(QUARTERS):
        at = seconds * (quarter + 1) / QUARTERS
        before = statistics.median(r["held"][quarter] for r in runs["baseline"])
        after = statistics.median(r["held"][quarter] for r in runs["current"])
        name = f"decisions held, after {at:g} s"
        print(f"{name:<40}{before:>12,.0f}{after:>12,.0f}{before / max(after, 1):>8.1f}x")
    before = statistics.median(r["tick_us"][0] for r in runs["baseline"])
    after = statistics.median(r["tick_us"][0] for r in runs["current"])
    name = "CPU per network tick (3 zones)"
    print(f"{name:<40}{before:>9,.0f} us{after:>9,.0f} us{before / after:>8.2f}x")


if __name__ == "__main__":
    main()
