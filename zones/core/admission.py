"""How many spawns and incoming migrations a zone may admit.

These two functions are the whole admission policy. The step calls them with
numpy integers; the SMT proofs call them with z3 integers (see ops.py), so what
is proved is what runs.
"""

from typing import Any

from .constants import MAX_INBOUND_PER_TICK, SPAWN_CAP, ZONE_CAPACITY
from .ops import NUMPY, Ops


def spawn_quota(live: Any, requested: Any, *, spawn_cap: int = SPAWN_CAP, ops: Ops = NUMPY) -> Any:
    """Spawns to accept: never past the spawn cap, leaving the headroom to migrants."""
    return ops.maximum(0, ops.minimum(requested, spawn_cap - live))


def inbound_quota(
    live: Any,
    requested: Any,
    admitted_this_tick: Any,
    *,
    capacity: int = ZONE_CAPACITY,
    per_tick: int = MAX_INBOUND_PER_TICK,
    ops: Ops = NUMPY,
) -> Any:
    """Incoming migrations to admit now: bounded by free slots and the per-tick rate.

    `live` counts every occupied authority slot (owned, staging and incoming), so
    an admitted migrant holds its slot from admission on.
    """
    room = ops.minimum(capacity - live, per_tick - admitted_this_tick)
    return ops.maximum(0, ops.minimum(requested, room))
