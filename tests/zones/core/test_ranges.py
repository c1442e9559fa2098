import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from zones.core import hilbert
from zones.core.constants import AOI_CELLS, CODE_SPACE, HILBERT_ORDER
from zones.core.ranges import (
    RangeMap,
    RangeMapError,
    adopt,
    column_booths,
    equal_ranges,
    floor_cells,
    floor_ranges,
)


@st.composite
def range_maps(draw, max_zones=32):
    n = draw(st.integers(1, max_zones))
    cuts = draw(
        st.lists(st.integers(1, CODE_SPACE - 1), min_size=n - 1, max_size=n - 1, unique=True)
    )
    return RangeMap(
        starts=np.array([0, *sorted(cuts)], dtype=np.int64), version=draw(st.integers(0, 10))
    )


@given(range_maps(), st.lists(st.integers(0, CODE_SPACE - 1), min_size=1, max_size=200))
def test_every_code_is_assigned_to_the_range_that_holds_it(ranges, codes):
    codes = np.array(codes, dtype=np.uint32)
    zones = ranges.assign(codes)
    lo, hi = ranges.starts[zones].astype(np.int64), ranges.ends[zones]
    assert np.all((zones >= 0) & (zones < ranges.n))
    assert np.all((lo <= codes) & (codes < hi))


def test_power_of_two_equal_ranges_are_the_prefix_spans():
    for d in range(6):
        ranges = equal_ranges(2**d)
        codes = np.random.default_rng(d).integers(0, CODE_SPACE, 10_000, dtype=np.uint32)
        assert np.array_equal(ranges.assign(codes), codes >> (30 - d))


@given(range_maps(), st.integers(0, 31))
def test_band_covers_its_range_and_is_at_most_five_widths(ranges, zone):
    zone %= ranges.n
    lo, hi = ranges.range_of(zone)
    band_lo, band_hi = ranges.band(zone)
    assert band_lo <= lo and hi <= band_hi
    assert band_hi - band_lo <= (1 + 2 * AOI_CELLS) * (hi - lo)
    assert band_lo >= 0 and band_hi <= CODE_SPACE


def test_band_neighbours_of_equal_zones_are_the_two_on_each_side():
    ranges = equal_ranges(16)
    assert ranges.band_neighbours(8).tolist() == [6, 7, 9, 10]
    assert ranges.band_neighbours(0).tolist() == [1, 2]


@pytest.mark.parametrize(
    "starts, message",
    [
        ([], "at least one"),
        ([1, 5], "start at 0"),
        ([0, 5, 5], "strictly increasing"),
        ([0, 9, 5], "strictly increasing"),
        ([0, CODE_SPACE], "outside the code space"),
        (list(range(33)), "MAX_ZONES"),
    ],
)
def test_malformed_maps_are_refused_with_a_reason(starts, message):
    with pytest.raises(RangeMapError, match=message):
        RangeMap(starts=np.array(starts, dtype=np.int64))


def test_gossip_adopts_only_newer_versions():
    old, new = equal_ranges(3, version=1), floor_ranges(3, version=2)
    assert adopt(old, new) is new
    assert adopt(new, old) is new
    assert adopt(new, floor_ranges(4, version=2)) is new


def test_gossip_with_huge_or_negative_starts_is_refused_not_wrapped():
    for starts in ([0, 2**62, -(2**63)], [0, 2**70], [0, -5]):
        with pytest.raises(RangeMapError, match="outside the code space"):
            RangeMap.from_wire({"version": 1, "starts": starts})
    with pytest.raises(RangeMapError, match="outside the code space"):
        RangeMap(starts=np.array([0, 2**62, -(2**63)], dtype=np.int64))


def test_malformed_gossip_never_replaces_a_map():
    with pytest.raises(RangeMapError):
        RangeMap.from_wire({"version": 9, "starts": [0, 7, 3]})
    with pytest.raises(RangeMapError, match="malformed"):
        RangeMap.from_wire({"version": "x"})
    ranges = floor_ranges(5, version=4)
    assert RangeMap.from_wire(ranges.to_wire()) == ranges


def _floor_owner_grid(ranges, height_cells):
    """Zone of every floor column, sampled at the feet and the top of the band."""
    side = 1 << HILBERT_ORDER
    xs, zs = np.meshgrid(np.arange(0, side, 8), np.arange(0, side, 8), indexing="ij")
    grids = []
    for y in (0, height_cells - 1):
        cells = np.column_stack([xs.ravel(), zs.ravel(), np.full(xs.size, y)])
        grids.append(ranges.assign(hilbert.encode(cells)).reshape(xs.shape))
    return grids


@pytest.mark.parametrize("n", [3, 8, 32])
def test_floor_booths_own_whole_columns_and_equal_areas(n):
    height = floor_cells()
    ranges = floor_ranges(n)
    feet, head = _floor_owner_grid(ranges, height)
    assert np.array_equal(feet, head), "a column is split between booths by height"
    areas = np.bincount(feet.ravel(), minlength=n)
    # Equal for powers of two; otherwise the curve's quadrant order bounds how
    # even connected booths can be (3 booths: 64/107/85 of 256 columns).
    assert areas.min() > 0 and areas.max() <= 1.7 * areas.min()


@pytest.mark.parametrize("n", [3, 8, 32])
def test_floor_booths_are_connected_regions(n):
    feet, _ = _floor_owner_grid(floor_ranges(n), floor_cells())
    for zone in range(n):
        mask = feet == zone
        seen = np.zeros_like(mask)
        stack = [tuple(np.argwhere(mask)[0])]
        while stack:
            x, z = stack.pop()
            if seen[x, z]:
                continue
            seen[x, z] = True
            for dx, dz in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                a, b = x + dx, z + dz
                if (
                    0 <= a < mask.shape[0]
                    and 0 <= b < mask.shape[1]
                    and mask[a, b]
                    and not seen[a, b]
                ):
                    stack.append((a, b))
        assert seen.sum() == mask.sum(), (
            f"booth {zone} is in {mask.sum() - seen.sum()} cells cut off from the rest"
        )


def test_positions_are_assigned_through_their_codes_and_clamped_to_the_market():
    ranges = equal_ranges(2)  # the first split of the code line is on x
    lo, hi = np.zeros(3), np.array([128.0, 64.0, 128.0])
    positions = np.array([[10, 1, 10], [100, 1, 10], [-50, 1, 10], [500, 1, 10]], np.float32)
    assert ranges.assign_positions(positions, lo, hi).tolist() == [0, 1, 0, 1]


@pytest.mark.parametrize("booths", [1, 3, 7, 32])
def test_the_map_from_above_gives_every_floor_column_the_zone_that_owns_it(booths):
    ranges = floor_ranges(booths)
    grid = column_booths(ranges)
    assert grid.shape == (16, 16)
    assert sorted(np.unique(grid).tolist()) == list(range(booths))
    # any floor point lies in the zone its column says, whatever its height
    rng = np.random.default_rng(booths)
    points = rng.uniform((0, 0, 0), (128, 4, 128), size=(500, 3))
    columns = np.floor(points[:, [0, 2]] / 8).astype(int)
    expected = grid[columns[:, 0], columns[:, 1]]
    lo, hi = np.zeros(3), np.array((128.0, 64.0, 128.0))
    assert ranges.assign_positions(points, lo, hi).tolist() == expected.tolist()
