"""The top-down binned-SAH build: the quality reference the linear trees are measured against.

Every node's entities are dropped into BINS bins of equal width along each axis of their
bounding box; of the BINS - 1 planes between bins on the three axes, the node splits at
the one that minimises the greedy surface-area-heuristic estimate

    measure(left) × count(left) + measure(right) × count(right)

with the measure of zones/core/bvh.py (the sum of a box's extents): each side is priced
as if it became a leaf of its entities. A node whose box has any extent has a plane that
separates something (its least entity falls in the first bin of that axis, its greatest in
the last); a node of entities all on one spot is cut in the middle of its run, on no axis
(-1). The build goes down to one entity per leaf, like the linear trees, so that their
costs compare.

All nodes of one depth are split together, one numpy pass per depth: slower than the
linear build by far, and meant to be; it tells how much the linear trees leave on the table.
"""

from typing import Any, Final

import numpy as np
import numpy.typing as npt

from .bvh import Bvh, check_positions, range_bounds

__all__ = ["BINS", "build_binned"]

BINS: Final = 16


def _expand(starts: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions covered by the runs starts[g]..starts[g]+sizes[g], and each one's run g."""
    group = np.repeat(np.arange(starts.size), sizes)
    offsets = np.cumsum(sizes) - sizes
    index = np.arange(group.size) - offsets[group] + starts[group]
    return index, group


def _box_measure(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Sum of extents of boxes (..., 3); 0 for the empty box (lo > hi)."""
    result: np.ndarray = np.maximum(hi - lo, 0.0).sum(axis=-1)
    return result


def build_binned(positions: npt.NDArray[Any], bins: int = BINS) -> Bvh:
    """The binned-SAH tree over (N, 3) `positions` (module docstring)."""
    pos = check_positions(positions)
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise ValueError(f"bins must be an int of at least 2, got {bins!r}")
    n = pos.shape[0]
    perm = np.arange(n, dtype=np.int64)
    if n == 1:
        empty = np.zeros(0, np.int64)
        boxes = np.zeros((2, 0, 3), np.float32)
        return Bvh(perm, empty, empty, empty, empty, ~0, boxes, np.zeros(0, np.int8))
    left = np.zeros(n - 1, np.int64)
    right = np.zeros(n - 1, np.int64)
    first = np.zeros(n - 1, np.int64)
    last = np.zeros(n - 1, np.int64)
    axis = np.full(n - 1, -1, np.int8)
    wide = pos.astype(np.float64)

    starts = np.array([0], np.int64)
    sizes = np.array([n], np.int64)
    ids = np.array([0], np.int64)
    made = 1
    while starts.size:
        g = starts.size
        index, group = _expand(starts, sizes)
        p = wide[perm[index]]
        offsets = np.cumsum(sizes) - sizes
        lo = np.minimum.reduceat(p, offsets, axis=0)
        hi = np.maximum.reduceat(p, offsets, axis=0)
        extent = hi - lo
        scale = np.where(extent > 0, bins / np.where(extent > 0, extent, 1.0), 0.0)
        slot = np.minimum(((p - lo[group]) * scale[group]).astype(np.int64), bins - 1)

        cost = np.full((g, 3, bins - 1), np.inf)
        for a in range(3):
            key = group * bins + slot[:, a]
            count = np.bincount(key, minlength=g * bins).reshape(g, bins)
            bin_lo = np.full((g, bins, 3), np.inf)
            bin_hi = np.full((g, bins, 3), -np.inf)
            np.minimum.at(bin_lo.reshape(g * bins, 3), key, p)
            np.maximum.at(bin_hi.reshape(g * bins, 3), key, p)
            left_lo = np.minimum.accumulate(bin_lo, axis=1)[:, :-1]
            left_hi = np.maximum.accumulate(bin_hi, axis=1)[:, :-1]
            right_lo = np.minimum.accumulate(bin_lo[:, ::-1], axis=1)[:, ::-1][:, 1:]
            right_hi = np.maximum.accumulate(bin_hi[:, ::-1], axis=1)[:, ::-1][:, 1:]
            n_left = np.cumsum(count, axis=1)[:, :-1]
            n_right = sizes[:, None] - n_left
            here = (
                _box_measure(left_lo, left_hi) * n_left + _box_measure(right_lo, right_hi) * n_right
            )
            cost[:, a] = np.where((n_left > 0) & (n_right > 0), here, np.inf)

        # Among planes of equal cost (a pair of entities costs 0 split on any axis) the
        # node's longest axis wins, so that ties do not all fall to x.
        flat = cost.reshape(g, -1)
        least = flat.min(axis=1)
        binned = np.isfinite(least)
        on_axis = np.repeat(extent, bins - 1, axis=1)
        best = np.argmax(np.where(flat <= least[:, None], on_axis, -1.0), axis=1)
        best_axis = best // (bins - 1)
        plane = best % (bins - 1)
        rank = np.arange(index.size) - offsets[group]
        goes_left = np.where(
            binned[group],
            slot[np.arange(index.size), best_axis[group]] <= plane[group],
            rank < sizes[group] // 2,
        )
        side = np.lexsort((~goes_left, group))
        perm[index] = perm[index[side]]

        n_left = np.bincount(group, weights=goes_left, minlength=g).astype(np.int64)
        node = ids
        first[node] = starts
        last[node] = starts + sizes - 1
        axis[node] = np.where(binned, best_axis, -1).astype(np.int8)

        child_starts = np.concatenate([starts, starts + n_left])
        child_sizes = np.concatenate([n_left, sizes - n_left])
        inner = child_sizes > 1
        child_ids = np.where(inner, made + np.cumsum(inner) - 1, ~child_starts)
        made += int(inner.sum())
        left[node], right[node] = child_ids[:g], child_ids[g:]
        starts, sizes, ids = child_starts[inner], child_sizes[inner], child_ids[inner]

    bounds = range_bounds(pos, perm, first, last)
    return Bvh(perm, left, right, first, last, 0, bounds, axis)
