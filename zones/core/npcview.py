"""The operators' NPC status frame: what each NPC is doing and which need presses most.

The overview frame (overview.py) tells where every entity is; this one tells, once a
second, for each NPC of the zones a worker hosts, one status byte, so the dashboard can
draw NPCs by state or by their most urgent need. A zone worker sends it beside its
summary; the rows the zones publish each tick stay as they are.

Layout (little-endian): the overview frame's header (OVERVIEW_HEADER_DTYPE, 16 bytes)
with kind FRAME_KIND_NPC_STATUS, then `count` NPC_STATUS_DTYPE records (9 bytes each).

Status byte: bits 0-1 the NpcState (idle, moving, interacting); bits 2-3 the most urgent
need (its index in constants.NEEDS: the lowest); bits 4-5 how urgent (Urgency); bit 6
set while a decision lease is in flight (the NPC waits on a contributor's answer).
"""

import numpy as np

from .overview import OVERVIEW_HEADER_DTYPE
from .state import Status, ZoneState
from .wire import FRAME_MAGIC, RowFlag, frame_header

NPC_STATUS_VERSION = 1
FRAME_KIND_NPC_STATUS = 3
NPC_STATUS_DTYPE = np.dtype([("id", "<u8"), ("status", "<u1")])
STATE_MASK = 0x03
NEED_SHIFT = 2
URGENCY_SHIFT = 4
LEASED = 0x40


class Urgency:
    """Bits 4-5 of a status byte, from the most urgent need's level (0-100)."""

    CONTENT = 0  # 50 and over
    LOW = 1  # 25 to 50
    CRITICAL = 2  # under 25
    LOW_BELOW = 50.0
    CRITICAL_BELOW = 25.0


def npc_status(s: ZoneState) -> np.ndarray:
    """NPC_STATUS_DTYPE records of the NPCs the zone owns, in slot order."""
    slots = np.flatnonzero((s.status == Status.OWNED) & ((s.kind & RowFlag.NPC) != 0))
    out = np.zeros(slots.size, NPC_STATUS_DTYPE)
    if not slots.size:
        return out
    needs = s.needs[slots]
    worst = np.argmin(needs, axis=1)
    level = needs[np.arange(slots.size), worst]
    urgency = np.where(
        level < Urgency.CRITICAL_BELOW,
        Urgency.CRITICAL,
        np.where(level < Urgency.LOW_BELOW, Urgency.LOW, Urgency.CONTENT),
    )
    status = (
        (s.npc_state[slots].astype(np.int64) & STATE_MASK)
        | (worst << NEED_SHIFT)
        | (urgency << URGENCY_SHIFT)
        | np.where(s.lease_left[slots] > 0, LEASED, 0)
    )
    out["id"] = s.id[slots]
    out["status"] = status
    return out


def npc_status_encode(records: np.ndarray, tick_ms: int) -> bytes:
    """A status frame's bytes: header, then the records."""
    header = np.zeros(1, OVERVIEW_HEADER_DTYPE)
    header["magic"], header["version"] = FRAME_MAGIC, NPC_STATUS_VERSION
    header["kind"], header["count"], header["tick_ms"] = (
        FRAME_KIND_NPC_STATUS,
        records.size,
        tick_ms,
    )
    return header.tobytes() + records.astype(NPC_STATUS_DTYPE, copy=False).tobytes()


def npc_status_decode(data: bytes) -> tuple[int, np.ndarray]:
    """(tick_ms, records) from a status frame; a frame of the wrong shape is an error."""
    header = frame_header(
        data, OVERVIEW_HEADER_DTYPE, FRAME_KIND_NPC_STATUS, NPC_STATUS_VERSION, "npc status"
    )
    size, count = OVERVIEW_HEADER_DTYPE.itemsize, int(header["count"])
    if len(data) != size + count * NPC_STATUS_DTYPE.itemsize:
        raise ValueError(f"npc status frame: {len(data)} bytes do not hold {count} records")
    return int(header["tick_ms"]), np.frombuffer(data, NPC_STATUS_DTYPE, count=count, offset=size)


def status_fields(status: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(state, need index, urgency, leased) of status bytes."""
    status = status.astype(np.int64)
    return (
        status & STATE_MASK,
        (status >> NEED_SHIFT) & 0x3,
        (status >> URGENCY_SHIFT) & 0x3,
        (status & LEASED) != 0,
    )
