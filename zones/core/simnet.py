"""Several zones stepping in lockstep over an unreliable network.

Used by the property tests and the benchmarks. Every message crosses the
network in its wire form, is dropped with probability `drop`, delayed 1 to 4
ticks (so reordered), and sometimes duplicated. A zone can crash: it restarts
after some ticks from its last snapshot, and messages sent to it meanwhile are
lost. Snapshots are written before a tick's messages leave (write-ahead), as
the zone worker does; `write_ahead=False` models a worker that sends first.

`ownership_violations` and `HysteresisWatch` check the fabric's promises from
the outside, recomputing what they need from positions and range maps rather
than trusting the zones' own bookkeeping.
"""

import heapq
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .constants import HYSTERESIS_TICKS, TICK_MS
from .hilbert import encode_positions
from .messages import Message, message_from_wire, message_to_wire
from .ranges import RangeMap
from .state import STORAGE_START, Status, ZoneParams, ZoneState
from .step import StepInputs, StepOutput, step
from .wire import ANSWER_DTYPE, COMMAND_DTYPE, SPAWN_DTYPE, empty


@dataclass(frozen=True)
class Faults:
    """How unreliable the network is."""

    drop: float = 0.2
    min_delay: int = 1
    max_delay: int = 4
    duplicate: float = 0.1
    max_skew_ms: int = 20  # per-zone wall-clock offset


@dataclass
class SimNetwork:
    """Zones 0..n-1 sharing one range map, stepped together."""

    ranges: RangeMap
    params: list[ZoneParams]
    rng: np.random.Generator
    faults: Faults = field(default_factory=Faults)
    write_ahead: bool = True
    tick: int = 0
    workers: int = 0  # zones of the market: one per range when 0, more to have spares
    storage: int = STORAGE_START  # slots a zone's arrays start with (they grow)

    def __post_init__(self) -> None:
        n = max(self.workers, self.ranges.n)
        self.skew = self.rng.integers(-self.faults.max_skew_ms, self.faults.max_skew_ms + 1, size=n)
        # Storage grows as needed, so only the admission rules keep a zone within its
        # capacity: a broken rule shows as an over-full zone.
        self.zones = [ZoneState.empty(z, self.ranges, self.storage) for z in range(n)]
        self.snapshots = [z.copy() for z in self.zones]
        self.down_until = [0] * n
        self.queue: list[
            tuple[int, int, int, dict[str, Any]]
        ] = []  # (deliver_tick, seq, dst, wire)
        self._seq = 0
        self.delivered = 0
        self.dropped = 0

    @property
    def n(self) -> int:
        return len(self.zones)

    def is_down(self, zone: int) -> bool:
        return self.tick < self.down_until[zone]

    def persisted(self, zone: int) -> ZoneState:
        """What `zone` would come back with if it crashed now."""
        return self.snapshots[zone]

    def held_states(self) -> list[ZoneState]:
        """Each zone's records: live state, or the snapshot of a zone that is down."""
        return [self.persisted(z) if self.is_down(z) else self.zones[z] for z in range(self.n)]

    def run_tick(
        self,
        spawns: dict[int, np.ndarray] | None = None,
        commands: dict[int, np.ndarray] | None = None,
        despawns: dict[int, np.ndarray] | None = None,
        crashes: dict[int, int] | None = None,
        now_ms: int | None = None,
        answers: dict[int, np.ndarray] | None = None,
        delegate: bool = False,
    ) -> list[StepOutput | None]:
        """Advance every running zone by one tick and move messages along.

        `crashes` maps a zone to a downtime in ticks: that zone dies at the end
        of this tick's step and restarts from its snapshot after the downtime.
        `now_ms` is the wall clock (simulated time, tick × 50 ms, when omitted).
        """
        wall_ms = self.tick * TICK_MS + TICK_MS if now_ms is None else now_ms
        crashes = crashes or {}
        self.tick += 1
        inbox = self._due_messages()
        outputs: list[StepOutput | None] = []
        for z in range(self.n):
            if self.is_down(z):
                outputs.append(None)
                continue
            if self.tick == self.down_until[z] and self.down_until[z]:
                self._restart(z)
            inputs = StepInputs(
                now_ms=wall_ms + int(self.skew[z]),
                messages=tuple(inbox.get(z, ())),
                spawns=(spawns or {}).get(z, empty(SPAWN_DTYPE)),
                commands=(commands or {}).get(z, empty(COMMAND_DTYPE)),
                despawns=(despawns or {}).get(z, np.zeros(0, np.uint64)),
                answers=(answers or {}).get(z, empty(ANSWER_DTYPE)),
                delegate=delegate,
            )
            previous = self.zones[z]
            self.zones[z], out = step(previous, inputs, self.params[z])
            crashing = z in crashes
            if self.write_ahead:
                self._persist(z, self.zones[z])
                # a crash between the snapshot and the send loses the messages
                send = not (crashing and self.rng.random() < 0.5)
            else:
                send = True  # sent first; the snapshot is written only if it survives
                if not crashing:
                    self._persist(z, self.zones[z])
            if send:
                for message in out.messages:
                    self._send(message)
            if crashing:
                self.down_until[z] = self.tick + 1 + max(1, crashes[z])
            outputs.append(out)
        return outputs

    def _persist(self, zone: int, state: ZoneState) -> None:
        self.snapshots[zone] = state  # states are never mutated after a step

    def _restart(self, zone: int) -> None:
        restored = self.snapshots[zone].copy()
        restored.tick = self.tick - 1
        self.zones[zone] = restored

    def send(self, message: Message) -> None:
        """Put a message on the network, where it may be dropped, delayed or duplicated."""
        self._send(message)

    def send_to_self(self, message: Message) -> None:
        """A message a zone gives itself: it never crosses the network, it arrives next tick
        (unless the zone is down then)."""
        self._seq += 1
        wire = message_to_wire(message)
        heapq.heappush(self.queue, (self.tick + 1, self._seq, message.dst, wire))

    def _send(self, message: Message) -> None:
        wire = message_to_wire(message)
        copies = 1 + int(self.rng.random() < self.faults.duplicate)
        for _ in range(copies):
            if self.rng.random() < self.faults.drop:
                self.dropped += 1
                continue
            delay = int(self.rng.integers(self.faults.min_delay, self.faults.max_delay + 1))
            self._seq += 1
            heapq.heappush(self.queue, (self.tick + delay, self._seq, message.dst, wire))

    def _due_messages(self) -> dict[int, list[Message]]:
        inbox: dict[int, list[Message]] = {}
        while self.queue and self.queue[0][0] <= self.tick:
            _, _, dst, wire = heapq.heappop(self.queue)
            if 0 <= dst < self.n and not self.is_down(dst):
                inbox.setdefault(dst, []).append(message_from_wire(wire))
                self.delivered += 1
        return inbox


def authority_records(states: list[ZoneState]) -> dict[str, np.ndarray]:
    """Every live record across zones, as parallel arrays (id, zone, status, epoch)."""
    ids, zones, status, epochs = [], [], [], []
    for s in states:
        live = np.flatnonzero(s.status)
        ids.append(s.id[live])
        zones.append(np.full(live.size, s.zone))
        status.append(s.status[live])
        held = np.where(s.status[live] == Status.INCOMING, s.xfer_epoch[live], s.epoch[live])
        epochs.append(held.astype(np.int64))
    return {
        "id": np.concatenate(ids),
        "zone": np.concatenate(zones),
        "status": np.concatenate(status),
        "epoch": np.concatenate(epochs),
    }


def ownership_violations(states: list[ZoneState], expected_ids: np.ndarray) -> list[str]:
    """Check exactly-one-owner, nothing lost, nothing extra, for one instant.

    The owner of an entity is the record holding authority (OWNED or STAGING)
    at the highest fencing epoch among its authoritative records. Required:
    every expected entity has exactly one such record; no OWNED record sits at
    a lower epoch (that would be a second zone acting as owner); no record of
    an entity that should not exist.
    """
    rec = authority_records(states)
    problems: list[str] = []
    unexpected = np.setdiff1d(rec["id"], expected_ids)
    if unexpected.size:
        problems.append(f"{unexpected.size} unexpected entities, e.g. {unexpected[:3].tolist()}")
    auth = (rec["status"] == Status.OWNED) | (rec["status"] == Status.STAGING)
    a_id, a_epoch, a_status, a_zone = (
        rec["id"][auth],
        rec["epoch"][auth],
        rec["status"][auth],
        rec["zone"][auth],
    )
    lost = np.setdiff1d(expected_ids, a_id)
    if lost.size:
        problems.append(f"{lost.size} entities have no owner, e.g. {lost[:3].tolist()}")
    if a_id.size == 0:
        return problems
    order = np.lexsort((a_epoch, a_id))
    a_id, a_epoch, a_status, a_zone = a_id[order], a_epoch[order], a_status[order], a_zone[order]
    starts = np.flatnonzero(np.r_[True, a_id[1:] != a_id[:-1]])
    max_epoch = np.maximum.reduceat(a_epoch, starts)
    group = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, a_id.size]))
    at_max = a_epoch == max_epoch[group]
    owners = np.bincount(group, weights=at_max, minlength=starts.size)
    multi = np.flatnonzero(owners > 1)
    if multi.size:
        e = a_id[starts[multi[0]]]
        problems.append(
            f"{multi.size} entities with two owners at one epoch, e.g. {int(e)} in zones {a_zone[a_id == e].tolist()}"
        )
    stale_owned = ~at_max & (a_status == Status.OWNED)
    if stale_owned.any():
        i = int(np.flatnonzero(stale_owned)[0])
        problems.append(
            f"{int(stale_owned.sum())} stale OWNED records (a second zone acting as owner), "
            f"e.g. entity {int(a_id[i])} in zone {int(a_zone[i])} at epoch {int(a_epoch[i])} < {int(max_epoch[group[i]])}"
        )
    return problems


def leftover_records(states: list[ZoneState]) -> int:
    """Records beyond one per entity: after a quiet period this must be zero."""
    rec = authority_records(states)
    return int(rec["id"].size - np.unique(rec["id"]).size)


class HysteresisWatch:
    """Counts, from positions alone, how long each owned entity has been outside.

    After each tick, `observe` returns the entities whose transfer began this
    tick although they had been outside their zone's range for fewer than
    HYSTERESIS_TICKS consecutive ticks.
    """

    def __init__(self, params: list[ZoneParams]) -> None:
        self.params = params
        self.outside: dict[tuple[int, int], int] = {}

    def observe(
        self, states: list[ZoneState], started: dict[int, np.ndarray], running: list[bool]
    ) -> list[str]:
        problems = []
        counts: dict[tuple[int, int], int] = {}
        for s in states:
            if not running[s.zone]:
                counts.update({k: v for k, v in self.outside.items() if k[0] == s.zone})
                continue
            holding = np.flatnonzero((s.status == Status.OWNED) | (s.status == Status.STAGING))
            p = self.params[s.zone]
            codes = encode_positions(s.pos[holding], p.lo, p.hi)
            out = s.ranges.assign(codes) != s.zone
            for slot, is_out in zip(holding.tolist(), out.tolist(), strict=False):
                key = (s.zone, int(s.id[slot]))
                if is_out:
                    counts[key] = self.outside.get(key, 0) + 1
            for ident in started.get(s.zone, np.zeros(0, np.uint64)).tolist():
                seen = counts.get((s.zone, int(ident)), 0)
                if seen < HYSTERESIS_TICKS:
                    problems.append(
                        f"entity {ident} left zone {s.zone} after {seen} ticks outside (< {HYSTERESIS_TICKS})"
                    )
        self.outside = counts
        return problems
