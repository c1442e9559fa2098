"""The treelet optimiser: it never raises the cost, rebuilds treelets optimally, keeps trees whole."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zones.core import treelets
from zones.core.bvh import build_linear, sah
from zones.core.bvh_binned import build_binned
from zones.core.crowd_shapes import crowd_of
from zones.core.treelets import MAX_LEAVES, Optimised, optimise

from .trees import crowds, tree_violations

builders = st.sampled_from(["hilbert", "morton", "binned"])


def built(builder: str, positions: np.ndarray):
    return build_binned(positions) if builder == "binned" else build_linear(positions, builder)


def optimiser_violations(before, result: Optimised, positions: np.ndarray) -> list[str]:
    """The first cost is the tree's; no pass raises it; a pass that rebuilt lowered it."""
    found = tree_violations(result.tree, positions)
    costs = result.costs
    if costs[0] != pytest.approx(sah(before), rel=1e-9):
        found.append(f"started from {costs[0]}, the tree costs {sah(before)}")
    for k, changed in enumerate(result.rebuilt):
        if costs[k + 1] > costs[k] or (changed and not costs[k + 1] < costs[k]):
            found.append(f"pass {k + 1} rebuilt {changed} treelets: {costs[k]} -> {costs[k + 1]}")
    if sah(result.tree) != pytest.approx(costs[-1], rel=1e-6):
        found.append(f"the tree costs {sah(result.tree)}, the last pass said {costs[-1]}")
    return found


@settings(max_examples=40)
@given(crowds(150), builders, st.integers(1, 4))
def test_the_optimiser_never_raises_the_cost_and_keeps_the_tree_whole(positions, builder, passes):
    tree = built(builder, positions)
    result = optimise(tree, positions, passes)
    assert optimiser_violations(tree, result, positions) == []
    assert len(result.rebuilt) <= passes


BEST_TOPOLOGIES = treelets._best_topologies


def caterpillars(work, leaves):
    """The planted bug: every treelet rebuilt as a chain, claimed to cost nothing."""
    sub_lo, sub_hi, measure, cost, split = BEST_TOPOLOGIES(work, leaves)
    every = np.arange(split.shape[1])
    split[:] = every & -every  # split off the lowest leaf alone, always
    return sub_lo, sub_hi, measure, np.zeros_like(cost), split


def test_control_rebuilding_treelets_badly_is_caught(monkeypatch):
    positions = crowd_of("browsing", 400, 2).positions
    tree = build_linear(positions)
    monkeypatch.setattr(treelets, "_best_topologies", caterpillars)
    assert optimiser_violations(tree, optimise(tree, positions, 1), positions) != []


@pytest.mark.parametrize("name", ["choke", "browsing", "opening"])
def test_the_optimiser_lowers_the_cost_of_the_three_crowds(name):
    positions = crowd_of(name, 1000, 21).positions
    tree = build_linear(positions)
    result = optimise(tree, positions, 3)
    assert optimiser_violations(tree, result, positions) == []
    assert result.costs[-1] < 0.97 * result.costs[0]


def test_the_same_seed_optimises_to_the_same_tree():
    def digest() -> str:
        positions = crowd_of("choke", 1500, 4).positions
        return optimise(build_linear(positions), positions, 3).tree.digest()

    assert digest() == digest()


def topologies(leaves: tuple[int, ...]):
    """Every binary tree over `leaves`, as the leaf sets of its internal nodes."""
    if len(leaves) == 1:
        yield []
        return
    first, rest = leaves[0], leaves[1:]
    for size in range(len(rest)):
        for others in itertools.combinations(rest, size):
            left = (first, *others)
            right = tuple(x for x in rest if x not in others)
            for a in topologies(left):
                for b in topologies(right):
                    yield [frozenset(leaves), *a, *b]


@settings(max_examples=40)
@given(st.integers(2, 6), st.integers(0, 2**32))
def test_a_treelet_gets_the_cheapest_of_all_topologies_over_its_leaves(count, seed):
    rng = np.random.default_rng(seed)
    lo = rng.uniform(0, 10, (count, 3))
    hi = lo + rng.uniform(0, 3, (count, 3)) * (rng.random((count, 3)) < 0.8)

    class Boxes:  # the part of the optimiser's working tree a treelet's leaves are read from
        pass

    work = Boxes()
    work.lo, work.hi = lo, hi
    leaves = np.full((1, MAX_LEAVES), -1)
    leaves[0, :count] = np.arange(count)
    *_, cost, _ = treelets._best_topologies(work, leaves)

    def cost_of(internal: list[frozenset]) -> float:
        return sum(
            float((hi[list(s)].max(axis=0) - lo[list(s)].min(axis=0)).sum()) for s in internal
        )

    cheapest = min(cost_of(t) for t in topologies(tuple(range(count))))
    assert cost[0, (1 << count) - 1] == pytest.approx(cheapest, rel=1e-12)


def test_bad_pass_counts_and_other_entities_are_refused():
    positions = crowd_of("opening", 20, 1).positions
    tree = build_linear(positions)
    for passes in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="passes must be an int of at least 1"):
            optimise(tree, positions, passes)
    with pytest.raises(ValueError, match="the tree holds 20 entities, positions has 19"):
        optimise(tree, positions[:19])


def test_a_tree_of_two_entities_has_nothing_to_optimise():
    positions = np.array([[1.0, 1.0, 1.0], [2.0, 1.0, 3.0]], np.float32)
    tree = build_linear(positions)
    result = optimise(tree, positions)
    assert result.tree is tree and result.converged
