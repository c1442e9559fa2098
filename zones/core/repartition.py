"""Splitting a busy zone's range and merging two quiet neighbours back.

A plan is one change of the range map: a **split** cuts a zone's range at the point
that balances its entities and gives the upper part to a spare zone; a **merge**
gives the whole range of one zone to its neighbour on the code line. Either way the
new map has the version after the planner's, and the plan names which zone hands
which code interval to which.

Who plans: one planner at a time, the zone owning the first range of the newest map
it holds. Two zones planning from the same version would make two different maps of
one version, which gossip (adopt only the newer) could never reconcile; a single
planner that adopts its own plan before anyone hears of it (write-ahead) always
plans from the newest map. Another zone becomes the planner only by adopting a map
in which it owns the first range, that is, after the last plan of the one before.

Hysteresis, so that nothing flaps (constants.py gives the numbers' sources):

* a zone splits at SPLIT_SLOTS slots or SPLIT_TICK_MS step time; two adjacent zones
  merge only when both are under MERGE_SLOTS and MERGE_TICK_MS, and the merged zone
  holds at most 2·MERGE_SLOTS < SPLIT_SLOTS, so no merge calls for a split;
* no zone takes part in a change for REPARTITION_DWELL_TICKS after its last one;
* at most one change is in flight per neighbourhood (its zones and their code-line
  neighbours) until the caller settles it (its handoff is over).

The handoff itself is the migration protocol (migration.py): a zone that adopts a map
moving part of its range away arms its entities there for transfer at once
(`handoff_arm`), skipping the walkers' hysteresis, and the target owns each only
once it has promoted it, as for any transfer.
"""

from dataclasses import dataclass, field, replace

import numpy as np

from .constants import (
    CODE_SPACE,
    HYSTERESIS_TICKS,
    MAX_ZONES,
    MERGE_SLOTS,
    MERGE_TICK_MS,
    MIN_RANGE_CODES,
    REPARTITION_DWELL_TICKS,
    SPLIT_ALIGN_CODES,
    SPLIT_SLOTS,
    SPLIT_TICK_MS,
)
from .ranges import RangeMap
from .state import Status, ZoneState


class RepartitionError(ValueError):
    """A split or merge that cannot be planned; the message says what is wrong."""


@dataclass(frozen=True)
class ZoneLoad:
    """One zone's load: `codes` are its owned entities' Hilbert codes, (k,) sorted."""

    zone: int
    slots: int  # authority slots in use
    tick_ms: float  # time its step takes, milliseconds
    codes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint32), repr=False)


@dataclass(frozen=True)
class Thresholds:
    """When zones split and merge, and how long they rest after a change.

    The defaults are the module's constants, read when `thresholds()` is called. A
    market may lower them (a small test market) but not close the gaps that keep a
    change from undoing itself: two merged zones hold at most 2·merge_slots, which must
    stay under split_slots, and a merge's step time under a split's.
    """

    split_slots: int
    split_tick_ms: float
    merge_slots: int
    merge_tick_ms: float
    dwell_ticks: int

    def __post_init__(self) -> None:
        if (
            min(self.split_slots, self.merge_slots, self.dwell_ticks) < 0
            or min(self.split_tick_ms, self.merge_tick_ms) < 0
        ):
            raise RepartitionError(f"thresholds cannot be negative: {self}")
        if 2 * self.merge_slots >= self.split_slots:
            raise RepartitionError(
                f"two merged zones may hold 2 x {self.merge_slots} slots, which must stay"
                f" under the split threshold {self.split_slots}, or a merge calls for a split"
            )
        if self.merge_tick_ms >= self.split_tick_ms:
            raise RepartitionError(
                f"the merge step time {self.merge_tick_ms} ms must be under the split's"
                f" {self.split_tick_ms} ms"
            )


def thresholds(**changes: float) -> Thresholds:
    """The module's thresholds, with `changes` (split_slots=…, dwell_ticks=…) applied."""
    values: dict[str, float] = {
        "split_slots": SPLIT_SLOTS,
        "split_tick_ms": SPLIT_TICK_MS,
        "merge_slots": MERGE_SLOTS,
        "merge_tick_ms": MERGE_TICK_MS,
        "dwell_ticks": REPARTITION_DWELL_TICKS,
    }
    unknown = set(changes) - set(values)
    if unknown:
        raise RepartitionError(f"no such threshold: {', '.join(sorted(unknown))}")
    values.update(changes)
    return Thresholds(
        split_slots=int(values["split_slots"]),
        split_tick_ms=float(values["split_tick_ms"]),
        merge_slots=int(values["merge_slots"]),
        merge_tick_ms=float(values["merge_tick_ms"]),
        dwell_ticks=int(values["dwell_ticks"]),
    )


@dataclass(frozen=True)
class Handoff:
    """Zone `source` hands the codes [lo, hi) to zone `target`."""

    source: int
    target: int
    lo: int
    hi: int


@dataclass(frozen=True)
class Plan:
    """One split or merge: the map to adopt and the handoffs it implies."""

    kind: str  # "split" or "merge"
    ranges: RangeMap
    handoffs: tuple[Handoff, ...]

    @property
    def zones(self) -> frozenset[int]:
        """Every zone the change moves codes from or to."""
        return frozenset(z for h in self.handoffs for z in (h.source, h.target))


@dataclass(frozen=True)
class History:
    """What the planner remembers: when each zone last changed, which changes are running."""

    changed_at: tuple[tuple[int, int], ...] = ()  # (zone, tick) pairs
    in_flight: frozenset[int] = frozenset()

    def last_change(self, zone: int) -> int | None:
        """Tick of the last change `zone` took part in, if any."""
        ticks = [t for z, t in self.changed_at if z == zone]
        return max(ticks) if ticks else None


def split_point(*, lo: int, hi: int, codes: np.ndarray) -> int:
    """Where to cut [lo, hi): the median code rounded to a floor column, both parts non-empty.

    `codes` are the zone's entities' codes, sorted; with none the cut is the middle.
    Raises RepartitionError when [lo, hi) has no column boundary leaving
    MIN_RANGE_CODES on each side.
    """
    if not 0 <= lo < hi <= CODE_SPACE:
        raise RepartitionError(f"[{lo}, {hi}) is not a range of the code space")
    if codes.size and (int(codes[0]) < lo or int(codes[-1]) >= hi):
        raise RepartitionError(f"entity codes outside the range [{lo}, {hi}) being split")
    if codes.size > 1 and np.any(np.diff(codes.astype(np.int64)) < 0):
        raise RepartitionError("entity codes must be sorted")
    first, last = cut_bounds(lo=lo, hi=hi)
    if first > last:
        raise RepartitionError(
            f"the range [{lo}, {hi}) is too small to split: each part needs"
            f" {MIN_RANGE_CODES} codes, cut on a multiple of {SPLIT_ALIGN_CODES}"
        )
    median = int(codes[codes.size // 2]) if codes.size else (lo + hi) // 2
    below = median // SPLIT_ALIGN_CODES * SPLIT_ALIGN_CODES
    # the column boundary on either side of the median, whichever leaves the halves closer
    cuts = [min(max(c, first), last) for c in (below, below + SPLIT_ALIGN_CODES)]
    counts = np.searchsorted(codes.astype(np.int64), cuts)
    return min(cuts, key=lambda c: (abs(2 * int(counts[cuts.index(c)]) - codes.size), c))


def cut_bounds(*, lo: int, hi: int) -> tuple[int, int]:
    """The lowest and highest column boundary a cut of [lo, hi) may take (first > last:
    the range is too small to split)."""
    first = -(-(lo + MIN_RANGE_CODES) // SPLIT_ALIGN_CODES) * SPLIT_ALIGN_CODES
    last = (hi - MIN_RANGE_CODES) // SPLIT_ALIGN_CODES * SPLIT_ALIGN_CODES
    return first, last


def split_plan(*, ranges: RangeMap, zone: int, codes: np.ndarray, new_zone: int) -> Plan:
    """Cut `zone`'s range at `split_point`; `new_zone` takes the upper part.

    `codes` are the zone's owned entities' codes, sorted; those outside its range (walkers
    on their way out) are left out of the median.
    """
    if ranges.n >= MAX_ZONES:
        raise RepartitionError(f"the map already has MAX_ZONES={MAX_ZONES} zones")
    if not 0 <= new_zone < MAX_ZONES:
        raise RepartitionError(f"spare zone {new_zone} is outside 0..{MAX_ZONES - 1}")
    if new_zone in ranges.zones.tolist():
        raise RepartitionError(f"zone {new_zone} already owns a range; a split needs a spare")
    lo, hi = ranges.range_of(zone)
    codes = np.asarray(codes)
    cut = split_point(lo=lo, hi=hi, codes=codes[(codes >= lo) & (codes < hi)])
    i = ranges.index_of(zone)
    starts = np.insert(ranges.starts.astype(np.int64), i + 1, cut)
    owners = np.insert(ranges.zone_of_range.astype(np.int64), i + 1, new_zone)
    new = RangeMap(starts=starts, version=ranges.version + 1, owners=owners)
    return Plan("split", new, (Handoff(source=zone, target=new_zone, lo=cut, hi=hi),))


def merge_plan(*, ranges: RangeMap, keep: int, absorb: int) -> Plan:
    """Give all of `absorb`'s range to `keep`, its neighbour on the code line."""
    if keep == absorb:
        raise RepartitionError(f"zone {keep} cannot merge with itself")
    a, b = ranges.index_of(keep), ranges.index_of(absorb)
    if abs(a - b) != 1:
        raise RepartitionError(
            f"zones {keep} and {absorb} are not adjacent on the code line (ranges {a} and {b})"
        )
    lo, hi = ranges.range_of(absorb)
    gone = max(a, b)  # the start that disappears is the upper range's
    starts = np.delete(ranges.starts.astype(np.int64), gone)
    owners = np.delete(ranges.zone_of_range.astype(np.int64), b)
    new = RangeMap(starts=starts, version=ranges.version + 1, owners=owners)
    return Plan("merge", new, (Handoff(source=absorb, target=keep, lo=lo, hi=hi),))


def neighbourhood(*, ranges: RangeMap, zones: frozenset[int]) -> frozenset[int]:
    """`zones` (those in the map) and the zones of the ranges next to theirs."""
    found: set[int] = set()
    present = set(ranges.zones.tolist())
    for zone in zones & present:
        i = ranges.index_of(zone)
        found.update(int(ranges.zone_of_range[j]) for j in (i - 1, i, i + 1) if 0 <= j < ranges.n)
    return frozenset(found | (zones - present))


def repartition_decide(
    *,
    ranges: RangeMap,
    loads: dict[int, ZoneLoad],
    tick: int,
    history: History,
    spares: list[int],
    absorbable: frozenset[int] | None = None,
    limits: Thresholds | None = None,
) -> Plan | None:
    """The one split or merge to make now, if any: the busiest hot zone splits first.

    `loads` holds each zone's latest load; `spares` are zones with no range that a
    split may hand one to, in order of preference. A zone without a load is never split
    or merged. With `absorbable`, a merge only retires a zone in it (a market whose
    own zones are its booths merges back what its splits made, and never two booths'
    zones): of a quiet pair, the zone retired is the absorbable one, the quieter of two.
    `limits` defaults to the module's `thresholds()`.
    """
    limits = thresholds() if limits is None else limits
    for key, load in loads.items():
        if load.zone != key:
            raise RepartitionError(f"the load filed under zone {key} is zone {load.zone}'s")
        if load.slots < 0 or load.tick_ms < 0:
            raise RepartitionError(f"zone {load.zone} reports a negative load")
        if load.codes.size > 1 and np.any(np.diff(load.codes.astype(np.int64)) < 0):
            raise RepartitionError(f"zone {load.zone}'s entity codes must be sorted")

    def free(zones: frozenset[int]) -> bool:
        rested = all(
            (t := history.last_change(z)) is None or tick - t >= limits.dwell_ticks for z in zones
        )
        return rested and not neighbourhood(ranges=ranges, zones=zones) & history.in_flight

    present = ranges.zones.tolist()
    spare = [z for z in spares if z not in present and z not in history.in_flight]
    hot = [
        loads[z]
        for z in present
        if z in loads
        and (loads[z].slots >= limits.split_slots or loads[z].tick_ms >= limits.split_tick_ms)
    ]
    for load in sorted(hot, key=lambda one: (-one.slots, -one.tick_ms, one.zone)):
        if not spare or ranges.n >= MAX_ZONES:
            break
        lo, hi = ranges.range_of(load.zone)
        first, last = cut_bounds(lo=lo, hi=hi)
        if first > last or not free(frozenset({load.zone, spare[0]})):
            continue  # too small to cut stays whole: one zone is all it can get
        return split_plan(ranges=ranges, zone=load.zone, codes=load.codes, new_zone=spare[0])
    order = ranges.zone_of_range.tolist()
    for left, right in zip(order, order[1:], strict=False):
        pair = [loads.get(left), loads.get(right)]
        quiet = all(
            p is not None and p.slots <= limits.merge_slots and p.tick_ms <= limits.merge_tick_ms
            for p in pair
        )
        if not quiet or not free(frozenset({left, right})):
            continue
        keep, absorb = (left, right) if loads[left].slots >= loads[right].slots else (right, left)
        if absorbable is not None and absorb not in absorbable:
            if keep not in absorbable:
                continue  # neither may be retired
            keep, absorb = absorb, keep
        return merge_plan(ranges=ranges, keep=keep, absorb=absorb)
    return None


def planner_of(ranges: RangeMap) -> int:
    """The zone that plans the next change: the owner of the map's first range."""
    return int(ranges.zone_of_range[0])


def history_record(*, history: History, plan: Plan, tick: int) -> History:
    """The history once `plan` is issued at `tick`: its zones in flight and resting."""
    kept = tuple((z, t) for z, t in history.changed_at if z not in plan.zones)
    return History(
        changed_at=kept + tuple((z, tick) for z in sorted(plan.zones)),
        in_flight=history.in_flight | plan.zones,
    )


def history_settle(*, history: History, plan: Plan) -> History:
    """The history once `plan`'s handoffs are over: its neighbourhood is free again."""
    return replace(history, in_flight=history.in_flight - plan.zones)


def handoff_arm(
    state: ZoneState, before: RangeMap, assigned: np.ndarray, live: np.ndarray
) -> np.ndarray:
    """Make the entities a newly adopted map moved away due for transfer at once.

    An entity this zone owned under `before` that the new map (`assigned`: the zone
    of every slot under it) gives to another zone did not walk anywhere: waiting out
    the walkers' hysteresis would only hold it in the wrong zone. Its count of ticks
    outside is raised to HYSTERESIS_TICKS, so `migration.start_migrations` proposes
    it this tick, through the fenced protocol like any transfer. Returns its slots.
    Mutates `state`, as the migration stages do.
    """
    if live.size == 0:
        return live
    holding = live[state.status[live] == Status.OWNED]
    was_mine = before.assign(state.code[holding]) == state.zone
    moved = holding[was_mine & (assigned[holding] != state.zone) & (assigned[holding] >= 0)]
    state.outside[moved] = np.maximum(state.outside[moved], HYSTERESIS_TICKS)
    return moved
