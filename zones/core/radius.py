"""Every entity within a radius of each of many centres: by brute force, on a grid, on a tree.

The market asks radius questions every tick (each visitor's view, zones/core/views.py).
Three ways to answer them in numpy are kept side by side so that they can be measured
against each other (bench/bench_bvh.py) and checked against one another:

  * `pairs_brute`: every centre against every entity, the reference;
  * `pairs_grid`: a uniform grid over the floor with cells as wide as the radius, so
    that only the 3 × 3 cells around a centre can hold an answer; the entities are
    sorted by cell, and the three cells of a row of the grid are one run of them;
  * `pairs_bvh`: a tree of zones/core/bvh.py, walked for all centres at once, one
    level per step; a node wholly inside the radius, or of at most RUN_LEAVES leaves,
    is taken as its whole run of leaves instead of being opened further.

Each returns `Pairs`: for every (centre, entity) within the radius, the squared distance.
Distances are computed the same way everywhere, in float64 from the float32 positions,
so that the three agree exactly (a pair at exactly the radius is within it).
`nearest` keeps each centre's nearest few of them, which is what a view needs.
"""

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from .bvh import Bvh, check_positions

__all__ = [
    "RUN_LEAVES",
    "Pairs",
    "nearest",
    "pairs_brute",
    "pairs_bvh",
    "pairs_grid",
]

RUN_LEAVES: Final = 8
"""A tree node this small is read as its run of leaves rather than opened."""

_CELL_MARGIN: Final = 1.0 + 1e-9
"""Grid cells are this much wider than the radius, so that rounding never puts an
answer two cells away from its centre."""


@dataclass(frozen=True, eq=False)
class Pairs:
    """P (centre, entity) pairs within the radius, in no particular order."""

    centre: np.ndarray  # (P,) int64 index into the centres
    entity: np.ndarray  # (P,) int64 index into the positions
    d2: np.ndarray  # (P,) float64 squared distance, m²

    def mask(self, centres: int, entities: int) -> np.ndarray:
        """(centres, entities) bool: True where a pair is."""
        out = np.zeros((centres, entities), bool)
        out[self.centre, self.entity] = True
        return out

    def sorted(self) -> "Pairs":
        """The same pairs ordered by centre, then entity."""
        order = np.lexsort((self.entity, self.centre))
        return Pairs(self.centre[order], self.entity[order], self.d2[order])


def _check(centres: npt.NDArray[Any], radius: float) -> np.ndarray:
    c = np.asarray(centres)
    if c.ndim != 2 or c.shape[1] != 3:
        raise ValueError(f"centres must have shape (V, 3), got {c.shape}")
    if c.dtype.kind not in "fiu":
        raise ValueError(f"centres must be numeric, got {c.dtype}")
    c = c.astype(np.float32, copy=False)
    bad = np.flatnonzero(~np.isfinite(c).all(axis=1))
    if bad.size:
        row = int(bad[0])
        raise ValueError(f"centres must be finite: row {row} is {c[row].tolist()}")
    if isinstance(radius, bool) or not isinstance(radius, (int, float, np.floating, np.integer)):
        raise TypeError(f"radius must be a number, got {type(radius).__name__}")
    if not (np.isfinite(radius) and radius > 0):
        raise ValueError(f"radius must be a positive finite number of metres, got {radius}")
    return c


def _squared(offset: np.ndarray) -> np.ndarray:
    """Squared lengths of (P, 3) float64 offsets, summed x, then y, then z."""
    result: np.ndarray = offset[:, 0] ** 2 + offset[:, 1] ** 2 + offset[:, 2] ** 2
    return result


def _within(
    centre: np.ndarray, entity: np.ndarray, c: np.ndarray, pos: np.ndarray, radius: float
) -> Pairs:
    """The candidate pairs (centre, entity) that are within `radius`."""
    d2 = _squared(pos[entity].astype(np.float64) - c[centre].astype(np.float64))
    keep = d2 <= float(radius) ** 2
    return Pairs(centre[keep], entity[keep], d2[keep])


def _runs(owner: np.ndarray, first: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every position of the runs first[i]..first[i]+count[i], with the run's owner."""
    who = np.repeat(owner, count)
    offsets = np.cumsum(count) - count
    at = np.arange(who.size) - np.repeat(offsets - first, count)
    return who, at


def pairs_brute(centres: npt.NDArray[Any], positions: npt.NDArray[Any], radius: float) -> Pairs:
    """Every centre against every entity."""
    c = _check(centres, radius)
    pos = check_positions(positions)
    centre = np.repeat(np.arange(c.shape[0]), pos.shape[0])
    entity = np.tile(np.arange(pos.shape[0]), c.shape[0])
    return _within(centre, entity, c, pos, radius)


def pairs_grid(centres: npt.NDArray[Any], positions: npt.NDArray[Any], radius: float) -> Pairs:
    """The pairs found through a grid over the floor (x, z) with cells of `radius`.

    Height plays no part in the grid; the exact test at the end counts it.
    """
    c = _check(centres, radius)
    pos = check_positions(positions)
    cell = float(radius) * _CELL_MARGIN
    origin = pos[:, [0, 2]].min(axis=0).astype(np.float64)
    at = np.floor((pos[:, [0, 2]] - origin) / cell).astype(np.int64)
    columns = int(at[:, 1].max()) + 3  # a free cell on either side of every row
    rows = int(at[:, 0].max()) + 3
    key = (at[:, 0] + 1) * columns + at[:, 1] + 1
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    # The centre's cell, kept within one cell of the grid: farther out nothing is near.
    here = np.floor((c[:, [0, 2]] - origin) / cell).astype(np.int64)
    here[:, 0] = np.clip(here[:, 0], -1, rows - 2)
    here[:, 1] = np.clip(here[:, 1], -1, columns - 2)
    # Rows of the grid above, at and below the centre: three cells each, one run of keys.
    start_key = (here[:, :1] + np.arange(3)) * columns + here[:, 1:]
    start = np.searchsorted(sorted_key, start_key.reshape(-1), "left")
    end = np.searchsorted(sorted_key, start_key.reshape(-1) + 3, "left")
    centre, slot = _runs(np.repeat(np.arange(c.shape[0]), 3), start, end - start)
    return _within(centre, order[slot], c, pos, radius)


def pairs_bvh(
    tree: Bvh,
    centres: npt.NDArray[Any],
    positions: npt.NDArray[Any],
    radius: float,
    run: int = RUN_LEAVES,
) -> Pairs:
    """The pairs found by walking `tree`, built over `positions`, for all centres at once."""
    c = _check(centres, radius)
    pos = check_positions(positions)
    if pos.shape[0] != tree.size:
        raise ValueError(f"the tree holds {tree.size} entities, positions has {pos.shape[0]}")
    if isinstance(run, bool) or not isinstance(run, int) or run < 1:
        raise ValueError(f"run must be an int of at least 1, got {run!r}")
    r2 = float(radius) ** 2
    c64 = c.astype(np.float64)
    lo, hi = tree.lo.astype(np.float64), tree.hi.astype(np.float64)
    size = tree.last - tree.first + 1
    # Runs of leaves to test (near) and runs wholly inside the radius (inside), per centre.
    near: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    inside: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    everyone = np.arange(c.shape[0])
    if tree.root < 0:  # one entity: its leaf is the tree
        near.append((everyone, np.zeros_like(everyone), np.ones_like(everyone)))
        everyone = everyone[:0]
    query, node = everyone, np.full(everyone.size, tree.root, np.int64)
    while query.size:
        below, above = lo[node] - c64[query], c64[query] - hi[node]
        touching = _squared(np.maximum(np.maximum(below, above), 0.0)) <= r2
        query, node = query[touching], node[touching]
        below, above = below[touching], above[touching]
        whole = _squared(np.maximum(np.abs(below), np.abs(above))) <= r2
        small = ~whole & (size[node] <= run)
        inside.append((query[whole], tree.first[node[whole]], size[node[whole]]))
        near.append((query[small], tree.first[node[small]], size[node[small]]))
        opened = ~(whole | small)
        query, node = (
            np.tile(query[opened], 2),
            np.concatenate([tree.left[node[opened]], tree.right[node[opened]]]),
        )
        leaf = node < 0
        near.append((query[leaf], ~node[leaf], np.ones(int(leaf.sum()), np.int64)))
        query, node = query[~leaf], node[~leaf]

    def entities(
        runs: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    ) -> tuple[np.ndarray, np.ndarray]:
        if not runs:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        owner, first, count = (np.concatenate([run_[i] for run_ in runs]) for i in range(3))
        who, leaf = _runs(owner, first, count)
        return who, tree.order[leaf]

    tested = _within(*entities(near), c, pos, radius)
    who, entity = entities(inside)
    d2 = _squared(pos[entity].astype(np.float64) - c64[who])
    return Pairs(
        np.concatenate([tested.centre, who]),
        np.concatenate([tested.entity, entity]),
        np.concatenate([tested.d2, d2]),
    )


def nearest(pairs: Pairs, centres: int, entities: int, most: int) -> np.ndarray:
    """(centres, entities) bool: each centre's `most` nearest of its pairs.

    Among pairs at the same distance the lower entity index is taken first.
    """
    order = np.lexsort((pairs.entity, pairs.d2, pairs.centre))
    centre = pairs.centre[order]
    rank = np.arange(centre.size) - np.searchsorted(centre, centre, "left")
    keep = order[rank < most]
    out = np.zeros((centres, entities), bool)
    out[pairs.centre[keep], pairs.entity[keep]] = True
    return out
