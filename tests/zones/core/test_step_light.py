"""The short paths of a lightly loaded zone's step compute what the long ones do.

* `integrate` gathers the live slots when few are live and passes over every
  slot otherwise: forced one way or the other, a zone's run is the same bits.
* `PositionEncoder` gives the codes `encode_positions` gives, for any bounds.

Each property has a control that plants a bug in the short path and must be caught.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from zones.core import motion
from zones.core.constants import MAX_STEP_M, TICK_MS, TICK_SECONDS
from zones.core.hilbert import PositionEncoder, encode_positions, position_encoder
from zones.core.ranges import equal_ranges
from zones.core.state import Status, ZoneParams, ZoneState
from zones.core.step import StepInputs, step
from zones.core.wire import COMMAND_DTYPE, SPAWN_DTYPE, CommandKind, RowFlag

PROPERTY = settings(
    max_examples=15,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
CONTROL = settings(
    max_examples=5,
    deadline=None,
    phases=[Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)

CAPACITY = 64  # a quarter is 16 live slots: the runs below cross it both ways
BOUNDS = (np.zeros(3, np.float32), np.array([16.0, 8.0, 16.0], np.float32))
PARAMS = ZoneParams(zone=0, lo=BOUNDS[0], hi=BOUNDS[1], capacity=CAPACITY, spawn_cap=CAPACITY)
FOREVER_SPARSE, NEVER_SPARSE = 0, 10**9  # motion.SPARSE_SHARE forcing one branch


def tick_inputs(rng: np.random.Generator, state: ZoneState, t: int) -> StepInputs:
    """Spawns near the walls, walks out of bounds, moves (some too far), despawns."""
    spawns = np.zeros(int(rng.integers(0, 4)) if t < 60 else 0, SPAWN_DTYPE)
    spawns["id"] = rng.integers(1, 10**6, spawns.size)
    spawns["pos"] = rng.uniform(-1.0, 17.0, (spawns.size, 3))
    spawns["vel"] = rng.uniform(-8.0, 8.0, (spawns.size, 3))
    spawns["kind"] = RowFlag.VISITOR_ROOT
    live = np.flatnonzero(state.status == Status.OWNED)
    picked = rng.permutation(live)[: int(rng.integers(0, live.size + 1))]
    commands = np.zeros(picked.size, COMMAND_DTYPE)
    commands["id"] = state.id[picked]
    moves = rng.random(picked.size) < 0.5
    commands["kind"] = np.where(moves, CommandKind.MOVE, CommandKind.VELOCITY)
    # a move within reach (a few are 3 times too far) or an outward velocity
    reach = np.where(rng.random(picked.size) < 0.8, 0.9, 3.0) * MAX_STEP_M / np.sqrt(3)
    step_to = state.pos[picked] + rng.uniform(-1, 1, (picked.size, 3)) * reach[:, None]
    commands["vec"] = np.where(moves[:, None], step_to, rng.uniform(-9, 9, (picked.size, 3)))
    despawns = rng.permutation(live)[: int(rng.integers(0, 3)) if t > 80 else 0]
    return StepInputs(
        now_ms=(t + 1) * TICK_MS,
        commands=commands,
        spawns=spawns,
        despawns=state.id[despawns].astype(np.uint64),
    )


def run_zone(seed: int, sparse_share: int, ticks: int = 140) -> list[bytes]:
    """Each tick's live records and published rows, as bytes."""
    rng = np.random.default_rng(seed)
    state = ZoneState.empty(0, equal_ranges(1), CAPACITY)
    trace = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(motion, "SPARSE_SHARE", sparse_share)
        for t in range(ticks):
            state, out = step(state, tick_inputs(rng, state, t), PARAMS)
            live = np.flatnonzero(state.status)
            trace.append(
                b"".join(
                    getattr(state, name)[live].tobytes()
                    for name in ("status", "id", "pos", "vel", "code", "outside", "move_clock")
                )
                + out.rows.tobytes()
                + out.rejected_commands.tobytes()
            )
    return trace


def first_difference(seed: int) -> int | None:
    """The first tick at which the sparse and the dense integration disagree."""
    sparse, dense = run_zone(seed, FOREVER_SPARSE), run_zone(seed, NEVER_SPARSE)
    return next((t for t, (a, b) in enumerate(zip(sparse, dense, strict=True)) if a != b), None)


@PROPERTY
@given(st.integers(0, 2**32 - 1))
def test_sparse_and_dense_integration_give_the_same_run(seed):
    assert first_difference(seed) is None


def test_the_runs_exercise_both_branches_and_every_kind_of_input():
    """Not vacuous: live counts on both sides of a quarter, moves kept and refused,
    entities pushed against the walls."""
    rng = np.random.default_rng(3)
    state = ZoneState.empty(0, equal_ranges(1), CAPACITY)
    lives, refused, moved, at_wall = set(), 0, 0, 0
    for t in range(140):
        inputs = tick_inputs(rng, state, t)
        before = state.move_clock.copy()
        state, out = step(state, inputs, PARAMS)
        live = np.flatnonzero(state.status)
        lives.add(live.size * 4 > CAPACITY)
        refused += out.rejected_commands.size
        moved += int(np.count_nonzero(state.move_clock[live] != before[live]))
        at_wall += int(np.count_nonzero(np.isin(state.pos[live], [0.0, 8.0, 16.0])))
    assert lives == {True, False}
    assert refused and moved and at_wall


def sparse_integrate_without_bounds(state, lo, hi, live=None):
    """`integrate` whose gathering branch forgets the market's walls: a planted bug."""
    live = np.flatnonzero(state.status)
    if live.size * motion.SPARSE_SHARE > state.capacity or live.size == 0:
        return motion.integrate(state, lo, hi, live)
    state.pos[live] = state.pos[live] + state.vel[live] * np.float32(TICK_SECONDS)


@CONTROL
@given(st.integers(0, 2**32 - 1))
def test_control_a_gathering_branch_that_forgets_the_walls_is_caught(seed):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("zones.core.step.integrate", sparse_integrate_without_bounds)
        assert first_difference(seed) is not None


bounds = st.tuples(
    st.lists(st.floats(-100, 100, width=32), min_size=3, max_size=3),
    st.lists(st.floats(1, 200, width=32), min_size=3, max_size=3),
).map(lambda b: (np.array(b[0], np.float32), np.array(b[0], np.float32) + np.array(b[1])))


@PROPERTY
@given(bounds, st.integers(0, 300), st.integers(0, 2**32 - 1))
def test_the_position_encoder_gives_the_codes_of_encode_positions(box, n, seed):
    lo, hi = box
    span = hi - lo
    positions = np.random.default_rng(seed).uniform(lo - span / 4, hi + span / 4, (n, 3))
    positions = positions.astype(np.float32)
    expected = encode_positions(positions, lo, hi)
    codes = position_encoder(lo, hi)(positions)
    assert codes.dtype == expected.dtype and np.array_equal(codes, expected)


@CONTROL
@given(bounds, st.integers(0, 2**32 - 1))
def test_control_an_encoder_that_ignores_the_axis_order_is_caught(box, seed):
    lo, hi = box
    positions = np.random.default_rng(seed).uniform(lo, hi, (200, 3)).astype(np.float32)
    encoder = PositionEncoder(lo, hi)
    encoder._places = np.array([1 << 20, 1 << 10, 1], np.uint32)  # x, y, z: y and z swapped
    assert not np.array_equal(encoder(positions), encode_positions(positions, lo, hi))


def test_the_position_encoder_refuses_what_encode_positions_refuses():
    lo, hi = BOUNDS
    positions = np.ones((4, 3), np.float32)
    positions[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN: row 2"):
        position_encoder(lo, hi)(positions)
    with pytest.raises(ValueError, match="shape"):
        position_encoder(lo, hi)(np.ones((4, 2), np.float32))
    with pytest.raises(ValueError, match="lo < hi"):
        PositionEncoder(hi, lo)
