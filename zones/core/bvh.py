"""Bounding volume hierarchies over the market's entities: built, costed and refitted.

A tree over N entities has N leaves, one entity each, and N - 1 internal nodes. Its
leaves are numbered left to right and every internal node covers a contiguous run of
them (`first`..`last`); `order` says which entity sits at each leaf. A child reference
is an internal node's index (>= 0) or ``~k`` for leaf k (< 0). Every node's box is
entity-tight: the smallest box around the entities under it, not the curve cell they
fall in, so a query never visits a node for empty space that only the grid held.

**The linear build** (`build_linear`) sorts the entities by their Hilbert (or Morton)
code and builds the binary radix tree over the sorted codes: each pair of neighbouring
codes becomes the internal node that splits them, at the highest bit in which they
differ, and covers the longest run of codes sharing the bits above it. Ties (two
entities in one cell) are broken by the entity's index appended to the code, so all
keys differ. Every node's run is found at once (from the neighbouring splits when it is
short, with a binary search of the sorted keys when it is not), its parent by comparing
the two splits that bound its run (the parent is the lower of the two), and its box as
the minimum over its run of a sparse table of the sorted positions: the same numpy calls
whatever N is, and no loop over the tree's depth.

**The cost model** (`sah`). A query from a random point costs, on average, the
traversal cost C_TRAVERSE for each internal node it opens plus C_ENTITY for each
entity it tests, and it opens a node with a probability proportional to the node's
measure. The measure here is the sum of a box's extents (dx + dy + dz), which on the
market's flat crowds (dy = 0) is the half-perimeter of the box's floor: surface area
would be 2·dx·dz there and give nothing to a line of people through a gap, which a
query still has to open. For the product's radius queries (radius r around a point of
the floor) the chance to touch a box is proportional to dx·dz + 2r(dx + dz) + πr²; the
last term is the same for every node and every tree here has the same 2N - 1 nodes,
and for the boxes most nodes have, much smaller than r, the perimeter term dominates
the area term: the perimeter is what tells two trees apart. The cost is normalised by
the root's measure. Leaves hold one entity, a point, so their measure and the C_ENTITY
term are zero: the constants only scale the cost (C_TRAVERSE = C_ENTITY = 1, a box test
and an entity's distance test being the same few float operations on one row), and
ratios between trees do not depend on them.

**Split axes.** Every internal node logs the axis its split cuts (0 x, 1 y, 2 z; -1 for
two entities in one cell, which no axis separates). In a Morton tree it is the axis of
the split bit; in a Hilbert tree the axis in which the last cell before the split and the
first after it differ: the curve steps between face neighbours, and across the split it
must step through the plane between the two halves.
"""

import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from . import hilbert, morton
from .constants import MARKET_SIZE_M

__all__ = [
    "AXES",
    "C_ENTITY",
    "C_TRAVERSE",
    "BoxPlan",
    "Bvh",
    "axis_counts",
    "box_plan",
    "boxes",
    "build_linear",
    "check_positions",
    "measure",
    "range_bounds",
    "refit",
    "sah",
]

C_TRAVERSE: Final = 1.0
"""Cost of opening an internal node (testing a box), in units of an entity test."""

C_ENTITY: Final = 1.0
"""Cost of testing one entity against a query."""

AXES: Final = ("x", "y", "z")

MARKET_LO: Final = np.zeros(3)
MARKET_HI: Final = np.array(MARKET_SIZE_M)

_INDEX_BITS: Final = 32
_CURVE_TO_WORLD: Final = np.array([0, 2, 1], np.int8)
"""A cell's axes (a0, a1, a2) are the world's (x, z, y)."""

Curve = Literal["hilbert", "morton"]


@dataclass(frozen=True, eq=False)
class Bvh:
    """A tree over N entities (module docstring): N leaves, N - 1 internal nodes."""

    order: np.ndarray  # (N,) int64: the entity at each leaf, left to right
    left: np.ndarray  # (N-1,) int64: each internal node's left child (node, or ~leaf)
    right: np.ndarray  # (N-1,) int64: its right child
    first: np.ndarray  # (N-1,) int64: the first leaf under each internal node
    last: np.ndarray  # (N-1,) int64: the last leaf under it (inclusive)
    root: int  # an internal node, or ~0 when the tree holds one entity
    bounds: np.ndarray  # (2, N-1, 3) float32: each node's box, lo and then minus hi
    axis: np.ndarray  # (N-1,) int8: the axis each node's split cuts, -1 for none

    @property
    def size(self) -> int:
        """N, the number of entities (leaves)."""
        return int(self.order.size)

    @property
    def lo(self) -> np.ndarray:
        """(N-1, 3) float32 least corner of each internal node's box."""
        return self.bounds[0]

    @property
    def hi(self) -> np.ndarray:
        """(N-1, 3) float32 greatest corner of each internal node's box."""
        result: np.ndarray = -self.bounds[1]
        return result

    @cached_property
    def plan(self) -> "BoxPlan":
        """Where every box is read from (`boxes`): the same for every refit of the tree."""
        return box_plan(self.size, self.first, self.last)

    def digest(self) -> str:
        """SHA-256 of the topology, the leaves' order and the boxes: equal trees, equal digests."""
        h = hashlib.sha256()
        h.update(np.int64(self.root).tobytes())
        for array in (self.order, self.left, self.right, self.bounds, self.axis):
            h.update(np.ascontiguousarray(array).tobytes())
        return h.hexdigest()


def check_positions(positions: npt.NDArray[Any]) -> np.ndarray:
    """`positions` as (N, 3) float32, N >= 1, every value finite; else a ValueError naming why."""
    pos = np.asarray(positions)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError(f"positions must have shape (N, 3), got {pos.shape}")
    if pos.dtype.kind not in "fiu":
        raise ValueError(f"positions must be numeric, got {pos.dtype}")
    if pos.shape[0] == 0:
        raise ValueError("a tree needs at least one entity")
    if pos.shape[0] >= 1 << _INDEX_BITS:
        raise ValueError(f"a tree holds fewer than 2**{_INDEX_BITS} entities")
    pos = pos.astype(np.float32, copy=False)
    if not np.isfinite(pos.sum()):  # one pass in the common case; huge values overflow it
        bad = np.flatnonzero(~np.isfinite(pos).all(axis=1))
        if bad.size:
            row = int(bad[0])
            raise ValueError(f"positions must be finite: row {row} is {pos[row].tolist()}")
    return pos


def _ones_below(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """Each uint64 with every bit below its highest set bit set too."""
    out = x | (x >> np.uint64(1))
    shifted = np.empty_like(out)
    for shift in (2, 4, 8, 16, 32):
        np.right_shift(out, np.uint64(shift), out=shifted)
        np.bitwise_or(out, shifted, out=out)
    return out


def _short_runs(split: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which nodes' left runs hold one leaf, and which exactly two.

    A node's left run reaches back to just after the nearest higher split before it,
    or to the first leaf: one leaf when the split just before is higher, two when
    that one is lower and the one before it higher.
    """
    m = split.size
    one = np.empty(m, bool)
    one[0] = True
    np.greater(split[:-1], split[1:], out=one[1:])
    two = np.zeros(m, bool)
    if m > 1:
        two[1] = True
        np.greater(split[:-2], split[2:], out=two[2:])
    two &= ~one
    return one, two


_BLOCK_LEVEL: Final = 5
"""Runs up to 2**_BLOCK_LEVEL leaves long are read from the fine table alone."""


def _sparse_table(rows: np.ndarray, levels: int) -> np.ndarray:
    """(2, levels, N, 3) table: at level k, the minimum of each run of 2**k rows from there.

    `rows` is (2, N, 3): the positions and their negatives, so one minimum gives both
    corners of a box. Rows of level k past N - 2**k are left unset.
    """
    table = np.empty((2, levels, *rows.shape[1:]), rows.dtype)
    table[:, 0] = rows
    return _fill_levels(table)


def _fill_levels(table: np.ndarray) -> np.ndarray:
    """Levels 1 and up of a sparse table whose level 0 holds the rows."""
    levels, n = table.shape[1], table.shape[2]
    for k in range(1, levels):
        width = 1 << (k - 1)
        np.minimum(
            table[:, k - 1, : n - width], table[:, k - 1, width:], out=table[:, k, : n - width]
        )
    return table


def _runs_at(n: int, first: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where a sparse table over n rows, read flat, holds the two power-of-two runs whose
    minimum is that of each run of `length` rows from `first` (at most 2**_BLOCK_LEVEL)."""
    level = _LOG2.take(length)
    at = level * n + first
    return at, at + length - (1 << level)


_LOG2: Final = np.concatenate([[0], np.frexp(np.arange(1, (1 << _BLOCK_LEVEL) + 1))[1] - 1])
"""floor(log2(length)) of the runs a table serves: 1 .. 2**_BLOCK_LEVEL."""


@dataclass(frozen=True, eq=False)
class BoxPlan:
    """Where every node's box is read from the sparse tables of `boxes`.

    It depends on the runs alone, not on where the entities stand, so a tree computes it
    once and every refit only moves positions through it.
    """

    n: int  # leaves
    levels: int  # of the fine table: runs up to 2**(levels - 1) leaves
    fine: tuple[np.ndarray, np.ndarray]  # (M,) each: a node's two runs in the fine table
    long: np.ndarray  # (L,) the nodes longer than the fine table's top level
    ends: np.ndarray  # (L,) the top-level run ending at each one's last leaf
    middle: np.ndarray  # (K,) those of them with whole blocks inside (indices into long)
    coarse_levels: int  # of the coarse table over whole blocks
    coarse: tuple[np.ndarray, np.ndarray]  # (K,) each: the blocks' two runs in it


def box_plan(n: int, first: np.ndarray, last: np.ndarray) -> BoxPlan:
    """The plan of the boxes of the runs first..last over n leaves (`boxes`)."""
    levels = min(n.bit_length(), _BLOCK_LEVEL + 1)
    top = levels - 1
    span = 1 << top
    length = last - first + 1
    fine = _runs_at(n, first, np.minimum(length, span))
    long = np.flatnonzero(length > span)
    ends = top * n + last.take(long) - (span - 1)
    blocks_from = (first.take(long) + (span - 1)) >> top
    blocks = ((last.take(long) + 1) >> top) - blocks_from
    middle = np.flatnonzero(blocks > 0)
    whole = n >> top
    coarse_levels = max(whole.bit_length(), 1)
    count = blocks.take(middle)
    level = np.frexp(count)[1] - 1
    at = level * whole + blocks_from.take(middle)
    coarse = (at, at + count - (1 << level))
    return BoxPlan(n, levels, fine, long, ends, middle, coarse_levels, coarse)


def boxes(positions: np.ndarray, order: np.ndarray, plan: BoxPlan) -> np.ndarray:
    """(2, M, 3) float32 boxes (lo, then -hi) of the runs of leaves `plan` was made for.

    `positions` is (N, 3) float32 in entity order, `order` the entity at each leaf. The
    boxes are minima over a sparse table of the leaves' positions and their negatives
    (one minimum gives both corners), in two tiers so that the table stays small: runs
    of up to 2**_BLOCK_LEVEL leaves are read from a fine table, and longer ones from its
    top level at both ends plus a coarse table over whole blocks of 2**_BLOCK_LEVEL
    leaves for the middle.
    """
    n, levels = plan.n, plan.levels
    fine = np.empty((2, levels, n, 3), np.float32)
    positions.take(order, axis=0, out=fine[0, 0])
    np.negative(fine[0, 0], out=fine[1, 0])
    _fill_levels(fine)
    flat = fine.reshape(2, levels * n, 3)
    out = flat.take(plan.fine[0], axis=1)
    np.minimum(out, flat.take(plan.fine[1], axis=1), out=out)
    if plan.long.size == 0:
        return out
    ends = flat.take(plan.ends, axis=1)
    np.minimum(out.take(plan.long, axis=1), ends, out=ends)
    if plan.middle.size:
        top, span = levels - 1, 1 << (levels - 1)
        whole = fine[:, top, : (n >> top) << top : span]
        coarse = _sparse_table(whole, plan.coarse_levels).reshape(2, -1, 3)
        inner = coarse.take(plan.coarse[0], axis=1)
        np.minimum(inner, coarse.take(plan.coarse[1], axis=1), out=inner)
        np.minimum(inner, ends.take(plan.middle, axis=1), out=inner)
        ends[:, plan.middle] = inner
    out[:, plan.long] = ends
    return out


def range_bounds(
    positions: np.ndarray, order: np.ndarray, first: np.ndarray, last: np.ndarray
) -> np.ndarray:
    """(2, M, 3) float32 boxes (lo, then -hi) of the entities at leaves first..last
    (`boxes` through the plan of these runs)."""
    if first.size == 0:
        return np.zeros((2, 0, 3), np.float32)
    return boxes(positions, order, box_plan(order.size, first, last))


def _codes(
    curve: Curve, positions: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> npt.NDArray[np.uint32]:
    if curve == "hilbert":  # (the cached PositionEncoder is the faster for a handful only)
        return hilbert.encode_positions(positions, lo, hi)
    if curve == "morton":
        return morton.encode_positions(positions, lo, hi)
    raise ValueError(f"curve must be 'hilbert' or 'morton', got {curve!r}")


def _split_axes(curve: Curve, keys: np.ndarray, bit: np.ndarray) -> np.ndarray:
    """(N-1,) int8 axis of each split (module docstring); -1 inside one cell."""
    axes = np.full(bit.size, -1, np.int8)
    between = np.flatnonzero(bit >= _INDEX_BITS)
    if between.size == 0:
        return axes
    code_bit = bit[between] - _INDEX_BITS
    if curve == "morton":
        axes[between] = _CURVE_TO_WORLD[2 - code_bit % 3]
        return axes
    codes = (keys[between] >> np.uint64(_INDEX_BITS)).astype(np.int64)
    below = (np.int64(1) << code_bit) - 1
    before = (codes | below) & ~(np.int64(1) << code_bit)
    cells = hilbert.decode(np.concatenate([before, before + 1])).astype(np.int64)
    step = np.abs(cells[between.size :] - cells[: between.size])
    axes[between] = _CURVE_TO_WORLD[np.argmax(step, axis=1)]
    return axes


def build_linear(
    positions: npt.NDArray[Any],
    curve: Curve = "hilbert",
    lo: npt.ArrayLike = MARKET_LO,
    hi: npt.ArrayLike = MARKET_HI,
    *,
    axes: bool = True,
) -> Bvh:
    """The radix tree over the entities sorted along `curve` (module docstring).

    Positions outside `lo`..`hi` are clamped for the codes only; the boxes hold them
    where they are. `axes=False` leaves the split axes at -1 (they take a decode).
    """
    pos = check_positions(positions)
    lo_, hi_ = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    n = pos.shape[0]
    codes = _codes(curve, pos, lo_, hi_)
    keys = (codes.astype(np.uint64) << np.uint64(_INDEX_BITS)) | np.arange(n, dtype=np.uint64)
    keys.sort()
    order = (keys & np.uint64((1 << _INDEX_BITS) - 1)).astype(np.int64)
    if n == 1:
        empty = np.zeros(0, np.int64)
        return Bvh(
            order,
            empty,
            empty,
            empty,
            empty,
            ~0,
            np.zeros((2, 0, 3), np.float32),
            np.zeros(0, np.int8),
        )

    nodes = np.arange(n - 1, dtype=np.int64)
    split = keys[:-1] ^ keys[1:]  # larger: the two keys part at a higher bit
    span = _ones_below(split)  # the bits a node's keys may differ in
    prefix = keys[:-1] & ~span
    # A run of one or two leaves ends where the next split or the one after is higher:
    # three children in four are told so, and only the rest need a binary search.
    one, two = _short_runs(split[::-1])
    last = nodes + 1 + two[::-1]
    search = np.flatnonzero(~(one | two)[::-1])
    last[search] = np.searchsorted(keys, prefix.take(search) | span.take(search), "right") - 1
    one, two = _short_runs(split)
    first = nodes - two
    search = np.flatnonzero(~(one | two))
    first[search] = np.searchsorted(keys, prefix.take(search), "left")

    # The parent is the lower of the two splits bounding the run: the one before it
    # (then this node is its right child) or the one at its end (its left child).
    walls = np.empty(n + 1, np.uint64)
    walls[0] = walls[-1] = np.iinfo(np.uint64).max
    walls[1:-1] = split
    from_before = walls.take(first) < walls.take(last + 1)
    root = int(np.argmax(split))
    as_left = ~from_before
    as_left[root] = False
    # every child is a leaf unless an internal node claims the place
    left, right = ~nodes, -2 - nodes
    claims = np.flatnonzero(from_before)
    right[first.take(claims) - 1] = claims
    claims = np.flatnonzero(as_left)
    left[last.take(claims)] = claims

    plan = box_plan(n, first, last)
    bounds = boxes(pos, order, plan)
    if axes:
        axis = _split_axes(curve, keys, np.bitwise_count(span).astype(np.int64) - 1)
    else:
        axis = np.full(n - 1, -1, np.int8)
    tree = Bvh(order, left, right, first, last, root, bounds, axis)
    tree.__dict__["plan"] = plan  # made already: the refits take it from here
    return tree


def refit(tree: Bvh, positions: npt.NDArray[Any]) -> Bvh:
    """The same tree with every box recomputed for the entities' new `positions`."""
    pos = check_positions(positions)
    if pos.shape[0] != tree.size:
        raise ValueError(f"the tree holds {tree.size} entities, positions has {pos.shape[0]}")
    if tree.size == 1:
        return tree
    plan = tree.plan
    again = Bvh(
        tree.order,
        tree.left,
        tree.right,
        tree.first,
        tree.last,
        tree.root,
        boxes(pos, tree.order, plan),
        tree.axis,
    )
    again.__dict__["plan"] = plan  # the same runs: the same plan
    return again


def measure(bounds: np.ndarray) -> np.ndarray:
    """(M,) float64 measure of (2, M, 3) boxes: the sum of their extents (module docstring)."""
    wide = bounds.astype(np.float64)
    result: np.ndarray = -(wide[1].sum(axis=1) + wide[0].sum(axis=1))
    return result


def sah(tree: Bvh) -> float:
    """The tree's cost (module docstring): C_TRAVERSE × Σ internal measures / root's measure.

    A tree of one entity, or of entities all at one point, costs 0.
    """
    if tree.root < 0:
        return 0.0
    m = measure(tree.bounds)
    root = float(m[tree.root])
    if root <= 0.0:
        return 0.0
    return C_TRAVERSE * float(m.sum()) / root


def axis_counts(tree: Bvh) -> dict[str, int]:
    """How many internal nodes split on each axis, and on none ("-": one cell)."""
    counts = np.bincount(tree.axis.astype(np.int64) + 1, minlength=4)
    return {"-": int(counts[0]), **{name: int(c) for name, c in zip(AXES, counts[1:], strict=True)}}
