"""One zone's step in isolation: commands, spawns, the handoff, what it publishes."""

import numpy as np
import pytest

from zones.core.constants import (
    FLOOR_Y_M,
    HYSTERESIS_TICKS,
    LATENCY_TICKS,
    MAX_MIGRATIONS_PER_TICK,
    MAX_STEP_M,
    MOVE_SLACK_TICKS,
    SIM_TICK_HZ,
    TICK_MS,
    V_MAX_M_PER_S,
)
from zones.core.interest import resolve_authority, within_radius
from zones.core.messages import Ack, Intent, Nack
from zones.core.ranges import equal_ranges
from zones.core.state import Status, ZoneParams, ZoneState
from zones.core.step import StepInputs, step
from zones.core.wire import COMMAND_DTYPE, ROW_DTYPE, SPAWN_DTYPE, CommandKind, ReplyReason, RowFlag

RANGES = equal_ranges(2)  # zone 0: x < 64 m, zone 1: x >= 64 m (first split is on x)
PARAMS = [ZoneParams(zone=z) for z in range(2)]
TO_START = HYSTERESIS_TICKS - 1  # ticks after the spawn tick, which already counts as outside


def spawn_rows(ids, x=10.0, vel=(0.0, 0.0, 0.0)):
    rows = np.zeros(len(ids), SPAWN_DTYPE)
    rows["id"] = ids
    rows["pos"] = (x, 1.0, 10.0)
    rows["vel"] = vel
    rows["kind"] = RowFlag.VISITOR_ROOT
    return rows


def zone_with(ids, zone=0, **kw):
    state = ZoneState.empty(zone, RANGES)
    state, out = step(state, StepInputs(now_ms=TICK_MS, spawns=spawn_rows(ids, **kw)), PARAMS[zone])
    assert out.spawned.size == len(ids)
    return state


def command(ident, kind, vec, seq=1):
    c = np.zeros(1, COMMAND_DTYPE)
    c["id"], c["kind"], c["vec"], c["seq"] = ident, kind, vec, seq
    return c


def run(state, ticks, zone=0, **inputs):
    out = None
    for _ in range(ticks):
        state, out = step(
            state, StepInputs(now_ms=(state.tick + 1) * TICK_MS, **inputs), PARAMS[zone]
        )
        inputs = {}
    return state, out


def test_step_does_not_modify_its_input_state():
    state = zone_with([1, 2, 3])
    before = state.pos.copy()
    step(
        state,
        StepInputs(now_ms=10_000, commands=command(1, CommandKind.VELOCITY, (3, 0, 0))),
        PARAMS[0],
    )
    assert np.array_equal(state.pos, before) and state.tick == 1


def test_velocity_commands_are_clamped_to_v_max():
    state, _ = run(zone_with([1]), 1, commands=command(1, CommandKind.VELOCITY, (300.0, 0, 400.0)))
    assert np.linalg.norm(state.vel[state.slots_of(np.array([1], np.uint64))[0]]) == pytest.approx(
        V_MAX_M_PER_S
    )


def test_a_move_within_v_max_is_applied():
    state = zone_with([1])
    state, out = run(
        state, 1, commands=command(1, CommandKind.MOVE, (10.0 + MAX_STEP_M, 1.0, 10.0))
    )
    assert out.rejected_commands.size == 0
    assert state.pos[state.slots_of(np.array([1], np.uint64))[0], 0] == pytest.approx(
        10.0 + MAX_STEP_M
    )


@pytest.mark.parametrize(
    "target", [(10.0 + 3 * MAX_STEP_M, 1.0, 10.0), (np.nan, 1.0, 10.0), (1e30, 0, 0)]
)
def test_a_move_faster_than_v_max_is_rejected_and_leaves_the_entity_in_place(target):
    state = zone_with([1, 2])
    state, out = run(
        state,
        1,
        commands=np.concatenate(
            [
                command(1, CommandKind.MOVE, target, seq=9),
                command(2, CommandKind.VELOCITY, (1, 0, 0)),
            ]
        ),
    )
    assert out.rejected_commands["id"].tolist() == [1] and out.rejected_commands[
        "seq"
    ].tolist() == [9]
    slot = state.slots_of(np.array([1], np.uint64))[0]
    assert state.pos[slot].tolist() == pytest.approx([10.0, 1.0, 10.0])
    assert state.vel[state.slots_of(np.array([2], np.uint64))[0], 0] == pytest.approx(
        1.0
    )  # others unaffected


def test_a_move_may_catch_up_for_ticks_without_moves():
    state, _ = run(zone_with([1]), 4)
    _, out = run(
        state, 1, commands=command(1, CommandKind.MOVE, (10.0 + 4 * MAX_STEP_M, 1.0, 10.0))
    )
    assert out.rejected_commands.size == 0


def slot_of(state, ident):
    return state.slots_of(np.array([ident], np.uint64))[0]


def test_standing_still_banks_no_walking_time_for_a_teleport():
    """12 s idle, then a move of 100 m: refused, as is anything beyond the slack's 2 m."""
    state, _ = run(zone_with([1]), 12 * SIM_TICK_HZ)
    reach = MOVE_SLACK_TICKS * MAX_STEP_M
    for far in (100.0, reach + 0.1):
        _, out = run(state, 1, commands=command(1, CommandKind.MOVE, (10.0 + far, 1.0, 10.0)))
        assert out.rejected_commands["id"].tolist() == [1], far
    state, out = run(state, 1, commands=command(1, CommandKind.MOVE, (10.0 + reach, 1.0, 10.0)))
    assert out.rejected_commands.size == 0
    assert state.pos[slot_of(state, 1), 0] == pytest.approx(10.0 + reach)


def test_moves_in_one_tick_share_the_walking_time():
    """Many small moves at once cover no more than one move could."""
    state, _ = run(zone_with([1]), 12 * SIM_TICK_HZ)
    steps = MOVE_SLACK_TICKS + 3
    moves = np.concatenate(
        [
            command(1, CommandKind.MOVE, (10.0 + MAX_STEP_M * (k + 1), 1.0, 10.0), seq=k + 1)
            for k in range(steps)
        ]
    )
    state, out = run(state, 1, commands=moves)
    assert out.rejected_commands["seq"].tolist() == list(range(MOVE_SLACK_TICKS + 1, steps + 1))
    assert state.pos[slot_of(state, 1), 0] == pytest.approx(10.0 + MOVE_SLACK_TICKS * MAX_STEP_M)


def test_a_walker_moving_every_tick_at_v_max_is_never_refused():
    state = zone_with([1])
    x = 10.0
    for _ in range(3 * SIM_TICK_HZ):
        x += MAX_STEP_M
        state, out = run(state, 1, commands=command(1, CommandKind.MOVE, (x, 1.0, 10.0)))
        assert out.rejected_commands.size == 0
    assert state.pos[slot_of(state, 1), 0] == pytest.approx(x)


def test_a_move_ends_at_its_target():
    """Walking, then a 0.4 m move: the entity stops there, with no velocity to drift on."""
    state, _ = run(zone_with([1]), 1, commands=command(1, CommandKind.VELOCITY, (3.0, 0.0, 0.0)))
    x = float(state.pos[slot_of(state, 1), 0]) + 0.4
    state, _ = run(state, 1, commands=command(1, CommandKind.MOVE, (x, 1.0, 10.0)))
    state, out = run(state, 2 * SIM_TICK_HZ)
    slot = slot_of(state, 1)
    assert state.vel[slot].tolist() == [0.0, 0.0, 0.0]
    assert state.pos[slot].tolist() == pytest.approx([x, FLOOR_Y_M, 10.0])
    row = out.rows[out.rows["id"] == 1][0]
    assert row["vel"].tolist() == [0.0, 0.0, 0.0]


def test_a_vertical_velocity_does_not_lift_anyone_off_the_floor():
    state, _ = run(zone_with([1]), 1, commands=command(1, CommandKind.VELOCITY, (0.0, 5.0, 1.0)))
    state, _ = run(state, 10 * SIM_TICK_HZ)
    slot = slot_of(state, 1)
    assert state.vel[slot].tolist() == [0.0, 0.0, 1.0]
    assert state.pos[slot, 1] == FLOOR_Y_M


def test_a_move_above_the_floor_lands_on_the_floor():
    state, _ = run(zone_with([1]), 1)
    state, out = run(state, 1, commands=command(1, CommandKind.MOVE, (10.2, 30.0, 10.0)))
    assert out.rejected_commands.size == 0
    assert state.pos[slot_of(state, 1)].tolist() == pytest.approx([10.2, FLOOR_Y_M, 10.0])


def test_spawns_stand_on_the_floor_and_walk_along_it():
    rows = spawn_rows([1, 2], vel=(1.0, -4.0, 0.0))
    rows["pos"][:, 1] = (20.0, 0.0)
    state, _ = step(ZoneState.empty(0, RANGES), StepInputs(now_ms=TICK_MS, spawns=rows), PARAMS[0])
    live = state.slots_of(np.array([1, 2], np.uint64))
    assert state.pos[live, 1].tolist() == [FLOOR_Y_M, FLOOR_Y_M]
    assert state.vel[live, 1].tolist() == [0.0, 0.0]


def test_unknown_command_kinds_are_rejected_and_unknown_entities_unrouted():
    state = zone_with([1])
    cmds = np.concatenate([command(1, 7, (0, 0, 0)), command(99, CommandKind.VELOCITY, (1, 0, 0))])
    _, out = run(state, 1, commands=cmds)
    assert out.rejected_commands["id"].tolist() == [1]
    assert out.unrouted_commands["id"].tolist() == [99]


def test_spawns_stop_at_the_spawn_cap_and_duplicates_are_refused():
    params = ZoneParams(zone=0, spawn_cap=5)
    state, out = step(
        ZoneState.empty(0, RANGES), StepInputs(now_ms=50, spawns=spawn_rows([1, 2, 2, 3])), params
    )
    assert out.spawned.tolist() == [1, 2, 3] and out.spawn_refused.tolist() == [2]
    state, out = step(state, StepInputs(now_ms=100, spawns=spawn_rows([3, 4, 5, 6, 7])), params)
    assert out.spawned.tolist() == [4, 5] and sorted(out.spawn_refused.tolist()) == [3, 6, 7]
    assert state.live_count() == 5


def test_despawn_of_an_entity_in_flight_is_deferred():
    state = zone_with([1, 2], x=70.0)  # outside zone 0: will stage to zone 1
    state, out = run(state, TO_START)
    assert (
        out.migration.started
        and state.status[state.slots_of(np.array([1], np.uint64))[0]] == Status.STAGING
    )
    state, out = run(state, 1, despawns=np.array([1, 5], np.uint64))
    assert out.despawn_deferred.tolist() == [1] and out.despawned.size == 0


def test_no_transfer_before_hysteresis_and_an_intent_after():
    state = zone_with([1], x=70.0)
    state, out = run(state, TO_START - 1)
    assert not out.migration.started
    state, out = run(state, 1)
    (intent,) = [m for m in out.messages if isinstance(m, Intent)]
    assert (
        intent.dst == 1
        and intent.rows["id"].tolist() == [1]
        and intent.rows["epoch"].tolist() == [2]
    )


def test_returning_inside_resets_the_hysteresis_counter():
    state = zone_with([1], x=64.2, vel=(-1.0, 0, 0))  # walks back into zone 0 after 5 ticks
    state, _ = run(state, HYSTERESIS_TICKS + 10)
    assert state.outside.max() == 0 and state.status[state.status != 0].tolist() == [Status.OWNED]


def test_handoff_target_acks_only_after_promotion_and_source_releases_on_ack():
    source = zone_with([1], x=70.0)
    source, out = run(source, TO_START)
    (intent,) = [m for m in out.messages if isinstance(m, Intent)]
    target = ZoneState.empty(1, RANGES, hlc=source.hlc)
    target.tick = source.tick - 1  # both zones read the same wall clock
    target, tout = step(
        target, StepInputs(now_ms=source.tick * TICK_MS, messages=(intent,)), PARAMS[1]
    )
    assert target.status[target.status != 0].tolist() == [Status.INCOMING]
    assert not [m for m in tout.messages if isinstance(m, Ack)]
    rows = np.concatenate([_rows(source), tout.rows])
    assert resolve_authority(rows)["zone"].tolist() == [0]  # the source still has authority
    acks = []
    for _ in range(LATENCY_TICKS + 1):
        target, tout = run(target, 1, zone=1)
        acks += [m for m in tout.messages if isinstance(m, Ack)]
    (ack,) = acks
    assert target.status[target.status != 0].tolist() == [Status.OWNED]
    source, sout = run(source, 1, messages=(ack,))
    assert source.live_count() == 0 and sout.migration.released[0].tolist() == [1]
    # a duplicate of the intent is acked again, never admitted twice
    target, tout = run(target, 1, zone=1, messages=(intent,))
    assert target.live_count() == 1 and [m for m in tout.messages if isinstance(m, Ack)]


def _rows(state):
    from zones.core.interest import interest_rows

    return interest_rows(state)


def test_a_refusal_is_remembered_so_a_late_copy_of_the_intent_is_refused_again():
    source = zone_with([1], x=70.0)
    source, out = run(source, TO_START)
    (intent,) = [m for m in out.messages if isinstance(m, Intent)]
    full = ZoneState.empty(1, RANGES)
    params = ZoneParams(zone=1, capacity=1, spawn_cap=1)
    full, _ = step(full, StepInputs(now_ms=50, spawns=spawn_rows([50], x=100.0)), params)
    full, fout = step(full, StepInputs(now_ms=100, messages=(intent,)), params)
    (nack,) = [m for m in fout.messages if isinstance(m, Nack)]
    assert nack.replies["reason"].tolist() == [ReplyReason.FULL]
    full, _ = step(
        full, StepInputs(now_ms=150, despawns=np.array([50], np.uint64)), params
    )  # room now
    full, fout = step(full, StepInputs(now_ms=200, messages=(intent,)), params)
    (again,) = [m for m in fout.messages if isinstance(m, Nack)]
    assert again.replies["reason"].tolist() == [ReplyReason.REFUSED] and full.live_count() == 0
    source, sout = run(source, 1, messages=(nack,))
    assert source.status[source.status != 0].tolist() == [Status.OWNED] and sout.migration.refused


def test_answers_for_another_epoch_are_ignored():
    source = zone_with([1], x=70.0)
    source, out = run(source, TO_START)
    (intent,) = [m for m in out.messages if isinstance(m, Intent)]
    stale = intent.rows[["id", "epoch"]].copy()
    replies = np.zeros(1, [("id", "<u8"), ("epoch", "<u4"), ("reason", "<u4")])
    replies["id"], replies["epoch"] = 1, int(stale["epoch"][0]) - 1
    source, sout = run(
        source,
        1,
        messages=(
            Nack(src=1, dst=0, hlc=0, replies=replies),
            Ack(src=1, dst=0, hlc=0, replies=replies),
        ),
    )
    assert source.status[source.status != 0].tolist() == [Status.STAGING]
    assert sout.migration.stale == 2


def test_at_most_fifty_transfers_start_per_tick():
    state = zone_with(list(range(1, 121)), x=70.0)
    state, out = run(state, TO_START)
    assert sum(ids.size for ids in out.migration.started) == MAX_MIGRATIONS_PER_TICK
    state, out = run(state, 1)
    assert sum(ids.size for ids in out.migration.started) == MAX_MIGRATIONS_PER_TICK


def test_rows_flag_authority_and_ghosts():
    state = zone_with([1, 2], x=70.0)
    state, out = run(state, TO_START)
    assert out.rows.dtype == ROW_DTYPE
    assert np.all(out.rows["flags"] & RowFlag.STAGING) and np.all(
        out.rows["flags"] & RowFlag.AUTHORITATIVE
    )
    assert np.all(out.rows["flags"] & RowFlag.VISITOR_ROOT)


def test_cut_by_radius_keeps_only_rows_within_five_metres():
    rows = np.zeros(3, ROW_DTYPE)
    rows["pos"] = [(0, 0, 0), (3, 0, 4), (3, 0, 4.01)]
    assert within_radius(rows, np.zeros(3), 5.0).tolist() == [True, True, False]


def test_cached_id_index_matches_a_fresh_lookup_after_every_kind_of_change():
    state = zone_with(list(range(1, 40)), x=70.0)
    for t in range(HYSTERESIS_TICKS + 5):
        state, _ = run(
            state,
            1,
            despawns=np.array([t + 1], np.uint64) if t % 7 == 0 else np.zeros(0, np.uint64),
        )
        ids = np.arange(0, 45, dtype=np.uint64)
        fresh = state.copy()
        fresh.membership_changed()
        assert np.array_equal(state.slots_of(ids), fresh.slots_of(ids))


def test_rows_carry_the_highest_input_seq_taken_refused_or_not():
    state = zone_with([1, 2])
    state, out = run(state, 1, commands=command(1, CommandKind.VELOCITY, (1.0, 0.0, 0.0), seq=3))
    assert dict(zip(out.rows["id"].tolist(), out.rows["seq"].tolist(), strict=True)) == {1: 3, 2: 0}
    too_far = command(1, CommandKind.MOVE, (120.0, 0.0, 120.0), seq=5)
    state, out = run(state, 1, commands=too_far)
    assert out.rejected_commands["seq"].tolist() == [5]  # answered: it counts as taken
    assert out.rows["seq"][out.rows["id"] == 1].tolist() == [5]
    late = command(1, CommandKind.VELOCITY, (0.0, 0.0, 0.0), seq=4)  # reordered on the way
    state, out = run(state, 1, commands=np.concatenate([late, late]))
    assert out.rows["seq"][out.rows["id"] == 1].tolist() == [5]


def test_a_spawn_into_a_freed_slot_starts_its_seq_at_zero():
    state = zone_with([1])
    state, _ = run(state, 1, commands=command(1, CommandKind.VELOCITY, (0.0, 0.0, 0.0), seq=9))
    state, _ = run(state, 1, despawns=np.array([1], np.uint64))
    assert state.live_count() == 0
    state, out = run(state, 1, spawns=spawn_rows([2]))
    assert out.rows["seq"].tolist() == [0]


def test_the_input_seq_travels_with_a_handoff():
    source = zone_with([1], x=70.0)
    source, _ = run(source, 1, commands=command(1, CommandKind.VELOCITY, (0.0, 0.0, 0.0), seq=7))
    source, out = run(source, TO_START - 1)
    (intent,) = [m for m in out.messages if isinstance(m, Intent)]
    assert intent.rows["seq"].tolist() == [7]
    target = ZoneState.empty(1, RANGES, hlc=source.hlc)
    target.tick = source.tick - 1
    target, tout = step(
        target, StepInputs(now_ms=source.tick * TICK_MS, messages=(intent,)), PARAMS[1]
    )
    assert tout.rows["seq"].tolist() == [7]  # the incoming ghost already says so
    target, tout = run(target, LATENCY_TICKS + 1, zone=1)
    assert target.status[target.status != 0].tolist() == [Status.OWNED]
    assert tout.rows["seq"].tolist() == [7]
