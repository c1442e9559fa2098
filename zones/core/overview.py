"""The operators' overview frame: every visitor and NPC of the market, small.

Operators watch the whole market from above, so they get every entity, not an
interest cut: per entity its id, its position in centimetres, whether it is a
visitor or an NPC, the zone that owns it and, while it is handed over, the zone
it is going to. One frame serves every operator watching; it is built from the
rows the zones publish anyway, so watching costs the zones nothing.

Layout (little-endian): OVERVIEW_HEADER_DTYPE (16 bytes), then `count`
OVERVIEW_DTYPE records (18 bytes each).
"""

import numpy as np

from .wire import FRAME_MAGIC, RowFlag, frame_header

OVERVIEW_VERSION = 1
FRAME_KIND_OVERVIEW = 2  # the interest frame is kind 1 (wire.py)
NO_ZONE = 0xFF  # OVERVIEW_DTYPE.to of an entity that is not being handed over

OVERVIEW_HEADER_DTYPE = np.dtype(
    [
        ("magic", "<u2"),  # 0: FRAME_MAGIC
        ("version", "<u1"),  # 2: OVERVIEW_VERSION
        ("kind", "<u1"),  # 3: FRAME_KIND_OVERVIEW
        ("count", "<u4"),  # 4: records that follow
        ("tick_ms", "<u8"),  # 8: wall-clock ms of the newest zone tick in the frame
    ]
)


class DotKind:
    """Bits of OVERVIEW_DTYPE.kind."""

    VISITOR = 0x1
    NPC = 0x2
    MIGRATING = 0x4  # authority is being handed to the zone in `to`


OVERVIEW_DTYPE = np.dtype(
    [
        ("id", "<u8"),  # 0: entity id
        ("pos_cm", "<i2", (3,)),  # 8: x, y, z in centimetres (±327 m)
        ("kind", "<u1"),  # 14: DotKind bits
        ("zone", "<u1"),  # 15: zone holding authority
        ("to", "<u1"),  # 16: zone taking it over, or NO_ZONE
        ("pad", "<u1"),  # 17: zero
    ]
)


def overview_rows(rows: np.ndarray, view: np.ndarray) -> np.ndarray:
    """Overview records of the visitors and NPCs in `view`.

    `view` is the merged view (one authoritative row per entity, sorted by id);
    `rows` are the raw rows it was merged from, where a handover shows as the
    target's INCOMING copy beside the source's STAGING row.
    """
    kinds = view["flags"] & (RowFlag.VISITOR_ROOT | RowFlag.NPC)
    shown = view[kinds != 0]
    out = np.zeros(shown.size, OVERVIEW_DTYPE)
    out["id"] = shown["id"]
    out["pos_cm"] = np.clip(np.rint(shown["pos"] * 100.0), -32767, 32767)
    flags = shown["flags"]
    out["kind"] = np.where(flags & RowFlag.VISITOR_ROOT, DotKind.VISITOR, DotKind.NPC)
    out["zone"] = shown["zone"]
    out["to"] = NO_ZONE
    incoming = rows[(rows["flags"] & RowFlag.INCOMING) != 0]
    if incoming.size and shown.size:
        at = np.minimum(np.searchsorted(shown["id"], incoming["id"]), shown.size - 1)
        hit = (shown["id"][at] == incoming["id"]) & (shown["zone"][at] != incoming["zone"])
        out["to"][at[hit]] = incoming["zone"][hit]
    migrating = ((flags & RowFlag.STAGING) != 0) | (out["to"] != NO_ZONE)
    out["kind"][migrating] |= DotKind.MIGRATING
    return out


def overview_encode(records: np.ndarray, tick_ms: int) -> bytes:
    """An overview frame's bytes: header, then the records."""
    header = np.zeros(1, OVERVIEW_HEADER_DTYPE)
    header["magic"], header["version"], header["kind"] = (
        FRAME_MAGIC,
        OVERVIEW_VERSION,
        FRAME_KIND_OVERVIEW,
    )
    header["count"], header["tick_ms"] = records.size, tick_ms
    return header.tobytes() + records.astype(OVERVIEW_DTYPE, copy=False).tobytes()


def overview_decode(data: bytes) -> tuple[int, np.ndarray]:
    """(tick_ms, records) from an overview frame; a frame of the wrong shape is an error."""
    size = OVERVIEW_HEADER_DTYPE.itemsize
    header = frame_header(
        data, OVERVIEW_HEADER_DTYPE, FRAME_KIND_OVERVIEW, OVERVIEW_VERSION, "overview"
    )
    count = int(header["count"])
    if len(data) != size + count * OVERVIEW_DTYPE.itemsize:
        raise ValueError(f"overview frame: {len(data)} bytes do not hold {count} records")
    return int(header["tick_ms"]), np.frombuffer(data, OVERVIEW_DTYPE, count=count, offset=size)
