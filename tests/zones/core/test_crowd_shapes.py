"""The three crowds: the same crowd for the same seed, flat on the floor, and the shapes they claim."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zones.core import crowd_shapes
from zones.core.constants import MARKET_SIZE_M
from zones.core.crowd import FLOOR_Y_M
from zones.core.crowd_shapes import (
    CHOKE_GAP_M,
    CHOKE_WALL_M,
    CHOKE_WALL_Z_M,
    CROWDS,
    GROUP_RADIUS_M,
    GROUP_SIZE,
    MAX_ENTITIES,
    PACKING_M,
    crowd_of,
)

names = st.sampled_from(list(CROWDS))


@settings(max_examples=30)
@given(names, st.integers(1, 3000), st.integers(0, 2**32))
def test_a_crowd_is_a_function_of_its_size_and_seed_flat_and_inside_the_walls(name, n, seed):
    crowd = crowd_of(name, n, seed)
    again = crowd_of(name, n, seed)
    assert np.array_equal(crowd.positions, again.positions)
    assert np.array_equal(crowd.velocities, again.velocities)
    assert crowd.positions.shape == crowd.velocities.shape == (n, 3)
    assert crowd.positions.dtype == crowd.velocities.dtype == np.float32
    assert np.all(crowd.positions[:, 1] == FLOOR_Y_M)
    assert np.all(crowd.velocities[:, 1] == 0.0)
    floor = crowd.positions[:, [0, 2]]
    assert np.all(floor > 0) and np.all(floor < [MARKET_SIZE_M[0], MARKET_SIZE_M[2]])
    moved = crowd.moved(0.05)
    assert np.all(moved[:, 1] == FLOOR_Y_M)
    assert np.all(np.abs(moved - crowd.positions) <= np.abs(crowd.velocities) * 0.05 + 1e-4)


@pytest.mark.parametrize("name", list(CROWDS))
def test_another_seed_is_another_crowd(name):
    assert not np.array_equal(crowd_of(name, 500, 1).positions, crowd_of(name, 500, 2).positions)


def test_the_opening_crowd_is_packed_at_the_doors():
    n = 2000
    crowd = crowd_of("opening", n, 5).positions[:, [0, 2]]
    doors = np.array([MARKET_SIZE_M[0] / 2, 0.0])
    # n people at two a square metre fill a half disc of this radius; the edge is ragged
    packed = np.sqrt(2 * n * PACKING_M**2 / np.pi)
    assert np.linalg.norm(crowd - doors, axis=1).max() < packed + 4.0
    assert crowd_of("browsing", n, 5).positions[:, 2].max() > packed + 4.0  # the control


def test_the_choke_crowd_crosses_the_wall_only_through_the_gap():
    crowd = crowd_of("choke", 5000, 3).positions
    at_wall = np.abs(crowd[:, 2] - CHOKE_WALL_Z_M) < CHOKE_WALL_M / 2
    assert at_wall.any()
    assert np.all(np.abs(crowd[at_wall, 0] - MARKET_SIZE_M[0] / 2) < CHOKE_GAP_M / 2)
    near, far = crowd[:, 2] < CHOKE_WALL_Z_M, crowd[:, 2] > CHOKE_WALL_Z_M
    assert near.sum() > 0.4 * crowd.shape[0] and far.sum() > 0.4 * crowd.shape[0]


def test_the_browsing_crowd_walks_in_groups():
    crowd = crowd_of("browsing", 600, 9).positions
    for start in range(0, 600, GROUP_SIZE):
        group = crowd[start : start + GROUP_SIZE]
        spread = np.linalg.norm(group[:, None] - group[None, :], axis=2).max()
        assert spread <= 2 * GROUP_RADIUS_M + 1e-4
    # the groups are not all in one place: they stand all over the market
    assert np.ptp(crowd[:, 0]) > MARKET_SIZE_M[0] / 2


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (("opening", 0, 1), ValueError, "1 to 20,000"),
        (("choke", MAX_ENTITIES + 1, 1), ValueError, "1 to 20,000"),
        (("browsing", 10, -1), ValueError, "seed must be at least 0"),
        (("opening", 10.0, 1), TypeError, "n must be an int"),
        (("opening", True, 1), TypeError, "n must be an int"),
        (("browsing", 10, "1"), TypeError, "seed must be an int"),
        (("queue", 10, 1), ValueError, "no crowd called 'queue'"),
    ],
)
def test_bad_sizes_seeds_and_names_are_refused_by_name(args, error, message):
    with pytest.raises(error, match=message):
        crowd_of(*args)


def test_a_floor_too_small_for_the_crowd_is_refused(monkeypatch):
    monkeypatch.setattr(crowd_shapes, "PACKING_M", 10.0)  # 13 × 13 spots on the floor
    with pytest.raises(ValueError, match="the floor holds 169 people here, not 1,000"):
        crowd_of("opening", 1000, 1)
