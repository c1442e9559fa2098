"""The refining optimiser (treelet rebuilds and subtree moves): it never raises the cost,
lowers it strictly in every pass that changes something, and keeps trees whole.

The controls plant the bugs the checks exist for: moves made although they cost more,
and moves whose boxes are left as they were before the move.
"""

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zones.core import reinsertion, treelets
from zones.core.bvh import build_linear, sah
from zones.core.crowd_shapes import crowd_of
from zones.core.refine import Refined, refine

from .test_treelets import builders, built, optimiser_violations
from .trees import crowds, tree_violations


def refine_violations(before, result: Refined, positions: np.ndarray) -> list[str]:
    """The first cost is the tree's; no pass raises it; a pass that changed lowered it."""
    passes = SimpleNamespace(tree=result.tree, costs=result.costs, rebuilt=result.changes)
    return optimiser_violations(before, passes, positions)


def sweep_violations(tree, positions: np.ndarray) -> list[str]:
    """One sweep of moves alone over every node: a whole tree, its boxes right, cost lower."""
    work = treelets._Work(tree, positions.astype(np.float64))
    before = work.cost()
    made, _ = reinsertion.sweep(
        work.kids, work.lo, work.hi, tree.root, np.ones(2 * tree.size - 1, bool)
    )
    work.m = (work.hi - work.lo).sum(axis=1)
    after = work.cost()
    moved = treelets._laid_out(work, positions)
    found = tree_violations(moved, positions)
    if after > before or (made and not after < before):
        found.append(f"{made} moves: {before} -> {after}")
    if sah(moved) != pytest.approx(after, rel=1e-6):
        found.append(f"the moved tree costs {sah(moved)}, the sweep's boxes say {after}")
    return found


@settings(max_examples=40, deadline=None)
@given(crowds(150), builders)
def test_a_sweep_of_moves_lowers_the_cost_and_keeps_the_tree_whole(positions, builder):
    tree = built(builder, positions)
    if tree.size >= 3:
        assert sweep_violations(tree, positions) == []


@settings(max_examples=40, deadline=None)
@given(crowds(150), builders, st.integers(1, 4))
def test_refining_never_raises_the_cost_and_keeps_the_tree_whole(positions, builder, passes):
    tree = built(builder, positions)
    result = refine(tree, positions, passes)
    assert refine_violations(tree, result, positions) == []
    assert len(result.rebuilt) == len(result.moved) == len(result.rounds) <= passes


def beside_the_uncle(b, kids, root, x, cut, shrunk, bound, calls=[0]):  # noqa: B006
    """The planted bug: x goes beside its parent's sibling, whatever that costs (the first
    50 times: moves that do not pay could go on for ever)."""
    left, right = kids
    _, grand, _ = cut
    calls[0] += 1
    if grand == root or calls[0] > 50:
        return -1
    for above in range(len(left)):
        if grand in (left[above], right[above]):
            return right[above] if left[above] == grand else left[above]
    return -1


def test_control_moves_that_cost_more_are_caught(monkeypatch):
    positions = crowd_of("choke", 300, 3).positions
    tree = refine(build_linear(positions), positions, 10).tree  # no move left that pays
    monkeypatch.setattr(reinsertion, "_cheapest_place", beside_the_uncle)
    assert sweep_violations(tree, positions) != []
    beside_the_uncle.__defaults__[0][0] = 0
    assert refine_violations(tree, refine(tree, positions, 1), positions) != []


def test_control_moves_that_leave_the_boxes_stale_are_caught(monkeypatch):
    positions = crowd_of("choke", 1000, 3).positions
    tree = build_linear(positions)
    sweep = reinsertion.sweep

    def stale(kids, lo, hi, root, candidates):
        old_lo, old_hi = lo.copy(), hi.copy()
        result = sweep(kids, lo, hi, root, candidates)
        lo[:], hi[:] = old_lo, old_hi  # the moves made, their boxes not
        return result

    monkeypatch.setattr(reinsertion, "sweep", stale)
    result = refine(tree, positions, 2)
    assert result.moved[0] > 0
    assert refine_violations(tree, result, positions) != []


@pytest.mark.parametrize("name", ["choke", "browsing", "opening"])
def test_refining_does_better_than_treelets_alone_on_the_three_crowds(name):
    positions = crowd_of(name, 1000, 21).positions
    tree = build_linear(positions)
    result = refine(tree, positions, 6)
    assert refine_violations(tree, result, positions) == []
    assert result.converged
    assert result.costs[-1] < treelets.optimise(tree, positions, 10).costs[-1]


def test_the_same_seed_refines_to_the_same_tree():
    def digest() -> str:
        positions = crowd_of("choke", 1500, 4).positions
        return refine(build_linear(positions), positions, 3).tree.digest()

    assert digest() == digest()


def cost_with(work, x: int, at: int) -> float:
    """The sum of internal measures after moving node x beside node `at`, from scratch."""
    n = work.n
    kids = work.kids.copy()
    parent = np.full(2 * n - 1, -1)
    for side in (0, 1):
        parent[kids[:, side]] = np.arange(n - 1)
    p = parent[x]
    sib = kids[p, 0] if kids[p, 1] == x else kids[p, 1]
    g = parent[p]
    kids[g, 0 if kids[g, 0] == p else 1] = sib
    parent[sib] = g
    above = parent[at]
    kids[above, 0 if kids[above, 0] == at else 1] = p
    kids[p] = (at, x)
    lo, hi = work.lo.copy(), work.hi.copy()

    def fit(node: int) -> None:
        if node >= n - 1:
            return
        a, b = kids[node]
        fit(a)
        fit(b)
        lo[node] = np.minimum(lo[a], lo[b])
        hi[node] = np.maximum(hi[a], hi[b])

    fit(work.tree.root)
    return float((hi[: n - 1] - lo[: n - 1]).sum())


@settings(max_examples=25, deadline=None)
@given(st.integers(6, 40), st.integers(0, 2**32 - 1))
def test_a_move_goes_to_the_cheapest_place_of_all(count, seed):
    rng = np.random.default_rng(seed)
    positions = rng.uniform(0, 20, (count, 3)).astype(np.float32)
    positions[:, 1] = 0.0
    tree = build_linear(positions)
    work = treelets._Work(tree, positions.astype(np.float64))
    n, root = work.n, tree.root
    parent = np.full(2 * n - 1, -1)
    for side in (0, 1):
        parent[work.kids[:, side]] = np.arange(n - 1)
    x = int(rng.integers(0, 2 * n - 1))
    if parent[x] < 0 or parent[x] == root:
        return
    before = float(work.m[: n - 1].sum())
    under = {x}
    stack = [x]
    while stack:
        a = stack.pop()
        if a < n - 1:
            stack += work.kids[a].tolist()
            under |= set(work.kids[a].tolist())
    places = [a for a in range(2 * n - 1) if a not in under and a not in (root, parent[x])]
    sib = [a for a in work.kids[parent[x]].tolist() if a != x][0]
    cheapest = min(cost_with(work, x, a) for a in places if a != sib)
    only = np.zeros(2 * n - 1, bool)
    only[x] = True
    made, _ = reinsertion.sweep(work.kids, work.lo, work.hi, root, only)
    after = float((work.hi[: n - 1] - work.lo[: n - 1]).sum())
    threshold = reinsertion._IMPROVEMENT * float(work.m[root])
    if cheapest < before - threshold:
        assert made >= 1
        # the first move is x's, to the cheapest place; moves around it may follow
        assert after <= cheapest + 1e-9
    else:
        assert made == 0 and after == pytest.approx(before, rel=1e-12)
