"""The gateway's view cut, with the radius queries answered the fastest way for the view's size.

zones/core/views.py answers a cut's radius queries (each visitor's nearest rows within
5 m, within 20 m on far ticks, the nearest bodies within 5 m) out of one distance
matrix of every visitor to every row. That costs V × N distances and a partial sort of
every crowded row, and grows with the square of the market: past KD_FROM visitor-row
pairs a k-d tree over the rows (scipy's cKDTree, asked for each visitor's k nearest
within the radius, all visitors in one call) answers the same questions sooner. Both
hand the cut picks, a few dozen row indices a visitor. The two are level at about
300 visitors × 300 rows; at 500 × 500 the tree takes 0.86 of the matrix's time, for the
1,000-visitor market 0.53 (bench/bench_bvh.py, docs/performance.md). The spatial index
of zones/core/bvh.py and a uniform grid were measured too and were slower than both.

The tree lives here rather than in zones/core, which stays numpy only.
"""

import numpy as np
from scipy.spatial import cKDTree

from zones.core import views
from zones.core.views import Cut
from zones.core.wire import RowFlag

__all__ = ["KD_FROM", "KdTree", "cut"]

KD_FROM = 160_000
"""Visitors × rows from which the k-d tree cuts a view sooner than the distance matrix."""


class KdTree:
    """Nearest rows through a k-d tree over the view's rows (views.Nearest), as picks.

    A second tree over the visitor roots answers the bodies' query, unless every row
    is a root. A visitor's own row is always among its rows, as the matrix's -1 puts it
    there: when the tree found `most` others, the farthest of them makes room.
    """

    def __init__(self, view: np.ndarray, own: np.ndarray) -> None:
        self.pos = view["pos"]
        self.own = own
        self.everything = cKDTree(self.pos)
        self.is_root = (view["flags"] & RowFlag.VISITOR_ROOT) != 0
        self._roots: tuple[cKDTree, np.ndarray] | None = None

    def _root_tree(self) -> tuple[cKDTree, np.ndarray]:
        if self._roots is None:
            rows = np.flatnonzero(self.is_root)
            tree = self.everything if rows.size == self.pos.shape[0] else cKDTree(self.pos[rows])
            self._roots = (tree, rows)
        return self._roots

    def __call__(
        self, which: np.ndarray | None, radius: float, most: int, roots: bool
    ) -> np.ndarray:
        own = self.own if which is None else self.own[which]
        n = self.pos.shape[0]
        tree, rows = self._root_tree() if roots else (self.everything, None)
        if tree.n == 0 or own.size == 0:
            return np.full((own.size, 0), n, np.int64)
        # the tree keeps neighbours strictly closer than its bound, the matrix <= the radius
        bound = np.nextafter(radius, np.inf)
        _, found = tree.query(self.pos[own], k=most, distance_upper_bound=bound)
        found = found.reshape(own.size, most)  # k=1 gives one column as a vector
        missing = found >= tree.n
        if rows is not None:
            found = rows[np.minimum(found, rows.size - 1)]
        mine = self.is_root[own] if roots else np.ones(own.size, bool)
        # no room for the own row: it takes the farthest one's place
        crowded = mine & ~missing[:, -1] & ~(found == own[:, None]).any(axis=1)
        found[crowded, -1] = own[crowded]
        found[missing] = n
        # a root query for a visitor whose own row is not a root: its row is not a body
        found[~mine[:, None] & (found == own[:, None])] = n
        return found


def cut(view: np.ndarray, own: np.ndarray, phases: np.ndarray) -> Cut:
    """views.cut, through the k-d tree from KD_FROM visitors × rows on."""
    if own.size * view.size >= KD_FROM:
        return views.cut(view, own, phases, KdTree)
    return views.cut(view, own, phases)
