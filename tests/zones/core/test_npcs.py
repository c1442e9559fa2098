"""NPCs with needs (zones/core/npc.py): needs, items and claims, checked decisions,
handoffs, snapshots and replay, observations."""

import numpy as np
import pytest

from zones.core import npc
from zones.core.constants import (
    DECISION_DEADLINE_TICKS,
    MAX_TRAVEL_M,
    NEED_DECAY_PER_TICK,
    SIM_TICK_HZ,
)
from zones.core.hilbert import encode_positions
from zones.core.inputlog import LogRecord, decode_records, encode_record, replay, state_hash
from zones.core.items import Items, booth_items, items_from_layout
from zones.core.mapgen import MapConfig, generate
from zones.core.observe import observations
from zones.core.ranges import floor_ranges
from zones.core.simnet import Faults, SimNetwork
from zones.core.snapshot import state_from_bytes, state_to_bytes
from zones.core.state import Status, ZoneParams, ZoneState
from zones.core.step import StepInputs, step
from zones.core.wire import (
    ANSWER_DTYPE,
    SPAWN_DTYPE,
    Action,
    AnswerReason,
    NpcState,
    RowFlag,
)

T0 = 1_800_000_000_000
CENTRE = (64.0, 1.0, 64.0)


def one_zone(items: Items | None = None) -> ZoneParams:
    return ZoneParams(zone=0, capacity=64, spawn_cap=64, items=items or Items.none())


def stall_and_fountain() -> Items:
    pos = np.array([[66.0, 1.0, 64.0], [64.0, 1.0, 70.0]], np.float32)
    return Items.of(["food_stall", "wash_fountain"], pos, [9001, 9002])


def spawn(ids, pos, kind=RowFlag.NPC) -> np.ndarray:
    rows = np.zeros(len(ids), SPAWN_DTYPE)
    rows["id"], rows["pos"], rows["kind"] = ids, pos, kind
    return rows


class Zone:
    """One zone stepped by hand."""

    def __init__(self, params: ZoneParams, delegate: bool = False) -> None:
        self.params = params
        self.state = ZoneState.empty(0, floor_ranges(1), params.capacity)
        self.delegate = delegate
        self.t = 0
        self.records: list[LogRecord] = []

    def step(self, spawns=None, answers=None):
        self.t += 1
        inputs = StepInputs(
            now_ms=T0 + 50 * self.t,
            spawns=spawns if spawns is not None else np.zeros(0, SPAWN_DTYPE),
            answers=answers if answers is not None else np.zeros(0, ANSWER_DTYPE),
            delegate=self.delegate,
        )
        self.records.append(LogRecord(tick=self.state.tick + 1, inputs=inputs))
        self.state, out = step(self.state, inputs, self.params)
        return out

    def slot(self, ident: int) -> int:
        return int(self.state.slots_of(np.array([ident], np.uint64))[0])

    def set_needs(self, ident: int, needs) -> None:
        self.state.needs[self.slot(ident)] = needs


def answer(ident, lease, action, target=0, goal=(0.0, 1.0, 0.0), ticks=0) -> np.ndarray:
    row = np.zeros(1, ANSWER_DTYPE)
    row["id"], row["lease"], row["action"] = ident, lease, action
    row["target"], row["goal"], row["ticks"] = target, goal, ticks
    return row


def leased(zone: Zone, ident: int) -> int:
    """The lease of `ident`'s decision request, stepping until one is out."""
    s = zone.slot(ident)
    if zone.state.lease_left[s] > 0:
        return int(zone.state.lease[s])
    for _ in range(200):
        out = zone.step()
        mine = out.npcs.requests[out.npcs.requests["id"] == ident]
        if mine.size:
            return int(mine["lease"][0])
    raise AssertionError("no decision request")


# --- needs -----------------------------------------------------------------------------------


def test_needs_fall_at_the_rates_of_the_constants_and_stay_within_0_to_100():
    zone = Zone(one_zone())
    zone.step(spawns=spawn([1, 2], [CENTRE, CENTRE]))
    zone.set_needs(1, [50.0, 50.0, 50.0, 50.0])
    zone.set_needs(2, [0.01, 0.01, 0.01, 0.01])
    for _ in range(20):
        zone.step()
    expected = 50.0 - 20 * np.array(NEED_DECAY_PER_TICK)
    assert np.allclose(zone.state.needs[zone.slot(1)], expected, atol=1e-4)
    assert np.all(zone.state.needs[zone.slot(2)] == 0.0)


def test_spawned_npcs_start_with_needs_between_40_and_100_and_visitors_are_left_alone():
    zone = Zone(one_zone())
    zone.step(spawns=spawn(np.arange(1, 40), [CENTRE] * 39))
    zone.step(spawns=spawn([100], [CENTRE], kind=RowFlag.VISITOR_ROOT))
    slots = np.flatnonzero((zone.state.kind & RowFlag.NPC) != 0)
    assert slots.size == 39
    assert np.all((zone.state.needs[slots] > 39) & (zone.state.needs[slots] <= 100))
    before = zone.state.vel[zone.slot(100)].copy()
    zone.step()
    assert np.array_equal(zone.state.vel[zone.slot(100)], before)


def test_a_hungry_npc_walks_to_the_food_stall_eats_and_comes_back_fed():
    zone = Zone(one_zone(stall_and_fountain()))
    zone.step(spawns=spawn([1], [CENTRE]))
    zone.set_needs(1, [10.0, 90.0, 90.0, 90.0])
    zone.state.action_left[zone.slot(1)] = 0
    seen = set()
    for _ in range(400):
        zone.step()
        s = zone.slot(1)
        seen.add((int(zone.state.npc_state[s]), int(zone.state.action[s])))
        if zone.state.needs[s, 0] > 60:
            break
    assert (NpcState.MOVING, Action.USE_ITEM) in seen
    assert (NpcState.INTERACTING, Action.USE_ITEM) in seen
    assert zone.state.needs[zone.slot(1), 0] > 60
    assert np.allclose(zone.state.pos[zone.slot(1)], [66.0, 1.0, 64.0])


def test_an_item_never_has_more_users_than_slots():
    items = stall_and_fountain()
    zone = Zone(one_zone(items))
    ids = np.arange(1, 21)
    zone.step(spawns=spawn(ids, [CENTRE] * 20))
    for i in ids:
        zone.set_needs(int(i), [5.0, 95.0, 95.0, 95.0])
    most = 0
    for _ in range(300):
        zone.step()
        used = npc.claims(zone.state, items)
        assert np.all(used <= items.slots)
        most = max(most, int(used[0]))
    assert most == items.slots[0]


def test_with_no_items_npcs_wander_and_keep_moving():
    zone = Zone(one_zone())
    zone.step(spawns=spawn([1, 2, 3], [CENTRE] * 3))
    start = zone.state.pos[[zone.slot(i) for i in (1, 2, 3)]].copy()
    for _ in range(200):
        zone.step()
    now = zone.state.pos[[zone.slot(i) for i in (1, 2, 3)]]
    assert np.all(np.linalg.norm(now - start, axis=1) > 1.0)


# --- decisions -------------------------------------------------------------------------------


def delegated(items: Items | None = None) -> Zone:
    zone = Zone(one_zone(items or stall_and_fountain()), delegate=True)
    zone.step(spawns=spawn([1, 2, 3], [CENTRE, (65.0, 1.0, 64.0), (64.0, 1.0, 66.0)]))
    return zone


def test_a_due_npc_gets_one_request_at_a_time_and_a_valid_answer_is_applied():
    zone = delegated()
    lease = leased(zone, 1)
    for _ in range(DECISION_DEADLINE_TICKS - 2):
        out = zone.step()
        assert 1 not in out.npcs.requests["id"].tolist(), "a second request while one is out"
    out = zone.step(answers=answer(1, lease, Action.MOVE_TO, goal=(70.0, 1.0, 64.0)))
    assert out.npcs.reasons.tolist() == [AnswerReason.APPLIED]
    s = zone.slot(1)
    assert zone.state.action[s] == Action.MOVE_TO and zone.state.npc_state[s] == NpcState.MOVING
    assert zone.state.lease_left[s] == 0


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda lease: answer(99, lease, Action.WAIT, ticks=5), AnswerReason.NOT_HELD),
        (lambda lease: answer(1, lease + 1, Action.WAIT, ticks=5), AnswerReason.STALE_LEASE),
        (lambda lease: answer(1, lease - 1, Action.WAIT, ticks=5), AnswerReason.STALE_LEASE),
        (lambda lease: answer(1, lease, 77), AnswerReason.UNKNOWN_ACTION),
        (lambda lease: answer(1, lease, Action.NONE), AnswerReason.UNKNOWN_ACTION),
        (
            lambda lease: answer(1, lease, Action.MOVE_TO, goal=(64.0 + MAX_TRAVEL_M + 1, 1, 64)),
            AnswerReason.OUT_OF_RANGE,
        ),
        (
            lambda lease: answer(1, lease, Action.MOVE_TO, goal=(-5.0, 1.0, 64.0)),
            AnswerReason.OUT_OF_RANGE,
        ),
        (
            lambda lease: answer(1, lease, Action.MOVE_TO, goal=(np.nan, 1.0, 64.0)),
            AnswerReason.BAD_VALUE,
        ),
        (lambda lease: answer(1, lease, Action.USE_ITEM, target=4242), AnswerReason.NO_SUCH_TARGET),
        (lambda lease: answer(1, lease, Action.TALK_TO, target=4242), AnswerReason.NO_SUCH_TARGET),
        (lambda lease: answer(1, lease, Action.TALK_TO, target=1), AnswerReason.NO_SUCH_TARGET),
        (lambda lease: answer(1, lease, Action.WAIT, ticks=0), AnswerReason.BAD_VALUE),
        (lambda lease: answer(1, lease, Action.WAIT, ticks=60_000), AnswerReason.BAD_VALUE),
    ],
)
def test_a_bad_answer_is_refused_with_its_reason_and_changes_nothing(make, reason):
    zone = delegated()
    lease = leased(zone, 1)
    before = zone.state.copy()
    out = zone.step(answers=make(lease))
    assert out.npcs.reasons.tolist() == [reason]
    s = zone.slot(1)
    for name in ("action", "target", "goal", "npc_state", "lease"):
        assert np.array_equal(getattr(zone.state, name)[s], getattr(before, name)[s]), name
    assert zone.state.lease_left[s] == before.lease_left[s] - 1  # still in flight


def test_a_target_beyond_sight_is_out_of_range_for_talk():
    zone = Zone(one_zone(), delegate=True)
    zone.step(spawns=spawn([1, 2], [CENTRE, (80.0, 1.0, 64.0)]))
    lease = leased(zone, 1)
    out = zone.step(answers=answer(1, lease, Action.TALK_TO, target=2))
    assert out.npcs.reasons.tolist() == [AnswerReason.OUT_OF_RANGE]


def test_a_duplicate_answer_and_a_late_one_change_nothing():
    zone = delegated()
    lease = leased(zone, 1)
    go = answer(1, lease, Action.MOVE_TO, goal=(70.0, 1.0, 64.0))
    other = answer(1, lease, Action.MOVE_TO, goal=(60.0, 1.0, 64.0))
    out = zone.step(answers=np.concatenate([go, other]))
    assert out.npcs.reasons.tolist() == [AnswerReason.APPLIED, AnswerReason.STALE_LEASE]
    assert zone.state.goal[zone.slot(1)][0] == 70.0
    out = zone.step(answers=go)
    assert out.npcs.reasons.tolist() == [AnswerReason.STALE_LEASE]


def test_an_expired_lease_falls_back_to_the_utility_decision_and_its_answer_is_refused():
    zone = delegated()
    lease = leased(zone, 1)
    lapsed = []
    for _ in range(DECISION_DEADLINE_TICKS):
        out = zone.step()
        lapsed += out.npcs.lapsed.tolist()
    assert 1 in lapsed
    s = zone.slot(1)
    assert zone.state.lease_left[s] == 0 or zone.state.lease[s] > lease
    out = zone.step(answers=answer(1, lease, Action.WAIT, ticks=5))
    assert out.npcs.reasons.tolist() == [AnswerReason.STALE_LEASE]


def test_two_npcs_racing_for_the_last_slot_one_gets_it_the_other_is_told_occupied():
    pos = np.array([[66.0, 1.0, 64.0]], np.float32)
    items = Items.of(["games"], pos, [9100])  # two slots
    zone = Zone(one_zone(items), delegate=True)
    out = zone.step(spawns=spawn([1, 2, 3], [CENTRE, CENTRE, CENTRE]))
    leases = {}
    for _ in range(5):
        reqs = out.npcs.requests
        leases.update(zip(reqs["id"].tolist(), reqs["lease"].tolist(), strict=True))
        out = zone.step()
    assert set(leases) == {1, 2, 3}
    out = zone.step(answers=answer(3, leases[3], Action.USE_ITEM, target=9100))
    assert out.npcs.reasons.tolist() == [AnswerReason.APPLIED]
    race = np.concatenate(
        [
            answer(2, leases[2], Action.USE_ITEM, target=9100),
            answer(1, leases[1], Action.USE_ITEM, target=9100),
        ]
    )
    out = zone.step(answers=race)
    assert out.npcs.reasons.tolist() == [AnswerReason.APPLIED, AnswerReason.OCCUPIED]
    assert npc.claims(zone.state, items).tolist() == [2]
    assert zone.state.action[zone.slot(1)] != Action.USE_ITEM


def test_an_npc_that_holds_an_item_may_be_told_to_use_it_again():
    pos = np.array([[66.0, 1.0, 64.0]], np.float32)
    items = Items.of(["food_stall"], pos, [9200])
    zone = Zone(one_zone(items), delegate=True)
    zone.step(spawns=spawn([1], [CENTRE]))
    zone.state.needs[zone.slot(1)] = 99.0
    lease = leased(zone, 1)
    zone.step(answers=answer(1, lease, Action.USE_ITEM, target=9200))
    assert npc.claims(zone.state, items).tolist() == [1]
    zone.state.decide_in[zone.slot(1)] = 0  # its next decision is due at once
    lease = leased(zone, 1)
    out = zone.step(answers=answer(1, lease, Action.USE_ITEM, target=9200))
    assert out.npcs.reasons.tolist() == [AnswerReason.APPLIED]
    assert npc.claims(zone.state, items).tolist() == [1]


def test_answers_for_an_npc_handed_to_another_zone_are_not_held_here():
    zone = delegated()
    lease = leased(zone, 1)
    zone.state.status[zone.slot(1)] = Status.STAGING
    out = zone.step(answers=answer(1, lease, Action.WAIT, ticks=5))
    assert out.npcs.reasons.tolist() == [AnswerReason.NOT_HELD]


# --- handoff, snapshot, replay ---------------------------------------------------------------


def test_needs_actions_and_leases_survive_handoffs_between_zones():
    ranges = floor_ranges(2)
    params = [ZoneParams(zone=z) for z in range(2)]
    net = SimNetwork(ranges, params, np.random.default_rng(4), faults=Faults(0, 1, 3, 0, 0))
    rng = np.random.default_rng(5)
    ids = np.arange(1, 81, dtype=np.uint64)
    pos = rng.uniform((2, 1, 2), (126, 1, 126), size=(80, 3)).astype(np.float32)
    net.run_tick(spawns={0: spawn(ids, pos)}, delegate=True)
    last_lease: dict[int, int] = {}
    last_needs: dict[int, np.ndarray] = {}
    promoted = 0
    for _ in range(400):
        outs = net.run_tick(delegate=True)
        promoted += sum(len(p) for out in outs if out for p in out.migration.promoted)
        for state in net.zones:
            held = np.flatnonzero(state.status == Status.OWNED)
            for s in held.tolist():
                ident = int(state.id[s])
                lease = int(state.lease[s])
                assert lease >= last_lease.get(ident, 0), "a lease went back"
                last_lease[ident] = lease
                if ident in last_needs:
                    # no items: needs only ever fall, by a tick's decay at most a few times
                    fell = last_needs[ident] - state.needs[s]
                    assert np.all(fell >= -1e-4), "needs jumped back up"
                    assert np.all(fell <= 4 * np.array(NEED_DECAY_PER_TICK) + 1e-4)
                last_needs[ident] = state.needs[s].copy()
    assert promoted > 0, "no NPC crossed a border"
    assert min(last_lease.values()) >= 3  # every NPC kept getting leases


def test_a_snapshot_keeps_every_npc_field():
    zone = delegated()
    leased(zone, 1)
    zone.step(answers=answer(1, int(zone.state.lease[zone.slot(1)]), Action.USE_ITEM, 9001))
    back = state_from_bytes(state_to_bytes(zone.state))
    assert state_hash(back) == state_hash(zone.state)
    s = zone.slot(1)
    assert back.action[s] == Action.USE_ITEM and back.target[s] == 9001


def test_snapshot_and_logged_answers_replay_to_the_same_state():
    zone = delegated()
    snapshot = state_to_bytes(zone.state)
    start = len(zone.records)
    for _ in range(250):
        out = zone.step()
        reqs = out.npcs.requests
        if reqs.size:
            first = reqs[0]
            zone.step(answers=answer(int(first["id"]), int(first["lease"]), Action.USE_ITEM, 9002))
    data = b"".join(encode_record(r) for r in zone.records[start:])
    records = decode_records(data).records
    assert any(r.inputs.answers.size for r in records)
    assert all(r.inputs.delegate for r in records)
    replayed = replay(state_from_bytes(snapshot), records, zone.params)
    assert state_hash(replayed) == state_hash(zone.state)


# --- observations and items ------------------------------------------------------------------


def test_an_observation_holds_what_the_npc_sees_within_10_m():
    zone = delegated()
    zone.step(spawns=spawn([50, 51], [(66.0, 1.0, 66.0), (64.0, 1.0, 90.0)], RowFlag.VISITOR_ROOT))
    (seen,) = observations(zone.state, zone.params, np.array([1], np.uint64))
    assert seen["npc"] == 1 and set(seen["needs"]) == {"hunger", "hygiene", "fun", "energy"}
    assert [i["id"] for i in seen["items"]] == [9001, 9002]
    assert seen["items"][0]["distance"] == pytest.approx(2.0, abs=0.2)
    assert {n["id"] for n in seen["npcs"]} == {2, 3}
    assert [v["id"] for v in seen["visitors"]] == [50]  # 51 is 26 m away
    actions = {(i["action"], i.get("target")) for i in seen["interactions"]}
    assert ("use_item", 9001) in actions and ("talk_to", 50) in actions
    assert ("move_to", None) in actions and ("wait", None) in actions


def test_booth_items_lie_in_their_booth_and_are_the_same_every_time():
    ranges = floor_ranges(3)
    lo, hi = np.zeros(3, np.float32), np.array([128.0, 64.0, 128.0], np.float32)
    for zone in range(3):
        items = booth_items(ranges, zone, lo, hi)
        again = booth_items(ranges, zone, lo, hi)
        assert items.size == 6 and np.array_equal(items.pos, again.pos)
        assert np.all(ranges.assign(encode_positions(items.pos, lo, hi)) == zone)


def test_a_decision_every_3_s_with_no_contributor_keeps_every_npc_living():
    items = stall_and_fountain()
    zone = Zone(one_zone(items))
    zone.step(spawns=spawn(np.arange(1, 31), [CENTRE] * 30))
    decided = 0
    for _ in range(SIM_TICK_HZ * 30):
        out = zone.step()
        decided += out.npcs.decided
        assert out.npcs.requests.size == 0
    assert decided >= 30 * 5


def test_a_generated_layouts_items_go_to_the_zones_they_stand_in():
    layout = generate(MapConfig(market_id=1, seed=7))
    ranges = floor_ranges(4)
    lo, hi = np.zeros(3, np.float32), np.array([128.0, 64.0, 128.0], np.float32)
    per_zone = [items_from_layout(layout, ranges, z, lo, hi) for z in range(4)]
    assert sum(items.size for items in per_zone) == len(layout["items"]) > 0
    for zone, items in enumerate(per_zone):
        if items.size:
            assert np.all(ranges.assign(encode_positions(items.pos, lo, hi)) == zone)
    by_id = {int(i["id"].split(".")[1]): i for i in layout["items"]}
    for zone, items in enumerate(per_zone):
        for k in range(items.size):
            source = by_id[int(items.id[k]) - (1 << 48) - zone * 4096]
            assert items.kind_name(k) == source["kind"] and items.slots[k] == source["capacity"]
