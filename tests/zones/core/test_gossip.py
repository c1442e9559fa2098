"""Range maps gossiped with no coordinator (zones/core/gossip.py), and maps naming their zones.

The property runs a market of zones, one of them planning splits and merges, over a
network that drops, delays (so reorders) and duplicates every message, with zones
down for a while; each control plants the bug the property guards against.
"""

import heapq

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from zones.core import gossip
from zones.core.constants import CODE_SPACE, GOSSIP_EVERY_TICKS, MAX_ZONES
from zones.core.gossip import GossipError, gossip_due, gossip_messages, gossip_receive
from zones.core.messages import Gossip, MessageError, message_from_wire, message_to_wire
from zones.core.ranges import RangeMap, RangeMapError, floor_ranges
from zones.core.repartition import RepartitionError, merge_plan, split_plan

# --- maps that name their zones ----------------------------------------------------------


def test_a_map_routes_each_code_to_the_zone_named_for_its_range():
    ranges = RangeMap(starts=np.array([0, 100, 5000]), version=3, owners=np.array([4, 0, 9]))
    assert ranges.assign(np.array([0, 99, 100, 4999, 5000, CODE_SPACE - 1])).tolist() == [
        4,
        4,
        0,
        0,
        9,
        9,
    ]
    assert ranges.range_of(9) == (5000, CODE_SPACE)
    assert ranges.zones.tolist() == [0, 4, 9]
    assert ranges.band_neighbours(0).tolist() == [4, 9]


def test_a_map_naming_its_zones_survives_the_wire_and_one_that_does_not_keeps_its_format():
    named = RangeMap(starts=np.array([0, 100]), version=2, owners=np.array([1, 0]))
    back = message_from_wire(message_to_wire(Gossip(src=0, dst=1, hlc=5, ranges=named)))
    assert back.ranges == named and back.ranges.zone_of_range.tolist() == [1, 0]
    assert floor_ranges(3).to_wire().keys() == {"version", "starts"}
    assert named != RangeMap(starts=np.array([0, 100]), version=2)


@pytest.mark.parametrize(
    ("owners", "message"),
    [
        ([0], "needs 2 owners"),
        ([3, 3], "owners must be distinct"),
        ([0, MAX_ZONES], f"owner zone {MAX_ZONES} is outside"),
        ([0, -1], "owner zone -1 is outside"),
        ([0.0, 1.0], "must be integers"),
    ],
)
def test_a_map_with_bad_owners_is_refused(owners, message):
    with pytest.raises(RangeMapError, match=message):
        RangeMap(starts=np.array([0, 100]), owners=np.array(owners))


@pytest.mark.parametrize(
    ("owners", "message"), [(["x", 1], "malformed range map gossip"), ([1, 1], "distinct")]
)
def test_gossip_with_bad_owners_is_refused(owners, message):
    with pytest.raises(RangeMapError, match=message):
        RangeMap.from_wire({"version": 1, "starts": [0, 100], "owners": owners})


def test_asking_for_a_zone_the_map_does_not_name_says_so():
    ranges = RangeMap(starts=np.array([0, 100]), owners=np.array([3, 5]))
    with pytest.raises(IndexError, match="zone 0 is not in this map"):
        ranges.range_of(0)


# --- when and to whom -------------------------------------------------------------------


def test_a_zone_pushes_on_adoption_and_once_a_period():
    due = [t for t in range(3 * GOSSIP_EVERY_TICKS) if gossip_due(zone=7, tick=t, adopted=False)]
    assert due == [7, 7 + GOSSIP_EVERY_TICKS, 7 + 2 * GOSSIP_EVERY_TICKS]
    assert gossip_due(zone=7, tick=8, adopted=True)


def test_gossip_goes_once_to_every_other_peer():
    messages = gossip_messages(zone=2, ranges=floor_ranges(3), peers=[0, 1, 2, 1, 5], hlc=9)
    assert [m.dst for m in messages] == [0, 1, 5]
    assert all(m.src == 2 and m.hlc == 9 and m.ranges == floor_ranges(3) for m in messages)


@pytest.mark.parametrize(("zone", "tick"), [(-1, 0), (0, -3)])
def test_gossip_due_refuses_negative_zones_and_ticks(zone, tick):
    with pytest.raises(GossipError, match="must be non-negative"):
        gossip_due(zone=zone, tick=tick, adopted=False)


def test_receiving_keeps_the_newest_map_whatever_the_order():
    old, new = floor_ranges(3, version=1), floor_ranges(4, version=2)
    assert gossip_receive(view=old, received=[new, old, new]) is new
    assert gossip_receive(view=new, received=[old]) is new


# --- the property -----------------------------------------------------------------------

WORKERS = 6  # zones of the market, those without a range included


def valid_view(ranges: RangeMap) -> bool:
    """Disjoint and covering, recomputed from the ranges rather than trusted."""
    widths = ranges.ends - ranges.starts.astype(np.int64)
    zones = ranges.zone_of_range.tolist()
    return bool(widths.min() > 0 and widths.sum() == CODE_SPACE and len(set(zones)) == len(zones))


def next_plan(ranges: RangeMap, rng: np.random.Generator) -> RangeMap | None:
    """A random split or merge of `ranges`, as the planner would make it."""
    present = ranges.zones.tolist()
    spare = [z for z in range(WORKERS) if z not in present]
    try:
        if spare and (ranges.n == 1 or rng.random() < 0.5):
            zone = int(rng.choice(present))
            return split_plan(
                ranges=ranges, zone=zone, codes=np.zeros(0, np.uint32), new_zone=spare[0]
            ).ranges
        i = int(rng.integers(0, ranges.n - 1))
        left, right = ranges.zone_of_range[i : i + 2].tolist()
        return merge_plan(ranges=ranges, keep=left, absorb=right).ranges
    except RepartitionError:
        return None


def run_gossip(seed: int, *, drop: float, changes: int, ticks: int = 400, quiet: int = 120):
    """Zones gossip their maps while zone 0 plans changes; returns every broken promise."""
    rng = np.random.default_rng(seed)
    views = [floor_ranges(2)] * WORKERS
    newest = views[0]
    down_until = [0] * WORKERS
    queue: list[tuple[int, int, int, dict]] = []
    change_at = set(rng.choice(np.arange(10, ticks - 50), size=changes, replace=False).tolist())
    problems: list[str] = []
    for tick in range(ticks + quiet):
        calm = tick >= ticks
        inbox: dict[int, list[RangeMap]] = {}
        while queue and queue[0][0] <= tick:
            _, _, dst, wire = heapq.heappop(queue)
            if tick < down_until[dst]:
                continue
            try:
                inbox.setdefault(dst, []).append(message_from_wire(wire).ranges)
            except MessageError:
                continue  # refused, as a zone refuses any malformed message
        for zone in range(WORKERS):
            if tick < down_until[zone]:
                continue
            before = views[zone]
            received = inbox.get(zone, [])
            if zone == 0 and tick in change_at and (plan := next_plan(views[0], rng)) is not None:
                received.append(plan)  # the planner adopts its own plan first
                newest = plan
            views[zone] = gossip.gossip_receive(view=before, received=received)
            if views[zone].version < before.version:
                problems.append(f"zone {zone} went back from {before.version} at tick {tick}")
            if not valid_view(views[zone]):
                problems.append(f"zone {zone} holds an invalid map at tick {tick}")
            adopted = views[zone] is not before
            if not gossip.gossip_due(zone=zone, tick=tick, adopted=adopted):
                continue
            for message in gossip.gossip_messages(
                zone=zone, ranges=views[zone], peers=range(WORKERS), hlc=tick
            ):
                wire = message_to_wire(message)
                for _ in range(1 + int(rng.random() < 0.1)):
                    if not calm and rng.random() < drop:
                        continue
                    heapq.heappush(
                        queue,
                        (
                            tick + int(rng.integers(1, 6)),
                            int(rng.integers(1 << 30)),
                            message.dst,
                            wire,
                        ),
                    )
            if not calm and zone != 0 and rng.random() < 0.002:
                down_until[zone] = tick + int(rng.integers(5, 60))  # a crash: the view persists
    stale = [z for z in range(WORKERS) if views[z] != newest]
    if stale:
        problems.append(f"zones {stale} never got version {newest.version}")
    return problems, newest.version


# A failing run prints its seed; shrinking a run of hundreds of ticks adds nothing.
GOSSIP = settings(
    max_examples=25, deadline=None, phases=[Phase.explicit, Phase.generate], derandomize=True
)


@GOSSIP
@given(st.integers(0, 2**31), st.floats(0.0, 0.5), st.integers(1, 8))
def test_every_view_is_valid_and_moves_forward_and_every_zone_gets_the_newest_map(
    seed, drop, changes
):
    problems, version = run_gossip(seed, drop=drop, changes=changes)
    assert not problems, problems[:5]
    assert version >= 1  # some change really travelled


def test_control_adopting_any_received_map_goes_back_in_time(monkeypatch):
    monkeypatch.setattr(
        gossip, "gossip_receive", lambda view, received: received[-1] if received else view
    )
    with pytest.raises(AssertionError, match="went back"):
        test_every_view_is_valid_and_moves_forward_and_every_zone_gets_the_newest_map()


def test_control_pushing_only_on_change_leaves_a_zone_behind(monkeypatch):
    monkeypatch.setattr(gossip, "gossip_due", lambda zone, tick, adopted: adopted)
    with pytest.raises(AssertionError, match="never got version"):
        test_every_view_is_valid_and_moves_forward_and_every_zone_gets_the_newest_map()


def test_control_a_map_built_without_validation_is_caught_as_invalid(monkeypatch):
    """A split that skipped RangeMap's checks (an empty range) shows in the views."""

    planned = next_plan

    def empty_range(ranges, rng):
        plan = planned(ranges, rng)
        if plan is None:
            return None
        broken = object.__new__(RangeMap)
        starts = np.r_[plan.starts[:1], plan.starts].astype(np.uint32)
        owners = np.r_[[MAX_ZONES - 1], plan.zone_of_range].astype(np.int16)
        object.__setattr__(broken, "starts", starts)
        object.__setattr__(broken, "version", plan.version)
        object.__setattr__(broken, "owners", owners)
        object.__setattr__(broken, "_by_index", False)
        return broken

    monkeypatch.setitem(globals(), "next_plan", empty_range)
    with pytest.raises(AssertionError, match="invalid map"):
        test_every_view_is_valid_and_moves_forward_and_every_zone_gets_the_newest_map()
