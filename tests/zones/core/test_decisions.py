"""A zone forgets a transfer decision once no intent can need it, and not before.

The table (zones/core/decisions.py) forgets a decision about x once every other
zone has reported, after the decision, its transfers in flight without naming x;
an intent stamped before its sender's latest report and not named by it is
stale and dropped. The fabric's properties with forgetting in play are checked in
test_fabric_properties.py; these are the rules one by one, and the step around them.
"""

import numpy as np

from zones.core import decisions as decisions_module
from zones.core.constants import FORGET_EVERY_TICKS, IN_FLIGHT_EVERY_TICKS, TICK_MS
from zones.core.decisions import Decisions
from zones.core.hlc import hlc_pack
from zones.core.messages import InFlight, Intent
from zones.core.ranges import equal_ranges, floor_ranges
from zones.core.snapshot import state_from_bytes, state_to_bytes
from zones.core.state import Status, ZoneParams, ZoneState
from zones.core.step import StepInputs, reports_due, step
from zones.core.wire import MIGRANT_DTYPE, SPAWN_DTYPE, TRANSFER_DTYPE, RowFlag

X = 77
NONE = np.zeros(0, np.uint64), np.zeros(0, np.uint32)


def table_with_x(at=100) -> Decisions:
    table = Decisions()
    table.record(X, 3, 3, at)
    return table


# --- the table's rules -----------------------------------------------------------------------


def test_a_decision_goes_once_every_other_zone_reported_after_it_without_naming_it():
    table = table_with_x(at=100)
    table.heard(1, 150, *NONE)
    assert table.forget([1, 2]) == 0  # zone 2 has not reported: it may be asking still
    table.heard(2, 160, *NONE)
    assert table.forget([1, 2]) == 1
    assert table.get(X) == (0, 0) and len(table) == 0


def test_a_report_older_than_the_decision_forgets_nothing():
    table = table_with_x(at=100)
    table.heard(1, 99, *NONE)
    assert table.forget([1]) == 0 and table.get(X) == (3, 3)


def test_a_zone_with_the_entity_in_flight_keeps_the_decision():
    table = table_with_x(at=100)
    table.heard(1, 150, np.array([X], np.uint64), np.array([3], np.uint32))
    assert table.forget([1]) == 0 and table.get(X) == (3, 3)


def test_a_report_overtaken_on_the_way_does_not_replace_the_newer_one():
    table = table_with_x(at=100)
    table.heard(1, 150, *NONE)
    table.heard(1, 90, np.array([X], np.uint64), np.array([3], np.uint32))  # late, older
    assert table.forget([1]) == 1


def test_a_market_of_one_zone_forgets_nothing_it_need_not():
    assert table_with_x().forget([]) == 0


def test_only_rows_sent_before_a_report_that_omits_them_are_stale():
    table = Decisions()
    table.heard(1, 150, np.array([X], np.uint64), np.array([4], np.uint32))
    ids, epochs = np.array([X, X, 78], np.uint64), np.array([3, 4, 1], np.uint32)
    assert table.stale(1, 140, ids, epochs).tolist() == [True, False, True]
    assert table.stale(1, 150, ids, epochs).tolist() == [False, False, False]  # not before
    assert table.stale(2, 140, ids, epochs).tolist() == [False, False, False]  # no report


def test_a_copy_forgets_without_touching_the_original():
    table = table_with_x(at=100)
    twin = table.copy()
    twin.heard(1, 150, *NONE)
    assert twin.forget([1]) == 1
    assert table.get(X) == (3, 3) and table.forget([1]) == 0


def test_decisions_and_reports_survive_a_snapshot():
    state = ZoneState.empty(1, floor_ranges(3), capacity=4)
    state.decisions.record(X, 3, 2, 100)
    state.decisions.heard(0, 120, np.array([5, 6], np.uint64), np.array([2, 9], np.uint32))
    state.decisions.heard(2, 130, *NONE)
    restored = state_from_bytes(state_to_bytes(state)).decisions
    assert restored.to_arrays().keys() == state.decisions.to_arrays().keys()
    for name, column in state.decisions.to_arrays().items():
        np.testing.assert_array_equal(restored.to_arrays()[name], column)
    assert restored.stale(0, 110, np.array([5, 6], np.uint64), np.array([2, 8])).tolist() == [
        False,
        True,
    ]


# --- in the step -----------------------------------------------------------------------------

RANGES = equal_ranges(2)  # zone 0: x < 64 m, zone 1: x >= 64 m
T0 = 1_800_000_000_000


def step_to_forget_tick(state, params, **first):
    """Step `state` until a tick that forgets (the first step gets `first`)."""
    out = None
    while True:
        now = T0 + (state.tick + 1) * TICK_MS
        state, out = step(state, StepInputs(now_ms=now, **first), params)
        first = {}
        if state.tick % FORGET_EVERY_TICKS == 0:
            return state, out


def reports_of_one_period(state, params, **first):
    """Step `state` through one reporting period; the zone and its reports by peer."""
    sent: dict[int, list] = {}
    for _ in range(IN_FLIGHT_EVERY_TICKS):
        now = T0 + (state.tick + 1) * TICK_MS
        state, out = step(state, StepInputs(now_ms=now, **first), params)
        first = {}
        for m in out.messages:
            if isinstance(m, InFlight):
                assert m.dst not in sent, f"two reports to zone {m.dst} in one period"
                assert m.hlc == state.hlc
                sent[m.dst] = m.transfers.tolist()
    return state, sent


def intent(hlc, epoch=3):
    row = np.zeros(1, MIGRANT_DTYPE)
    row["id"], row["pos"], row["epoch"] = X, (70.0, 1.0, 10.0), epoch
    row["kind"], row["attempt"], row["arrival"] = RowFlag.VISITOR_ROOT, 1, hlc
    return Intent(src=0, dst=1, hlc=hlc, rows=row)


def report(hlc, *transfers):
    rows = np.zeros(len(transfers), TRANSFER_DTYPE)
    for i, (ident, epoch) in enumerate(transfers):
        rows[i] = (ident, epoch)
    return InFlight(src=0, dst=1, hlc=hlc, transfers=rows)


def test_a_zone_reports_its_transfers_in_flight_to_every_other_once_each_second():
    spawn = np.zeros(1, SPAWN_DTYPE)
    spawn["id"], spawn["pos"], spawn["kind"] = X, (70.0, 1.0, 10.0), RowFlag.VISITOR_ROOT
    zone = ZoneState.empty(0, floor_ranges(3))
    params = ZoneParams(zone=0)
    zone, sent = reports_of_one_period(zone, params, spawns=spawn)
    assert sorted(sent) == [1, 2]
    assert sent == {1: [], 2: []}  # nothing in flight yet
    for _ in range(5):  # on until the entity, outside zone 0, is staging out
        zone, sent = reports_of_one_period(zone, params)
    slot = zone.slots_of(np.array([X], np.uint64))[0]
    assert zone.status[slot] == Status.STAGING
    zone, sent = reports_of_one_period(zone, params)  # no zone answers: still staging
    assert zone.status[slot] == Status.STAGING
    target = int(zone.peer[slot])
    assert sent[target] == [(X, int(zone.xfer_epoch[slot]))]
    assert sent[3 - target] == []


def refused_forgotten_then_copied():
    """The zone says no, forgets it (the source reported, having moved on), then a copy of
    the old intent turns up; there is room now. The zone and its last step's output."""
    full, roomy = ZoneParams(zone=1, capacity=0), ZoneParams(zone=1)
    sent = hlc_pack(T0)
    zone = ZoneState.empty(1, RANGES, hlc=sent)
    zone, out = step(zone, StepInputs(now_ms=T0 + TICK_MS, messages=(intent(sent),)), full)
    assert out.migration.nacks_sent == 1 and zone.decisions.get(X) == (3, 0)

    reported = hlc_pack(T0 + 2 * TICK_MS)  # the source took the nack, then reported
    zone, out = step_to_forget_tick(zone, roomy, messages=(report(reported),))
    assert out.migration.forgotten == 1 and zone.decisions.get(X) == (0, 0)

    later = T0 + (zone.tick + 1) * TICK_MS
    return step(zone, StepInputs(now_ms=later, messages=(intent(sent),)), roomy)


def test_a_refused_intent_copied_on_the_way_is_dropped_after_the_decision_went():
    """The copy is stale, not a new proposal: it is not admitted."""
    zone, out = refused_forgotten_then_copied()
    assert zone.slots_of(np.array([X], np.uint64))[0] == -1
    assert not out.migration.admitted and out.migration.stale == 1


def test_control_without_dropping_stale_rows_the_old_intent_is_admitted(monkeypatch):
    """What the stale rule prevents: the source, told no, owns the entity, and the zone
    takes it a second time."""
    monkeypatch.setattr(
        decisions_module.Decisions, "stale", lambda self, peer, hlc, ids, epochs: ids != ids
    )
    zone, out = refused_forgotten_then_copied()
    assert zone.slots_of(np.array([X], np.uint64))[0] >= 0
    assert [ids.tolist() for ids in out.migration.admitted] == [[X]]


def test_a_new_intent_after_the_decision_went_is_decided_afresh():
    """A proposal sent after the source's report is a new transfer: it is answered anew."""
    full, roomy = ZoneParams(zone=1, capacity=0), ZoneParams(zone=1)
    sent = hlc_pack(T0)
    zone = ZoneState.empty(1, RANGES, hlc=sent)
    zone, _ = step(zone, StepInputs(now_ms=T0 + TICK_MS, messages=(intent(sent),)), full)
    zone, _ = step_to_forget_tick(zone, roomy, messages=(report(hlc_pack(T0 + 2 * TICK_MS)),))
    fresh = hlc_pack(T0 + (zone.tick + 1) * TICK_MS)
    now = T0 + (zone.tick + 1) * TICK_MS
    zone, out = step(zone, StepInputs(now_ms=now, messages=(intent(fresh, epoch=5),)), roomy)
    assert [ids.tolist() for ids in out.migration.admitted] == [[X]]
    assert zone.decisions.get(X) == (5, 5)


def test_a_visitor_who_comes_back_is_not_lost_crossing_where_it_crossed_before():
    """The same id spawns again (a keyed visitor who left and rejoined) and starts over at
    epoch 1. Had the zone it crossed into kept its decision from the first visit, it would
    take the new proposal for an old one it accepted, ack it without taking the entity,
    and the source, acked, would let the visitor go: lost. Forgotten, it is decided anew."""
    zones = [ZoneState.empty(z, RANGES) for z in range(2)]
    params = [ZoneParams(zone=z) for z in range(2)]
    inbox: list[list] = [[], []]
    ticks = [0]

    def tick(spawns=None, despawns=None):
        ticks[0] += 1
        outs = []
        for z in range(2):
            inputs = StepInputs(
                now_ms=T0 + ticks[0] * TICK_MS,
                messages=tuple(inbox[z]),
                spawns=spawns if spawns is not None and z == 0 else np.zeros(0, SPAWN_DTYPE),
                despawns=despawns if despawns is not None and z == 1 else np.zeros(0, np.uint64),
            )
            zones[z], out = step(zones[z], inputs, params[z])
            outs.append(out)
        inbox[0], inbox[1] = [], []
        for out in outs:
            for message in out.messages:
                inbox[message.dst].append(message)

    def walk_across():
        spawn = np.zeros(1, SPAWN_DTYPE)
        spawn["id"], spawn["pos"], spawn["vel"] = X, (60.0, 1.0, 10.0), (2.0, 0.0, 0.0)
        spawn["kind"] = RowFlag.VISITOR_ROOT
        tick(spawns=spawn)
        for _ in range(10 * IN_FLIGHT_EVERY_TICKS):
            tick()

    walk_across()
    assert zones[1].slots_of(np.array([X], np.uint64))[0] >= 0
    tick(despawns=np.array([X], np.uint64))  # the visitor leaves
    assert all(zone.slots_of(np.array([X], np.uint64))[0] == -1 for zone in zones)
    walk_across()  # and comes back
    slot = zones[1].slots_of(np.array([X], np.uint64))[0]
    assert slot >= 0 and zones[1].status[slot] == Status.OWNED


def test_every_zone_is_reported_to_once_a_period_by_all_in_one_tick():
    """The turns: each zone of 32 hears from the 31 others in one tick of each second,
    and the turns spread over the second."""
    zones = 32
    turns: dict[int, set[int]] = {}
    for t in range(IN_FLIGHT_EVERY_TICKS):
        for zone in range(zones):
            for peer in reports_due(zone, zones, T0 + t * TICK_MS):
                turns.setdefault(peer, set()).add(t)
                assert peer != zone
    assert sorted(turns) == list(range(zones))
    assert all(len(ticks) == 1 for ticks in turns.values())
    assert len({t for ticks in turns.values() for t in ticks}) == IN_FLIGHT_EVERY_TICKS
    heard = [
        sum(peer in reports_due(zone, zones, T0 + t * TICK_MS) for zone in range(zones))
        for peer, (t,) in ((p, tuple(ticks)) for p, ticks in turns.items())
    ]
    assert heard == [zones - 1] * zones
