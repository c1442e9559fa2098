"""Subtree reinsertion: lowering a tree's cost by moving whole subtrees to where they cost least.

A move takes a node x (an entity or an internal node, with the whole subtree under it) out
of the tree and puts it back elsewhere. Out: x's parent P goes, x's sibling takes P's place,
and the boxes of the ancestors above shrink where they can; the cost falls by P's measure
and by what those boxes lose. In: x and some node X become the two children of a new node
(P again, so that the node count stays 2N - 1) standing where X stood; the cost rises by the
new node's measure (that of the box around X and x) and by what every ancestor of X gains
when its box takes x in. The move is made when the rise is less than the fall.

The best X is found by a best-first search from the root. Going down from a node A to its
children adds what A's box gains by taking x in (the "induced" cost every node under A
pays); a node X costs its induced cost plus the measure of X's box around x, and no node
under X can cost less than its induced cost plus x's own measure, so the search stops when
the cheapest node left to open cannot beat the best found. The root stays the root (x is
never put beside it, and nothing beside the root is moved), so the tree's measure of
normalisation does not change.

A sweep tries the nodes it is given, the largest boxes first (they have the most to
gain), and then, after every move, the nodes around it again: up to NEIGHBOURHOOD levels
above the moved node's old and new places, with their children and grandchildren, whose
boxes or whose neighbours changed; until a round of these makes no move. A move lowers
the cost by more than _IMPROVEMENT of the root's measure, or it is not made, so no sweep
raises the cost and a sweep that makes a move lowers it strictly.
"""

import heapq
from typing import Final

import numpy as np

__all__ = ["NEIGHBOURHOOD", "sweep"]

NEIGHBOURHOOD: Final = 3
"""After a move, the nodes within this many levels above the old and the new grandparent
of the moved node, with their children and grandchildren, are tried again."""

_IMPROVEMENT: Final = 1e-9
"""Share of the root's measure a move must save: below it, float rounding decides."""

Boxes = tuple[list[float], list[float], list[float], list[float], list[float], list[float]]


def _union_measure(b: Boxes, a: int, lo: tuple[float, ...], hi: tuple[float, ...]) -> float:
    lx, ly, lz, hx, hy, hz = b
    return (
        max(hx[a], hi[0])
        - min(lx[a], lo[0])
        + max(hy[a], hi[1])
        - min(ly[a], lo[1])
        + max(hz[a], hi[2])
        - min(lz[a], lo[2])
    )


def _measure(b: Boxes, a: int) -> float:
    lx, ly, lz, hx, hy, hz = b
    return hx[a] - lx[a] + hy[a] - ly[a] + hz[a] - lz[a]


def _cheapest_place(
    b: Boxes,
    kids: tuple[list[int], list[int]],
    root: int,
    x: int,
    cut: tuple[int, int, int],
    shrunk: dict[int, tuple[float, ...]],
    bound: float,
) -> int:
    """The node beside which x adds least to the tree without x, if less than `bound`; or -1.

    `cut` is x's parent (out of the tree), grandparent and sibling (in the parent's place),
    `shrunk` the boxes that changed when x went out. Best first (module docstring).
    """
    left, right = kids
    m_inner = len(left)
    p_node, grand, sib = cut
    lx, ly, lz, hx, hy, hz = b
    x_lo = (lx[x], ly[x], lz[x])
    x_hi = (hx[x], hy[x], hz[x])
    m_x = _measure(b, x)
    best, best_at = bound, -1
    heap = [(0.0, 0, root)]
    pushed = 1
    while heap:
        induced, _, a = heapq.heappop(heap)
        if induced + m_x >= best:
            break
        if a in shrunk:
            s = shrunk[a]
            union = (
                max(s[3], x_hi[0])
                - min(s[0], x_lo[0])
                + max(s[4], x_hi[1])
                - min(s[1], x_lo[1])
                + max(s[5], x_hi[2])
                - min(s[2], x_lo[2])
            )
            m_a = s[3] - s[0] + s[4] - s[1] + s[5] - s[2]
        else:
            union = _union_measure(b, a, x_lo, x_hi)
            m_a = _measure(b, a)
        if a != root and induced + union < best:
            best, best_at = induced + union, a
        if a < m_inner:
            below = induced + union - m_a
            if below + m_x < best:
                pa, qa = left[a], right[a]
                if a == grand:
                    pa, qa = (sib if pa == p_node else pa), (sib if qa == p_node else qa)
                heapq.heappush(heap, (below, pushed, pa))
                heapq.heappush(heap, (below, pushed + 1, qa))
                pushed += 2
    return best_at


def sweep(
    kids: np.ndarray, lo: np.ndarray, hi: np.ndarray, root: int, candidates: np.ndarray
) -> tuple[int, np.ndarray]:
    """Moves of the `candidates` (2M + 1,) bool, in place; how many, and where.

    Nodes are numbered as in zones/core/treelets.py: internal nodes 0 .. M - 1 with
    children `kids` (M, 2), then the leaves; `lo`, `hi` (2M + 1, 3) float64 are every node's
    box. The candidates are tried largest box first; then the nodes next to a move (the
    moved node, its old sibling and old grandparent, its new sibling and new grandparent)
    are tried again, largest first, until a round makes no move. Returned: the moves made,
    and (M,) bool the internal nodes whose children changed.
    """
    m_inner = kids.shape[0]
    left: list[int] = kids[:, 0].tolist()
    right: list[int] = kids[:, 1].tolist()
    parent = [-1] * (2 * m_inner + 1)
    for node in range(m_inner):
        parent[left[node]] = node
        parent[right[node]] = node
    b: Boxes = (
        lo[:, 0].tolist(),
        lo[:, 1].tolist(),
        lo[:, 2].tolist(),
        hi[:, 0].tolist(),
        hi[:, 1].tolist(),
        hi[:, 2].tolist(),
    )
    lx, ly, lz, hx, hy, hz = b
    threshold = _IMPROVEMENT * _measure(b, root)
    sizes = (hi - lo).sum(axis=1)
    order = np.flatnonzero(candidates)
    queue: list[int] = order[np.argsort(-sizes[order], kind="stable")].tolist()
    changed = np.zeros(m_inner, bool)
    made = 0

    def refit_up(a: int) -> None:
        while a >= 0:
            p, q = left[a], right[a]
            lx[a], ly[a], lz[a] = min(lx[p], lx[q]), min(ly[p], ly[q]), min(lz[p], lz[q])
            hx[a], hy[a], hz[a] = max(hx[p], hx[q]), max(hy[p], hy[q]), max(hz[p], hz[q])
            a = parent[a]

    while queue:
        touched: set[int] = set()
        for x in queue:
            p_node = parent[x]
            if p_node < 0 or p_node == root:
                continue
            grand = parent[p_node]
            sib = right[p_node] if left[p_node] == x else left[p_node]
            # Out: P goes, and the boxes above it shrink to what is left under them.
            saved = _measure(b, p_node)
            shrunk: dict[int, tuple[float, ...]] = {}
            c = (lx[sib], ly[sib], lz[sib], hx[sib], hy[sib], hz[sib])
            a, came = grand, p_node
            while a >= 0:
                o = right[a] if left[a] == came else left[a]
                box = (
                    min(c[0], lx[o]),
                    min(c[1], ly[o]),
                    min(c[2], lz[o]),
                    max(c[3], hx[o]),
                    max(c[4], hy[o]),
                    max(c[5], hz[o]),
                )
                if box == (lx[a], ly[a], lz[a], hx[a], hy[a], hz[a]):
                    break
                saved += _measure(b, a) - (box[3] - box[0] + box[4] - box[1] + box[5] - box[2])
                shrunk[a] = box
                c, came, a = box, a, parent[a]
            if saved <= threshold:
                continue
            # In: the cheapest place in the tree without x.
            best_at = _cheapest_place(
                b, (left, right), root, x, (p_node, grand, sib), shrunk, saved - threshold
            )
            if best_at < 0 or best_at == sib:
                continue
            # Make the move: P out from between grand and sib, in again above best_at.
            if left[grand] == p_node:
                left[grand] = sib
            else:
                right[grand] = sib
            parent[sib] = grand
            for a, s in shrunk.items():
                lx[a], ly[a], lz[a], hx[a], hy[a], hz[a] = s
            above = parent[best_at]
            if left[above] == best_at:
                left[above] = p_node
            else:
                right[above] = p_node
            parent[p_node] = above
            left[p_node], right[p_node] = best_at, x
            parent[best_at] = parent[x] = p_node
            refit_up(p_node)
            changed[[grand, above, p_node]] = True
            made += 1
            touched.update((x, sib, best_at))
            for a in (grand, above):
                for _ in range(NEIGHBOURHOOD):
                    if a < 0:
                        break
                    touched.add(a)
                    for kid in (left[a], right[a]):
                        touched.add(kid)
                        if kid < m_inner:
                            touched.update((left[kid], right[kid]))
                    a = parent[a]
        queue = sorted(sorted(touched), key=lambda a: -_measure(b, a))

    kids[:, 0] = left
    kids[:, 1] = right
    lo[:] = np.array([lx, ly, lz]).T
    hi[:] = np.array([hx, hy, hz]).T
    return made, changed
