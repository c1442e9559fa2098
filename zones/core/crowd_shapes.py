"""Three crowds the market's floor sees, as still pictures: positions and velocities.

The spatial index (zones/core/bvh.py) is measured on the shapes the market really
makes rather than on uniform noise, because uniform points flatter every tree:

  * **opening**: the crowd packed at the entrance (the middle of the market's front
    edge) when the doors open, about two visitors per square metre, nearest the doors
    first, shuffling on the spot;
  * **choke**: a rush through a CHOKE_GAP_M gap in the wall between two booths: a crowd
    pressing against the wall on one side, a stream in the gap, a fan of people spreading
    out on the other side at a run;
  * **browsing**: groups of GROUP_SIZE touring the booths: most stand around a booth's
    stand, the rest walk together from one booth to the next.

Each crowd is flat, as the market is: every entity stands at FLOOR_Y_M. A crowd is a
pure function of its size and seed, so a tree built over it can be compared across
runs. Units: metres and metres per second, world axes (x, y, z) with y up.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np

from .constants import MARKET_SIZE_M
from .crowd import FLOOR_Y_M

__all__ = [
    "CROWDS",
    "FloorCrowd",
    "browsing",
    "choke",
    "crowd_of",
    "opening",
]

MAX_ENTITIES: Final = 20_000
"""Largest crowd a generator makes: the opening crowd's lattice holds about 30,000."""

EDGE_M: Final = 0.25
"""Nobody stands closer than this to the market's walls."""

PACKING_M: Final = 0.7
"""Lattice pitch of a packed crowd: about two people per square metre."""

PACKING_JITTER_M: Final = 0.15
SHUFFLE_M_S: Final = 0.4

CHOKE_GAP_M: Final = 3.0
CHOKE_WALL_Z_M: Final = MARKET_SIZE_M[2] / 2
"""The wall between the two booths of the choke runs along x at this z."""
CHOKE_WALL_M: Final = 0.3
"""Thickness of that wall: nobody stands in it but in the gap."""
CHOKE_WAITING_SHARE: Final = 0.55
CHOKE_STREAM_SHARE: Final = 0.02
CHOKE_FAN_HALF_ANGLE: Final = np.pi / 6
CHOKE_FAN_DENSITY: Final = 1.5
"""People per square metre of the fan, on average."""
PRESS_M_S: Final = (0.3, 1.2)
RUSH_M_S: Final = 3.0

GROUP_SIZE: Final = 6
GROUP_RADIUS_M: Final = 1.2
STAND_GRID: Final = 6
"""Booth stands stand on a STAND_GRID × STAND_GRID grid, jittered."""
STAND_JITTER_M: Final = 3.0
GATHER_M: Final = (2.0, 6.0)
"""A group at a booth stands this far from its stand."""
WALKING_SHARE: Final = 0.4
WALK_M_S: Final = 1.2


@dataclass(frozen=True, eq=False)
class FloorCrowd:
    """One crowd: (N, 3) float32 positions and velocities."""

    name: str
    positions: np.ndarray
    velocities: np.ndarray

    def moved(self, seconds: float) -> np.ndarray:
        """Positions after walking `seconds` at the crowd's velocities, kept on the floor."""
        return _on_floor(self.positions + self.velocities * np.float32(seconds))


def _check(n: int, seed: int) -> None:
    for name, value in (("n", n), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 1 <= n <= MAX_ENTITIES:
        raise ValueError(f"a crowd has 1 to {MAX_ENTITIES:,} entities, not {n}")
    if seed < 0:
        raise ValueError(f"seed must be at least 0, got {seed}")


def _on_floor(xz_or_xyz: np.ndarray) -> np.ndarray:
    """(N, 3) float32 positions at FLOOR_Y_M, inside the walls."""
    out = np.empty((xz_or_xyz.shape[0], 3), np.float32)
    if xz_or_xyz.shape[1] == 2:
        out[:, 0], out[:, 2] = xz_or_xyz[:, 0], xz_or_xyz[:, 1]
    else:
        out[:, 0], out[:, 2] = xz_or_xyz[:, 0], xz_or_xyz[:, 2]
    out[:, 0] = np.clip(out[:, 0], EDGE_M, MARKET_SIZE_M[0] - EDGE_M)
    out[:, 2] = np.clip(out[:, 2], EDGE_M, MARKET_SIZE_M[2] - EDGE_M)
    out[:, 1] = FLOOR_Y_M
    return out


def _floor_velocities(vx: np.ndarray, vz: np.ndarray) -> np.ndarray:
    vel = np.zeros((vx.size, 3), np.float32)
    vel[:, 0], vel[:, 2] = vx, vz
    return vel


def _packed(rng: np.random.Generator, n: int, towards: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """(n, 2) floor points of a jittered lattice where `keep` allows, nearest `towards` first.

    `keep` is a (P,) mask over the lattice's points in `_lattice()` order. The ranking
    distance gets a metre of noise, so the crowd's edge is ragged rather than an arc.
    """
    points = _lattice()[keep]
    if points.shape[0] < n:
        raise ValueError(f"the floor holds {points.shape[0]:,} people here, not {n:,}")
    points = points + rng.uniform(-PACKING_JITTER_M, PACKING_JITTER_M, points.shape)
    rank = np.linalg.norm(points - towards, axis=1) + rng.normal(0.0, 1.0, points.shape[0])
    return points[np.argsort(rank, kind="stable")[:n]]


def _lattice() -> np.ndarray:
    """(P, 2) points of a PACKING_M lattice over the floor, inside the walls."""
    xs = np.arange(EDGE_M + PACKING_M / 2, MARKET_SIZE_M[0] - EDGE_M, PACKING_M)
    zs = np.arange(EDGE_M + PACKING_M / 2, MARKET_SIZE_M[2] - EDGE_M, PACKING_M)
    return np.stack(np.meshgrid(xs, zs, indexing="ij"), axis=-1).reshape(-1, 2)


def _shuffle(rng: np.random.Generator, n: int, speed: tuple[float, float]) -> np.ndarray:
    angle = rng.uniform(0.0, 2 * np.pi, n)
    v = rng.uniform(*speed, n)
    return _floor_velocities(v * np.cos(angle), v * np.sin(angle))


def opening(n: int, seed: int) -> FloorCrowd:
    """`n` people packed at the entrance, in the middle of the front edge (least z)."""
    _check(n, seed)
    rng = np.random.default_rng(seed)
    doors = np.array([MARKET_SIZE_M[0] / 2, 0.0])
    lattice = _lattice()
    points = _packed(rng, n, doors, np.ones(lattice.shape[0], bool))
    return FloorCrowd("opening", _on_floor(points), _shuffle(rng, n, (0.0, SHUFFLE_M_S)))


def choke(n: int, seed: int) -> FloorCrowd:
    """`n` people rushing through a CHOKE_GAP_M gap in the wall at z = CHOKE_WALL_Z_M.

    CHOKE_WAITING_SHARE press against the wall on the near side (less z), packed,
    nearest the gap first; CHOKE_STREAM_SHARE are in the gap; the rest run out into the
    far booth in a fan of CHOKE_FAN_HALF_ANGLE, thinner the farther it reaches.
    """
    _check(n, seed)
    rng = np.random.default_rng(seed)
    gap = np.array([MARKET_SIZE_M[0] / 2, CHOKE_WALL_Z_M])
    waiting = round(n * CHOKE_WAITING_SHARE)
    stream = min(n - waiting, round(n * CHOKE_STREAM_SHARE))
    fan = n - waiting - stream

    lattice = _lattice()
    near_side = lattice[:, 1] < CHOKE_WALL_Z_M - CHOKE_WALL_M / 2 - PACKING_JITTER_M
    pressing = _packed(rng, waiting, gap, near_side)
    towards = gap - pressing
    towards /= np.maximum(np.linalg.norm(towards, axis=1, keepdims=True), 1e-6)
    press = rng.uniform(*PRESS_M_S, waiting)[:, None] * towards

    half = CHOKE_GAP_M / 2 - PACKING_JITTER_M
    in_gap = np.column_stack(
        [gap[0] + rng.uniform(-half, half, stream), gap[1] + rng.uniform(-1.0, 1.0, stream)]
    )
    through = np.tile([0.0, RUSH_M_S], (stream, 1))

    reach = min(
        MARKET_SIZE_M[2] - CHOKE_WALL_Z_M - 2 * EDGE_M,
        np.sqrt(max(fan, 1) / (CHOKE_FAN_HALF_ANGLE * CHOKE_FAN_DENSITY)),
    )
    r = 1.0 + rng.uniform(0.0, 1.0, fan) * (reach - 1.0)  # even in r: thinner farther out
    angle = np.pi / 2 + rng.uniform(-CHOKE_FAN_HALF_ANGLE, CHOKE_FAN_HALF_ANGLE, fan)
    heading = np.column_stack([np.cos(angle), np.sin(angle)])
    fanning = gap + r[:, None] * heading
    run = RUSH_M_S * heading

    points = np.concatenate([pressing, in_gap, fanning])
    vel = np.concatenate([press, through, run])
    return FloorCrowd("choke", _on_floor(points), _floor_velocities(vel[:, 0], vel[:, 1]))


def browsing(n: int, seed: int) -> FloorCrowd:
    """`n` people in groups of GROUP_SIZE (the last one smaller), touring the booths.

    A group stands GATHER_M from a booth's stand, or, with WALKING_SHARE, walks at
    WALK_M_S somewhere along the way from a stand to the next one on the grid.
    """
    _check(n, seed)
    rng = np.random.default_rng(seed)
    pitch = np.array([MARKET_SIZE_M[0], MARKET_SIZE_M[2]]) / STAND_GRID
    grid = np.stack(np.meshgrid(np.arange(STAND_GRID), np.arange(STAND_GRID), indexing="ij"), -1)
    stands = (grid.reshape(-1, 2) + 0.5) * pitch
    stands += rng.uniform(-STAND_JITTER_M, STAND_JITTER_M, stands.shape)

    groups = -(-n // GROUP_SIZE)
    at = rng.integers(0, stands.shape[0], groups)
    walking = rng.random(groups) < WALKING_SHARE
    # the next stand: one step along x or z on the grid, turning back at the edge
    cell = grid.reshape(-1, 2)[at]
    step = np.zeros((groups, 2), np.int64)
    step[np.arange(groups), rng.integers(0, 2, groups)] = rng.choice([-1, 1], groups)
    nxt = cell + step
    outside = (nxt < 0) | (nxt >= STAND_GRID)
    nxt = np.where(outside, cell - step, nxt)
    to = stands[nxt[:, 0] * STAND_GRID + nxt[:, 1]]

    gather = rng.uniform(*GATHER_M, groups)
    around = rng.uniform(0.0, 2 * np.pi, groups)
    dwelling = stands[at] + gather[:, None] * np.column_stack([np.cos(around), np.sin(around)])
    along = rng.uniform(0.15, 0.85, groups)[:, None]
    on_the_way = stands[at] + along * (to - stands[at])
    centres = np.where(walking[:, None], on_the_way, dwelling)
    leg = to - stands[at]
    leg /= np.maximum(np.linalg.norm(leg, axis=1, keepdims=True), 1e-6)
    group_vel = np.where(walking[:, None], WALK_M_S * leg, 0.0)

    member = np.repeat(np.arange(groups), GROUP_SIZE)[:n]
    r = GROUP_RADIUS_M * np.sqrt(rng.uniform(0.0, 1.0, n))
    angle = rng.uniform(0.0, 2 * np.pi, n)
    points = centres[member] + r[:, None] * np.column_stack([np.cos(angle), np.sin(angle)])
    vel = group_vel[member] + _shuffle(rng, n, (0.0, 0.2))[:, [0, 2]]
    return FloorCrowd("browsing", _on_floor(points), _floor_velocities(vel[:, 0], vel[:, 1]))


CROWDS: Final[dict[str, Callable[[int, int], FloorCrowd]]] = {
    "opening": opening,
    "choke": choke,
    "browsing": browsing,
}
"""Every crowd generator by name, in the order they are reported."""


def crowd_of(name: str, n: int, seed: int) -> FloorCrowd:
    """The crowd called `name` (a key of CROWDS) of `n` people from `seed`."""
    if name not in CROWDS:
        raise ValueError(f"no crowd called {name!r}; the crowds are {', '.join(CROWDS)}")
    return CROWDS[name](n, seed)
