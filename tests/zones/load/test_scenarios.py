"""Scenario planners put each visitor where its scenario says and walk it where it should go."""

import numpy as np
import pytest

from tests.zones.load.layouts import layout_of
from zones.load.scenarios import (
    CHOKE_GATE_M,
    CROSSING_M,
    CROWD_SPACING_M,
    GROUP_SIZE,
    MILL_RADIUS_M,
    FloorMap,
    PlanError,
    choke_between,
    entrance_booth,
    entrance_point,
    plan_browse,
    plan_choke,
    plan_crossings,
    plan_crowd,
    plan_scenario,
    scenario_shares,
)


def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def zones_of(layout, points) -> np.ndarray:
    return layout.zone_at(np.asarray(points, dtype=np.float64).reshape(-1, 3))


# --- crowd -----------------------------------------------------------------------------------


@pytest.mark.parametrize("booths", [1, 3, 32])
def test_a_crowd_that_fits_stands_packed_in_the_entrance_booth(booths):
    layout = layout_of(booths)
    plans = plan_crowd(layout, 60, rng())
    starts = np.array([p.start for p in plans])
    assert (zones_of(layout, starts) == entrance_booth(layout)).all()
    gaps = np.linalg.norm(starts[:, None, :] - starts[None, :, :], axis=2)
    np.fill_diagonal(gaps, np.inf)
    assert gaps.min() >= CROWD_SPACING_M - 1e-6  # no two on one spot
    # packed: everyone within a few metres more than a perfectly round crowd would need
    radius = CROWD_SPACING_M * np.sqrt(len(plans) / np.pi)
    assert np.linalg.norm(starts - entrance_point(layout), axis=1).max() < 2 * radius + 3


def test_a_crowd_larger_than_its_booth_fills_it_before_spilling_into_the_next():
    layout = layout_of(32)
    booth = entrance_booth(layout)
    plans = plan_crowd(layout, 400, rng())
    zones = zones_of(layout, [p.start for p in plans])
    points = layout.floor_points(CROWD_SPACING_M)
    room = int((layout.zone_at(points) == booth).sum())
    assert room < 400 and (zones == booth).sum() == room
    assert (zones[:room] == booth).all()  # the booth's own places come first


def test_crowd_visitors_only_shuffle_about_their_spot():
    for plan in plan_crowd(layout_of(3), 20, rng()):
        ends = np.array([leg.end for leg in plan.legs])
        assert np.linalg.norm(ends - plan.start, axis=1).max() <= MILL_RADIUS_M + 1e-6
        departs = [leg.depart_s for leg in plan.legs]
        assert departs == sorted(departs) and departs[-1] < plan.cycle_s


# --- choke -----------------------------------------------------------------------------------


@pytest.mark.parametrize("booths", [2, 3, 32])
def test_the_choke_point_is_on_the_border_between_two_adjacent_booths(booths):
    layout = layout_of(booths)
    floor = FloorMap.of(layout)
    choke = choke_between(floor)
    assert choke.dst in floor.neighbours[choke.src]
    for lateral in (-1.5, 0.0, 1.5):
        before, after = choke.gate(-1, lateral), choke.gate(1, lateral)
        assert zones_of(layout, before)[0] == choke.src
        assert zones_of(layout, after)[0] == choke.dst
        assert np.linalg.norm(after - before) == pytest.approx(2 * CHOKE_GATE_M)


def test_the_rush_starts_in_one_booth_crosses_the_gap_together_and_spreads_in_the_next():
    layout = layout_of(32)
    plans = plan_choke(layout, 50, rng())
    src, dst = plans[0].booths
    assert all(p.booths == (src, dst) for p in plans)
    assert (zones_of(layout, [p.start for p in plans]) == src).all()
    far_ends = [p.legs[2].end for p in plans]  # gap on the src side, gap on the dst side, spot
    assert (zones_of(layout, far_ends) == dst).all()
    assert (zones_of(layout, [p.legs[-1].end for p in plans]) == src).all()  # and back home
    # one shared timetable: everyone leaves each leg at the same moment
    timetables = {tuple(leg.depart_s for leg in p.legs) for p in plans}
    assert len(timetables) == 1 and len({p.cycle_s for p in plans}) == 1


def test_the_choke_keeps_away_from_the_crowd_when_asked():
    layout = layout_of(32)
    crowd = entrance_booth(layout)
    choke = choke_between(FloorMap.of(layout), avoid=[crowd])
    assert crowd not in (choke.src, choke.dst)


# --- browse ----------------------------------------------------------------------------------


@pytest.mark.parametrize("booths", [2, 3, 32])
def test_browse_groups_tour_several_adjacent_booths_and_stand_in_each(booths):
    layout = layout_of(booths)
    floor = FloorMap.of(layout)
    plans = plan_browse(layout, 40, rng(), floor=floor)
    groups: dict[int, list] = {}
    for plan in plans:
        groups.setdefault(plan.group, []).append(plan)
    assert len(groups) == int(np.ceil(40 / GROUP_SIZE))
    for members in groups.values():
        assert 1 <= len(members) <= GROUP_SIZE
        tour = members[0].booths
        assert len(set(tour)) >= min(3, booths)
        for a, b in zip(tour, tour[1:], strict=False):
            assert b in floor.neighbours[a]
        for plan in members:
            assert plan.booths == tour
            assert zones_of(layout, plan.start)[0] == tour[0]
            stops = [*tour[1:], tour[0]]
            assert list(zones_of(layout, [leg.end for leg in plan.legs])) == stops
        assert len({tuple(leg.depart_s for leg in p.legs) for p in members}) == 1


def test_a_booths_heart_lies_inside_it_and_as_deep_as_any_of_its_points():
    layout = layout_of(32)
    floor = FloorMap.of(layout)
    for booth in range(layout.zones):
        heart = floor.heart(booth)
        assert zones_of(layout, heart)[0] == booth
        inside = floor.zones == booth
        deepest = floor.depth[inside].max()
        index = np.flatnonzero(np.all(floor.points == heart, axis=1))[0]
        assert floor.depth.reshape(-1)[index] == deepest


# --- the whole run ---------------------------------------------------------------------------


def test_all_splits_the_visitors_in_thirds_and_every_visitor_gets_a_plan():
    assert scenario_shares("all", 1000) == {"crowd": 334, "choke": 333, "browse": 333}
    assert scenario_shares("choke", 10) == {"choke": 10}
    plans = plan_scenario(layout_of(32), "all", 100, rng())
    assert len(plans) == 100
    assert {p.scenario for p in plans} == {"crowd", "choke", "browse"}


@pytest.mark.parametrize("scenario", ["choke", "browse", "all"])
def test_scenarios_that_walk_between_booths_refuse_a_one_booth_market(scenario):
    with pytest.raises(PlanError, match="at least 2 booths"):
        plan_scenario(layout_of(1), scenario, 30, rng())


def test_an_unknown_scenario_is_refused_by_name():
    with pytest.raises(PlanError, match="unknown scenario 'stampede'"):
        scenario_shares("stampede", 10)


# --- crossings -------------------------------------------------------------------------------


@pytest.mark.parametrize("booths", [2, 8, 32])
def test_each_crossing_paces_between_two_booths_far_enough_inside_each(booths):
    layout = layout_of(booths)
    plans = plan_crossings(layout, 120, rng())
    assert len(plans) == 120
    borders = set()
    for plan in plans:
        (away, back) = plan.legs
        home, there = plan.booths
        assert home != there
        assert list(zones_of(layout, [plan.start, away.end, back.end])) == [home, there, home]
        assert np.linalg.norm((away.end - plan.start)[[0, 2]]) == pytest.approx(2 * CROSSING_M)
        assert away.end[1] == pytest.approx(plan.start[1])  # on the floor, as the start
        assert back.depart_s > away.depart_s and plan.cycle_s > back.depart_s
        borders.add(frozenset(plan.booths))
    assert len(borders) >= min(booths - 1, 4)  # spread over the market, not one gap


def test_crossings_need_two_booths():
    with pytest.raises(PlanError, match="at least 2 booths"):
        plan_crossings(layout_of(1), 5, rng())
