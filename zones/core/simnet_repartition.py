"""A split and then a merge applied mid-run to zones over the lossy SimNetwork.

The market starts with two zones owning ranges and one spare zone. The planner (the
zone owning the first range, repartition.py) splits its own range, the spare taking
the upper part, and later merges that part back. Each new map reaches the planner as
a message it gives itself and every other zone by gossip (gossip.py) over the same
network as the migrations: dropped, delayed, duplicated, with zones crashing. No
zone owns anything because of a map: a zone that adopts a map moving part of its
range away proposes those entities at once (`repartition.handoff_arm`), and the
migration protocol decides, as for any transfer.

With `decide_every`, nothing is scripted: the planner asks `repartition_decide` every so
many ticks, from each zone's slots and owned codes, and the run records what it planned.

`run_split_merge` checks, at every tick, exactly one owner per entity, none lost and
none extra (`simnet.ownership_violations`), and that no zone's view goes back; after
the network calms down, that every zone holds the newest map and every entity is
owned by the zone that map gives its position to.
"""

from dataclasses import dataclass, field

import numpy as np

from .crowd import Crowd
from .gossip import gossip_due, gossip_messages
from .hilbert import encode_positions
from .messages import Gossip
from .ranges import RangeMap, floor_ranges
from .repartition import (
    Handoff,
    History,
    Plan,
    ZoneLoad,
    history_record,
    history_settle,
    merge_plan,
    repartition_decide,
    split_plan,
)
from .simnet import Faults, SimNetwork, leftover_records, ownership_violations
from .state import Status, ZoneParams, ZoneState
from .step import StepOutput

SMALL_MARKET = np.array([32.0, 64.0, 32.0], np.float32)  # 16 floor columns a side
PLANNER, OTHER, SPARE = 0, 1, 2


@dataclass(frozen=True)
class SplitMergeRun:
    """One run: when the split and the merge are planned, and what goes wrong meanwhile."""

    seed: int
    walkers: int = 160
    ticks: int = 400
    split_at: int = 60
    merge_at: int = 240
    crashes: tuple[tuple[int, int, int], ...] = ()  # (tick, zone, downtime in ticks)
    faults: Faults = Faults()
    quiet_ticks: int = 450
    speed: tuple[float, float] = (0.5, 4.0)  # walkers' speeds, m/s
    capacity: int = 400
    decide_every: int = 0  # > 0: the planner decides from the zones' loads this often instead
    packed: bool = False  # every walker starts in the planner's range, as at an opening


@dataclass
class SplitMergeReport:
    """What a run saw; `problems` empty means every promise held."""

    problems: list[str] = field(default_factory=list)
    version: int = 0  # of the newest map
    spare_peak: int = 0  # most entities the spare zone held
    split_done: int | None = None  # ticks from the split's plan until its interval changed hands
    merge_done: int | None = None  # the same for the merge
    repartition_starts: int = 0  # transfers started in the tick their zone adopted a map
    changes: list[tuple[int, str]] = field(default_factory=list)  # (tick, kind) of every plan
    live: list[int] = field(default_factory=list)  # entities each zone holds at the end


def run_split_merge(run: SplitMergeRun) -> SplitMergeReport:
    """Run `run` and report every promise broken (see the module docstring)."""
    params = [
        ZoneParams(zone=z, hi=SMALL_MARKET, capacity=run.capacity, spawn_cap=run.capacity)
        for z in range(3)
    ]
    net = SimNetwork(
        ranges=floor_ranges(2),
        params=params,
        rng=np.random.default_rng(run.seed),
        faults=run.faults,
        workers=3,
    )
    crowd = Crowd(net, np.random.default_rng(run.seed + 1), speed_range=run.speed)
    report = SplitMergeReport()
    crashes = {tick: (zone, down) for tick, zone, down in run.crashes}
    versions = [0] * net.n
    pending: Plan | None = None
    planned_at = 0
    split: Plan | None = None
    history = History()
    settled = True

    for t in range(run.ticks + run.quiet_ticks):
        if t == run.ticks:  # the network calms down and the walkers stop
            net.faults = Faults(drop=0.0, duplicate=0.0, max_skew_ms=0)
        planner = net.zones[PLANNER]
        if run.decide_every:
            adopted = pending is None or planner.ranges.version >= pending.ranges.version
            due = t > 0 and t % run.decide_every == 0  # from the first tick with a crowd
            if settled and adopted and due and not net.is_down(PLANNER):
                plan = repartition_decide(
                    ranges=planner.ranges,
                    loads=_loads(net.held_states(), planner.ranges),
                    tick=t,
                    history=history,
                    spares=[z for z in range(net.n) if z not in planner.ranges.zones.tolist()],
                )
                if plan is not None:
                    pending, planned_at, settled = plan, t, False
                    history = history_record(history=history, plan=plan, tick=t)
                    report.changes.append((t, plan.kind))
        elif t == run.split_at:
            pending, planned_at = _plan_split(planner), t
            split = pending
            report.changes.append((t, "split"))
        # the merge is planned once the planner holds the split's map: it plans from the newest
        newest_held = split is not None and planner.ranges.version >= split.ranges.version
        if t >= run.merge_at and pending is split and newest_held:
            pending = merge_plan(ranges=planner.ranges, keep=PLANNER, absorb=SPARE)
            planned_at = t
            report.changes.append((t, "merge"))
        # until the planner has adopted its plan (a crash may lose the message), it is given again
        unadopted = pending is not None and planner.ranges.version < pending.ranges.version
        if pending is not None and unadopted and not net.is_down(PLANNER):
            net.send_to_self(
                Gossip(src=PLANNER, dst=PLANNER, hlc=planner.hlc, ranges=pending.ranges)
            )
        if t == 0:
            commands = None
            spawns = _packed(crowd, run.walkers, net) if run.packed else crowd.spawn(run.walkers)
        else:
            spawns = None
            commands = crowd.stop_all() if t == run.ticks else crowd.commands()
            if t > run.ticks:
                commands = None
        crash = crashes.get(t)
        outputs = net.run_tick(
            spawns=spawns, commands=commands, crashes={crash[0]: crash[1]} if crash else None
        )
        crowd.record_spawns(outputs)
        _gossip(net, outputs)
        states = net.held_states()
        report.repartition_starts += sum(
            sum(s.size for s in out.migration.started)
            for out in outputs
            if out is not None and out.gossip_adopted
        )
        report.problems.extend(
            f"tick {t}: {p}" for p in ownership_violations(states, crowd.expected)
        )
        for s in states:
            if s.ranges.version < versions[s.zone]:
                report.problems.append(
                    f"tick {t}: zone {s.zone}'s map went back to {s.ranges.version} from {versions[s.zone]}"
                )
            versions[s.zone] = max(versions[s.zone], s.ranges.version)
            if s.live_count() > run.capacity:
                report.problems.append(f"tick {t}: zone {s.zone} holds {s.live_count()} > capacity")
        report.spare_peak = max(report.spare_peak, net.zones[SPARE].live_count())
        if pending is not None and _handed_over(states, pending.handoffs[0], params[0]):
            elapsed = t - planned_at
            if not settled:
                history, settled = history_settle(history=history, plan=pending), True
            if pending.kind == "split" and report.split_done is None:
                report.split_done = elapsed
            elif pending.kind == "merge" and report.merge_done is None:
                report.merge_done = elapsed
        if report.problems:
            return report

    states = net.held_states()
    report.live = [s.live_count() for s in states]
    newest = max((s.ranges for s in states), key=lambda r: r.version)
    report.version = newest.version
    behind = [s.zone for s in states if s.ranges != newest]
    if behind:
        report.problems.append(
            f"zones {behind} never got the newest map (version {newest.version})"
        )
    misplaced = _misplaced(states, newest, params[0])
    if misplaced:
        report.problems.append(
            f"{misplaced} entities owned by a zone the newest map does not give their position to"
        )
    leftovers = leftover_records(states)
    if leftovers:
        report.problems.append(f"{leftovers} duplicate records remain after the network went quiet")
    return report


def _loads(states: list[ZoneState], ranges: RangeMap) -> dict[int, ZoneLoad]:
    """Each zone's load as its summary would give it: slots, and its owned codes sorted.
    A simulated step's time says nothing of a real one, so it is left at zero."""
    loads = {}
    for zone in ranges.zones.tolist():
        s = states[zone]
        codes = np.sort(s.code[s.status == Status.OWNED])
        loads[zone] = ZoneLoad(zone=zone, slots=s.live_count(), tick_ms=0.0, codes=codes)
    return loads


def _packed(crowd: Crowd, count: int, net: SimNetwork) -> dict[int, np.ndarray]:
    """Spawn requests for `count` walkers, all in the planner's range."""
    rows = np.concatenate(list(crowd.spawn(count * 4).values()))
    p = net.params[PLANNER]
    mine = rows[net.ranges.assign(encode_positions(rows["pos"], p.lo, p.hi)) == PLANNER]
    return {PLANNER: mine[:count]}


def _plan_split(planner: ZoneState) -> Plan:
    """The planner splits its own range at its entities' median code; the spare takes the rest."""
    lo, hi = planner.ranges.range_of(PLANNER)
    codes = planner.code[planner.status == Status.OWNED]
    codes = np.sort(codes[(codes >= lo) & (codes < hi)])  # walkers already outside go anyway
    return split_plan(ranges=planner.ranges, zone=PLANNER, codes=codes, new_zone=SPARE)


def _gossip(net: SimNetwork, outputs: list[StepOutput | None]) -> None:
    """Every zone that ran pushes its map when gossip says so, to every zone of the market."""
    for zone, out in enumerate(outputs):
        if out is None or net.is_down(zone):
            continue
        if not gossip_due(zone=zone, tick=net.tick, adopted=out.gossip_adopted):
            continue
        state = net.zones[zone]
        for message in gossip_messages(
            zone=zone, ranges=state.ranges, peers=range(net.n), hlc=state.hlc
        ):
            net.send(message)


def _owners(states: list[ZoneState]) -> dict[int, tuple[int, np.ndarray]]:
    """Entity id → (owning zone, position), the owner being the highest-epoch authority."""
    found: dict[int, tuple[int, int, np.ndarray]] = {}
    for s in states:
        held = np.flatnonzero((s.status == Status.OWNED) | (s.status == Status.STAGING))
        for slot in held.tolist():
            ident, epoch = int(s.id[slot]), int(s.epoch[slot])
            if ident not in found or found[ident][1] < epoch:
                found[ident] = (s.zone, epoch, s.pos[slot])
    return {ident: (zone, pos) for ident, (zone, _, pos) in found.items()}


def _codes(
    owners: dict[int, tuple[int, np.ndarray]], params: ZoneParams
) -> tuple[np.ndarray, np.ndarray]:
    """(zones, codes) of the owned entities, in any order."""
    if not owners:
        return np.zeros(0, np.int64), np.zeros(0, np.uint32)
    zones = np.array([zone for zone, _ in owners.values()], np.int64)
    positions = np.array([pos for _, pos in owners.values()], np.float32)
    return zones, encode_positions(positions, params.lo, params.hi)


def _handed_over(states: list[ZoneState], handoff: Handoff, params: ZoneParams) -> bool:
    """Whether no entity in the handed interval is owned by the handing zone any more."""
    zones, codes = _codes(_owners(states), params)
    inside = (codes >= handoff.lo) & (codes < handoff.hi)
    return not bool(np.any(inside & (zones == handoff.source)))


def _misplaced(states: list[ZoneState], ranges: RangeMap, params: ZoneParams) -> int:
    """Entities whose owner is not the zone `ranges` gives their position to."""
    zones, codes = _codes(_owners(states), params)
    return int(np.count_nonzero(ranges.assign(codes) != zones))
