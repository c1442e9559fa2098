"""Movement: commands from visitors and integration of velocities.

Speeds are bounded by V_MAX: a velocity command is clamped to it, and a move
command that would need more than V_MAX since the entity's last accepted move
is refused outright (a teleport is a cheat or a bug, not a fast walk).
"""

import numpy as np

from .constants import MAX_STEP_M, TICK_SECONDS, V_MAX_M_PER_S
from .state import Status, ZoneState
from .wire import CommandKind

MOVE_TOLERANCE = 1.001
"""Float slack on the V_MAX check so a move of exactly V_MAX·dt is accepted."""


def clamp_speed(vel: np.ndarray, v_max: float = V_MAX_M_PER_S) -> np.ndarray:
    """Scale each (N, 3) velocity down to at most `v_max` m/s; NaN becomes zero."""
    vel = vel.astype(np.float32)  # a copy: the caller's array is never written
    finite = np.isfinite(vel)
    if not finite.all():
        vel = np.where(finite, vel, np.float32(0.0))
    speed = np.sqrt(np.einsum("ij,ij->i", vel, vel))
    scale = np.minimum(1.0, v_max / np.maximum(speed, 1e-12)).astype(np.float32)
    return vel * scale[:, None]


def apply_commands(
    state: ZoneState, commands: np.ndarray, slots: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Apply COMMAND_DTYPE rows to the entities at `slots` (-1: not held here).

    Returns (moved, rejected): a slot mask of entities placed by a MOVE this
    tick (they are not integrated again) and a mask over `commands` of refused
    moves. Commands are applied in order, so a later command for the same
    entity sees the effect of an earlier one.
    """
    moved = np.zeros(state.capacity, dtype=bool)
    rejected = np.zeros(len(commands), dtype=bool)
    if rejected.size == 0:
        return moved, rejected
    held = slots >= 0
    kinds = commands["kind"]
    velocity = held & (kinds == CommandKind.VELOCITY)
    if velocity.all():
        # The usual tick: every command a velocity for an entity held here. Nothing
        # is refused and nothing chains, so the masks below would all be empty.
        state.vel[slots] = clamp_speed(commands["vec"])
        return moved, rejected
    if velocity.any():
        state.vel[slots[velocity]] = clamp_speed(commands["vec"][velocity])
    moves = np.flatnonzero(held & (kinds == CommandKind.MOVE))
    for i in moves:  # moves chain on each other, so they are taken one at a time
        slot = slots[i]
        target = commands["vec"][i]
        elapsed = max(1, state.tick - int(state.last_move[slot]))
        distance = float(np.linalg.norm(target.astype(np.float64) - state.pos[slot]))
        if not np.isfinite(distance) or distance > MAX_STEP_M * elapsed * MOVE_TOLERANCE:
            rejected[i] = True
            continue
        state.vel[slot] = (target - state.pos[slot]) / (elapsed * TICK_SECONDS)
        state.pos[slot] = target
        state.last_move[slot] = state.tick
        moved[slot] = True
    unknown = (kinds != CommandKind.VELOCITY) & (kinds != CommandKind.MOVE)
    rejected |= held & unknown
    return moved, rejected


SPARSE_SHARE = 4
"""`integrate` gathers the live slots when at most 1/SPARSE_SHARE of the slots are live."""


def integrate(
    state: ZoneState,
    lo: np.ndarray,
    hi: np.ndarray,
    skip: np.ndarray,
    live: np.ndarray | None = None,
) -> None:
    """Advance every live entity one tick along its velocity, inside the bounds.

    `live`, when the caller has it, is np.flatnonzero(state.status).
    """
    if live is None:
        live = np.flatnonzero(state.status)
    if live.size == 0:
        return
    dt = np.float32(TICK_SECONDS)
    if live.size * SPARSE_SHARE <= state.capacity:
        # A few entities: gathering them costs less than passes over every slot.
        # The arithmetic is the dense branch's, element by element, so either gives
        # the same bits for a live slot.
        pos = state.pos.take(live, axis=0)
        pos += state.vel.take(live, axis=0) * (~skip.take(live) * dt)[:, None]
        np.maximum(pos, lo, out=pos)
        np.minimum(pos, hi, out=pos)
        state.pos[live] = pos
        return
    moving = (state.status != Status.FREE) & ~skip
    # many entities: one multiply over every slot beats gathering and scattering them
    state.pos += state.vel * (moving * dt)[:, None]
    np.maximum(state.pos, lo, out=state.pos)
    np.minimum(state.pos, hi, out=state.pos)
