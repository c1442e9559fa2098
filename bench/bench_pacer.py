"""The load harness's walking checks (`zones.load.drive.Pacer`): CPU per check, against
the pacer as it was before its wake-ups were fixed and its legs checked in groups.

    python bench/bench_pacer.py                       1,000 walkers, 3 runs of 10 s each way
    python bench/bench_pacer.py --walkers 600 --runs 5

A run's walkers ask the pacer for a check every CHECK_S (0.1 s) each: 10,000 checks a
second at 1,000 walkers, on the harness's main thread beside everything else it does. Here
`--walkers` visitors on the compiled reader's slots (no sockets: their own rows are written
into the slots' counters, walking east at 1.5 m/s far from their legs' ends, every
STUCK_EVERY-th standing, so that it is sent its walk again at every check, as a visitor
whose zone has not moved it yet) start their legs spread over START_S, as the runs' plans
spread them. After --warmup s, the main thread's CPU (time.thread_time) and the checks
made are taken over --seconds, on uvloop as in `manage.py loadtest`. Sends go to a counter,
not a socket: the figure is the pacer's own work.

The baseline is zones/ as of BASELINE_COMMIT, the last commit before the change, taken out
of git into a temporary directory at run time. Each run starts one fresh interpreter per
pacer, baseline and current alternately, so both see the same machine. Printed: checks a
second, timer wake-ups a second (the current pacer counts them), µs of CPU per check and
the main thread's cores, medians over --runs; and the ratio baseline / current.
"""

import argparse
import asyncio
import inspect
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.baseline import alternating_runs, child_figures, imported_from  # noqa: E402

BASELINE_COMMIT = "df3ad00aedfe42cdeacbdfa6885586d0f5405fda"
"""The last commit whose pacer checked each leg alone and re-armed early timers."""
STUCK_EVERY = 7
START_S = 1.0


class _Sent:
    """Stands in for a socket's transport: counts what the pacer sends."""

    is_close_frame_sent = False

    def __init__(self) -> None:
        self.sent = 0

    def send(self, kind: int, payload: bytes) -> None:
        self.sent += 1


async def _measure(walkers: int, warmup: float, seconds: float) -> dict[str, float]:
    from zones.load import drive
    from zones.load import reader as rd
    from zones.load.lean import WakeClock
    from zones.load.rawsocket import CountedVisitor, RawFleet

    fleet = RawFleet(WakeClock(), walkers)
    try:
        visitors = []
        for slot in range(walkers):
            visitor = CountedVisitor(fleet.clock, fleet, slot)
            visitor._transport = _Sent()  # type: ignore[assignment]
            visitors.append(visitor)
        rows = fleet.reader.counts
        rows[:walkers, rd.MOTION : rd.MOTION + 8] = [100, 100, 500, 150, 0, 0, 1, 0]
        rows[:walkers:STUCK_EVERY, rd.MOTION + 3] = 0
        rows[:walkers, rd.MOTION_SEEN] = 1
        grouped = "motions" in inspect.signature(drive.Pacer).parameters
        pacer = drive.Pacer(fleet.motions) if grouped else drive.Pacer()
        import numpy as np

        end, east = np.array([90.0, 1.0, 5.0]), np.array([1.0, 0.0, 0.0])
        legs = []
        for index, visitor in enumerate(visitors):
            legs.append(pacer.walk(visitor, end, east, 3600.0, 1.5))
            if index % 20 == 19:
                await asyncio.sleep(START_S * 20 / walkers)
        await asyncio.sleep(warmup)
        stuck = visitors[::STUCK_EVERY]
        checks, wakeups = pacer.checks, getattr(pacer, "wakeups", 0)
        sent = [v._transport.sent for v in stuck]  # type: ignore[attr-defined]
        cpu, wall = time.thread_time(), time.monotonic()
        await asyncio.sleep(seconds)
        cpu, wall = time.thread_time() - cpu, time.monotonic() - wall
        checks, wakeups = pacer.checks - checks, getattr(pacer, "wakeups", 0) - wakeups
        sent = [v._transport.sent - s for v, s in zip(stuck, sent, strict=True)]  # type: ignore[attr-defined]
        pacer.close()
        await asyncio.gather(*legs, return_exceptions=True)
        return {
            "checks_s": checks / wall,
            "wakeups_s": wakeups / wall if grouped else float("nan"),
            "us_per_check": cpu / checks * 1e6,
            "cores": cpu / wall,
            "seconds": wall,
            "stuck_sends_least": float(min(sent)),
            "stuck_sends_most": float(max(sent)),
        }
    finally:
        await fleet.aclose()


def measure(root: str, walkers: int, warmup: float, seconds: float) -> dict[str, float]:
    """The figures of one run, with zones imported from `root`."""
    sys.path.insert(0, root)
    import uvloop

    from zones.load import drive

    imported_from(drive, root)
    return uvloop.run(_measure(walkers, warmup, seconds))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--walkers", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3, help="runs of each pacer (median)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured, per run")
    parser.add_argument("--warmup", type=float, default=1.0, help="after the last leg started")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.walkers, args.warmup, args.seconds)))
        return
    if args.walkers < 1 or args.runs < 1 or args.seconds <= 0 or args.warmup < 0:
        parser.error("--walkers and --runs must be at least 1, --seconds above 0")

    from bench.machine import machine_info

    machine_info(
        walkers=f"{args.walkers:,}, every {STUCK_EVERY}th sent its walk again at each check",
        baseline=f"zones/ at {BASELINE_COMMIT[:12]}",
    )
    extra = ["--walkers", str(args.walkers), "--seconds", str(args.seconds)]
    extra += ["--warmup", str(args.warmup)]
    runs = alternating_runs(
        BASELINE_COMMIT,
        args.runs,
        lambda root, _run: child_figures(__file__, root, *extra),
        ("zones",),
    )
    print(f"the pacer's main-thread CPU, median of {args.runs} runs of {args.seconds:g} s")
    print(f"{'':<10}{'checks/s':>10}{'wake-ups/s':>12}{'µs a check':>12}{'cores':>8}")
    for name, figures in runs.items():
        median = {k: statistics.median(f[k] for f in figures) for k in figures[0]}
        wakeups = (
            "—" if median["wakeups_s"] != median["wakeups_s"] else f"{median['wakeups_s']:.0f}"
        )
        print(
            f"{name:<10}{median['checks_s']:>10,.0f}{wakeups:>12}"
            f"{median['us_per_check']:>12.2f}{median['cores']:>8.4f}"
        )
    before = statistics.median(f["us_per_check"] for f in runs["baseline"])
    after = statistics.median(f["us_per_check"] for f in runs["current"])
    print(f"ratio     {before / after:.2f}x less CPU a check than the baseline")


if __name__ == "__main__":
    main()
