"""The binned-SAH reference build: every entity once, tight boxes, separating axes, its cost."""

import numpy as np
import pytest
from hypothesis import given, settings

from zones.core.bvh import build_linear, sah
from zones.core.bvh_binned import build_binned
from zones.core.crowd_shapes import CROWDS, crowd_of

from .trees import crowds, separated_along, tree_violations


@settings(max_examples=60)
@given(crowds())
def test_a_binned_tree_holds_every_entity_once_in_tight_boxes_split_where_it_says(positions):
    tree = build_binned(positions)
    assert tree_violations(tree, positions) == []
    assert separated_along(tree, positions) == []


@pytest.mark.parametrize("name", list(CROWDS))
def test_the_reference_costs_less_than_the_linear_trees_on_the_three_crowds(name):
    positions = crowd_of(name, 2000, 13).positions
    reference = build_binned(positions)
    assert tree_violations(reference, positions) == []
    assert sah(reference) < sah(build_linear(positions, "hilbert"))
    assert sah(reference) < sah(build_linear(positions, "morton"))


def test_entities_on_one_spot_are_split_on_no_axis():
    tree = build_binned(np.ones((6, 3), np.float32))
    assert tree_violations(tree, np.ones((6, 3), np.float32)) == []
    assert np.all(tree.axis == -1)


def test_ties_between_axes_go_to_the_longest_one():
    # two entities cost 0 split on either axis they differ in; z is the longer way apart
    positions = np.array([[10.0, 1.0, 10.0], [11.0, 1.0, 30.0]], np.float32)
    assert build_binned(positions).axis.tolist() == [2]


def test_the_same_positions_build_the_same_tree():
    positions = crowd_of("browsing", 2000, 5).positions
    assert build_binned(positions).digest() == build_binned(positions.copy()).digest()


@pytest.mark.parametrize("bins", [1, 0, 2.5, True])
def test_bad_bin_counts_are_refused(bins):
    with pytest.raises(ValueError, match="bins must be an int of at least 2"):
        build_binned(crowd_of("opening", 10, 1).positions, bins)
