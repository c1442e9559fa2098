"""Movement: commands from visitors and integration of velocities.

Entities walk on the floor, no faster than V_MAX:

* a velocity command is made horizontal and clamped to V_MAX;
* a move command places the entity at its target, on the floor, and stops it
  there: a move leaves no velocity behind to drift on;
* a move is refused outright (a teleport is a cheat or a bug, not a fast walk)
  unless the entity could have walked it at V_MAX in the time its moves have
  not used yet. That time is the ticks since its last accepted move ended, but
  never more than MOVE_SLACK_TICKS: time spent standing still is not banked, so
  an entity idle for minutes moves no farther in one go than one that stopped a
  moment ago, and several moves in one tick share one tick's walk.
"""

import numpy as np

from .constants import FLOOR_Y_M, MAX_STEP_M, MOVE_SLACK_TICKS, TICK_SECONDS, V_MAX_M_PER_S
from .state import Status, ZoneState
from .wire import CommandKind

MOVE_TOLERANCE = 1.001
"""Float slack on the V_MAX check so a move of exactly V_MAX·dt is accepted."""


def clamp_speed(vel: np.ndarray, v_max: float = V_MAX_M_PER_S) -> np.ndarray:
    """Each (N, 3) velocity made horizontal and scaled down to at most `v_max` m/s.

    NaN becomes zero; the vertical component is dropped, since nothing leaves the floor.
    """
    vel = vel.astype(np.float32)  # a copy: the caller's array is never written
    finite = np.isfinite(vel)
    if not finite.all():
        vel = np.where(finite, vel, np.float32(0.0))
    vel[:, 1] = 0.0
    speed = np.sqrt(np.einsum("ij,ij->i", vel, vel))
    scale = np.minimum(1.0, v_max / np.maximum(speed, 1e-12)).astype(np.float32)
    return vel * scale[:, None]


def on_floor(pos: np.ndarray) -> np.ndarray:
    """(N, 3) positions moved vertically onto the floor (y = FLOOR_Y_M); a copy."""
    pos = np.array(pos, dtype=np.float32, ndmin=2)
    pos[:, 1] = FLOOR_Y_M
    return pos


def apply_commands(state: ZoneState, commands: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """Apply COMMAND_DTYPE rows to the entities at `slots` (-1: not held here).

    Returns a mask over `commands` of the refused ones. Velocities are set first,
    then moves are taken in order, each seeing where the one before left the
    entity: an entity moved this tick ends it standing at its target, whatever
    velocity it was also given. Every command for an entity held here, taken or
    refused, raises the entity's `seq` to its own: the input has been answered.
    """
    rejected = np.zeros(len(commands), dtype=bool)
    if rejected.size == 0:
        return rejected
    held = slots >= 0
    np.maximum.at(state.seq, slots[held], commands["seq"][held])
    kinds = commands["kind"]
    velocity = held & (kinds == CommandKind.VELOCITY)
    if velocity.all():
        # The usual tick: every command a velocity for an entity held here. Nothing
        # is refused and nothing chains, so the masks below would all be empty.
        state.vel[slots] = clamp_speed(commands["vec"])
        return rejected
    if velocity.any():
        state.vel[slots[velocity]] = clamp_speed(commands["vec"][velocity])
    moves = np.flatnonzero(held & (kinds == CommandKind.MOVE))
    targets = on_floor(commands["vec"][moves])
    earliest = state.tick - MOVE_SLACK_TICKS
    for i, target in zip(moves.tolist(), targets, strict=True):
        # moves chain on each other, so they are taken one at a time
        slot = slots[i]
        distance = float(np.linalg.norm(target.astype(np.float64) - state.pos[slot]))
        start = max(float(state.move_clock[slot]), earliest)
        walked = start + distance / (MAX_STEP_M * MOVE_TOLERANCE)  # ticks at V_MAX
        if not np.isfinite(distance) or walked > state.tick:
            rejected[i] = True
            continue
        state.pos[slot] = target
        state.vel[slot] = 0.0
        state.move_clock[slot] = walked
    unknown = (kinds != CommandKind.VELOCITY) & (kinds != CommandKind.MOVE)
    rejected |= held & unknown
    return rejected


SPARSE_SHARE = 4
"""`integrate` gathers the live slots when at most 1/SPARSE_SHARE of the slots are live."""


def integrate(
    state: ZoneState, lo: np.ndarray, hi: np.ndarray, live: np.ndarray | None = None
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
        pos += state.vel.take(live, axis=0) * dt
        np.maximum(pos, lo, out=pos)
        np.minimum(pos, hi, out=pos)
        state.pos[live] = pos
        return
    moving = state.status != Status.FREE
    # many entities: one multiply over every slot beats gathering and scattering them
    state.pos += state.vel * (moving * dt)[:, None]
    np.maximum(state.pos, lo, out=state.pos)
    np.minimum(state.pos, hi, out=state.pos)
