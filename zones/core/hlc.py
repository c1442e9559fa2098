"""Hybrid logical clock packed into 64 bits.

Layout: the high 48 bits are physical milliseconds, the low 16 a logical
counter. Comparing two packed values as integers compares (physical, logical)
lexicographically. When the counter would pass 0xFFFF the increment carries into
the millisecond field: time moves 1 ms ahead of the wall clock instead of the
counter wrapping (the zone server's 8-bit counter wrapped after 256 events a
tick, which broke ordering).
"""

from .constants import HLC_LOGICAL_BITS, HLC_LOGICAL_MASK, TICK_MS

MAX_HLC = (1 << 64) - 1


def hlc_pack(physical_ms: int, logical: int = 0) -> int:
    """Pack milliseconds and a counter into one 64-bit timestamp."""
    if physical_ms < 0 or physical_ms >> (64 - HLC_LOGICAL_BITS):
        raise ValueError(f"physical time {physical_ms} ms does not fit in 48 bits")
    if not 0 <= logical <= HLC_LOGICAL_MASK:
        raise ValueError(f"logical counter {logical} does not fit in 16 bits")
    return (physical_ms << HLC_LOGICAL_BITS) | logical


def hlc_physical(stamp: int) -> int:
    """Milliseconds part of a timestamp."""
    return stamp >> HLC_LOGICAL_BITS


def hlc_logical(stamp: int) -> int:
    """Counter part of a timestamp."""
    return stamp & HLC_LOGICAL_MASK


def hlc_now(current: int, wall_ms: int) -> int:
    """Timestamp for a local event (a tick, a send) at wall time `wall_ms`."""
    if wall_ms > hlc_physical(current):
        return hlc_pack(wall_ms)
    return _next(current)


def hlc_receive(current: int, remote: int, wall_ms: int) -> int:
    """Timestamp after receiving a message stamped `remote`.

    The result is greater than both `current` and `remote`, and equals the wall
    clock when the wall clock is ahead of both.
    """
    latest = max(current, remote)
    if wall_ms > hlc_physical(latest):
        return hlc_pack(wall_ms)
    return _next(latest)


def hlc_after_ticks(stamp: int, ticks: int) -> int:
    """The timestamp `ticks` simulation ticks after `stamp` (logical part kept)."""
    return stamp + ((ticks * TICK_MS) << HLC_LOGICAL_BITS)


def _next(stamp: int) -> int:
    if stamp >= MAX_HLC:
        raise OverflowError("hybrid logical clock exhausted")
    # +1 carries from the counter into the milliseconds, so it never wraps.
    return stamp + 1
