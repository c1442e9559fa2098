"""Range maps: which zone owns which part of the Hilbert code line.

A range map is a sorted list of disjoint half-open ranges covering
[0, CODE_SPACE); zone i owns range i. It is stored as the array of range starts
(`starts[0] == 0`, strictly increasing); range i is [starts[i], starts[i+1]) and
the last range ends at CODE_SPACE. Maps carry a version and spread by gossip: a
zone adopts a received map only if it is newer, and every map is validated when
it is built, so an adopted map is always disjoint and covering.

Range i belongs to zone `owners[i]`; by default zone i owns range i. A split or a
merge (repartition.py) changes the ranges without renaming the zones that keep
theirs, so `owners` is how a map names a zone that is not at its range's index.
"""

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import hilbert
from .constants import (
    AOI_CELLS,
    CODE_SPACE,
    FLOOR_HEIGHT_M,
    HILBERT_ORDER,
    MARKET_SIZE_M,
    MAX_ZONES,
)
from .ops import NUMPY, Ops


class RangeMapError(ValueError):
    """A range map that is not sorted, disjoint and covering."""


@dataclass(frozen=True, eq=False)
class RangeMap:
    """Contiguous ranges of the code line, one per zone, with a gossip version."""

    starts: np.ndarray = field(repr=False)
    version: int = 0
    owners: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        starts = np.asarray(self.starts)
        if starts.ndim != 1 or starts.size == 0:
            raise RangeMapError("a range map needs a 1-D array of at least one range start")
        if starts.size > MAX_ZONES:
            raise RangeMapError(f"{starts.size} ranges exceed MAX_ZONES={MAX_ZONES}")
        if not np.issubdtype(starts.dtype, np.integer):
            raise RangeMapError(f"range starts must be integers, got {starts.dtype}")
        outside = [int(v) for v in starts if not 0 <= int(v) < CODE_SPACE]
        if outside:  # checked first: differences of huge values would wrap in int64
            raise RangeMapError(
                f"range start {outside[0]} is outside the code space [0, {CODE_SPACE})"
            )
        if int(starts[0]) != 0:
            raise RangeMapError(f"the first range must start at 0, not {int(starts[0])}")
        if np.any(np.diff(starts.astype(np.int64)) <= 0):
            raise RangeMapError(
                "range starts must be strictly increasing (no empty or overlapping range)"
            )
        if self.version < 0:
            raise RangeMapError("a range map version cannot be negative")
        frozen = starts.astype(np.uint32)
        frozen.setflags(write=False)
        object.__setattr__(self, "starts", frozen)
        owners = _checked_owners(self.owners, starts.size)
        object.__setattr__(self, "owners", owners)
        # asked on every assign: worked out once, the map being immutable
        object.__setattr__(self, "_by_index", bool(np.array_equal(owners, np.arange(owners.size))))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RangeMap):
            return NotImplemented
        return (
            self.version == other.version
            and np.array_equal(self.starts, other.starts)
            and np.array_equal(self.zone_of_range, other.zone_of_range)
        )

    def __hash__(self) -> int:
        return hash((self.version, self.starts.tobytes(), self.zone_of_range.tobytes()))

    @property
    def zone_of_range(self) -> np.ndarray:
        """(n,) int16: the zone owning each range, in code order."""
        assert self.owners is not None  # set by __post_init__
        return self.owners

    @property
    def zones(self) -> np.ndarray:
        """(n,) int16: the zones of this map, ascending."""
        return np.sort(self.zone_of_range)

    @property
    def named_by_index(self) -> bool:
        """Whether zone i owns range i for every i (the layout every map starts from)."""
        by_index: bool = self.__dict__["_by_index"]
        return by_index

    def index_of(self, zone: int) -> int:
        """Position in code order of the range `zone` owns."""
        found = np.flatnonzero(self.zone_of_range == zone)
        if found.size == 0:
            raise IndexError(f"zone {zone} is not in this map of {self.n} zones")
        return int(found[0])

    @property
    def n(self) -> int:
        """Number of zones."""
        return int(self.starts.size)

    @property
    def ends(self) -> np.ndarray:
        """Exclusive end of every range, as int64."""
        return np.append(self.starts[1:].astype(np.int64), CODE_SPACE)

    def range_of(self, zone: int) -> tuple[int, int]:
        """[lo, hi) owned by `zone`."""
        i = self.index_of(zone)
        return int(self.starts[i]), int(self.ends[i])

    def assign(self, codes: np.ndarray) -> np.ndarray:
        """Zone owning each code (int16), by binary search over the starts."""
        index = np.searchsorted(self.starts, codes, side="right") - 1
        if self.named_by_index:
            return index.astype(np.int16)
        return self.zone_of_range[index]

    def assign_positions(self, positions: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Zone index owning each world position (metres, x y z) in a market of bounds lo..hi."""
        return self.assign(hilbert.encode_positions(positions, lo, hi))

    def band(self, zone: int, aoi: int = AOI_CELLS) -> tuple[int, int]:
        """The interest band of `zone`: its range widened by `aoi` own widths each side."""
        lo, hi = self.range_of(zone)
        band_lo, band_hi = interest_band(lo, hi, aoi=aoi)
        return int(band_lo), int(band_hi)

    def band_neighbours(self, zone: int, aoi: int = AOI_CELLS) -> np.ndarray:
        """Other zones whose ranges overlap the interest band of `zone`."""
        band_lo, band_hi = self.band(zone, aoi)
        overlaps = (self.starts.astype(np.int64) < band_hi) & (self.ends > band_lo)
        overlaps[self.index_of(zone)] = False
        return np.sort(self.zone_of_range[overlaps]).astype(np.int64)

    def to_wire(self) -> dict[str, Any]:
        """Plain data for gossip; `owners` only when some zone is not at its range's index."""
        wire: dict[str, Any] = {"version": self.version, "starts": [int(s) for s in self.starts]}
        if not self.named_by_index:
            wire["owners"] = [int(z) for z in self.zone_of_range]
        return wire

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> "RangeMap":
        """Rebuild a gossiped map, refusing anything malformed."""
        try:
            version = int(data["version"])
            values = [int(s) for s in data["starts"]]
            if any(not 0 <= v < CODE_SPACE for v in values):
                raise RangeMapError(
                    f"range start outside the code space [0, {CODE_SPACE}) in gossip"
                )
            starts = np.array(values, dtype=np.int64)
            owners = None
            if "owners" in data:
                owners = np.array([int(z) for z in data["owners"]], dtype=np.int64)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            if isinstance(exc, RangeMapError):
                raise
            raise RangeMapError(f"malformed range map gossip: {exc}") from exc
        return cls(starts=starts, version=version, owners=owners)


def _checked_owners(owners: np.ndarray | None, n: int) -> np.ndarray:
    """The zone of each range as a read-only int16 array, refusing a malformed list."""
    if owners is None:
        frozen = np.arange(n, dtype=np.int16)
    else:
        given = np.asarray(owners)
        if given.shape != (n,):
            raise RangeMapError(f"a map of {n} ranges needs {n} owners, got shape {given.shape}")
        if not np.issubdtype(given.dtype, np.integer):
            raise RangeMapError(f"range owners must be integers, got {given.dtype}")
        outside = [int(z) for z in given if not 0 <= int(z) < MAX_ZONES]
        if outside:
            raise RangeMapError(f"owner zone {outside[0]} is outside 0..{MAX_ZONES - 1}")
        if np.unique(given).size != n:
            raise RangeMapError("a zone owns at most one range: owners must be distinct")
        frozen = given.astype(np.int16)
    frozen.setflags(write=False)
    return frozen


def interest_band(
    lo: Any, hi: Any, *, aoi: int = AOI_CELLS, space: int = CODE_SPACE, ops: Ops = NUMPY
) -> tuple[Any, Any]:
    """[lo, hi) widened by `aoi` widths on each side, clipped to the code space.

    Written against `ops` so the SMT proof checks this exact arithmetic.
    """
    width = hi - lo
    return ops.maximum(0, lo - aoi * width), ops.minimum(space, hi + aoi * width)


def adopt(current: RangeMap, received: RangeMap) -> RangeMap:
    """Gossip rule: the newer map wins; equal or older versions change nothing."""
    return received if received.version > current.version else current


def equal_ranges(n: int, version: int = 0) -> RangeMap:
    """n ranges of (nearly) equal width; for n = 2^d exactly the prefix spans."""
    if not 1 <= n <= MAX_ZONES:
        raise RangeMapError(f"zone count must be 1..{MAX_ZONES}, got {n}")
    starts = (np.arange(n, dtype=np.int64) * CODE_SPACE) // n
    return RangeMap(starts=starts, version=version)


def floor_cells(
    size_m: tuple[float, float, float] = MARKET_SIZE_M, floor_height_m: float = FLOOR_HEIGHT_M
) -> int:
    """How many y-cells the walkable band spans in a market of this size."""
    return max(1, math.ceil(floor_height_m / size_m[1] * (1 << HILBERT_ORDER)))


def _column_shape(floor_height_cells: int) -> tuple[int, int]:
    """(k, side): floor columns are cubes of 2^k cells, 2^side of them along x and z."""
    k = max(0, math.ceil(math.log2(floor_height_cells)))
    side = HILBERT_ORDER - k
    if side < 1:
        raise RangeMapError(
            f"a walkable band of {floor_height_cells} cells leaves no floor to split"
        )
    return k, side


def column_booths(
    ranges: RangeMap,
    size_m: tuple[float, float, float] = MARKET_SIZE_M,
    floor_height_cells: int = floor_cells(),
) -> np.ndarray:
    """(side, side) zone index of every floor column, indexed [x column, z column].

    The map of the booths as seen from above: every column of a floor-cut layout
    belongs to exactly one zone, whatever the height.
    """
    _, side = _column_shape(floor_height_cells)
    count = 1 << side
    width_x, width_z = size_m[0] / count, size_m[2] / count
    xs = (np.arange(count) + 0.5) * width_x
    zs = (np.arange(count) + 0.5) * width_z
    grid = np.stack(np.meshgrid(xs, zs, indexing="ij"), -1).reshape(-1, 2)
    height = floor_height_cells * size_m[1] / (1 << HILBERT_ORDER) / 2
    points = np.column_stack([grid[:, 0], np.full(len(grid), height), grid[:, 1]])
    lo, hi = np.zeros(3), np.array(size_m, dtype=np.float64)
    return ranges.assign_positions(points, lo, hi).reshape(count, count)


@functools.cache
def floor_ranges(n: int, floor_height_cells: int = floor_cells(), version: int = 0) -> RangeMap:
    """The default booth layout: n ranges splitting the market floor into compact booths.

    The floor is cut into columns: cubes of side 2^k cells with 2^k at least the
    walkable height, so a column holds everything a visitor can occupy at that
    spot. Every such cube is a contiguous run of the code line (the Hilbert prefix
    property), so cutting the line only at column starts keeps booths whole
    columns. The floor columns, sorted along the curve, are dealt out in n
    consecutive shares of nearly equal area. The curve leaves the floor layer and
    comes back elsewhere, so an exactly equal share can fall in two pieces: the
    cuts are chosen, among those leaving every booth one connected region, to
    stay as close to equal areas as possible.
    """
    if not 1 <= n <= MAX_ZONES:
        raise RangeMapError(f"zone count must be 1..{MAX_ZONES}, got {n}")
    k, side = _column_shape(floor_height_cells)
    grid = np.stack(
        np.meshgrid(np.arange(1 << side), np.arange(1 << side), indexing="ij"), -1
    ).reshape(-1, 2)
    if grid.shape[0] < n:
        raise RangeMapError(f"{grid.shape[0]} floor columns cannot make {n} booths")
    cells = np.column_stack([grid, np.zeros(len(grid), dtype=np.int64)])
    codes = hilbert.encode(cells, order=side).astype(np.int64)
    order = np.argsort(codes)
    columns, column_codes = grid[order], codes[order] << (3 * k)
    cuts = _connected_cuts(columns, n, 1 << side)
    starts = np.concatenate([[0], column_codes[cuts]])
    return RangeMap(starts=starts, version=version)


def _connected_cuts(columns: np.ndarray, n: int, side: int) -> list[int]:
    """Cut positions in the curve-ordered column list: every booth one connected
    region, and among such cuts those whose largest deviation from an equal
    share is smallest (dynamic programming over cut positions)."""
    total = len(columns)
    ideal = total / n
    longest = min(total, max(2, int(ideal * 2)))
    connected = _connected_intervals(columns, side, longest)
    inf = float("inf")
    # worst[i][p]: the best achievable largest deviation for booths 0..i-1 covering columns[:p]
    worst = [[inf] * (total + 1) for _ in range(n + 1)]
    back = [[-1] * (total + 1) for _ in range(n + 1)]
    worst[0][0] = 0.0
    for i in range(1, n + 1):
        for p in range(i, total - (n - i) + 1):
            for a in range(max(i - 1, p - longest), p):
                if worst[i - 1][a] == inf or not connected[a][p - a - 1]:
                    continue
                cost = max(worst[i - 1][a], abs(p - a - ideal))
                if cost < worst[i][p]:
                    worst[i][p], back[i][p] = cost, a
    if worst[n][total] == inf:
        return [(i * total) // n for i in range(1, n)]  # no connected split: equal shares
    cuts, p = [], total
    for i in range(n, 0, -1):
        p = back[i][p]
        cuts.append(p)
    return sorted(cuts)[1:]


def _connected_intervals(columns: np.ndarray, side: int, longest: int) -> list[list[bool]]:
    """connected[a][m]: whether columns[a : a+m+1] form one 4-connected region.

    Grown one column at a time from each start with a union-find, so every
    interval up to `longest` columns is answered in near-linear time.
    """
    position = {(int(x), int(z)): i for i, (x, z) in enumerate(columns)}
    result = []
    for a in range(len(columns)):
        parent: dict[int, int] = {}
        components = 0
        row = []
        for b in range(a, min(len(columns), a + longest)):
            parent[b] = b
            components += 1
            x, z = int(columns[b, 0]), int(columns[b, 1])
            for nx, nz in ((x + 1, z), (x - 1, z), (x, z + 1), (x, z - 1)):
                other = position.get((nx, nz))
                if other is not None and other in parent:
                    ra, rb = _root(parent, b), _root(parent, other)
                    if ra != rb:
                        parent[ra] = rb
                        components -= 1
            row.append(components == 1)
        result.append(row)
    return result


def _root(parent: dict[int, int], i: int) -> int:
    """Union-find root of `i`, halving the path on the way."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i
