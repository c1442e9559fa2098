"""What NPC needs, items and claims add to a zone step of 1,800 entities.

    python bench/bench_npcs.py                  measure (about 20 s)
    python bench/bench_npcs.py --ticks 2000     a longer measurement

One zone over the whole default market (`floor_ranges(1)`) with its booth items
(`booth_items`, six of them) holds 1,800 entities, spawned at random on the floor and
stepped --warmup ticks first so that actions, walks and claims are spread out. Then,
interleaved tick by tick so a shared machine's load falls on every figure alike:

* baseline: `step` of a zone holding the same 1,800 entities as visitor roots (no NPC
  bit: the NPC stage finds nobody to live), each given a walking velocity;
* npcs: `step` with all 1,800 as NPCs living on the built-in utility decision;
* delegated: the same NPCs, their due decisions going out as requests (no answers:
  each lease lapses after 5 s and the utility decision is applied then);
* stage: `npc.tick` alone on a copy of the NPC zone's state.

perf_counter_ns around each call; medians are the figures to quote. Each line gives
the median, the 95th percentile and the ratio to the baseline's median, and the
extra cost (median minus the baseline's median) against the 0.2 ms budget.
"""

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import gc  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zones.core import npc  # noqa: E402
from zones.core.constants import MARKET_SIZE_M, TICK_MS, ZONE_CAPACITY  # noqa: E402
from zones.core.items import booth_items  # noqa: E402
from zones.core.ranges import floor_ranges  # noqa: E402
from zones.core.state import ZoneParams, ZoneState  # noqa: E402
from zones.core.step import StepInputs, step  # noqa: E402
from zones.core.wire import SPAWN_DTYPE, RowFlag  # noqa: E402

T0 = 1_800_000_000_000
BUDGET_MS = 0.2


def zone(kind: int, entities: int, seed: int) -> tuple[ZoneState, ZoneParams]:
    ranges = floor_ranges(1)
    lo, hi = np.zeros(3, np.float32), np.array(MARKET_SIZE_M, np.float32)
    params = ZoneParams(
        zone=0,
        capacity=ZONE_CAPACITY,
        spawn_cap=ZONE_CAPACITY,
        items=booth_items(ranges, 0, lo, hi),
    )
    rng = np.random.default_rng(seed)
    rows = np.zeros(entities, SPAWN_DTYPE)
    rows["id"] = np.arange(1, entities + 1)
    rows["pos"] = rng.uniform((1, 1, 1), (127, 1, 127), size=(entities, 3))
    if kind != RowFlag.NPC:
        angle = rng.uniform(0, 2 * np.pi, entities)
        rows["vel"][:, 0], rows["vel"][:, 2] = 1.4 * np.cos(angle), 1.4 * np.sin(angle)
    rows["kind"] = kind
    state = ZoneState.empty(0, ranges, ZONE_CAPACITY)
    state, _ = step(state, StepInputs(now_ms=T0, spawns=rows), params)
    return state, params


def summary(name: str, ns: list[int], base_ms: float | None) -> str:
    ms = np.array(ns) / 1e6
    median, p95 = float(np.median(ms)), float(np.percentile(ms, 95))
    line = f"{name:<10} median {median:7.3f} ms  p95 {p95:7.3f} ms"
    if base_ms is not None:
        extra = median - base_ms
        line += f"  ratio {median / base_ms:5.2f}  extra {extra:+.3f} ms"
        line += f" ({'within' if extra <= BUDGET_MS else 'over'} the {BUDGET_MS} ms budget)"
    return line


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entities", type=int, default=ZONE_CAPACITY)
    parser.add_argument("--ticks", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=400)
    args = parser.parse_args(argv)

    base, base_params = zone(RowFlag.VISITOR_ROOT, args.entities, 1)
    npcs, params = zone(RowFlag.NPC, args.entities, 1)
    delegated = npcs.copy()
    for t in range(1, args.warmup + 1):
        now = T0 + TICK_MS * t
        npcs, _ = step(npcs, StepInputs(now_ms=now), params)
        delegated, _ = step(delegated, StepInputs(now_ms=now, delegate=True), params)
        base, _ = step(base, StepInputs(now_ms=now), base_params)
    timings: dict[str, list[int]] = {"baseline": [], "npcs": [], "delegated": [], "stage": []}
    decided = requests = 0
    gc.collect()
    gc.disable()
    try:
        for t in range(args.warmup + 1, args.warmup + args.ticks + 1):
            now = T0 + TICK_MS * t
            start = time.perf_counter_ns()
            base, _ = step(base, StepInputs(now_ms=now), base_params)
            timings["baseline"].append(time.perf_counter_ns() - start)
            start = time.perf_counter_ns()
            npcs, out = step(npcs, StepInputs(now_ms=now), params)
            timings["npcs"].append(time.perf_counter_ns() - start)
            decided += out.npcs.decided
            start = time.perf_counter_ns()
            delegated, out = step(delegated, StepInputs(now_ms=now, delegate=True), params)
            timings["delegated"].append(time.perf_counter_ns() - start)
            requests += out.npcs.requests.size
            scratch = npcs.copy()
            empty_answers = StepInputs(now_ms=now).answers
            start = time.perf_counter_ns()
            npc.tick(scratch, params, empty_answers, False)
            timings["stage"].append(time.perf_counter_ns() - start)
    finally:
        gc.enable()
    base_ms = float(np.median(np.array(timings["baseline"]) / 1e6))
    print(f"{args.entities} entities, {params.items.size} items, {args.ticks} ticks")
    print(summary("baseline", timings["baseline"], None))
    for name in ("npcs", "delegated"):
        print(summary(name, timings[name], base_ms))
    stage = np.array(timings["stage"]) / 1e6
    print(
        f"{'stage':<10} median {np.median(stage):7.3f} ms  p95 {np.percentile(stage, 95):7.3f} ms"
    )
    print(f"utility decisions per tick {decided / args.ticks:.1f}")
    print(f"decision requests per tick {requests / args.ticks:.1f}")


if __name__ == "__main__":
    main()
