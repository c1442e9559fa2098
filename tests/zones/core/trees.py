"""What every tree of zones/core/bvh.py must be, checked from scratch, and crowds to build it on."""

import numpy as np
from hypothesis import strategies as st

from zones.core.bvh import Bvh


def tree_violations(tree: Bvh, positions: np.ndarray) -> list[str]:
    """Each entity at exactly one leaf, runs that nest, tight boxes, one root reaching all."""
    n = positions.shape[0]
    found = []
    if sorted(tree.order.tolist()) != list(range(n)):
        found.append(f"leaves hold {sorted(tree.order.tolist())}, not each of {n} entities once")
        return found
    if n == 1:
        return found if tree.root == ~0 else [f"a tree of one entity has root {tree.root}"]
    if tree.left.size != n - 1 or tree.bounds.shape != (2, n - 1, 3):
        return [f"{tree.left.size} internal nodes and boxes {tree.bounds.shape} for {n} entities"]

    def run(child: int) -> tuple[int, int]:
        return (~child, ~child) if child < 0 else (int(tree.first[child]), int(tree.last[child]))

    for node in range(n - 1):
        (a, b), (c, d) = run(int(tree.left[node])), run(int(tree.right[node]))
        if (a, d) != (tree.first[node], tree.last[node]) or b + 1 != c:
            found.append(f"node {node} covers {tree.first[node]}..{tree.last[node]}")
            found.append(f"  but its children cover {a}..{b} and {c}..{d}")
        under = positions[tree.order[tree.first[node] : tree.last[node] + 1]]
        if not (
            np.array_equal(tree.lo[node], under.min(axis=0))
            and np.array_equal(tree.hi[node], under.max(axis=0))
        ):
            found.append(f"node {node}: box {tree.lo[node]}..{tree.hi[node]} is not tight")
    seen, leaves, stack = set(), 0, [tree.root]
    while stack:
        node = stack.pop()
        if node < 0:
            leaves += 1
        elif node in seen:
            found.append(f"node {node} is reached twice")
            break
        else:
            seen.add(node)
            stack += [int(tree.left[node]), int(tree.right[node])]
    if len(seen) != n - 1 or leaves != n:
        found.append(f"the root reaches {len(seen)} nodes and {leaves} leaves of {n}")
    return found


def separated_along(tree: Bvh, positions: np.ndarray) -> list[str]:
    """Every logged split axis is one along which the node's two children lie apart.

    Apart, not touching: two cells of the curve, or two bins, never share a coordinate.
    """

    def box(child: int) -> tuple[np.ndarray, np.ndarray]:
        if child < 0:
            at = positions[tree.order[~child]]
            return at, at
        return tree.lo[child], tree.hi[child]

    found = []
    for node in np.flatnonzero(tree.axis >= 0).tolist():
        (a_lo, a_hi), (b_lo, b_hi) = box(int(tree.left[node])), box(int(tree.right[node]))
        axis = int(tree.axis[node])
        if max(a_lo[axis] - b_hi[axis], b_lo[axis] - a_hi[axis]) <= 0:
            found.append(f"node {node}: its children meet along its split axis {axis}")
    return found


coordinates = st.floats(0.0, 127.0, width=32)


@st.composite
def crowds(draw: st.DrawFn, most: int = 200) -> np.ndarray:
    """(N, 3) float32 positions: on the floor or not, some of them on one spot."""
    n = draw(st.integers(1, most))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    spread = draw(st.sampled_from([0.5, 5.0, 60.0]))
    centre = rng.uniform(spread, 127.0 - spread, 3)
    pos = np.clip(rng.normal(centre, spread, (n, 3)), 0.0, 127.0).astype(np.float32)
    if draw(st.booleans()):
        pos[:, 1] = 1.0  # a flat crowd, as the market's are
    stacked = draw(st.integers(0, n // 2))
    pos[:stacked] = pos[0]  # entities on one spot
    return pos
