"""Deciding and planning splits and merges (zones/core/repartition.py)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zones.core import repartition
from zones.core.constants import (
    CODE_SPACE,
    MAX_ZONES,
    MERGE_SLOTS,
    MERGE_TICK_MS,
    MIN_RANGE_CODES,
    REPARTITION_DWELL_TICKS,
    SPLIT_ALIGN_CODES,
    SPLIT_SLOTS,
    SPLIT_TICK_MS,
    TICK_MS,
)
from zones.core.ranges import RangeMap, equal_ranges, floor_ranges
from zones.core.repartition import (
    History,
    RepartitionError,
    ZoneLoad,
    history_record,
    history_settle,
    merge_plan,
    planner_of,
    repartition_decide,
    split_plan,
    split_point,
)

COLUMNS = CODE_SPACE // SPLIT_ALIGN_CODES


def covers_code_line(ranges: RangeMap) -> bool:
    """Every range non-empty, together exactly [0, CODE_SPACE), each zone once."""
    widths = ranges.ends - ranges.starts.astype(np.int64)
    zones = ranges.zone_of_range.tolist()
    return bool(widths.min() > 0 and widths.sum() == CODE_SPACE and len(set(zones)) == len(zones))


def test_thresholds_leave_a_gap_a_merge_cannot_cross():
    assert 2 * MERGE_SLOTS < SPLIT_SLOTS
    assert 2 * MERGE_TICK_MS < SPLIT_TICK_MS < TICK_MS


# --- split point -----------------------------------------------------------------------


def test_split_point_is_the_median_code_rounded_to_a_floor_column():
    lo, hi = 0, 64 * SPLIT_ALIGN_CODES
    crowd = np.sort(np.r_[np.full(10, 30 * SPLIT_ALIGN_CODES + 100), np.arange(9)]).astype(
        np.uint32
    )
    assert split_point(lo=lo, hi=hi, codes=crowd) == 30 * SPLIT_ALIGN_CODES


def test_split_point_never_cuts_below_one_column_even_when_the_median_is_there():
    codes = np.array([5, 9, 60, 10 * SPLIT_ALIGN_CODES + 7, 40 * SPLIT_ALIGN_CODES], np.uint32)
    assert split_point(lo=0, hi=64 * SPLIT_ALIGN_CODES, codes=codes) == SPLIT_ALIGN_CODES


def test_split_point_of_an_empty_zone_is_the_middle_column():
    assert split_point(lo=0, hi=8 * SPLIT_ALIGN_CODES, codes=np.zeros(0, np.uint32)) == (
        4 * SPLIT_ALIGN_CODES
    )


@given(
    st.integers(0, COLUMNS - 2),
    st.integers(2, COLUMNS),
    st.lists(st.floats(0, 1, exclude_max=True), max_size=60),
)
def test_split_point_never_leaves_an_empty_or_sub_minimum_part(first, width, fractions):
    lo = first * SPLIT_ALIGN_CODES
    hi = min(CODE_SPACE, lo + width * SPLIT_ALIGN_CODES)
    codes = np.sort(np.array([lo + int(f * (hi - lo)) for f in fractions], np.int64))
    cut = split_point(lo=lo, hi=hi, codes=codes.astype(np.uint32))
    assert cut % SPLIT_ALIGN_CODES == 0
    assert cut - lo >= MIN_RANGE_CODES and hi - cut >= MIN_RANGE_CODES


@given(st.lists(st.integers(0, 16 * SPLIT_ALIGN_CODES - 1), min_size=1, max_size=80))
def test_split_point_balances_entities_to_within_one_column(codes):
    codes = np.sort(np.array(codes, np.int64))
    cut = split_point(lo=0, hi=16 * SPLIT_ALIGN_CODES, codes=codes.astype(np.uint32))
    below, above = int(np.count_nonzero(codes < cut)), int(np.count_nonzero(codes >= cut))
    column = (codes >= cut - SPLIT_ALIGN_CODES) & (codes < cut + SPLIT_ALIGN_CODES)
    assert abs(below - above) <= int(np.count_nonzero(column)) + 1


@pytest.mark.parametrize(
    ("lo", "hi", "codes", "message"),
    [
        (0, SPLIT_ALIGN_CODES, [], "too small to split"),
        (0, 2 * SPLIT_ALIGN_CODES - 1, [], "too small to split"),
        (5, 3, [], "not a range of the code space"),
        (0, CODE_SPACE + 1, [], "not a range of the code space"),
        (0, 8 * SPLIT_ALIGN_CODES, [8 * SPLIT_ALIGN_CODES], "outside the range"),
        (0, 8 * SPLIT_ALIGN_CODES, [9, 3, 5], "must be sorted"),
    ],
)
def test_split_point_refuses_what_cannot_be_split(lo, hi, codes, message):
    with pytest.raises(RepartitionError, match=message):
        split_point(lo=lo, hi=hi, codes=np.array(codes, np.uint32))


# --- plans -----------------------------------------------------------------------------


def test_a_split_gives_the_upper_part_to_the_spare_zone_in_a_map_one_version_newer():
    ranges = floor_ranges(4, version=7)
    lo, hi = ranges.range_of(2)
    codes = np.arange(lo, hi, (hi - lo) // 100, dtype=np.int64)[:100].astype(np.uint32)
    plan = split_plan(ranges=ranges, zone=2, codes=codes, new_zone=9)
    new = plan.ranges
    assert plan.kind == "split" and new.version == 8 and new.n == 5
    (handoff,) = plan.handoffs
    assert (handoff.source, handoff.target, handoff.hi) == (2, 9, hi)
    assert new.range_of(2) == (lo, handoff.lo) and new.range_of(9) == (handoff.lo, hi)
    for zone in (0, 1, 3):
        assert new.range_of(zone) == ranges.range_of(zone)
    assert covers_code_line(new) and plan.zones == {2, 9}


def test_a_merge_gives_the_whole_range_to_the_neighbour_and_retires_the_zone():
    split = split_plan(
        ranges=floor_ranges(4), zone=1, codes=np.zeros(0, np.uint32), new_zone=6
    ).ranges
    plan = merge_plan(ranges=split, keep=6, absorb=1)
    merged = plan.ranges
    assert merged.version == split.version + 1 and merged.n == 4
    assert 1 not in merged.zones.tolist()
    assert merged.range_of(6) == (split.range_of(1)[0], split.range_of(6)[1])
    (handoff,) = plan.handoffs
    assert (handoff.source, handoff.target) == (1, 6)
    assert (handoff.lo, handoff.hi) == split.range_of(1)
    assert covers_code_line(merged)


@given(st.data())
@settings(max_examples=60)
def test_any_sequence_of_splits_and_merges_keeps_a_valid_map(data):
    ranges = floor_ranges(data.draw(st.integers(1, 8)))
    for _ in range(data.draw(st.integers(1, 12))):
        present = ranges.zones.tolist()
        spare = [z for z in range(MAX_ZONES) if z not in present]
        try:
            if data.draw(st.booleans()) and spare:
                zone = data.draw(st.sampled_from(present))
                plan = split_plan(
                    ranges=ranges, zone=zone, codes=np.zeros(0, np.uint32), new_zone=spare[0]
                )
            elif ranges.n > 1:
                i = data.draw(st.integers(0, ranges.n - 2))
                left, right = ranges.zone_of_range[i : i + 2].tolist()
                plan = merge_plan(ranges=ranges, keep=left, absorb=right)
            else:
                continue
        except RepartitionError:
            continue
        assert plan.ranges.version == ranges.version + 1
        assert covers_code_line(plan.ranges)
        ranges = plan.ranges


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"zone": 1, "new_zone": 2}, "already owns a range"),
        ({"zone": 7, "new_zone": 9}, "zone 7 is not in this map"),
    ],
)
def test_split_plan_refuses_a_busy_spare_or_an_unknown_zone(kwargs, message):
    with pytest.raises((RepartitionError, IndexError), match=message):
        split_plan(ranges=floor_ranges(4), codes=np.zeros(0, np.uint32), **kwargs)


def test_split_plan_refuses_a_thirty_third_zone():
    with pytest.raises(RepartitionError, match="MAX_ZONES"):
        split_plan(ranges=equal_ranges(MAX_ZONES), zone=0, codes=np.zeros(0, np.uint32), new_zone=0)


@pytest.mark.parametrize(
    ("keep", "absorb", "message"),
    [(0, 2, "not adjacent"), (1, 1, "cannot merge with itself"), (0, 5, "zone 5 is not in")],
)
def test_merge_plan_refuses_zones_that_are_not_neighbours(keep, absorb, message):
    with pytest.raises((RepartitionError, IndexError), match=message):
        merge_plan(ranges=floor_ranges(4), keep=keep, absorb=absorb)


# --- decisions -------------------------------------------------------------------------


def loads_of(slots: dict[int, int], tick_ms: dict[int, float] | None = None) -> dict:
    return {
        z: ZoneLoad(zone=z, slots=s, tick_ms=(tick_ms or {}).get(z, 1.0)) for z, s in slots.items()
    }


def decide(ranges, loads, tick=10_000, history=None, spares=None, absorbable=None, limits=None):
    present = ranges.zones.tolist()
    spares = [z for z in range(MAX_ZONES) if z not in present] if spares is None else spares
    history = History() if history is None else history
    return repartition_decide(
        ranges=ranges,
        loads=loads,
        tick=tick,
        history=history,
        spares=spares,
        absorbable=absorbable,
        limits=limits,
    )


def test_the_busiest_hot_zone_splits_first():
    plan = decide(floor_ranges(4), loads_of({0: 500, 1: SPLIT_SLOTS, 2: SPLIT_SLOTS + 9, 3: 500}))
    assert plan is not None and plan.kind == "split" and plan.handoffs[0].source == 2
    assert plan.handoffs[0].target == 4


def test_a_slow_step_splits_a_zone_with_few_entities():
    plan = decide(floor_ranges(4), loads_of(dict.fromkeys(range(4), 500), {3: SPLIT_TICK_MS}))
    assert plan is not None and plan.kind == "split" and plan.handoffs[0].source == 3


def test_a_zone_just_under_the_split_threshold_stays_whole():
    assert decide(floor_ranges(4), loads_of(dict.fromkeys(range(4), SPLIT_SLOTS - 1))) is None


def test_two_quiet_adjacent_zones_merge_into_the_busier():
    plan = decide(floor_ranges(3), loads_of({0: 500, 1: MERGE_SLOTS, 2: 10}))
    assert plan is not None and plan.kind == "merge"
    assert (plan.handoffs[0].source, plan.handoffs[0].target) == (2, 1)


def test_with_absorbable_zones_a_merge_retires_only_one_of_them():
    # zone 0's booth was split, zone 5 taking its upper part; zones 0..2 are booths
    split = split_plan(ranges=floor_ranges(3), zone=0, codes=np.zeros(0, np.uint32), new_zone=5)
    ranges = split.ranges
    # two quiet booths side by side are never merged, whichever is busier
    assert (
        decide(floor_ranges(3), loads_of({0: 9, 1: 10, 2: 500}), absorbable=frozenset({5})) is None
    )
    # the quiet split part goes back, even when it holds more than the booth's own zone
    plan = decide(ranges, loads_of({0: 10, 5: 20, 1: 500, 2: 500}), absorbable=frozenset({5}))
    assert plan is not None and (plan.handoffs[0].source, plan.handoffs[0].target) == (5, 0)
    # without the restriction the busier keeps its number and the booth's zone is retired
    plan = decide(ranges, loads_of({0: 10, 5: 20, 1: 500, 2: 500}))
    assert plan is not None and (plan.handoffs[0].source, plan.handoffs[0].target) == (0, 5)


def test_quiet_zones_that_are_not_adjacent_do_not_merge():
    assert decide(floor_ranges(3), loads_of({0: 10, 1: 500, 2: 10})) is None


def test_one_quiet_zone_beside_a_busy_one_does_not_merge():
    assert decide(floor_ranges(2), loads_of({0: MERGE_SLOTS + 1, 1: 0})) is None


def test_a_zone_rests_for_the_dwell_after_a_change():
    ranges = floor_ranges(4)
    loads = loads_of({0: 500, 1: SPLIT_SLOTS, 2: 500, 3: 500})
    history = History(changed_at=((1, 1000),))
    assert decide(ranges, loads, tick=1000 + REPARTITION_DWELL_TICKS - 1, history=history) is None
    assert decide(ranges, loads, tick=1000 + REPARTITION_DWELL_TICKS, history=history) is not None


def test_one_change_in_flight_per_neighbourhood():
    ranges = floor_ranges(6)
    first = decide(ranges, loads_of({0: 500, 1: 500, 2: SPLIT_SLOTS, 3: 500, 4: 500, 5: 500}))
    assert first is not None
    history = history_record(history=History(), plan=first, tick=0)
    later = REPARTITION_DWELL_TICKS * 5
    # zone 3 is next to zone 2's new neighbour on the code line: it waits
    hot3 = loads_of({0: 500, 1: 500, 2: 500, 3: SPLIT_SLOTS, 4: 500, 5: 500, 6: 500})
    assert decide(first.ranges, hot3, tick=later, history=history) is None
    # zone 5 is two ranges away from every zone in flight: it may split meanwhile
    hot5 = loads_of({0: 500, 1: 500, 2: 500, 3: 500, 4: 500, 5: SPLIT_SLOTS, 6: 500})
    plan = decide(first.ranges, hot5, tick=later, history=history)
    assert plan is not None and plan.handoffs[0].source == 5
    settled = history_settle(history=history, plan=first)
    assert decide(first.ranges, hot3, tick=later, history=settled) is not None


def test_no_split_without_a_spare_zone_or_beyond_max_zones():
    assert decide(floor_ranges(2), loads_of({0: SPLIT_SLOTS, 1: 500}), spares=[]) is None
    full = equal_ranges(MAX_ZONES)
    assert decide(full, loads_of(dict.fromkeys(range(MAX_ZONES), SPLIT_SLOTS)), spares=[40]) is None


def test_a_negative_load_is_refused():
    with pytest.raises(RepartitionError, match="zone 1 reports a negative load"):
        decide(floor_ranges(2), loads_of({0: 5, 1: -1}))


def test_unsorted_entity_codes_are_refused_not_taken_for_a_small_range():
    loads = loads_of({0: 500, 1: 500})
    loads[1] = ZoneLoad(zone=1, slots=SPLIT_SLOTS, tick_ms=1.0, codes=np.array([9, 3], np.uint32))
    with pytest.raises(RepartitionError, match="zone 1's entity codes must be sorted"):
        decide(floor_ranges(2), loads)


def test_a_load_filed_under_another_zone_is_refused():
    loads = {0: ZoneLoad(zone=0, slots=1, tick_ms=1.0), 1: ZoneLoad(zone=0, slots=1, tick_ms=1.0)}
    with pytest.raises(RepartitionError, match="filed under zone 1 is zone 0's"):
        decide(floor_ranges(2), loads)


def test_a_split_leaves_walkers_outside_the_range_out_of_the_median():
    ranges = floor_ranges(2)
    lo, hi = ranges.range_of(0)
    inside = np.full(5, lo + 3 * SPLIT_ALIGN_CODES + 1)
    outside = np.full(50, hi + 7)  # on their way to zone 1
    plan = split_plan(ranges=ranges, zone=0, codes=np.r_[inside, outside], new_zone=2)
    assert plan.handoffs[0].lo == 3 * SPLIT_ALIGN_CODES


def test_a_spare_zone_number_beyond_max_zones_is_refused():
    with pytest.raises(RepartitionError, match=f"spare zone {MAX_ZONES} is outside"):
        split_plan(ranges=floor_ranges(2), zone=0, codes=np.zeros(0, np.uint32), new_zone=MAX_ZONES)


def test_the_planner_is_the_zone_owning_the_first_range():
    assert planner_of(floor_ranges(3)) == 0
    merged = merge_plan(ranges=floor_ranges(3), keep=1, absorb=0).ranges
    assert planner_of(merged) == 1


# --- no flapping -----------------------------------------------------------------------

CHECK_EVERY = 20  # a planner looks once a second


def hover(*, ranges, load_of, ticks, rng):
    """Run the planner against a load that hovers; every change applies and settles at once.

    Returns (tick, plan) for every change made.
    """
    history, changes = History(), []
    for tick in range(0, ticks, CHECK_EVERY):
        loads = {z: load_of(ranges, z, rng) for z in ranges.zones.tolist()}
        plan = decide(ranges, loads, tick=tick, history=history)
        if plan is None:
            continue
        changes.append((tick, plan))
        history = history_settle(
            history=history_record(history=history, plan=plan, tick=tick), plan=plan
        )
        ranges = plan.ranges
    return changes


def at_most_one_change_per_dwell(changes):
    """Assert that no zone takes part in two changes within REPARTITION_DWELL_TICKS."""
    last: dict[int, int] = {}
    for tick, plan in changes:
        for zone in plan.zones:
            assert zone not in last or tick - last[zone] >= REPARTITION_DWELL_TICKS, (
                f"zone {zone} changed at {last[zone]} and again at {tick}"
            )
            last[zone] = tick


def crowd_load(crowd):
    """Each zone's slots: the crowd's entities in its range, give or take a few."""

    def load_of(ranges, zone, rng):
        lo, hi = ranges.range_of(zone)
        inside = crowd[(crowd >= lo) & (crowd < hi)]
        return ZoneLoad(
            zone=zone,
            slots=max(0, inside.size + int(rng.integers(-8, 9))),
            tick_ms=1.0,
            codes=inside,
        )

    return load_of


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**31), st.sampled_from([SPLIT_SLOTS, 2 * MERGE_SLOTS]))
def test_a_crowd_hovering_at_a_threshold_changes_a_zone_at_most_once_per_dwell(seed, size):
    rng = np.random.default_rng(seed)
    ranges = floor_ranges(4)
    lo, hi = ranges.range_of(1)
    crowd = np.sort(rng.integers(lo, hi, size)).astype(np.uint32)
    changes = hover(
        ranges=ranges, load_of=crowd_load(crowd), ticks=6 * REPARTITION_DWELL_TICKS, rng=rng
    )
    at_most_one_change_per_dwell(changes)
    never_undone(ranges, changes)


def never_undone(ranges, changes):
    """Assert that no change brings back the cuts of a map before it (a split merged back)."""
    seen = {tuple(ranges.starts.tolist())}
    for tick, plan in changes:
        cuts = tuple(plan.ranges.starts.tolist())
        assert cuts not in seen, f"the {plan.kind} at tick {tick} undid an earlier change"
        seen.add(cuts)


def slow_step_at(code: int):
    """A zone's step time hovers at SPLIT_TICK_MS in whichever zone holds `code`."""

    def load_of(ranges, zone, rng):
        lo, hi = ranges.range_of(zone)
        slow = lo <= code < hi
        tick_ms = SPLIT_TICK_MS + float(rng.uniform(-1, 1)) if slow else 2.0 * MERGE_TICK_MS
        return ZoneLoad(zone=zone, slots=300, tick_ms=tick_ms)

    return load_of


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**31))
def test_a_step_time_hovering_at_the_threshold_splits_at_most_once_per_dwell(seed):
    rng = np.random.default_rng(seed)
    ranges = floor_ranges(2)
    changes = hover(
        ranges=ranges,
        load_of=slow_step_at(CODE_SPACE // 3),
        ticks=4 * REPARTITION_DWELL_TICKS,
        rng=rng,
    )
    assert changes  # it did split
    at_most_one_change_per_dwell(changes)


def test_control_without_the_dwell_a_hovering_step_time_splits_again_and_again(monkeypatch):
    monkeypatch.setattr(repartition, "REPARTITION_DWELL_TICKS", 0)
    with pytest.raises(AssertionError, match="changed at"):
        test_a_step_time_hovering_at_the_threshold_splits_at_most_once_per_dwell()


def test_thresholds_without_the_gap_are_refused_with_the_reason():
    with pytest.raises(repartition.RepartitionError, match="must stay under the split"):
        repartition.thresholds(merge_slots=SPLIT_SLOTS // 2)
    with pytest.raises(repartition.RepartitionError, match="must be under the split's"):
        repartition.thresholds(merge_tick_ms=SPLIT_TICK_MS)
    with pytest.raises(repartition.RepartitionError, match="cannot be negative"):
        repartition.thresholds(dwell_ticks=-1)
    with pytest.raises(repartition.RepartitionError, match="no such threshold: split"):
        repartition.thresholds(split=3)
    lowered = repartition.thresholds(split_slots=60, merge_slots=15, dwell_ticks=40)
    assert (lowered.split_slots, lowered.merge_slots, lowered.dwell_ticks) == (60, 15, 40)
    assert lowered.split_tick_ms == SPLIT_TICK_MS


def test_lowered_thresholds_split_and_merge_at_their_own_figures():
    limits = repartition.thresholds(split_slots=60, merge_slots=15)
    plan = decide(floor_ranges(3), loads_of({0: 60, 1: 59, 2: 30}), spares=[5], limits=limits)
    assert plan is not None and plan.kind == "split" and plan.handoffs[0].source == 0
    plan = decide(floor_ranges(3), loads_of({0: 30, 1: 15, 2: 15}), spares=[5], limits=limits)
    assert plan is not None and plan.kind == "merge" and plan.zones == {1, 2}


def test_control_without_the_gap_a_crowd_splits_and_merges_back(monkeypatch):
    monkeypatch.setattr(repartition.Thresholds, "__post_init__", lambda self: None)
    monkeypatch.setattr(repartition, "MERGE_SLOTS", SPLIT_SLOTS)
    monkeypatch.setattr(repartition, "MERGE_TICK_MS", SPLIT_TICK_MS)
    with pytest.raises(AssertionError, match="undid an earlier change"):
        test_a_crowd_hovering_at_a_threshold_changes_a_zone_at_most_once_per_dwell()
