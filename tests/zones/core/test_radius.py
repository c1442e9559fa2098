"""Radius queries on a grid and on every kind of tree find exactly what brute force finds."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zones.core import radius
from zones.core.bvh import Bvh, build_linear
from zones.core.bvh_binned import build_binned
from zones.core.crowd_shapes import crowd_of
from zones.core.radius import Pairs, nearest, pairs_brute, pairs_bvh, pairs_grid
from zones.core.treelets import optimise

from .trees import crowds

radii = st.floats(0.05, 40.0)


def disagreement(found: Pairs, centres: np.ndarray, positions: np.ndarray, r: float) -> list[str]:
    """Pairs found that brute force does not find, or the other way round, or other distances."""
    expected, got = pairs_brute(centres, positions, r).sorted(), found.sorted()
    want = set(zip(expected.centre.tolist(), expected.entity.tolist(), strict=True))
    have = set(zip(got.centre.tolist(), got.entity.tolist(), strict=True))
    problems = [f"missed {sorted(want - have)[:5]}"] if want - have else []
    if have - want:
        problems.append(f"found too much: {sorted(have - want)[:5]}")
    if len(have) != got.centre.size:
        problems.append("a pair was found twice")
    if not problems and not np.array_equal(got.d2, expected.d2):
        problems.append("the distances differ")
    return problems


@st.composite
def centres_for(draw: st.DrawFn, positions: np.ndarray) -> np.ndarray:
    """Centres: some on entities (as a visitor's view is), some anywhere, some far outside."""
    seed = draw(st.integers(0, 2**32))
    rng = np.random.default_rng(seed)
    v = draw(st.integers(0, 40))
    centres = rng.uniform(-20.0, 150.0, (v, 3)).astype(np.float32)
    on = draw(st.integers(0, v))
    centres[:on] = positions[rng.integers(0, positions.shape[0], on)]
    return centres


def trees(positions: np.ndarray) -> dict[str, Bvh]:
    hilbert = build_linear(positions, "hilbert")
    return {
        "hilbert": hilbert,
        "morton": build_linear(positions, "morton"),
        "binned": build_binned(positions),
        "optimised": optimise(hilbert, positions, 2).tree,
    }


@settings(max_examples=80)
@given(crowds(150), radii, st.data())
def test_the_grid_finds_what_brute_force_finds(positions, r, data):
    centres = data.draw(centres_for(positions))
    assert disagreement(pairs_grid(centres, positions, r), centres, positions, r) == []


@settings(max_examples=60)
@given(crowds(150), radii, st.sampled_from([1, 2, 8, 64]), st.data())
def test_every_kind_of_tree_finds_what_brute_force_finds(positions, r, run, data):
    centres = data.draw(centres_for(positions))
    for name, tree in trees(positions).items():
        found = pairs_bvh(tree, centres, positions, r, run)
        assert disagreement(found, centres, positions, r) == [], name


@pytest.mark.parametrize("name", ["opening", "choke", "browsing"])
@pytest.mark.parametrize("r", [5.0, 10.0, 20.0])
def test_the_market_radii_over_the_three_crowds(name, r):
    positions = crowd_of(name, 1500, 8).positions
    centres = positions[::5]
    assert disagreement(pairs_grid(centres, positions, r), centres, positions, r) == []
    tree = build_linear(positions)
    assert disagreement(pairs_bvh(tree, centres, positions, r), centres, positions, r) == []


def test_an_entity_at_exactly_the_radius_is_within_it():
    positions = np.array([[10.0, 1.0, 10.0], [15.0, 1.0, 10.0], [10.0, 1.0, 15.5]], np.float32)
    centres = positions[:1]
    for found in (
        pairs_grid(centres, positions, 5.0),
        pairs_bvh(build_linear(positions), centres, positions, 5.0),
    ):
        assert sorted(found.entity.tolist()) == [0, 1]


def test_control_grid_cells_narrower_than_the_radius_are_caught(monkeypatch):
    positions = crowd_of("browsing", 600, 3).positions
    monkeypatch.setattr(radius, "_CELL_MARGIN", 0.5)
    found = pairs_grid(positions, positions, 6.0)
    assert disagreement(found, positions, positions, 6.0) != []


def test_control_a_tree_with_a_box_too_small_is_caught():
    positions = crowd_of("choke", 600, 3).positions
    tree = build_linear(positions)
    shrunk = tree.bounds.copy()
    shrunk[:, tree.root] += 4.0  # the root's box pulled in by 4 m on every side
    parts = {name: getattr(tree, name) for name in Bvh.__dataclass_fields__}
    bad = Bvh(**{**parts, "bounds": shrunk})
    found = pairs_bvh(bad, positions, positions, 3.0)
    assert disagreement(found, positions, positions, 3.0) != []


@settings(max_examples=60)
@given(crowds(120), radii, st.integers(1, 40), st.data())
def test_nearest_keeps_each_centres_nearest_few_and_no_farther_one(positions, r, most, data):
    centres = data.draw(centres_for(positions))
    pairs = pairs_brute(centres, positions, r)
    kept = nearest(pairs, centres.shape[0], positions.shape[0], most)
    d2 = ((positions[None].astype(np.float64) - centres[:, None].astype(np.float64)) ** 2).sum(2)
    for i in range(centres.shape[0]):
        inside = np.flatnonzero(d2[i] <= r * r)
        ranked = inside[np.lexsort((inside, d2[i, inside]))]
        assert np.flatnonzero(kept[i]).tolist() == sorted(ranked[:most].tolist())


@pytest.mark.parametrize(
    ("centres", "r", "error", "message"),
    [
        (np.zeros((2, 2)), 5.0, ValueError, r"centres must have shape \(V, 3\)"),
        (np.array([[1.0, np.nan, 1.0]]), 5.0, ValueError, "centres must be finite: row 0"),
        (np.array([["a", "b", "c"]]), 5.0, ValueError, "centres must be numeric"),
        (np.zeros((2, 3)), 0.0, ValueError, "radius must be a positive finite number"),
        (np.zeros((2, 3)), -1.0, ValueError, "radius must be a positive finite number"),
        (np.zeros((2, 3)), float("inf"), ValueError, "radius must be a positive finite number"),
        (np.zeros((2, 3)), "5", TypeError, "radius must be a number"),
    ],
)
def test_bad_centres_and_radii_are_refused_by_name(centres, r, error, message):
    positions = crowd_of("opening", 20, 1).positions
    for query in (
        lambda: pairs_brute(centres, positions, r),
        lambda: pairs_grid(centres, positions, r),
        lambda: pairs_bvh(build_linear(positions), centres, positions, r),
    ):
        with pytest.raises(error, match=message):
            query()


def test_a_tree_of_other_entities_and_bad_run_lengths_are_refused():
    positions = crowd_of("opening", 20, 1).positions
    tree = build_linear(positions)
    with pytest.raises(ValueError, match="the tree holds 20 entities, positions has 19"):
        pairs_bvh(tree, positions, positions[:19], 5.0)
    for run in (0, -3, 2.0, True):
        with pytest.raises(ValueError, match="run must be an int of at least 1"):
            pairs_bvh(tree, positions, positions, 5.0, run)
