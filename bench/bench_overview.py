"""Cost of the operators' overview frame, against a JSON feed of the same dots.

    python bench/bench_overview.py [--entities 1300,2300,56000] [--repeats 15]

A web process builds one overview frame (zones/core/overview.py) every 100 ms from
the zone rows its gateway has already merged, and sends the same bytes to every
operator. The baseline is what a plain JSON feed of the same dots would cost: one
dict per entity, dumped once. Both are timed in this process on the same rows
(1 in 8 migrating, visitors and NPCs half and half); the median of the repeats is
reported with the frame's size and the bandwidth per operator at 10 Hz.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import machine_info  # noqa: E402
from zones.core.interest import resolve_authority  # noqa: E402
from zones.core.overview import overview_encode, overview_rows  # noqa: E402
from zones.core.wire import ROW_DTYPE, RowFlag  # noqa: E402

OVERVIEW_HZ = 10


def market_rows(entities: int, rng: np.random.Generator) -> np.ndarray:
    rows = np.zeros(entities, ROW_DTYPE)
    rows["id"] = np.arange(entities, dtype=np.uint64) + 1
    rows["pos"] = rng.uniform((0, 0.5, 0), (128, 1.5, 128), size=(entities, 3))
    kinds = np.where(rng.random(entities) < 0.5, RowFlag.VISITOR_ROOT, RowFlag.NPC)
    rows["flags"] = RowFlag.AUTHORITATIVE | kinds
    rows["zone"] = rng.integers(0, 32, entities)
    moving = rng.random(entities) < 1 / 8
    rows["flags"][moving] |= RowFlag.STAGING
    incoming = rows[moving].copy()
    incoming["flags"] = RowFlag.GHOST | RowFlag.INCOMING | (incoming["flags"] & 0xFF00)
    incoming["zone"] = (incoming["zone"] + 1) % 32
    return np.concatenate([rows, incoming])


def median_ms(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", default="1300,2300,56000")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    machine_info()
    rng = np.random.default_rng(6)
    print(
        f"{'entities':>9} {'frame ms':>9} {'JSON ms':>8} {'ratio':>6} {'frame KiB':>10}"
        f" {'JSON KiB':>9} {'kbit/s per operator':>20}"
    )
    for entities in (int(n) for n in args.entities.split(",")):
        raw = market_rows(entities, rng)
        view = resolve_authority(raw)

        def frame(raw: np.ndarray = raw, view: np.ndarray = view) -> bytes:
            return overview_encode(overview_rows(raw, view), 1)

        def as_json(raw: np.ndarray = raw, view: np.ndarray = view) -> bytes:
            shown = overview_rows(raw, view)
            dots = [
                {
                    "id": int(r["id"]),
                    "x": float(r["pos_cm"][0]) / 100,
                    "y": float(r["pos_cm"][1]) / 100,
                    "z": float(r["pos_cm"][2]) / 100,
                    "kind": int(r["kind"]),
                    "zone": int(r["zone"]),
                    "to": int(r["to"]),
                }
                for r in shown
            ]
            return json.dumps({"tick_ms": 1, "dots": dots}).encode()

        frame_ms, json_ms = median_ms(frame, args.repeats), median_ms(as_json, args.repeats)
        size, json_size = len(frame()), len(as_json())
        print(
            f"{entities:>9} {frame_ms:>9.3f} {json_ms:>8.2f} {json_ms / frame_ms:>5.0f}x"
            f" {size / 1024:>10.1f} {json_size / 1024:>9.1f}"
            f" {size * 8 * OVERVIEW_HZ / 1000:>20.0f}"
        )


if __name__ == "__main__":
    main()
