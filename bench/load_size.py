"""How many visitors the strict load run of `.ci/run` asks for, by this machine's pace.

    python bench/load_size.py        prints the count on stdout, and why on stderr

The strict run fails CI when a pass line is missed (fewer than 95 % of the visitors joined
and stayed, a zone above its capacity, headroom at or under 12.5 %). Those lines hold for
1,000 visitors on a machine of a known pace, and the same kind of shared machine runs at
very different paces from day to day: on 2 vCPUs of the same AMD EPYC the zone step of
1,800 walking entities (`bench/bench_zone_step.py`'s headline figure) has taken from
0.44 ms to 1.67 ms at the median, and the market's web and worker CPU moved with it
(docs/performance.md, "A slow machine: CI's strict run sized by the machine's pace").

So the run is sized by that figure, measured here first: all 1,000 visitors when the step
takes at most FULL_PACE_MS, else as many fewer as the machine is slower, in steps of
STEP_VISITORS and never under FLOOR_VISITORS. The pace can drift by a third between this
measurement and the run (a CI run measured 0.943 ms, asked 950 visitors, then ran at the
CPU a frame of a 1.14–1.32 ms machine and joined 829): FULL_PACE_MS is 0.9 ms, the pace
the full load held at, over that third.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_zone_step import measure, median_ms  # noqa: E402

FULL_VISITORS = 1000
FULL_PACE_MS = 0.7
STEP_VISITORS = 50
FLOOR_VISITORS = 200


def visitors_for(pace_ms: float) -> int:
    """The strict run's visitors on a machine whose zone step takes `pace_ms` at the median."""
    if not pace_ms > 0:
        raise ValueError(f"a zone step takes some time, not {pace_ms} ms")
    if pace_ms <= FULL_PACE_MS:
        return FULL_VISITORS
    scaled = FULL_VISITORS * FULL_PACE_MS / pace_ms
    return max(FLOOR_VISITORS, int(scaled // STEP_VISITORS) * STEP_VISITORS)


def pace_ms() -> float:
    """bench/bench_zone_step.py's headline figure, measured as that bench measures it."""
    return median_ms(measure(say=lambda line: None).walking)


def main() -> None:
    pace = pace_ms()
    visitors = visitors_for(pace)
    why = (
        "the full load"
        if visitors == FULL_VISITORS
        else f"{FULL_VISITORS:,} × {FULL_PACE_MS} / {pace:.3f}, in steps of {STEP_VISITORS}"
    )
    print(
        f"zone step of 1,800 walking entities: {pace:.3f} ms at the median here"
        f" (full load at ≤ {FULL_PACE_MS} ms): {visitors:,} visitors, {why}",
        file=sys.stderr,
    )
    print(visitors)


if __name__ == "__main__":
    main()
