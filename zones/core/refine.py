"""The refining optimiser: treelet rebuilds and subtree moves, each pass until its changes settle.

Two kinds of step lower a tree's cost (zones/core/bvh.py defines it), and neither ever
raises it:

* a **treelet rebuild** (zones/core/treelets.py): a node and its descendants down to up
  to 7 treelet leaves, rearranged into the cheapest topology over those leaves;
* a **subtree move** (zones/core/reinsertion.py): a node taken out with everything under
  it and put back beside the node where it adds least, when that costs less than where
  it was.

A treelet rebuild only rearranges a few nodes near each other; a move can carry a subtree
across the tree. Each finds what the other cannot: a group of entities put in the wrong
half of the tree by the build is no treelet's business, and the best order among seven
neighbours takes many single moves.

**A pass** looks at every node once with both, and then looks again wherever what it
changed may have opened a new step, until nothing it looks at changes:

1. a treelet at every internal node, deepest first; when a treelet is rebuilt its root's
   parent (higher, so later in the same sweep) is looked at too, and every node the
   rebuild rearranged is looked at in a further sweep, until a sweep rebuilds nothing;
2. a move of every node, largest box first, then of the nodes around each move (a few
   levels above its old and its new place, with their children and grandchildren), until
   a round moves nothing (zones/core/reinsertion.py); after the first round, only the
   nodes and leaves of the treelets rebuilt in 1;
3. a treelet at every node whose children a move changed, and at each of its ancestors,
   whose boxes it changed; back to 1 with those, then 2 with what they rearranged, until
   neither changes anything (at most MAX_ROUNDS rounds of 1 and 2).

The next pass starts again from every node. The optimiser has converged when a whole
pass changes nothing: no treelet rebuilt and no node moved. A step is taken only when it
saves more than a tiny share (a treelet 1e-9 of its own cost, a move 1e-9 of the root's
measure), so no pass raises the cost, and one that changes anything lowers it strictly.
A node whose children, or whose box, a step changed logs as its split axis the axis
along which its children lie farthest apart (zones/core/treelets.py).
"""

import time
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from . import reinsertion, treelets
from .bvh import Bvh, sah

__all__ = ["MAX_ROUNDS", "Refined", "refine"]

MAX_ROUNDS: Final = 64
"""Rounds of treelet sweeps and moves in one pass at most (each round lowers the cost)."""


@dataclass(frozen=True, eq=False)
class Refined:
    """The refined tree; per pass its cost after it, and what the pass changed."""

    tree: Bvh
    costs: list[float]  # costs[0] before the first pass, costs[k] after pass k
    rebuilt: list[int]  # treelets rebuilt in each pass
    moved: list[int]  # subtrees moved in each pass
    rounds: list[int]  # rounds of treelet sweeps and moves in each pass
    seconds: list[float]  # each pass's time

    @property
    def changes(self) -> list[int]:
        """Treelets rebuilt plus subtrees moved, per pass."""
        return [a + b for a, b in zip(self.rebuilt, self.moved, strict=True)]

    @property
    def converged(self) -> bool:
        """Whether the last pass run changed nothing."""
        return bool(self.rebuilt) and self.changes[-1] == 0


def _with_ancestors(work: treelets._Work, nodes: np.ndarray) -> np.ndarray:
    """(N - 1,) bool: the `nodes` (N - 1,) bool and every ancestor of one."""
    parent = work.parents()
    marked = nodes.copy()
    frontier = np.flatnonzero(nodes)
    while frontier.size:
        up = parent[frontier]
        up = up[up >= 0]
        frontier = up[~marked[up]]
        marked[frontier] = True
    return marked


def _pass(work: treelets._Work) -> tuple[int, int, int]:
    """One pass (module docstring): treelets rebuilt, subtrees moved, rounds."""
    n, root = work.n, work.tree.root
    to_rebuild = np.ones(n - 1, bool)
    to_move = np.ones(2 * n - 1, bool)
    rebuilt = moved = rounds = 0
    while rounds < MAX_ROUNDS and (to_rebuild.any() or to_move.any()):
        rounds += 1
        while to_rebuild.any():
            count, to_rebuild, touched = treelets._sweep(work, to_rebuild)
            rebuilt += count
            to_move |= touched
        if not to_move.any():
            break
        made, changed = reinsertion.sweep(work.kids, work.lo, work.hi, root, to_move)
        work.m = (work.hi - work.lo).sum(axis=1)
        moved += made
        to_move[:] = False
        to_rebuild = _with_ancestors(work, changed)
        work.rebuilt |= to_rebuild  # their split axes are logged anew
    return rebuilt, moved, rounds


def refine(tree: Bvh, positions: npt.NDArray[Any], passes: int = 3) -> Refined:
    """Up to `passes` passes over `tree` (built over `positions`), stopping at the first
    pass that changes nothing."""
    pos = treelets.checked(tree, positions, passes)
    if tree.size < 3:  # one topology only: a pass finds nothing
        return Refined(tree, [sah(tree)] * 2, [0], [0], [0], [0.0])
    work = treelets._Work(tree, pos.astype(np.float64))
    costs, rebuilt, moved, rounds, seconds = [work.cost()], [], [], [], []
    for _ in range(passes):
        start = time.perf_counter()
        r, m, k = _pass(work)
        seconds.append(time.perf_counter() - start)
        rebuilt.append(r)
        moved.append(m)
        rounds.append(k)
        costs.append(work.cost())
        if r + m == 0:
            break
    return Refined(treelets._laid_out(work, pos), costs, rebuilt, moved, rounds, seconds)
