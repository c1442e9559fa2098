"""A zone's state as a structure of arrays.

Slot i of every per-entity array describes the same entity; a slot whose
`status` is FREE is unused. The arrays' length is the zone's storage
(`ZoneState.capacity`), which starts at STORAGE_START slots and doubles when a
spawn or an arrival finds no free slot: a zone of 30 visitors steps, copies and
snapshots 64 slots, not ZONE_CAPACITY. What bounds the live entities is the
admission rule (ZoneParams.capacity, ZONE_CAPACITY authority slots), never the
storage. Growing appends FREE slots and keeps every slot where it was, so the
slots taken are the same as in a zone whose storage was large from the start.
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

STORAGE_START = 64
"""Slots a new zone's arrays have; they double whenever a tick needs more free slots."""


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
        cls, zone: int, ranges: RangeMap, capacity: int = STORAGE_START, hlc: int = 0
    ) -> "ZoneState":
        """A zone with no entities, its arrays `capacity` slots long."""
        state = object.__new__(cls)
        state.zone, state.ranges, state.tick, state.hlc = zone, ranges, 0, hlc
        for name, (dtype, shape, fill) in _SLOT_FIELDS.items():
            setattr(state, name, np.full((capacity, *shape), fill, dtype))
        state.srtt, state.rttvar = np.full(MAX_ZONES, -1.0), np.zeros(MAX_ZONES)
        state.decisions = Decisions()
        state._index = None
        return state

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
        """Slots of storage (the arrays' length), FREE ones included; not the admission limit."""
        return int(self.status.size)

    def free_slots(self, n: int) -> np.ndarray:
        """The first `n` FREE slots, the storage doubled first (or grown to fit) when fewer
        are free. The same slots as a zone with more storage would give: growing only
        appends FREE slots after the existing ones."""
        free = np.flatnonzero(self.status == Status.FREE)
        if free.size < n:
            size = self.capacity
            grown = max(2 * size, size + n - free.size)
            for name, (dtype, shape, fill) in _SLOT_FIELDS.items():
                array: np.ndarray = np.full((grown, *shape), fill, dtype)
                array[:size] = getattr(self, name)
                setattr(self, name, array)
            free = np.concatenate([free, np.arange(size, grown)])
        return free[:n]

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

_SLOT_FIELDS: dict[str, tuple[type, tuple[int, ...], float]] = {
    # name: (dtype, shape after the slot axis, value of a FREE slot)
    "status": (np.uint8, (), 0),
    "id": (np.uint64, (), 0),
    "kind": (np.uint16, (), 0),
    "pos": (np.float32, (3,), 0),
    "vel": (np.float32, (3,), 0),
    "code": (np.uint32, (), 0),
    "epoch": (np.uint32, (), 0),
    "xfer_epoch": (np.uint32, (), 0),
    "peer": (np.int16, (), -1),
    "outside": (np.uint16, (), 0),
    "arrival": (np.uint64, (), 0),
    "deadline": (np.int64, (), 0),
    "sent_tick": (np.int64, (), 0),
    "attempts": (np.uint16, (), 0),
    "rto": (np.int32, (), INITIAL_RTO_TICKS),
    "retry_at": (np.int64, (), 0),
    "nacks": (np.uint16, (), 0),
    "move_clock": (np.float64, (), 0),
    "seq": (np.uint32, (), 0),
    "needs": (np.float32, (4,), 0),
    "npc_state": (np.uint8, (), 0),
    "action": (np.uint8, (), 0),
    "target": (np.uint64, (), 0),
    "goal": (np.float32, (3,), 0),
    "action_left": (np.int32, (), 0),
    "decide_in": (np.int32, (), 0),
    "lease": (np.uint32, (), 0),
    "lease_left": (np.int32, (), 0),
}
assert set(_SLOT_FIELDS) == set(_ARRAY_FIELDS) - {"srtt", "rttvar"}


def default_ranges(n: int = DEFAULT_ZONES) -> RangeMap:
    """The booth layout every zone starts from when nothing else is configured."""
    return floor_ranges(n)
