"""A zone's state as a structure of arrays.

Slot i of every per-entity array describes the same entity; a slot whose
`status` is FREE is unused. Arrays have length `capacity` (ZONE_CAPACITY
authority slots); a zone never holds more live entities than that.
"""

from dataclasses import dataclass, field, fields

import numpy as np

from .constants import (
    DEFAULT_ZONES,
    INITIAL_RTO_TICKS,
    MARKET_SIZE_M,
    MAX_ZONES,
    SPAWN_CAP,
    ZONE_CAPACITY,
)
from .decisions import Decisions
from .items import Items
from .ranges import RangeMap, floor_ranges


class Status:
    """Values of ZoneState.status: the migration state machine of docs/fabric.md."""

    FREE = 0
    OWNED = 1  # authority is here
    STAGING = 2  # authority still here; an intent is out to `peer`, awaiting ack
    INCOMING = 3  # admitted from `peer`; becomes OWNED at `arrival`


@dataclass(frozen=True)
class ZoneParams:
    """What a zone is configured with and does not change tick to tick."""

    zone: int
    lo: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=np.float32))
    hi: np.ndarray = field(default_factory=lambda: np.array(MARKET_SIZE_M, dtype=np.float32))
    capacity: int = ZONE_CAPACITY
    spawn_cap: int = SPAWN_CAP
    items: Items = field(default_factory=Items.none)  # the booth's items NPCs use (items.py)


@dataclass
class ZoneState:
    """Everything one zone knows, as arrays indexed by slot.

    Units: positions in metres (world x, y, z, y up), velocities in m/s, times
    in ticks unless named `hlc` or `arrival` (packed hybrid logical clocks).
    """

    zone: int
    ranges: RangeMap
    tick: int
    hlc: int
    status: np.ndarray  # (C,) uint8, Status
    id: np.ndarray  # (C,) uint64
    kind: np.ndarray  # (C,) uint16, RowFlag kind bits
    pos: np.ndarray  # (C, 3) float32, m
    vel: np.ndarray  # (C, 3) float32, m/s
    code: np.ndarray  # (C,) uint32, Hilbert code of pos
    epoch: np.ndarray  # (C,) uint32, fencing epoch this zone holds the entity at
    xfer_epoch: (
        np.ndarray
    )  # (C,) uint32, epoch of the transfer in flight (last proposed when owned)
    peer: np.ndarray  # (C,) int16, staging target or incoming source
    outside: np.ndarray  # (C,) uint16, consecutive ticks outside this zone's range
    arrival: np.ndarray  # (C,) uint64, HLC at which an incoming entity is promoted
    deadline: np.ndarray  # (C,) int64, tick at which a staging intent is retransmitted
    sent_tick: np.ndarray  # (C,) int64, tick the first intent of this transfer left
    attempts: np.ndarray  # (C,) uint16, intents sent for this transfer
    rto: np.ndarray  # (C,) int32, current retransmission timeout in ticks
    retry_at: np.ndarray  # (C,) int64, earliest tick for a new attempt after a nack
    nacks: np.ndarray  # (C,) uint16, nacks in a row (backoff exponent)
    move_clock: np.ndarray  # (C,) float64, tick by which its accepted moves are walked at V_MAX
    seq: np.ndarray  # (C,) uint32, highest input (command) seq taken for the entity
    needs: np.ndarray  # (C, 4) float32, hunger, hygiene, fun, energy; 0-100 (NPCs)
    npc_state: np.ndarray  # (C,) uint8, NpcState
    action: np.ndarray  # (C,) uint8, Action of the NPC's current action
    target: np.ndarray  # (C,) uint64, item or entity that action is about
    goal: np.ndarray  # (C, 3) float32, m, where the NPC walks to
    action_left: np.ndarray  # (C,) int32, ticks left of the current action
    decide_in: np.ndarray  # (C,) int32, ticks until the next decision is due
    lease: np.ndarray  # (C,) uint32, sequence number of the newest decision lease
    lease_left: np.ndarray  # (C,) int32, ticks before that lease lapses; 0: none in flight
    srtt: np.ndarray  # (MAX_ZONES,) float64, smoothed intent→ack time per peer, ticks; <0 unknown
    rttvar: np.ndarray  # (MAX_ZONES,) float64, its mean deviation
    decisions: Decisions  # entity id → (highest epoch answered, highest accepted)
    _index: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def empty(
        cls, zone: int, ranges: RangeMap, capacity: int = ZONE_CAPACITY, hlc: int = 0
    ) -> "ZoneState":
        """A zone with no entities."""
        c = capacity
        return cls(
            zone=zone,
            ranges=ranges,
            tick=0,
            hlc=hlc,
            status=np.zeros(c, np.uint8),
            id=np.zeros(c, np.uint64),
            kind=np.zeros(c, np.uint16),
            pos=np.zeros((c, 3), np.float32),
            vel=np.zeros((c, 3), np.float32),
            code=np.zeros(c, np.uint32),
            epoch=np.zeros(c, np.uint32),
            xfer_epoch=np.zeros(c, np.uint32),
            peer=np.full(c, -1, np.int16),
            outside=np.zeros(c, np.uint16),
            arrival=np.zeros(c, np.uint64),
            deadline=np.zeros(c, np.int64),
            sent_tick=np.zeros(c, np.int64),
            attempts=np.zeros(c, np.uint16),
            rto=np.full(c, INITIAL_RTO_TICKS, np.int32),
            retry_at=np.zeros(c, np.int64),
            nacks=np.zeros(c, np.uint16),
            move_clock=np.zeros(c, np.float64),
            seq=np.zeros(c, np.uint32),
            needs=np.zeros((c, 4), np.float32),
            npc_state=np.zeros(c, np.uint8),
            action=np.zeros(c, np.uint8),
            target=np.zeros(c, np.uint64),
            goal=np.zeros((c, 3), np.float32),
            action_left=np.zeros(c, np.int32),
            decide_in=np.zeros(c, np.int32),
            lease=np.zeros(c, np.uint32),
            lease_left=np.zeros(c, np.int32),
            srtt=np.full(MAX_ZONES, -1.0),
            rttvar=np.zeros(MAX_ZONES),
            decisions=Decisions(),
        )

    def copy(self) -> "ZoneState":
        """An independent copy: writing to either never changes the other."""
        twin = object.__new__(ZoneState)
        for name in _ARRAY_FIELDS:
            setattr(twin, name, getattr(self, name).copy())
        twin.zone, twin.ranges, twin.tick, twin.hlc = self.zone, self.ranges, self.tick, self.hlc
        twin.decisions = self.decisions.copy()
        twin._index = self._index  # immutable once built, safe to share
        return twin

    def membership_changed(self) -> None:
        """Call after any slot turns FREE or stops being FREE: drops the id index."""
        self._index = None

    @property
    def capacity(self) -> int:
        return int(self.status.size)

    def live_mask(self) -> np.ndarray:
        """Slots holding an entity in any state."""
        return self.status != Status.FREE

    def live_count(self) -> int:
        """Occupied authority slots (owned + staging + incoming)."""
        return int(np.count_nonzero(self.status))

    def slots_of(self, ids: np.ndarray) -> np.ndarray:
        """Slot of each id, or -1 where this zone holds no record of it.

        Binary search over a sorted index of live ids, built once and reused
        until `membership_changed` is called.
        """
        if self._index is None:
            live = np.flatnonzero(self.status)
            order = np.argsort(self.id[live], kind="stable")
            self._index = (self.id[live][order], live[order])
        sorted_ids, sorted_slots = self._index
        if sorted_ids.size == 0 or len(ids) == 0:
            return np.full(len(ids), -1, dtype=np.int64)
        found = np.minimum(np.searchsorted(sorted_ids, ids), sorted_ids.size - 1)
        return np.where(sorted_ids[found] == ids, sorted_slots[found], -1)


_ARRAY_FIELDS = tuple(f.name for f in fields(ZoneState) if f.type in ("np.ndarray", np.ndarray))


def default_ranges(n: int = DEFAULT_ZONES) -> RangeMap:
    """The booth layout every zone starts from when nothing else is configured."""
    return floor_ranges(n)
