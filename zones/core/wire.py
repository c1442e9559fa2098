"""Fixed binary row formats shared by zones, gateways and clients.

All little-endian, packed, so a row array's bytes are its wire form. Byte
offsets are listed so other languages can read them.
"""

import numpy as np

ROW_DTYPE = np.dtype(
    [
        ("id", "<u8"),  # 0: entity id
        ("pos", "<f4", (3,)),  # 8: metres, world (x, y, z), y up
        ("vel", "<f4", (3,)),  # 20: metres per second
        ("hlc", "<u8"),  # 32: hybrid logical clock of this state
        ("epoch", "<u4"),  # 40: fencing epoch of the holder's record
        ("flags", "<u2"),  # 44: RowFlag bits
        ("zone", "<u2"),  # 46: publishing zone
    ]
)
"""An interest row: one entity's state as published each tick (48 bytes)."""

MIGRANT_DTYPE = np.dtype(
    [
        ("id", "<u8"),  # 0
        ("pos", "<f4", (3,)),  # 8
        ("vel", "<f4", (3,)),  # 20
        ("epoch", "<u4"),  # 32: the proposed fencing epoch of this transfer
        ("kind", "<u2"),  # 36: entity kind bits (RowFlag.KIND_MASK)
        ("attempt", "<u2"),  # 38: 1 for the first send, then retransmissions
        ("arrival", "<u8"),  # 40: HLC at which the target takes authority
    ]
)
"""An entity's full row inside a migration intent (48 bytes)."""

REPLY_DTYPE = np.dtype([("id", "<u8"), ("epoch", "<u4"), ("reason", "<u4")])
"""One answer to an intent: ack or nack for (entity, epoch), with a reason code."""

COMMAND_DTYPE = np.dtype(
    [
        ("id", "<u8"),  # 0: entity the command moves
        ("kind", "<u1"),  # 8: CommandKind
        ("_pad", "<u1", (3,)),
        ("vec", "<f4", (3,)),  # 12: velocity (m/s) or target position (m)
        ("seq", "<u4"),  # 24: client sequence number
    ]
)
"""A movement command for one entity (28 bytes)."""

SPAWN_DTYPE = np.dtype([("id", "<u8"), ("pos", "<f4", (3,)), ("vel", "<f4", (3,)), ("kind", "<u2")])
"""A request to create an entity in a zone."""


class RowFlag:
    """Bits of ROW_DTYPE.flags."""

    AUTHORITATIVE = 0x1  # the publishing zone holds authority (owned or staging)
    GHOST = 0x2  # a copy kept while a transfer is in flight
    STAGING = 0x4  # leaving this zone, awaiting the target's ack
    INCOMING = 0x8  # admitted here, not yet promoted
    KIND_MASK = 0xFF00
    VISITOR_ROOT = 0x100
    BONE = 0x200
    NPC = 0x400


class CommandKind:
    """Values of COMMAND_DTYPE.kind."""

    VELOCITY = 0  # set velocity; clamped to V_MAX
    MOVE = 1  # move to a position; refused if it implies more than V_MAX


class ReplyReason:
    """Values of REPLY_DTYPE.reason."""

    ACCEPTED = 0
    FULL = 1  # no free authority slot
    RATE = 2  # per-tick admission rate reached
    REFUSED = 3  # refused earlier for this epoch; decisions never change


def empty(dtype: np.dtype) -> np.ndarray:
    """A zero-length array of a wire dtype."""
    return np.zeros(0, dtype=dtype)


def from_bytes(data: bytes, dtype: np.dtype, what: str) -> np.ndarray:
    """Rows from their wire bytes; a length that is not whole rows is an error."""
    if len(data) % dtype.itemsize:
        raise ValueError(
            f"{what}: {len(data)} bytes is not a whole number of {dtype.itemsize}-byte rows"
        )
    return np.frombuffer(data, dtype=dtype).copy()
