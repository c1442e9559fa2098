"""Throughput of the 3-D Hilbert codec against the per-bit port of Skilling's algorithm.

    python bench/bench_hilbert.py               time encode, decode and the baseline
    python bench/bench_hilbert.py --exhaustive  also round-trip all 2^30 codes and
                                                check every step of the curve

The codec runs on 1,000,000 random cells (fixed seed, uint16 as quantise produces
them; once more as int64), decode on their codes and encode_positions on
1,000,000 random float32 positions, all in this one process after an untimed
call that builds the tables. The median and the fastest of the repeats are reported; on a shared
machine the fastest is the better estimate of what the code costs, the median of
what a caller sees.
"""

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import machine_info  # noqa: E402
from zones.core import hilbert  # noqa: E402
from zones.core.constants import CODE_SPACE, HILBERT_ORDER  # noqa: E402

POINTS = 1_000_000
REPEATS = 7
SEED = 20040101
CHUNK = 1 << 22


def timings(function: Callable[[], object], repeats: int = REPEATS) -> list[float]:
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - start)
    return seconds


def report(name: str, seconds: list[float], baseline_rate: float | None) -> float:
    median = statistics.median(seconds)
    fastest = min(seconds)
    rate = POINTS / median
    line = (
        f"{name:<24} {POINTS:,} pts  median {median * 1e3:7.1f} ms  {rate / 1e6:5.1f} M pts/s"
        f"  (min {fastest * 1e3:6.1f} ms, {POINTS / fastest / 1e6:5.1f} M pts/s)"
    )
    if baseline_rate is not None:
        line += f"  ratio {rate / baseline_rate:5.1f}x vs per-bit baseline ({baseline_rate / 1e6:.1f} M pts/s)"
    print(line)
    return rate


def throughput() -> None:
    rng = np.random.default_rng(SEED)
    cells = rng.integers(0, 1 << HILBERT_ORDER, (POINTS, 3), dtype=np.uint16)
    lo = np.array([0.0, 0.0, 0.0])
    hi = np.array([128.0, 64.0, 128.0])
    positions = rng.uniform(lo, hi, (POINTS, 3)).astype(np.float32)

    start = time.perf_counter()
    codes = hilbert.encode(cells)
    hilbert.decode(codes[:1])
    print(f"first calls, building the tables: {(time.perf_counter() - start) * 1e3:.0f} ms")
    if not np.array_equal(codes, hilbert.encode_per_bit(cells)):
        raise SystemExit("encode disagrees with encode_per_bit")
    if not np.array_equal(hilbert.decode(codes), cells):
        raise SystemExit("decode does not invert encode")

    baseline = report(
        "hilbert.encode_per_bit", timings(lambda: hilbert.encode_per_bit(cells)), None
    )
    report("hilbert.encode", timings(lambda: hilbert.encode(cells)), baseline)
    report("hilbert.decode", timings(lambda: hilbert.decode(codes)), baseline)
    wide = cells.astype(np.int64)
    report("hilbert.encode (int64)", timings(lambda: hilbert.encode(wide)), baseline)
    report(
        "hilbert.encode_positions",
        timings(lambda: hilbert.encode_positions(positions, lo, hi)),
        baseline,
    )


def exhaustive() -> None:
    """Round-trip every order-10 code and check each step of the curve is to a face neighbour."""
    print()
    print(f"round trip and continuity of all {CODE_SPACE:,} codes in chunks of {CHUNK:,}")
    chunks = CODE_SPACE // CHUNK
    on_terminal = sys.stdout.isatty()
    line_start, line_end = ("\r", "") if on_terminal else ("", "\n")
    round_trip = continuity = 0.0
    previous = np.zeros((0, 3), dtype=np.int16)
    start = time.perf_counter()
    for number, first in enumerate(range(0, CODE_SPACE, CHUNK), start=1):
        began = time.perf_counter()
        codes = np.arange(first, first + CHUNK, dtype=np.uint32)
        cells = hilbert.decode(codes)
        if not np.array_equal(hilbert.encode(cells), codes):
            raise SystemExit(f"round trip fails in [{first:,}, {first + CHUNK:,})")
        checked = time.perf_counter()
        round_trip += checked - began
        path = np.concatenate([previous, cells.astype(np.int16)])
        if not np.all(np.abs(np.diff(path, axis=0)).sum(axis=1) == 1):
            raise SystemExit(f"a step of the curve is not to a face neighbour near code {first:,}")
        previous = path[-1:]
        continuity += time.perf_counter() - checked
        if on_terminal or number % (chunks // 8) == 0:
            done = first + CHUNK
            elapsed = time.perf_counter() - start
            print(
                f"{line_start}  {done:>13,} / {CODE_SPACE:,} codes"
                f"  {elapsed:6.1f} s  {done / elapsed / 1e6:5.1f} M codes/s",
                end=line_end,
                flush=True,
            )
    if on_terminal:
        print()
    elapsed = time.perf_counter() - start
    print(
        f"all {CODE_SPACE:,} codes round-trip and step to face neighbours: {elapsed:.1f} s"
        f" (decode + encode {round_trip:.1f} s, continuity {continuity:.1f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--exhaustive",
        action="store_true",
        help="also round-trip all 2^30 codes and check continuity",
    )
    args = parser.parse_args()
    machine_info(numpy=np.__version__)
    throughput()
    if args.exhaustive:
        exhaustive()


if __name__ == "__main__":
    main()
