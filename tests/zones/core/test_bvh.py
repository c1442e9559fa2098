"""The linear trees: every entity once, tight boxes, logged split axes, refits, cost, digests.

Each property is a check that returns what it found wrong (tests/zones/core/trees.py);
the controls plant the bug a property exists for and show that the check finds it.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zones.core import bvh, hilbert, morton
from zones.core.bvh import Bvh, axis_counts, build_linear, measure, range_bounds, refit, sah
from zones.core.crowd_shapes import CROWDS, crowd_of
from zones.core.hilbert import quantise

from .trees import crowds, separated_along, tree_violations

curves = st.sampled_from(["hilbert", "morton"])


def codes_of(curve: str, positions: np.ndarray) -> np.ndarray:
    encode = hilbert.encode_positions if curve == "hilbert" else morton.encode_positions
    return encode(positions, bvh.MARKET_LO, bvh.MARKET_HI)


def replaced(tree: Bvh, **fields) -> Bvh:
    parts = {name: getattr(tree, name) for name in Bvh.__dataclass_fields__}
    return Bvh(**{**parts, **fields})


# --- every entity once, boxes tight ----------------------------------------------------------


@settings(max_examples=60)
@given(crowds(), curves)
def test_a_linear_tree_holds_every_entity_once_in_tight_boxes(positions, curve):
    assert tree_violations(build_linear(positions, curve), positions) == []


@pytest.mark.parametrize("curve", ["hilbert", "morton"])
@pytest.mark.parametrize("name", list(CROWDS))
def test_the_trees_over_the_three_crowds_hold_every_entity_once(name, curve):
    positions = crowd_of(name, 3000, 11).positions
    assert tree_violations(build_linear(positions, curve), positions) == []


def test_control_an_entity_at_two_leaves_is_caught():
    positions = crowd_of("browsing", 300, 1).positions
    tree = build_linear(positions)
    order = tree.order.copy()
    order[1] = order[0]
    assert tree_violations(replaced(tree, order=order), positions) != []


def test_control_a_loose_box_is_caught():
    positions = crowd_of("browsing", 300, 1).positions
    tree = build_linear(positions)
    bounds = tree.bounds.copy()
    bounds[0, 5] -= 0.25  # node 5's least corner a little further out
    assert tree_violations(replaced(tree, bounds=bounds), positions) != []


def test_control_a_child_covering_the_wrong_run_is_caught():
    positions = crowd_of("choke", 300, 1).positions
    tree = build_linear(positions)
    left, right = tree.left.copy(), tree.right.copy()
    left[tree.root], right[tree.root] = right[tree.root], left[tree.root]
    assert tree_violations(replaced(tree, left=left, right=right), positions) != []


# --- split axes ------------------------------------------------------------------------------


@settings(max_examples=60)
@given(crowds(), curves)
def test_a_logged_split_axis_separates_the_children_and_none_means_one_cell(positions, curve):
    tree = build_linear(positions, curve)
    assert separated_along(tree, positions) == []
    codes = codes_of(curve, positions)
    for node in np.flatnonzero(tree.axis < 0).tolist():
        under = codes[tree.order[tree.first[node] : tree.last[node] + 1]]
        assert np.all(under == under[0]), f"node {node} has no axis but spans several cells"


@pytest.mark.parametrize("name", list(CROWDS))
def test_flat_crowds_never_split_on_height(name):
    tree = build_linear(crowd_of(name, 2000, 4).positions)
    counts = axis_counts(tree)
    assert counts["y"] == 0 and counts["x"] > 0 and counts["z"] > 0
    assert sum(counts.values()) == 1999


def test_control_axes_read_in_world_order_instead_of_the_curves_are_caught(monkeypatch):
    positions = crowd_of("opening", 500, 2).positions
    monkeypatch.setattr(bvh, "_CURVE_TO_WORLD", np.array([0, 1, 2], np.int8))
    assert separated_along(build_linear(positions, "morton"), positions) != []
    assert separated_along(build_linear(positions, "hilbert"), positions) != []


def test_without_axes_the_tree_is_the_same():
    positions = crowd_of("choke", 500, 2).positions
    with_axes, without = build_linear(positions), build_linear(positions, axes=False)
    assert np.all(without.axis == -1)
    assert replaced(without, axis=with_axes.axis).digest() == with_axes.digest()


# --- the same tree for the same seed ---------------------------------------------------------


@pytest.mark.parametrize("curve", ["hilbert", "morton"])
@pytest.mark.parametrize("name", list(CROWDS))
def test_the_same_seed_builds_the_same_tree_and_another_seed_another(name, curve):
    def digest(seed: int) -> str:
        return build_linear(crowd_of(name, 2000, seed).positions, curve).digest()

    assert digest(7) == digest(7)
    assert digest(7) != digest(8)


def test_control_the_digest_sees_one_bit_of_one_box():
    tree = build_linear(crowd_of("opening", 300, 1).positions)
    bounds = tree.bounds.copy()
    bounds.view(np.uint32)[1, 7, 2] ^= 1
    assert replaced(tree, bounds=bounds).digest() != tree.digest()


# --- refit -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CROWDS))
def test_a_refit_keeps_the_topology_and_makes_the_boxes_tight_again(name):
    crowd = crowd_of(name, 2000, 3)
    tree = build_linear(crowd.positions)
    moved = crowd.moved(1.0)
    again = refit(tree, moved)
    assert tree_violations(again, moved) == []
    for field in ("order", "left", "right", "first", "last", "axis"):
        assert np.array_equal(getattr(again, field), getattr(tree, field))
    assert tree_violations(tree, moved) != []  # the control: the old boxes no longer fit
    farther = crowd.moved(3.0)
    assert tree_violations(refit(again, farther), farther) == []  # a refit's refit


@settings(max_examples=60)
@given(st.integers(1, 300), st.integers(0, 2**32), st.data())
def test_the_boxes_of_runs_are_the_least_and_greatest_positions_in_them(n, seed, data):
    rng = np.random.default_rng(seed)
    positions = rng.normal(50.0, 20.0, (n, 3)).astype(np.float32)
    order = rng.permutation(n)
    first = np.array(data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=20)))
    last = np.minimum(
        first
        + np.array(
            data.draw(st.lists(st.integers(0, n), min_size=first.size, max_size=first.size))
        ),
        n - 1,
    )
    boxes = range_bounds(positions, order, first, last)
    for i, (a, b) in enumerate(zip(first.tolist(), last.tolist(), strict=True)):
        under = positions[order[a : b + 1]]
        assert np.array_equal(boxes[0, i], under.min(axis=0))
        assert np.array_equal(-boxes[1, i], under.max(axis=0))


# --- cost ------------------------------------------------------------------------------------


def test_the_cost_is_the_internal_nodes_measures_over_the_roots():
    positions = crowd_of("browsing", 400, 6).positions
    tree = build_linear(positions)
    total, root = 0.0, 0.0
    for node in range(tree.size - 1):
        under = positions[tree.order[tree.first[node] : tree.last[node] + 1]].astype(np.float64)
        extent = float((under.max(axis=0) - under.min(axis=0)).sum())
        total += extent
        root = extent if node == tree.root else root
    assert sah(tree) == pytest.approx(total / root, rel=1e-12)
    assert measure(tree.bounds)[tree.root] == pytest.approx(root)


def test_trees_of_one_entity_or_of_one_spot_cost_nothing():
    assert sah(build_linear(np.ones((1, 3), np.float32))) == 0.0
    assert sah(build_linear(np.ones((9, 3), np.float32))) == 0.0


# --- morton codes ----------------------------------------------------------------------------


@given(st.lists(st.tuples(*[st.integers(0, 1023)] * 3), min_size=1, max_size=50))
def test_morton_codes_interleave_the_bits_in_the_curves_axis_order(cells):
    cells = np.array(cells)
    expected = np.zeros(len(cells), np.int64)
    for bit in range(9, -1, -1):
        for axis in range(3):
            expected = (expected << 1) | ((cells[:, axis] >> bit) & 1)
    assert morton.encode(cells).tolist() == expected.tolist()


def test_morton_positions_are_quantised_like_the_hilbert_ones():
    positions = crowd_of("choke", 200, 1).positions
    codes = morton.encode_positions(positions, bvh.MARKET_LO, bvh.MARKET_HI)
    assert np.array_equal(codes, morton.encode(quantise(positions, bvh.MARKET_LO, bvh.MARKET_HI)))


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("positions", "message"),
    [
        (np.zeros((4, 2), np.float32), r"shape \(N, 3\), got \(4, 2\)"),
        (np.zeros((0, 3), np.float32), "at least one entity"),
        (np.array([["a", "b", "c"]]), "must be numeric"),
        (np.array([[1, 1, 1], [2, np.nan, 2]], np.float32), r"finite: row 1 is \[2.0, nan, 2.0\]"),
        (np.array([[1, 1, 1], [np.inf, 2, 2]]), "finite: row 1"),
    ],
)
def test_bad_positions_are_refused_by_name(positions, message):
    with pytest.raises(ValueError, match=message):
        build_linear(positions)


def test_an_unknown_curve_and_a_refit_of_other_entities_are_refused():
    positions = crowd_of("opening", 50, 1).positions
    with pytest.raises(ValueError, match="curve must be 'hilbert' or 'morton', got 'peano'"):
        build_linear(positions, "peano")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="the tree holds 50 entities, positions has 49"):
        refit(build_linear(positions), positions[:49])


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        (np.zeros((3, 2), np.int64), r"shape \(N, 3\)"),
        (np.zeros((3, 3)), "integer dtype"),
        (np.full((3, 3), 1024), r"in \[0, 1024\)"),
        (np.full((3, 3), -1), r"in \[0, 1024\)"),
    ],
)
def test_bad_morton_cells_are_refused_by_name(cells, message):
    with pytest.raises(ValueError, match=message):
        morton.encode(cells)
