"""The gateway's frame encoding (zones.core.views.frames): CPU per tick and per frame, against
the encoding of BASELINE_COMMIT, one `frame_encode` call a visitor.

    python bench/bench_frames.py                     1,000 visitors, 5 runs each way
    python bench/bench_frames.py --visitors 300 --runs 3

Each tick the gateway cuts every visitor's rows and bodies out of the merged view (its
picks) and encodes one interest frame a visitor from them. Here the market of
bench/markets.py (a third of the visitors packed at an entrance, a third in a choke
point, a third spread) is cut once for each of the FAR_EVERY phases of a tick (far rows,
bodies), out of exact float64 distances (the same picks for both trees); then `frames`
encodes those ticks --repeats times and the median per tick is kept. Only the encoding
is timed, in CPU time of the process (time.process_time).

The baseline is zones/core as of BASELINE_COMMIT, taken out of git into a temporary
directory at run time; each run starts a fresh interpreter per encoding, baseline and
current alternately (bench/baseline.py). Both must encode the same bytes: the SHA-256 of
every frame of every tick is compared, and a difference stops the bench. Printed: ms a
tick and µs a frame, medians over --runs, and the ratio baseline / current.
"""

import argparse
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.baseline import alternating_runs, child_figures, imported_from  # noqa: E402

BASELINE_COMMIT = "df56f58087d5da74d8a34aa3a6969166667218e5"
"""The last commit whose frames were encoded one visitor at a time."""


def measure(root: str, visitors: int, repeats: int) -> dict[str, float | str]:
    """The figures of one run, with zones.core imported from `root`."""
    sys.path.insert(0, root)
    import numpy as np

    from bench.markets import market_view
    from zones.core import views

    imported_from(views, root)

    class Exact(views.DistanceMatrix):
        """The distance matrix's queries out of float64 distances, so that both trees
        encode frames of the same picks whatever their own matrix's float32 does."""

        def __init__(self, view: np.ndarray, own: np.ndarray) -> None:
            super().__init__(view, own)
            pos = view["pos"].astype(np.float64)
            self.d2 = ((pos[own][:, None, :] - pos[None, :, :]) ** 2).sum(axis=2)
            self.d2[np.arange(own.size), own] = -1.0

    view = market_view(visitors, np.random.default_rng(visitors))
    own = np.arange(view.size, dtype=np.int64)
    ticks = [
        views.cut(view, own, tick + np.arange(own.size, dtype=np.int64), Exact)
        for tick in range(views.FAR_EVERY)
    ]
    acks = list(range(own.size))
    digest = hashlib.sha256()
    for tick, cut in enumerate(ticks):
        for frame in views.frames(view, cut, acks, 1_795_000_000_000 + tick):
            digest.update(bytes(frame))
    times = []
    for _ in range(repeats):
        started = time.process_time()
        for tick, cut in enumerate(ticks):
            views.frames(view, cut, acks, 1_795_000_000_000 + tick)
        times.append((time.process_time() - started) / len(ticks))
    per_tick = statistics.median(times)
    return {
        "ms_per_tick": per_tick * 1000,
        "us_per_frame": per_tick / own.size * 1e6,
        "sha256": digest.hexdigest(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--visitors", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5, help="runs of each encoding (median)")
    parser.add_argument("--repeats", type=int, default=25, help="timed rounds of ticks, a run")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.visitors, args.repeats)))
        return
    if args.visitors < 1 or args.runs < 1 or args.repeats < 1:
        parser.error("--visitors, --runs and --repeats must be at least 1")

    from bench.machine import machine_info

    machine_info(visitors=f"{args.visitors:,}", baseline=f"zones/core at {BASELINE_COMMIT[:12]}")
    extra = ["--visitors", str(args.visitors), "--repeats", str(args.repeats)]
    runs = alternating_runs(
        BASELINE_COMMIT, args.runs, lambda root, _run: child_figures(__file__, root, *extra)
    )
    digests = {f["sha256"] for figures in runs.values() for f in figures}
    if len(digests) != 1:
        raise SystemExit("the baseline and the current encoding made different frames")
    print(f"frames of {args.visitors:,} visitors a tick, median of {args.runs} runs")
    print(f"{'':<10}{'ms a tick':>11}{'µs a frame':>12}")
    for name, figures in runs.items():
        ms = statistics.median(f["ms_per_tick"] for f in figures)
        us = statistics.median(f["us_per_frame"] for f in figures)
        print(f"{name:<10}{ms:>11.3f}{us:>12.3f}")
    before = statistics.median(f["ms_per_tick"] for f in runs["baseline"])
    after = statistics.median(f["ms_per_tick"] for f in runs["current"])
    print(f"ratio     {before / after:.2f}x less CPU a tick than the baseline")


if __name__ == "__main__":
    main()
