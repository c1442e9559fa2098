"""Handing decision requests to contributors and checking their answers (zones/core/dispatch.py)."""

import numpy as np
import pytest

from zones.core.dispatch import (
    BAN_AFTER_INVALID,
    DEADLINE_S,
    RATE_BURST,
    RESEND_AFTER_S,
    SILENT_AFTER_S,
    TRIAL_CAPACITY,
    AnswerError,
    Dispatcher,
    Refusal,
    parse_answer,
)
from zones.core.items import Items
from zones.core.observe import observations
from zones.core.ranges import floor_ranges
from zones.core.state import ZoneParams, ZoneState
from zones.core.step import StepInputs, step
from zones.core.wire import REASON_NAMES, SPAWN_DTYPE, Action, AnswerReason, RowFlag


def obs(npc: int, lease: int = 1) -> dict:
    return {"npc": npc, "lease": lease, "needs": {}, "pos": [0.0, 1.0, 0.0]}


def wait(npc: int, lease: int = 1) -> dict:
    return {"npc": npc, "lease": lease, "action": "wait", "seconds": 1}


def held(d: Dispatcher, name: str) -> set[int]:
    return {npc for npc, _ in d.contributors[name].held}


# --- schema ----------------------------------------------------------------------------------


def test_each_typed_action_parses_to_its_row():
    row = parse_answer({"npc": 5, "lease": 2, "action": "move_to", "to": [10, 20]})
    assert row["action"][0] == Action.MOVE_TO and row["goal"][0].tolist() == [10.0, 1.0, 20.0]
    row = parse_answer({"npc": 5, "lease": 2, "action": "use_item", "item": 77})
    assert row["action"][0] == Action.USE_ITEM and row["target"][0] == 77
    row = parse_answer({"npc": 5, "lease": 2, "action": "talk_to", "target": 6})
    assert row["action"][0] == Action.TALK_TO and row["target"][0] == 6
    row = parse_answer({"npc": 5, "lease": 2, "action": "wait", "seconds": 0.5})
    assert row["action"][0] == Action.WAIT and row["ticks"][0] == 10


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ("wait", "schema"),
        ({"lease": 1, "action": "wait", "seconds": 1}, "schema"),
        ({"npc": -1, "lease": 1, "action": "wait", "seconds": 1}, "schema"),
        ({"npc": 1, "lease": "1", "action": "wait", "seconds": 1}, "schema"),
        ({"npc": 1, "lease": 1, "action": "fly", "to": [1, 2]}, "unknown_action"),
        ({"npc": 1, "lease": 1}, "unknown_action"),
        ({"npc": 1, "lease": 1, "action": "move_to", "to": [1]}, "schema"),
        ({"npc": 1, "lease": 1, "action": "move_to", "to": ["a", 2]}, "schema"),
        ({"npc": 1, "lease": 1, "action": "move_to", "to": [float("nan"), 2]}, "schema"),
        ({"npc": 1, "lease": 1, "action": "use_item"}, "schema"),
        ({"npc": 1, "lease": 1, "action": "use_item", "item": True}, "schema"),
        ({"npc": 1, "lease": 1, "action": "wait", "seconds": 0}, "schema"),
        ({"npc": 1, "lease": 1, "action": "wait", "seconds": 3600}, "schema"),
    ],
)
def test_a_malformed_decision_is_refused_with_its_reason(obj, reason):
    with pytest.raises(AnswerError) as caught:
        parse_answer(obj)
    assert caught.value.reason == reason


# --- assignment ------------------------------------------------------------------------------


def test_a_newcomer_gets_its_trial_capacity_whatever_it_claims():
    d = Dispatcher()
    assert d.join("liar", "k1", 1000, now=0.0) is None
    d.offer(0, [obs(i) for i in range(1, 50)], now=0.0)
    sent = d.assign(0.0)
    assert len(sent["liar"]) == TRIAL_CAPACITY
    for request in sent["liar"]:  # it answers them: its room grows with what it has shown
        assert not isinstance(d.answer("liar", wait(request.npc), 0.1), Refusal)
    assert len(d.assign(0.2)["liar"]) == TRIAL_CAPACITY + 2 * TRIAL_CAPACITY - 0


def test_requests_go_to_the_contributor_with_more_valid_decisions():
    d = Dispatcher()
    d.join("fast", "k1", 100, now=0.0)
    d.join("slow", "k2", 100, now=0.0)
    for c in d.contributors.values():
        c.valid.extend([0.0] * (40 if c.name == "fast" else 4))
    d.offer(0, [obs(i) for i in range(1, 41)], now=0.0)
    sent = d.assign(0.0)
    assert len(sent["fast"]) > 3 * len(sent.get("slow", []))


def test_a_missed_deadline_sends_the_request_to_someone_else():
    d = Dispatcher()
    d.join("a", "k1", 4, now=0.0)
    d.offer(0, [obs(1)], now=0.0)
    assert [r.npc for r in d.assign(0.0)["a"]] == [1]
    d.join("b", "k2", 4, now=0.5)
    assert d.assign(RESEND_AFTER_S - 0.1) == {}
    assert [r.npc for r in d.assign(RESEND_AFTER_S + 0.1)["b"]] == [1]
    assert held(d, "a") == set() and held(d, "b") == {1}
    # the first contributor's late answer still counts if it comes first; then b's is stale
    assert d.answer("a", wait(1), RESEND_AFTER_S + 0.2) == (0, parse_answer(wait(1)))
    refusal = d.answer("b", wait(1), RESEND_AFTER_S + 0.3)
    assert isinstance(refusal, Refusal) and refusal.reason == "stale_lease"


def test_a_request_past_its_deadline_is_dropped_and_its_answer_refused():
    d = Dispatcher()
    d.join("a", "k1", 4, now=0.0)
    d.offer(0, [obs(1)], now=0.0)
    d.assign(0.0)
    d.heartbeat("a", DEADLINE_S)
    d.assign(DEADLINE_S + 0.1)
    assert d.expired == 1
    refusal = d.answer("a", wait(1), DEADLINE_S + 0.2)
    assert isinstance(refusal, Refusal) and refusal.reason == "stale_lease"


def test_a_silent_contributor_loses_its_npcs_to_the_others_at_once():
    d = Dispatcher()
    d.join("a", "k1", 4, now=0.0)
    d.offer(0, [obs(1), obs(2)], now=0.0)
    d.assign(0.0)
    d.join("b", "k2", 4, now=SILENT_AFTER_S)
    d.offer(0, [obs(1, lease=2), obs(2, lease=2)], now=SILENT_AFTER_S)  # the zones asked again
    sent = d.assign(SILENT_AFTER_S + 0.5)
    assert "a" not in d.contributors
    assert {r.npc for r in sent["b"]} == {1, 2}


def test_a_contributor_disconnecting_mid_lease_hands_its_requests_back():
    d = Dispatcher()
    d.join("a", "k1", 4, now=0.0)
    d.join("b", "k2", 4, now=0.0)
    d.contributors["b"].capacity = 0  # b full for now
    d.offer(0, [obs(1)], now=0.0)
    d.assign(0.0)
    d.leave("a")
    d.contributors["b"].capacity = 4
    assert [r.npc for r in d.assign(0.1)["b"]] == [1]


# --- answers ---------------------------------------------------------------------------------


def test_an_answer_for_an_npc_leased_to_another_contributor_is_refused():
    d = Dispatcher()
    d.join("a", "k1", 4, now=0.0)
    d.offer(0, [obs(1)], now=0.0)
    d.assign(0.0)
    d.join("b", "k2", 4, now=0.0)
    refusal = d.answer("b", wait(1), 0.1)
    assert isinstance(refusal, Refusal) and refusal.reason == "not_leased"
    assert d.answer("a", wait(1), 0.2)[0] == 0


def test_duplicate_and_unknown_leases_change_nothing():
    d = Dispatcher()
    d.join("a", "k1", 4, now=0.0)
    d.offer(3, [obs(1)], now=0.0)
    d.assign(0.0)
    zone, row = d.answer("a", wait(1), 0.1)
    assert zone == 3 and row["id"][0] == 1
    for bad in (wait(1), wait(1, lease=9), wait(42)):
        refusal = d.answer("a", bad, 0.2)
        assert isinstance(refusal, Refusal) and refusal.reason == "stale_lease"
    assert d.decided == 1


def test_a_flood_is_rate_limited():
    d = Dispatcher()
    d.join("a", "k1", 4, now=0.0)
    reasons = [d.answer("a", wait(1), 0.0).reason for _ in range(int(RATE_BURST) + 20)]
    assert reasons.count("rate_limited") == 20


def test_a_contributor_answering_nonsense_is_banned_within_50_decisions():
    d = Dispatcher(ban_seconds=60.0)
    d.join("a", "k1", 64, now=0.0)
    d.offer(0, [obs(i) for i in range(1, 60)], now=0.0)
    d.assign(0.0)
    banned_after = None
    for i in range(1, 60):
        d.answer("a", {"npc": i, "lease": 1, "action": "dance"}, 0.01 * i)
        if d.should_ban("a"):
            banned_after = i
            break
    assert banned_after is not None and banned_after <= BAN_AFTER_INVALID
    d.ban("a", "k1", 1.0)
    assert "a" not in d.contributors
    assert d.join("a2", "k1", 4, now=30.0).reason == "banned"
    assert d.join("a3", "k1", 4, now=62.0) is None


def test_answers_the_zone_refuses_count_against_their_contributor():
    d = Dispatcher()
    d.join("a", "k1", 64, now=0.0)
    d.offer(0, [obs(i) for i in range(1, 60)], now=0.0)
    for i in range(1, 60):
        d.assign(0.01 * i)
        if isinstance(d.answer("a", wait(i), 0.01 * i), Refusal):
            continue
        assert d.result(i, 1, "occupied") == "a"
    assert d.should_ban("a")
    assert np.isclose(d.contributors["a"].valid_share(), 0.0)


# --- priority, spot checks, trust ------------------------------------------------------------


def hungry(npc: int, lease: int = 1, hunger: float = 10.0, visitors: int = 0) -> dict:
    return {
        "npc": npc,
        "lease": lease,
        "needs": {"hunger": hunger, "hygiene": 90.0, "fun": 90.0, "energy": 90.0},
        "pos": [0.0, 1.0, 0.0],
        "items": [{"id": 500, "kind": "food_stall", "distance": 3.0, "free": 3,
                   "restores": {"hunger": 64.0, "hygiene": 0.0, "fun": 0.0, "energy": 8.0}}],
        "npcs": [],
        "visitors": [{"id": 900 + i, "distance": 2.0 + i} for i in range(visitors)],
    }  # fmt: skip


def test_urgent_npcs_that_visitors_watch_are_served_first():
    d = Dispatcher()
    d.join("a", "k1", 4, now=0.0)  # room for TRIAL_CAPACITY (2)
    calm = hungry(1, hunger=95.0)
    urgent_unseen = hungry(2, hunger=10.0)
    urgent_watched = hungry(3, hunger=10.0, visitors=2)
    d.offer(0, [calm, urgent_unseen, urgent_watched], now=0.0)
    assert [r.npc for r in d.assign(0.0)["a"]] == [3, 2]


def test_a_contributor_ignoring_desperate_needs_is_banned_within_50_decisions():
    d = Dispatcher()
    d.join("a", "k1", 64, now=0.0)
    banned_after = None
    for i in range(1, 51):
        d.offer(0, [hungry(i)], now=float(i))
        d.assign(float(i))
        answer = {"npc": i, "lease": 1, "action": "wait", "seconds": 10}  # valid, but idle
        assert not isinstance(d.answer("a", answer, float(i)), Refusal)
        if d.should_ban("a"):
            banned_after = i
            break
    assert banned_after is not None and banned_after <= 50


def test_a_reliable_contributor_is_checked_less_and_less_and_never_banned():
    d = Dispatcher()
    d.join("a", "k1", 64, now=0.0)
    for i in range(1, 401):
        d.offer(0, [hungry(i)], now=i * 0.1)
        d.assign(i * 0.1)
        answer = {"npc": i, "lease": 1, "action": "use_item", "item": 500}
        assert not isinstance(d.answer("a", answer, i * 0.1), Refusal)
    c = d.contributors["a"]
    assert not d.should_ban("a") and c.suspicion == 0
    assert 5 <= c.checked < 120  # every one of the first few, then a thinning sample


def test_using_an_item_out_of_sight_is_unreasonable():
    d = Dispatcher()
    d.join("a", "k1", 64, now=0.0)
    d.offer(0, [hungry(1)], now=0.0)
    d.assign(0.0)
    d.answer("a", {"npc": 1, "lease": 1, "action": "use_item", "item": 777}, 0.0)
    assert d.contributors["a"].suspicion == 1.0


def test_requests_that_waited_past_their_deadline_are_not_handed_out():
    d = Dispatcher()
    d.join("a", "k1", 4, now=100.0)
    assert d.offer(0, [obs(1), obs(2)], now=100.0, age=DEADLINE_S + 1) == 0
    assert d.offer(0, [obs(3)], now=100.0, age=4.0) == 1
    assert [r.npc for r in d.assign(100.0)["a"]] == [3]
    assert d.assign(101.5) == {}  # its deadline passed: dropped, the zone decided
    assert d.expired == 3


def test_a_lease_lapsing_on_the_way_is_not_held_against_the_contributor():
    d = Dispatcher()
    d.join("a", "k1", 4, now=0.0)
    d.offer(0, [obs(1), obs(2)], now=0.0)
    d.assign(0.0)
    d.answer("a", wait(1), 0.1)
    d.answer("a", wait(2), 0.1)
    assert d.result(1, 1, "stale_lease") == "a"
    assert d.result(2, 1, "not_held") == "a"
    assert d.contributors["a"].invalid == 0


def test_two_contributors_racing_for_one_item_the_zone_gives_it_once():
    base = Items.of(["bench"], np.array([[66.0, 1.0, 64.0]], np.float32), [4000])
    one_slot = Items(base.id, base.kind, base.pos, base.restore, np.array([1], np.int32),
                     base.use_ticks)  # fmt: skip
    params = ZoneParams(zone=0, capacity=16, spawn_cap=16, items=one_slot)
    spawns = np.zeros(2, SPAWN_DTYPE)
    spawns["id"], spawns["pos"], spawns["kind"] = [1, 2], [64.0, 1.0, 64.0], RowFlag.NPC
    state, out = step(
        ZoneState.empty(0, floor_ranges(1), 16),
        StepInputs(now_ms=1000, spawns=spawns, delegate=True),
        params,
    )
    now_ms = 1000
    while not out.npcs.requests.size:  # due decisions go out every DECISION_BATCH_TICKS
        now_ms += 50
        state, out = step(state, StepInputs(now_ms=now_ms, delegate=True), params)
    d = Dispatcher()
    d.join("a", "ka", 1, now=0.0)
    d.join("b", "kb", 1, now=0.0)
    seen = observations(state, params, out.npcs.requests["id"])
    assert all(o["items"][0]["free"] == 1 for o in seen)
    d.offer(0, seen, now=0.0)
    sent = d.assign(0.0)
    assert sorted(len(v) for v in sent.values()) == [1, 1]
    rows = []
    for name, requests in sorted(sent.items()):
        (request,) = requests
        obj = {"npc": request.npc, "lease": request.lease, "action": "use_item", "item": 4000}
        zone, row = d.answer(name, obj, 0.1)
        rows.append((name, row))
    answers = np.concatenate([row for _, row in rows])
    state, out = step(state, StepInputs(now_ms + 50, answers=answers, delegate=True), params)
    assert out.npcs.reasons.tolist() == [AnswerReason.APPLIED, AnswerReason.OCCUPIED]
    for (name, row), reason in zip(rows, out.npcs.reasons.tolist(), strict=True):
        assert d.result(int(row["id"][0]), int(row["lease"][0]), REASON_NAMES[reason]) == name
    winner, loser = rows[0][0], rows[1][0]
    assert d.contributors[winner].invalid == 0 and d.contributors[loser].invalid == 1


def test_the_servers_own_decider_gets_only_what_no_contributor_has_room_for():
    d = Dispatcher()
    d.join_last_resort("server", 16, now=0.0)
    d.join("a", "k1", 64, now=0.0)  # room for TRIAL_CAPACITY (2) to start with
    d.offer(0, [obs(i) for i in range(1, 6)], now=0.0)
    sent = d.assign(0.0)
    assert len(sent["a"]) == TRIAL_CAPACITY and len(sent["server"]) == 5 - TRIAL_CAPACITY
    d.assign(SILENT_AFTER_S + 5)  # the server's decider is never silent
    assert "server" in d.contributors


# --- figures for operators -------------------------------------------------------------------


def test_the_figures_say_rates_latency_success_and_fallbacks_over_the_window():
    d = Dispatcher()
    assert d.rates(0.0) == {
        "decisions_per_min": 0.0,
        "latency_avg_ms": None,
        "latency_p50_ms": None,
        "latency_p95_ms": None,
        "success_rate": None,
        "fallback_rate": None,
    }
    d.join("a", "k1", 4, now=0.0)
    d.offer(0, [obs(i) for i in range(1, 5)], now=0.0)
    assert {r.npc for r in d.assign(0.0)["a"]} == {1, 2}  # its trial capacity
    assert list(d.queued) == [0.0, 0.0]  # sent as soon as they came
    assert not isinstance(d.answer("a", wait(1), 0.1), Refusal)  # 100 ms after the request
    assert not isinstance(d.answer("a", wait(2), 0.3), Refusal)  # 300 ms
    d.result(2, 1, "occupied")  # the zone refused the second
    assert isinstance(d.answer("a", {"npc": 3}, 0.4), Refusal)  # refused: schema
    d.assign(DEADLINE_S + 0.5)  # 3 and 4 went unanswered: the zones decided them
    figures = d.stats(DEADLINE_S + 0.5)
    assert figures["decisions_per_min"] == 2 * 60 / 30
    assert figures["latency_avg_ms"] == pytest.approx(200.0)
    assert figures["latency_p50_ms"] == figures["latency_p95_ms"] == pytest.approx(300.0)
    assert figures["success_rate"] == pytest.approx(1 - 2 / 3, abs=1e-3)  # 1 valid of 3
    assert figures["fallback_rate"] == 0.5  # 2 of 4 requests
    (row,) = figures["contributors"]
    # 2 given (its trial capacity), both answered; 3 and 4 were never its to lose
    assert row["fallback_share"] == 0.0 and row["last_resort"] is False
    assert d.rates(DEADLINE_S + 31)["latency_avg_ms"] is None  # out of the window


def test_a_contributors_fallback_share_counts_what_it_left_to_others():
    d = Dispatcher()
    d.join("a", "k1", 4, now=0.0)
    d.offer(0, [obs(1), obs(2)], now=0.0)
    d.assign(0.0)
    d.join("b", "k2", 4, now=0.0)
    d.assign(RESEND_AFTER_S + 0.1)  # a sat on both: resent to b
    assert d.contributors["a"].fallback_share() == 1.0
    assert not isinstance(d.answer("b", wait(1), RESEND_AFTER_S + 0.2), Refusal)
    d.leave("b")  # with 2 still held
    stats = {c["name"]: c for c in d.stats(RESEND_AFTER_S + 0.3)["contributors"]}
    assert stats["a"]["fallback_share"] == 1.0


def test_answers_of_the_servers_own_decider_count_as_fallbacks():
    d = Dispatcher()
    d.join_last_resort("server", 4, now=0.0)
    d.offer(0, [obs(1)], now=0.0)
    d.assign(0.0)
    assert not isinstance(d.answer("server", wait(1), 0.5), Refusal)
    figures = d.rates(1.0)
    assert figures["fallback_rate"] == 1.0 and figures["decisions_per_min"] == 2.0
