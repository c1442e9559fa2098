"""Treelet restructuring: lowering a tree's cost by rebuilding small pieces of it optimally.

A treelet is a node and some of its descendants, cut off at up to MAX_LEAVES treelet
leaves, each of which is an entity or a whole subtree that stays as it is. It grows from
its root's two children by opening, again and again, the treelet leaf with the largest
measure that is an internal node (the one most worth rearranging), as in Karras and Aila
("Fast parallel construction of high-quality bounding volume hierarchies", 2013). Its
internal nodes are then rearranged into the topology over its leaves that costs least:
only the boxes of the treelet's own internal nodes change, so that topology minimises
the sum of their measures, and it is found by dynamic programming over the 2**7 subsets
of the leaves (the cheapest tree over a subset is the cheapest split of it into two
subsets, each built cheapest). A treelet whose best topology is cheaper than the one it
has is rebuilt with the same node indices; the others are left alone, so no step raises
the cost (zones/core/bvh.py defines it).

One pass makes every internal node a treelet root once, deepest first. All roots of one
depth are handled together: none is an ancestor of another, so their treelets are
disjoint, and a treelet only rearranges nodes deeper than its root, which have had their
turn. The optimised tree is laid out again (leaves numbered left to right, every node
covering a run of them) so that it refits and queries like any other. A node the
optimiser rebuilt logs, as its split axis, the axis along which its two children lie
farthest apart (the least overlap when they overlap), among the axes the node extends
along; the others keep the builder's.
"""

from dataclasses import dataclass
from functools import cache
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from .bvh import C_TRAVERSE, Bvh, check_positions, range_bounds, sah

__all__ = ["MAX_LEAVES", "Optimised", "optimise"]

MAX_LEAVES: Final = 7
_SUBSETS: Final = 1 << MAX_LEAVES
_IMPROVEMENT: Final = 1e-9
"""A treelet is rebuilt only when that saves more than this share of its cost: the same
sum added in another order may differ in its last bits."""


@dataclass(frozen=True, eq=False)
class Optimised:
    """The optimised tree, its cost before and after each pass, and how many treelets changed."""

    tree: Bvh
    costs: list[float]  # costs[0] before the first pass, costs[k] after pass k
    rebuilt: list[int]  # treelets rebuilt in each pass

    @property
    def converged(self) -> bool:
        """Whether the last pass run found nothing to improve."""
        return bool(self.rebuilt) and self.rebuilt[-1] == 0


@cache
def _partitions() -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Popcounts of all subsets, and per size k >= 2: the subsets and their splits.

    A subset S of size k splits into (P, S ^ P) for the 2**(k-1) - 1 subsets P that hold
    S's lowest member and are not S itself (each unordered split once).
    """
    popcount = np.array([bin(s).count("1") for s in range(_SUBSETS)], np.int64)
    by_size = []
    for k in range(2, MAX_LEAVES + 1):
        sets = np.flatnonzero(popcount == k)
        splits = []
        for s in sets.tolist():
            low = s & -s
            rest = s ^ low
            parts, sub = [], rest
            while True:  # every subset of the rest, with the lowest member added
                if sub != rest:
                    parts.append(low | sub)
                if sub == 0:
                    break
                sub = (sub - 1) & rest
            splits.append(sorted(parts))
        by_size.append((sets, np.array(splits, np.int64)))
    return popcount, by_size


@cache
def _lowest_member() -> np.ndarray:
    """Index of the lowest member of each subset (0 for the empty one)."""
    s = np.arange(_SUBSETS)
    return np.where(s > 0, np.log2(np.maximum(s & -s, 1)).astype(np.int64), 0)


class _Work:
    """The tree being optimised, with leaves and internal nodes numbered together.

    Internal node i is i; leaf k of the input tree is N - 1 + k. Boxes are float64.
    """

    def __init__(self, tree: Bvh, pos: np.ndarray) -> None:
        n = tree.size
        self.n = n
        self.tree = tree
        self.kids = np.stack([self._unified(tree.left), self._unified(tree.right)], axis=1)
        self.lo = np.empty((2 * n - 1, 3))
        self.hi = np.empty((2 * n - 1, 3))
        self.lo[: n - 1] = tree.lo
        self.hi[: n - 1] = tree.hi
        self.lo[n - 1 :] = pos[tree.order]
        self.hi[n - 1 :] = pos[tree.order]
        self.m = (self.hi - self.lo).sum(axis=1)
        self.rebuilt = np.zeros(n - 1, bool)

    def _unified(self, child: np.ndarray) -> np.ndarray:
        return np.where(child >= 0, child, self.n - 1 + ~child)

    def levels(self) -> list[np.ndarray]:
        """Internal nodes by depth, the root's level first."""
        found, level = [], np.array([self.tree.root], np.int64)
        while level.size:
            found.append(level)
            kids = self.kids[level].reshape(-1)
            level = kids[kids < self.n - 1]
        return found

    def parents(self) -> np.ndarray:
        """(2N - 1,) every node's parent, -1 for the root."""
        parent = np.full(2 * self.n - 1, -1, np.int64)
        for side in (0, 1):
            parent[self.kids[:, side]] = np.arange(self.n - 1)
        return parent

    def cost(self) -> float:
        root = float(self.m[self.tree.root])
        return C_TRAVERSE * float(self.m[: self.n - 1].sum()) / root if root > 0 else 0.0


def _grow(work: _Work, roots: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Treelets at `roots`: (T, MAX_LEAVES) leaves, (T, MAX_LEAVES - 1) internal nodes
    (the root first), both -1 where unused, and (T,) leaf counts."""
    t = roots.size
    leaves = np.full((t, MAX_LEAVES), -1, np.int64)
    leaves[:, :2] = work.kids[roots]
    inner = np.full((t, MAX_LEAVES - 1), -1, np.int64)
    inner[:, 0] = roots
    count = np.full(t, 2, np.int64)
    rows = np.arange(t)
    for _ in range(MAX_LEAVES - 2):
        openable = (leaves >= 0) & (leaves < work.n - 1)
        size = np.where(openable, work.m[np.maximum(leaves, 0)], -1.0)
        pick = np.argmax(size, axis=1)
        grow = rows[openable[rows, pick]]
        if grow.size == 0:
            break
        node = leaves[grow, pick[grow]]
        leaves[grow, pick[grow]] = work.kids[node, 0]
        leaves[grow, count[grow]] = work.kids[node, 1]
        inner[grow, count[grow] - 1] = node
        count[grow] += 1
    return leaves, inner, count


def _best_topologies(
    work: _Work, leaves: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For T treelets: per subset of leaves its box (lo, hi), measure, cheapest cost and split."""
    t = leaves.shape[0]
    present = leaves >= 0
    leaf_lo = np.where(present[:, :, None], work.lo[np.maximum(leaves, 0)], 0.0)
    leaf_hi = np.where(present[:, :, None], work.hi[np.maximum(leaves, 0)], 0.0)
    sub_lo = np.full((t, 1, 3), np.inf)
    sub_hi = np.full((t, 1, 3), -np.inf)
    for b in range(MAX_LEAVES):  # subset index bit b: leaf b is in it
        sub_lo = np.concatenate([sub_lo, np.minimum(sub_lo, leaf_lo[:, b : b + 1])], axis=1)
        sub_hi = np.concatenate([sub_hi, np.maximum(sub_hi, leaf_hi[:, b : b + 1])], axis=1)
    sub_lo[:, 0] = sub_hi[:, 0] = 0.0
    measure = (sub_hi - sub_lo).sum(axis=2)
    cost = np.zeros((t, _SUBSETS))
    split = np.zeros((t, _SUBSETS), np.int64)
    _, by_size = _partitions()
    for sets, parts in by_size:
        both = cost[:, parts] + cost[:, parts ^ sets[:, None]]
        choice = np.argmin(both, axis=2)
        cost[:, sets] = C_TRAVERSE * measure[:, sets] + np.take_along_axis(
            both, choice[:, :, None], axis=2
        ).squeeze(2)
        split[:, sets] = parts[np.arange(sets.size), choice]
    return sub_lo, sub_hi, measure, cost, split


def _rebuild(
    work: _Work,
    leaves: np.ndarray,
    inner: np.ndarray,
    count: np.ndarray,
    boxes: tuple[np.ndarray, np.ndarray, np.ndarray],
    split: np.ndarray,
) -> None:
    """Give each treelet its cheapest topology, reusing its internal nodes, root first."""
    sub_lo, sub_hi, measure = boxes
    popcount, _ = _partitions()
    lowest = _lowest_member()
    t = leaves.shape[0]
    sets = np.zeros((t, MAX_LEAVES - 1), np.int64)
    sets[:, 0] = (1 << count) - 1
    free = np.ones(t, np.int64)
    for slot in range(MAX_LEAVES - 1):
        live = np.flatnonzero(slot < count - 1)
        if live.size == 0:
            break
        s = sets[live, slot]
        node = inner[live, slot]
        p = split[live, s]
        for side, part in enumerate((p, s ^ p)):
            single = popcount[part] == 1
            nxt = np.minimum(free[live], MAX_LEAVES - 2)
            child = np.where(single, leaves[live, lowest[part]], inner[live, nxt])
            grown = live[~single]
            sets[grown, free[grown]] = part[~single]
            free[grown] += 1
            work.kids[node, side] = child
        work.lo[node] = sub_lo[live, s]
        work.hi[node] = sub_hi[live, s]
        work.m[node] = measure[live, s]
        work.rebuilt[node] = True


def _pass(work: _Work) -> int:
    """One pass over every internal node as a treelet root, deepest first; treelets rebuilt."""
    return _sweep(work, np.ones(work.n - 1, bool))[0]


def _sweep(work: _Work, roots: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """A treelet at every internal node of `roots` (N - 1,) bool, deepest first; when one is
    rebuilt, its root's parent (higher, so later in the sweep) gets a treelet too.

    Returned: the treelets rebuilt, (N - 1,) bool the internal nodes they rearranged, and
    (2N - 1,) bool those nodes and the treelets' leaves.
    """
    n = work.n
    parent = work.parents()
    dirty = roots.copy()
    rearranged = np.zeros(n - 1, bool)
    touched = np.zeros(2 * n - 1, bool)
    rebuilt = 0
    for level in reversed(work.levels()):
        at = level[dirty[level]]
        if at.size == 0:
            continue
        leaves, inner, count = _grow(work, at)
        keep = np.flatnonzero(count > 2)
        if keep.size == 0:
            continue
        at, leaves, inner, count = at[keep], leaves[keep], inner[keep], count[keep]
        sub_lo, sub_hi, measure, cost, split = _best_topologies(work, leaves)
        now = C_TRAVERSE * np.where(inner >= 0, work.m[np.maximum(inner, 0)], 0.0).sum(axis=1)
        best = cost[np.arange(keep.size), (1 << count) - 1]
        better = np.flatnonzero(best < now * (1.0 - _IMPROVEMENT))
        if better.size == 0:
            continue
        leaves, inner = leaves[better], inner[better]
        _rebuild(
            work,
            leaves,
            inner,
            count[better],
            (sub_lo[better], sub_hi[better], measure[better]),
            split[better],
        )
        rebuilt += better.size
        up = parent[at[better]]
        dirty[up[up >= 0]] = True
        rearranged[inner[inner >= 0]] = True
        touched[inner[inner >= 0]] = True
        touched[leaves[leaves >= 0]] = True
    return rebuilt, rearranged, touched


def _laid_out(work: _Work, pos: np.ndarray) -> Bvh:
    """The worked tree as a Bvh: leaves renumbered left to right, runs, boxes, axes."""
    n, tree = work.n, work.tree
    levels = work.levels()
    size = np.ones(2 * n - 1, np.int64)
    for level in reversed(levels):
        size[level] = size[work.kids[level, 0]] + size[work.kids[level, 1]]
    start = np.zeros(2 * n - 1, np.int64)
    for level in levels:
        start[work.kids[level, 0]] = start[level]
        start[work.kids[level, 1]] = start[level] + size[work.kids[level, 0]]
    first = start[: n - 1]
    last = first + size[: n - 1] - 1
    order = np.empty(n, np.int64)
    order[start[n - 1 :]] = tree.order
    child = np.where(work.kids < n - 1, work.kids, ~start[np.maximum(work.kids, 0)])
    axis = tree.axis.copy()
    moved = np.flatnonzero(work.rebuilt)
    if moved.size:
        a, b = work.kids[moved, 0], work.kids[moved, 1]
        gap = np.maximum(work.lo[a] - work.hi[b], work.lo[b] - work.hi[a])
        extent = work.hi[moved] - work.lo[moved]
        gap[extent <= 0] = -np.inf  # an axis the node does not extend along separates nothing
        flat = extent.max(axis=1) <= 0
        axis[moved] = np.where(flat, -1, np.argmax(gap, axis=1)).astype(np.int8)
    bounds = range_bounds(pos, order, first, last)
    return Bvh(order, child[:, 0], child[:, 1], first, last, tree.root, bounds, axis)


def checked(tree: Bvh, positions: npt.NDArray[Any], passes: int) -> np.ndarray:
    """The positions of `tree`'s entities as check_positions makes them; else a ValueError
    (also for a count of passes that is not an int of at least 1)."""
    pos = check_positions(positions)
    if pos.shape[0] != tree.size:
        raise ValueError(f"the tree holds {tree.size} entities, positions has {pos.shape[0]}")
    if isinstance(passes, bool) or not isinstance(passes, int) or passes < 1:
        raise ValueError(f"passes must be an int of at least 1, got {passes!r}")
    return pos


def optimise(tree: Bvh, positions: npt.NDArray[Any], passes: int = 3) -> Optimised:
    """Up to `passes` passes over `tree` (built over `positions`), stopping at the first
    pass that changes nothing."""
    pos = checked(tree, positions, passes)
    if tree.size < 3:  # one topology only: a pass finds nothing
        return Optimised(tree, [sah(tree)] * 2, [0])
    work = _Work(tree, pos.astype(np.float64))
    costs, rebuilt = [work.cost()], []
    for _ in range(passes):
        changed = _pass(work)
        rebuilt.append(changed)
        costs.append(work.cost())
        if changed == 0:
            break
    return Optimised(_laid_out(work, pos), costs, rebuilt)
