"""Where each visitor of a load run starts and where it walks: pure planning over a layout.

A plan is a start point and a cycle of straight legs, each leaving at a fixed offset
into the cycle, so that visitors meant to move together (a rush, a group) leave
together without talking to each other. Three scenarios:

  * **crowd**: the opening crowd, packed on a CROWD_SPACING_M grid as near the
    entrance (the middle of the market's front edge) as the entrance booth allows,
    then the booths next to it; each visitor shuffles about its spot;
  * **choke**: a rush through a CHOKE_WIDTH_M gap on the border of two adjacent
    booths: everyone waits at the gap, crosses at once, spreads out in the far booth,
    stays there long enough to be handed over (the hysteresis is 4 s), and rushes back;
  * **browse**: groups of GROUP_SIZE walk a tour of adjacent booths, stopping at the
    heart of each one (its point farthest from any other booth) for BROWSE_DWELL_S.

Besides them, `plan_crossings` has each visitor pace across a border of its own, back
and forth: the soak's visitors (soak.py), handed over from the first seconds of a visit.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from zones.client.layout import STANDING_HEIGHT_M, Layout
from zones.core.constants import HYSTERESIS_TICKS, SIM_TICK_HZ

SCENARIOS = ("crowd", "choke", "browse")
CROWDED = ("crowd", "choke")  # the scenarios the bandwidth target is about
FLOOR_STEP_M = 1.0  # grid of the floor map: booth hearts, borders, neighbours
LEG_SLACK_S = 1.0  # added to the slowest walker's time on a shared leg
HANDOVER_S = HYSTERESIS_TICKS / SIM_TICK_HZ + 2.0  # time in a booth for the handoff to happen

CROWD_SPACING_M = 1.5  # about one visitor per 2 m², a queue at the doors
MILL_RADIUS_M = 0.5
MILL_SPEED_M_S = 0.4
MILL_STEPS = 3
MILL_PAUSE_S = (1.0, 3.0)

CHOKE_WIDTH_M = 3.0
CHOKE_GATE_M = 1.0  # the gap's two mouths, this far either side of the border
CHOKE_NEAREST_M = 3.0  # visitors start and end at least this far from the gap
CHOKE_SPACING_M = 1.0
RUSH_SPEED_M_S = 3.0

CROSSING_M = 3.0  # a crossing starts and ends this far inside each booth
CROSSING_SPEED_M_S = 1.5

GROUP_SIZE = 6
GROUP_RADIUS_M = 1.2
BROWSE_STOPS = 5  # booths on a group's tour, walked there and back
BROWSE_SPEED_M_S = 1.2
BROWSE_DWELL_S = HANDOVER_S


class PlanError(ValueError):
    """The layout cannot host the scenario asked for (too few booths, too small)."""


@dataclass(frozen=True, eq=False)
class Leg:
    """One straight walk: to `end` (metres) at `speed`, leaving `depart_s` into the cycle."""

    end: np.ndarray
    speed: float
    depart_s: float


@dataclass(frozen=True, eq=False)
class VisitorPlan:
    """What one visitor does: join at `start`, then walk `legs`, again every `cycle_s`."""

    scenario: str
    start: np.ndarray  # (3,) metres
    legs: tuple[Leg, ...]
    cycle_s: float
    booths: tuple[int, ...]  # the booths the plan takes it to, in order
    group: int = -1  # browse: the group walking together


@dataclass(frozen=True, eq=False)
class FloorMap:
    """The floor on a grid of `step` metres: each point's booth, and how deep inside it lies."""

    layout: Layout
    step: float
    points: np.ndarray  # (nx * nz, 3) metres, index ix * nz + iz
    zones: np.ndarray  # (nx, nz) int64 booth of each point

    @classmethod
    def of(cls, layout: Layout, step: float = FLOOR_STEP_M) -> "FloorMap":
        points = layout.floor_points(step)
        nz = np.arange(layout.lo[2] + step / 2, layout.hi[2], step).size
        zones = layout.zone_at(points).reshape(-1, nz)
        return cls(layout=layout, step=step, points=points, zones=zones)

    @cached_property
    def depth(self) -> np.ndarray:
        """(nx, nz) int64: grid steps from each point to the nearest other booth or wall."""
        z = self.zones
        keep = np.ones(z.shape, bool)
        depth = np.zeros(z.shape, np.int64)
        while keep.any():
            depth += keep
            inner = keep.copy()
            inner[0, :] = inner[-1, :] = inner[:, 0] = inner[:, -1] = False
            inner[1:, :] &= keep[:-1, :] & (z[:-1, :] == z[1:, :])
            inner[:-1, :] &= keep[1:, :] & (z[1:, :] == z[:-1, :])
            inner[:, 1:] &= keep[:, :-1] & (z[:, :-1] == z[:, 1:])
            inner[:, :-1] &= keep[:, 1:] & (z[:, 1:] == z[:, :-1])
            keep = inner
        return depth

    @cached_property
    def borders(self) -> list[tuple[int, int]]:
        """(i, j) flat indexes of grid neighbours in different booths, each pair once."""
        index = np.arange(self.zones.size).reshape(self.zones.shape)
        pairs: list[tuple[int, int]] = []
        for here, there in (
            (index[:-1, :], index[1:, :]),
            (index[:, :-1], index[:, 1:]),
        ):
            differ = self.zones.flat[here] != self.zones.flat[there]
            pairs.extend(zip(here[differ].tolist(), there[differ].tolist(), strict=True))
        return pairs

    @cached_property
    def neighbours(self) -> dict[int, set[int]]:
        """Booth → the booths sharing a border with it."""
        found: dict[int, set[int]] = {z: set() for z in range(self.layout.zones)}
        flat = self.zones.reshape(-1)
        for i, j in self.borders:
            a, b = int(flat[i]), int(flat[j])
            found[a].add(b)
            found[b].add(a)
        return found

    def heart(self, booth: int) -> np.ndarray:
        """The point of `booth` farthest from its walls (nearest its middle among equals)."""
        flat_zone, flat_depth = self.zones.reshape(-1), self.depth.reshape(-1)
        inside = np.flatnonzero(flat_zone == booth)
        if inside.size == 0:
            raise PlanError(f"booth {booth} has no floor on a {self.step:g} m grid")
        deepest = inside[flat_depth[inside] == flat_depth[inside].max()]
        middle = self.points[inside].mean(axis=0)
        return self.points[
            deepest[np.argmin(np.linalg.norm(self.points[deepest] - middle, axis=1))]
        ]

    def booth_points(self, booth: int, spacing: float) -> np.ndarray:
        """(n, 3) points of `booth` on a grid of `spacing` metres."""
        points = self.layout.floor_points(spacing)
        return points[self.layout.zone_at(points) == booth]


def entrance_point(layout: Layout) -> np.ndarray:
    """Where the doors are: the middle of the front edge (least z), a metre inside."""
    return np.array(
        [
            (layout.lo[0] + layout.hi[0]) / 2,
            layout.lo[1] + STANDING_HEIGHT_M,
            layout.lo[2] + 1.0,
        ]
    )


def entrance_booth(layout: Layout) -> int:
    return layout.zone_of(entrance_point(layout))


def _unit(vector: np.ndarray) -> np.ndarray:
    flat = np.array(vector, dtype=np.float64)
    flat[1] = 0.0
    norm = float(np.linalg.norm(flat))
    return flat / norm if norm > 1e-9 else flat


def _schedule(
    walks: np.ndarray, pauses: Sequence[float], start_s: float = 0.0
) -> tuple[list[float], float]:
    """Departures of a shared cycle of legs and its length.

    `walks` is (visitors, legs) metres·s/m: each visitor's time for each leg; a leg
    leaves once the slowest of the previous one has arrived and paused.
    """
    departs, at = [], start_s
    for leg, pause in enumerate(pauses):
        departs.append(at)
        at += float(walks[:, leg].max()) + LEG_SLACK_S + pause
    return departs, at


def _leg_times(starts: np.ndarray, ends: np.ndarray, speed: float) -> np.ndarray:
    """(visitors, legs) seconds to walk from each start to its first end, then end to end."""
    chain = np.concatenate([starts[:, None, :], ends], axis=1)
    return np.linalg.norm(np.diff(chain, axis=1), axis=2) / speed


# --- crowd ---------------------------------------------------------------------------------


def plan_crowd(layout: Layout, count: int, rng: np.random.Generator) -> list[VisitorPlan]:
    """`count` visitors packed at the entrance: its booth first, nearest first, then beyond."""
    points = layout.floor_points(CROWD_SPACING_M)
    zones = layout.zone_at(points)
    entrance = entrance_point(layout)
    booth = layout.zone_of(entrance)
    distance = np.linalg.norm(points - entrance, axis=1)
    order = np.lexsort((distance, zones != booth))
    if count > order.size:
        raise PlanError(f"{count} visitors do not fit on the floor {CROWD_SPACING_M:g} m apart")
    plans = []
    for home in points[order[:count]]:
        angles = rng.uniform(0, 2 * np.pi, MILL_STEPS)
        radii = MILL_RADIUS_M * np.sqrt(rng.uniform(0, 1, MILL_STEPS))
        spots = np.repeat(home[None, :], MILL_STEPS + 1, axis=0)
        spots[:-1, 0] += radii * np.cos(angles)
        spots[:-1, 2] += radii * np.sin(angles)
        walks = _leg_times(home[None, :], spots[None, :, :], MILL_SPEED_M_S)
        pauses = rng.uniform(*MILL_PAUSE_S, MILL_STEPS + 1).tolist()
        departs, cycle = _schedule(walks, pauses, start_s=float(rng.uniform(0, 2)))
        legs = tuple(
            Leg(end=spot, speed=MILL_SPEED_M_S, depart_s=d)
            for spot, d in zip(spots, departs, strict=True)
        )
        plans.append(VisitorPlan("crowd", home, legs, cycle, booths=(int(layout.zone_of(home)),)))
    return plans


# --- choke ---------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Choke:
    """A gap on the border from booth `src` into booth `dst`."""

    src: int
    dst: int
    point: np.ndarray  # (3,) on the border, metres
    across: np.ndarray  # (3,) unit vector from src into dst
    along: np.ndarray  # (3,) unit vector along the border

    def gate(self, side: float, lateral: float) -> np.ndarray:
        """The gap's mouth on the src side (side < 0) or dst side (side > 0)."""
        return self.point + side * CHOKE_GATE_M * self.across + lateral * self.along


def choke_between(floor: FloorMap, avoid: Sequence[int] = ()) -> Choke:
    """A gap on the border of two adjacent booths, near the middle of the market.

    Booths in `avoid` are left out while another pair exists (the crowd's booth). The
    gap's full width must lie on the border, each mouth inside its own booth.
    """
    layout = floor.layout
    flat = floor.zones.reshape(-1)
    middle = (layout.lo + layout.hi).astype(np.float64) / 2
    candidates = []
    for i, j in floor.borders:
        a, b = int(flat[i]), int(flat[j])
        point = (floor.points[i] + floor.points[j]) / 2
        avoided = a in avoid or b in avoid
        candidates.append((avoided, float(np.linalg.norm((point - middle)[[0, 2]])), i, j))
    candidates.sort()
    half = CHOKE_WIDTH_M / 2
    for _, _, i, j in candidates:
        a, b = int(flat[i]), int(flat[j])
        across = _unit(floor.points[j] - floor.points[i])
        along = np.array([-across[2], 0.0, across[0]])
        choke = Choke(a, b, (floor.points[i] + floor.points[j]) / 2, across, along)
        mouths = np.array([choke.gate(s, w) for s in (-1, 1) for w in (-half, 0.0, half)])
        inside = np.all((mouths >= layout.lo) & (mouths <= layout.hi))
        if inside and (layout.zone_at(mouths) == [a, a, a, b, b, b]).all():
            return choke
    raise PlanError(f"no {CHOKE_WIDTH_M:g} m gap fits on any border between two booths")


def _spread_from(points: np.ndarray, point: np.ndarray, count: int) -> np.ndarray:
    """`count` of `points` at least CHOKE_NEAREST_M from `point`, nearest first (reused if few)."""
    distance = np.linalg.norm((points - point)[:, [0, 2]], axis=1)
    usable = np.flatnonzero(distance >= CHOKE_NEAREST_M)
    if usable.size == 0:
        raise PlanError("a booth of the choke has no floor away from the gap")
    ordered = usable[np.argsort(distance[usable], kind="stable")]
    return points[ordered[np.arange(count) % ordered.size]]


def plan_choke(
    layout: Layout,
    count: int,
    rng: np.random.Generator,
    *,
    floor: FloorMap | None = None,
    avoid: Sequence[int] = (),
) -> list[VisitorPlan]:
    """`count` visitors rushing from one booth through a gap into the next and back."""
    if layout.zones < 2:
        raise PlanError("the choke scenario needs at least 2 booths")
    floor = floor or FloorMap.of(layout)
    choke = choke_between(floor, avoid)
    homes = _spread_from(floor.booth_points(choke.src, CHOKE_SPACING_M), choke.point, count)
    targets = _spread_from(floor.booth_points(choke.dst, CHOKE_SPACING_M), choke.point, count)
    laterals = rng.uniform(-CHOKE_WIDTH_M / 2, CHOKE_WIDTH_M / 2, count)
    ends = np.stack(
        [
            np.stack(
                [choke.gate(-1, w), choke.gate(1, w), t, choke.gate(1, w), choke.gate(-1, w), h]
            )
            for w, t, h in zip(laterals, targets, homes, strict=True)
        ]
    )
    walks = _leg_times(homes, ends, RUSH_SPEED_M_S)
    pauses = [0.0, 0.0, HANDOVER_S, 0.0, 0.0, HANDOVER_S]
    departs, cycle = _schedule(walks, pauses)
    return [
        VisitorPlan(
            "choke",
            home,
            tuple(
                Leg(end=end, speed=RUSH_SPEED_M_S, depart_s=d)
                for end, d in zip(visitor_ends, departs, strict=True)
            ),
            cycle,
            booths=(choke.src, choke.dst),
        )
        for home, visitor_ends in zip(homes, ends, strict=True)
    ]


# --- browse --------------------------------------------------------------------------------


def browse_tour(floor: FloorMap, start: int, rng: np.random.Generator) -> list[int]:
    """BROWSE_STOPS booths from `start`, each next to the one before, fresh ones preferred."""
    tour = [start]
    while len(tour) < BROWSE_STOPS:
        around = floor.neighbours[tour[-1]]
        if not around:
            raise PlanError("the browse scenario needs at least 2 booths")
        fresh = sorted(around - set(tour)) or sorted(around - set(tour[-2:])) or sorted(around)
        tour.append(int(rng.choice(fresh)))
    return tour


def _stand(layout: Layout, heart: np.ndarray, booth: int, offset: np.ndarray) -> np.ndarray:
    """A group member's spot: `offset` from the booth's heart, or the heart if that leaves it."""
    spot = heart + offset
    return spot if layout.zone_of(spot) == booth else heart


def plan_browse(
    layout: Layout, count: int, rng: np.random.Generator, *, floor: FloorMap | None = None
) -> list[VisitorPlan]:
    """`count` visitors in groups of GROUP_SIZE, each group touring adjacent booths."""
    if layout.zones < 2:
        raise PlanError("the browse scenario needs at least 2 booths")
    floor = floor or FloorMap.of(layout)
    hearts = {z: floor.heart(z) for z in range(layout.zones)}
    firsts = rng.permutation(layout.zones)
    plans: list[VisitorPlan] = []
    for group in range(math.ceil(count / GROUP_SIZE)):
        members = min(GROUP_SIZE, count - group * GROUP_SIZE)
        tour = browse_tour(floor, int(firsts[group % layout.zones]), rng)
        path = tour + tour[-2:0:-1]  # there and back, ending next to the first booth
        stops = [*path[1:], path[0]]
        turn = 2 * np.pi * np.arange(members) / members
        offsets = GROUP_RADIUS_M * np.column_stack([np.cos(turn), np.zeros(members), np.sin(turn)])
        if members == 1:
            offsets[:] = 0.0
        starts = np.stack([_stand(layout, hearts[path[0]], path[0], o) for o in offsets])
        ends = np.stack([[_stand(layout, hearts[b], b, o) for b in stops] for o in offsets])
        walks = _leg_times(starts, ends, BROWSE_SPEED_M_S)
        pauses = [BROWSE_DWELL_S] * len(stops)
        departs, cycle = _schedule(walks, pauses, start_s=BROWSE_DWELL_S + rng.uniform(0, 3))
        for start, member_ends in zip(starts, ends, strict=True):
            legs = tuple(
                Leg(end=end, speed=BROWSE_SPEED_M_S, depart_s=d)
                for end, d in zip(member_ends, departs, strict=True)
            )
            plans.append(VisitorPlan("browse", start, legs, cycle, tuple(path), group=group))
    return plans


# --- crossings -----------------------------------------------------------------------------


def plan_crossings(
    layout: Layout, count: int, rng: np.random.Generator, *, floor: FloorMap | None = None
) -> list[VisitorPlan]:
    """`count` visitors each pacing across a border of two booths picked at random: from
    CROSSING_M inside one booth to CROSSING_M inside the other, staying HANDOVER_S on each
    side so that every crossing is handed over. Each visitor keeps its own pace (it leaves
    when it arrived, not with others), so crossings are spread over every border and time."""
    if layout.zones < 2:
        raise PlanError("crossings need at least 2 booths")
    floor = floor or FloorMap.of(layout)
    flat = floor.zones.reshape(-1)
    pairs = floor.borders
    plans: list[VisitorPlan] = []
    for _ in range(count * 20):  # borders too near a wall or a corner are drawn again
        if len(plans) == count:
            break
        i, j = pairs[int(rng.integers(len(pairs)))]
        across = _unit(floor.points[j] - floor.points[i])
        middle = (floor.points[i] + floor.points[j]) / 2
        home, away = middle - CROSSING_M * across, middle + CROSSING_M * across
        inside = np.all(
            (np.stack([home, away]) >= layout.lo) & (np.stack([home, away]) <= layout.hi)
        )
        if not inside or [layout.zone_of(home), layout.zone_of(away)] != [flat[i], flat[j]]:
            continue
        walk = 2 * CROSSING_M / CROSSING_SPEED_M_S + LEG_SLACK_S
        legs = (
            Leg(end=away, speed=CROSSING_SPEED_M_S, depart_s=0.0),
            Leg(end=home, speed=CROSSING_SPEED_M_S, depart_s=walk + HANDOVER_S),
        )
        booths = (int(flat[i]), int(flat[j]))
        plans.append(VisitorPlan("crossing", home, legs, 2 * (walk + HANDOVER_S), booths))
    if len(plans) < count:
        raise PlanError(f"no border leaves {CROSSING_M:g} m of floor on both sides")
    return plans


# --- the whole run -------------------------------------------------------------------------


def scenario_shares(scenario: str, count: int) -> dict[str, int]:
    """Visitors per scenario: all of them, or a third each for "all" (the crowd gets the rest)."""
    if scenario in SCENARIOS:
        return {scenario: count}
    if scenario != "all":
        raise PlanError(f"unknown scenario {scenario!r}: one of {', '.join(SCENARIOS)} or all")
    third = count // 3
    return {"crowd": count - 2 * third, "choke": third, "browse": third}


def plan_scenario(
    layout: Layout, scenario: str, count: int, rng: np.random.Generator
) -> list[VisitorPlan]:
    """Every visitor's plan for `scenario` ("crowd", "choke", "browse" or "all")."""
    shares = scenario_shares(scenario, count)
    floor = FloorMap.of(layout)
    plans: list[VisitorPlan] = []
    if shares.get("crowd"):
        plans += plan_crowd(layout, shares["crowd"], rng)
    if shares.get("choke"):
        avoid = [entrance_booth(layout)] if "crowd" in shares else []
        plans += plan_choke(layout, shares["choke"], rng, floor=floor, avoid=avoid)
    if shares.get("browse"):
        plans += plan_browse(layout, shares["browse"], rng, floor=floor)
    return plans
