"""Splits and merges in the live market: loads to the planner, its plans, maps by gossip.

The zone core decides and proves (zones/core/repartition.py, zones/core/gossip.py);
this module carries it between the zone workers:

* every zone sends its `Load` once a second to the zone planning for the map it holds
  (`planner_of`), handed over directly when that zone is in the same worker;
* the worker hosting the planning zone keeps each zone's newest load and, once a
  second, asks `repartition_decide`. A plan becomes a Gossip the planning zone gives
  itself: it is logged with that zone's next tick, before anything of the tick leaves,
  so the planner always plans from the newest map, restarted or not;
* every zone pushes the map it holds (`gossip_due`: on adopting a newer one, and once a
  second) to every zone of the market, and the worker publishes the newest map it
  holds on the rows bus for the gateways (zones/bus.py), which route spawns with it.

Spare zones (numbered after the booths' zones) own no range until a split gives them
one. A merge only ever retires a spare (`absorbable`): a booth's own zone keeps its
booth, and two booths' zones are never merged (an idle zone costs a tenth of a
millisecond a tick; joining two booths would buy nothing but handoffs). So the planner
is always zone 0: a split inserts after the split range, and zone 0 is never retired.

The planner's memory (loads, dwell, the change in flight) is in the worker: a restarted
planner forgets the dwell of recent changes, and waits for loads before it decides.
"""

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings

from market.events.types import Event, ZonesRepartitioned
from zones.core.constants import GOSSIP_EVERY_TICKS, SIM_TICK_HZ
from zones.core.gossip import gossip_due, gossip_messages
from zones.core.messages import Gossip
from zones.core.ranges import RangeMap, floor_ranges
from zones.core.relay_messages import Load
from zones.core.repartition import (
    History,
    Plan,
    RepartitionError,
    Thresholds,
    ZoneLoad,
    history_record,
    history_settle,
    planner_of,
    repartition_decide,
    thresholds,
)
from zones.core.state import Status, ZoneState

log = logging.getLogger(__name__)

LOAD_EVERY_TICKS = GOSSIP_EVERY_TICKS  # a zone's load goes to the planner once a second
LOAD_STALE_TICKS = 3 * LOAD_EVERY_TICKS  # older loads are a zone that is down: left out
SETTINGS = {
    "FABRIC_SPLIT_SLOTS": "split_slots",
    "FABRIC_MERGE_SLOTS": "merge_slots",
    "FABRIC_REPARTITION_DWELL_S": "dwell_ticks",
}


def market_thresholds() -> Thresholds:
    """The thresholds of this deployment: the core's, changed by the FABRIC_SPLIT_SLOTS,
    FABRIC_MERGE_SLOTS and FABRIC_REPARTITION_DWELL_S settings; a bad value is refused
    with the setting named."""
    changes: dict[str, float] = {}
    for name, field_name in SETTINGS.items():
        text = str(getattr(settings, name, "") or "").strip()
        if not text:
            continue
        try:
            value = float(text)
        except ValueError:
            raise RepartitionError(f"{name} must be a number, not {text!r}") from None
        if value < 0:
            raise RepartitionError(f"{name} cannot be negative, got {text}")
        changes[field_name] = value * SIM_TICK_HZ if field_name == "dwell_ticks" else value
    try:
        return thresholds(**changes)
    except RepartitionError as error:
        names = ", ".join(f"{k}={getattr(settings, k, '')!r}" for k in SETTINGS)
        raise RepartitionError(f"{error} (settings: {names})") from None


@dataclass
class Pending:
    """The change in flight: planned at `tick` (the planner's), `began` on the clock."""

    plan: Plan
    tick: int
    began: float


@dataclass
class Stepped:
    """What the repartitioning needs of one zone that just stepped."""

    state: ZoneState
    adopted: bool  # its step adopted a newer map
    tick_times: Sequence[float]  # its step times, ms, newest last


@dataclass
class Work:
    """What the worker sends for the repartitioning this tick."""

    messages: list[Gossip] = field(default_factory=list)  # zone to zone, routed as any
    loads: list[tuple[int, Load]] = field(default_factory=list)  # (planner, load): remote
    events: list[Event] = field(default_factory=list)
    newest: RangeMap | None = None  # the map for the gateways, when one was pushed


def booth_of_range(booths: RangeMap, lo: int) -> int:
    """The booth the code `lo` lies in, in the market's own layout."""
    return int(booths.assign(np.array([lo], np.uint32))[0])


def load_of(state: ZoneState, tick_us: int, worker_us: int) -> Load:
    """A zone's load: its slots, step time and the sorted codes it holds with authority."""
    held = (state.status == Status.OWNED) | (state.status == Status.STAGING)
    return Load(
        zone=state.zone,
        version=state.ranges.version,
        slots=state.live_count(),
        tick_us=tick_us,
        worker_us=worker_us,
        codes=np.sort(state.code[held]).astype(np.uint32),
    )


class Planner:
    """The planning zone's memory: each zone's newest load, the dwell, the change in flight."""

    def __init__(self, *, booths: int, zones: int, limits: Thresholds | None = None) -> None:
        self.limits = market_thresholds() if limits is None else limits
        self.booths = floor_ranges(booths)
        self.zones = zones
        self.absorbable = frozenset(range(booths, zones))
        self.loads: dict[int, tuple[int, Load]] = {}  # zone → (planner's tick heard, load)
        self.history = History()
        self.pending: Pending | None = None

    def heard(self, load: Load, tick: int) -> None:
        """File a zone's load; a zone that is not the market's is refused."""
        if not 0 <= load.zone < self.zones:
            raise ValueError(f"a load from zone {load.zone}, not a zone of this market")
        self.loads[load.zone] = (tick, load)

    def step(self, view: RangeMap, tick: int) -> list[ZonesRepartitioned]:
        """Settle the change in flight if it is over, else plan one if it is due: the events."""
        if self.pending is not None:
            return self._settle(tick)
        plan = self._decide(view, tick)
        if plan is None:
            return []
        self.history = history_record(history=self.history, plan=plan, tick=tick)
        self.pending = Pending(plan, tick, time.monotonic())
        handoff = plan.handoffs[0]
        log.info(
            "zones: %s planned (map version %d): zone %d hands [%d, %d) to zone %d",
            plan.kind,
            plan.ranges.version,
            handoff.source,
            handoff.lo,
            handoff.hi,
            handoff.target,
        )
        return [self._event(plan, "planned", None)]

    def _decide(self, view: RangeMap, tick: int) -> Plan | None:
        fresh = {z: load for z, (t, load) in self.loads.items() if tick - t <= LOAD_STALE_TICKS}
        present = set(view.zones.tolist())
        # a spare on the least loaded worker first
        spares = sorted(
            (z for z in fresh if z not in present), key=lambda z: (fresh[z].worker_us, z)
        )
        loads = {
            z: ZoneLoad(zone=z, slots=load.slots, tick_ms=load.tick_us / 1000, codes=load.codes)
            for z, load in fresh.items()
            if z in present
        }
        return repartition_decide(
            ranges=view,
            loads=loads,
            tick=tick,
            history=self.history,
            spares=spares,
            absorbable=self.absorbable,
            limits=self.limits,
        )

    def _settle(self, tick: int) -> list[ZonesRepartitioned]:
        """The change in flight is over once its source reports the new map and holds
        nothing in the interval it hands over; or, at the latest, after the dwell."""
        assert self.pending is not None
        plan = self.pending.plan
        handoff = plan.handoffs[0]
        heard, load = self.loads.get(handoff.source, (-1, None))
        over = (
            load is not None
            and heard > self.pending.tick
            and load.version >= plan.ranges.version
            and not np.any((load.codes >= handoff.lo) & (load.codes < handoff.hi))
        )
        if not over and tick - self.pending.tick < self.limits.dwell_ticks:
            return []
        if not over:
            log.warning(
                "zones: the %s of map version %d is not seen over after %d s; going on",
                plan.kind,
                plan.ranges.version,
                self.limits.dwell_ticks // SIM_TICK_HZ,
            )
        took = round(time.monotonic() - self.pending.began, 2)
        self.history = history_settle(history=self.history, plan=plan)
        self.pending = None
        return [self._event(plan, "done", took)]

    def _event(self, plan: Plan, phase: str, took_s: float | None) -> ZonesRepartitioned:
        handoff = plan.handoffs[0]
        return ZonesRepartitioned(
            kind=plan.kind,
            phase=phase,
            version=plan.ranges.version,
            source=handoff.source,
            target=handoff.target,
            lo=handoff.lo,
            hi=handoff.hi,
            booth=booth_of_range(self.booths, handoff.lo),
            starts=[int(s) for s in plan.ranges.starts],
            owners=[int(z) for z in plan.ranges.zone_of_range],
            took_s=took_s,
            at_ms=int(time.time() * 1000),
        )


class Repartitioner:
    """One worker's part in splits and merges, ticked once per tick of its zones."""

    def __init__(self, *, booths: int, zones: int, hosted: Iterable[int]) -> None:
        self.zones = zones
        self.hosted = frozenset(hosted)
        self.planner = Planner(booths=booths, zones=zones)

    def heard(self, load: Load, tick: int) -> None:
        self.planner.heard(load, tick)

    def tick(self, stepped: Sequence[Stepped]) -> tuple[Work, dict[int, Gossip]]:
        """This tick's gossip, loads and events, and the plan each planning zone hosted
        here gives itself (zone → its Gossip, for the zone's next tick)."""
        work, gives = Work(), {}
        worker_us: int | None = None  # summed only in a tick that sends a load
        for one in stepped:
            s = one.state
            planner = planner_of(s.ranges)
            if gossip_due(zone=s.zone, tick=s.tick, adopted=one.adopted):
                work.messages += gossip_messages(
                    zone=s.zone, ranges=s.ranges, peers=range(self.zones), hlc=s.hlc
                )
                if work.newest is None or s.ranges.version > work.newest.version:
                    work.newest = s.ranges
            if (s.tick + s.zone) % LOAD_EVERY_TICKS == 0:
                if worker_us is None:
                    worker_us = sum(tick_us_of(other.tick_times) for other in stepped)
                load = load_of(s, tick_us_of(one.tick_times), worker_us)
                if planner in self.hosted:
                    self.planner.heard(load, s.tick)
                else:
                    work.loads.append((planner, load))
            if planner == s.zone and s.tick % LOAD_EVERY_TICKS == 0:
                work.events += self.planner.step(s.ranges, s.tick)
            pending = self.planner.pending
            if pending is None or planner != s.zone:
                continue
            if s.ranges.version < pending.plan.ranges.version:  # until it has adopted it
                gives[s.zone] = Gossip(
                    src=s.zone, dst=s.zone, hlc=s.hlc, ranges=pending.plan.ranges
                )
        return work, gives


def tick_us_of(times: Sequence[float]) -> int:
    """A zone's step time for its load: the median of its last second of steps, in µs."""
    last = list(times)[-LOAD_EVERY_TICKS:]
    return int(float(np.median(last)) * 1000) if last else 0
