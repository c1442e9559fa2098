"""A zone keeps what its band neighbours publish near it as ghosts, within its ghost slots."""

import numpy as np

from zones.core.constants import MARKET_SIZE_M
from zones.core.hilbert import encode_positions
from zones.core.interest import ghost_rows
from zones.core.ranges import floor_ranges
from zones.core.wire import ROW_DTYPE

LO, HI = np.zeros(3, np.float32), np.array(MARKET_SIZE_M, np.float32)


def rows_at(points):
    rows = np.zeros(len(points), ROW_DTYPE)
    rows["id"] = np.arange(1, len(points) + 1)
    rows["pos"] = points
    return rows


def test_only_rows_inside_the_band_are_kept():
    ranges = floor_ranges(8)
    rng = np.random.default_rng(3)
    points = rng.uniform(LO, HI, size=(2000, 3)).astype(np.float32)
    rows = rows_at(points)
    kept = ghost_rows(rows, ranges, 3, LO, HI, capacity=10_000)
    codes = encode_positions(rows["pos"], LO, HI).astype(np.int64)
    band_lo, band_hi = ranges.band(3)
    inside = (codes >= band_lo) & (codes < band_hi)
    assert 0 < kept.size < rows.size
    assert sorted(kept["id"].tolist()) == sorted(rows["id"][inside].tolist())


def test_over_capacity_the_rows_nearest_the_zones_range_are_kept():
    ranges = floor_ranges(8)
    rng = np.random.default_rng(4)
    rows = rows_at(rng.uniform(LO, HI, size=(4000, 3)).astype(np.float32))
    everything = ghost_rows(rows, ranges, 3, LO, HI, capacity=10_000)
    capped = ghost_rows(rows, ranges, 3, LO, HI, capacity=50)
    assert capped.size == 50 < everything.size

    def distance(r):
        codes = encode_positions(r["pos"], LO, HI).astype(np.int64)
        own_lo, own_hi = ranges.range_of(3)
        return np.maximum(own_lo - codes, codes - (own_hi - 1)).clip(min=0)

    # nothing left out is nearer than anything kept
    left_out = everything[~np.isin(everything["id"], capped["id"])]
    assert distance(capped).max() <= distance(left_out).min()


def test_no_rows_no_ghosts():
    assert ghost_rows(np.zeros(0, ROW_DTYPE), floor_ranges(3), 0, LO, HI).size == 0
