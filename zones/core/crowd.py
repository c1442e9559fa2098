"""Walkers: a crowd driving a SimNetwork, and the steering a zone does for its own NPCs.

Each entity walks at 0.5–4 m/s and turns at random moments; a share of them
pace back and forth across a border faster than the hysteresis period. The
crowd sends its movement commands to whichever zone owns each entity, as a
gateway would, so the fabric sees the same traffic as in the live market.
"""

from dataclasses import dataclass, field

import numpy as np

from .constants import FLOOR_Y_M as FLOOR_Y_M  # where walkers stand; re-exported for crowds
from .hilbert import encode_positions
from .ranges import RangeMap
from .simnet import SimNetwork, authority_records
from .state import Status, ZoneState
from .step import StepOutput
from .wire import COMMAND_DTYPE, SPAWN_DTYPE, CommandKind, RowFlag


@dataclass
class Crowd:
    """Walkers over a network's market; `expected` holds the ids that exist."""

    net: SimNetwork
    rng: np.random.Generator
    turn_probability: float = 0.03
    speed_range: tuple[float, float] = (0.5, 4.0)
    expected: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    next_id: int = 1

    def spawn(self, count: int) -> dict[int, np.ndarray]:
        """Spawn requests for `count` new walkers, grouped by the zone owning their spot."""
        p = self.net.params[0]
        rows = np.zeros(count, SPAWN_DTYPE)
        rows["id"] = np.arange(self.next_id, self.next_id + count, dtype=np.uint64)
        self.next_id += count
        rows["pos"] = self.rng.uniform(p.lo, p.hi, size=(count, 3)).astype(np.float32)
        rows["pos"][:, 1] = FLOOR_Y_M
        rows["vel"] = self._headings(count)
        rows["kind"] = RowFlag.VISITOR_ROOT
        zones = self.net.ranges.assign(encode_positions(rows["pos"], p.lo, p.hi))
        return {int(z): rows[zones == z] for z in np.unique(zones)}

    def commands(self) -> dict[int, np.ndarray]:
        """Velocity changes for a random few walkers, addressed to their owners."""
        owners = self.owners()
        if not owners:
            return {}
        ids = np.array(sorted(owners), dtype=np.uint64)
        turning = ids[self.rng.random(ids.size) < self.turn_probability]
        cmds = np.zeros(turning.size, COMMAND_DTYPE)
        cmds["id"], cmds["kind"], cmds["vec"] = (
            turning,
            CommandKind.VELOCITY,
            self._headings(turning.size),
        )
        zones = np.array([owners[int(i)] for i in turning], dtype=np.int64)
        return {int(z): cmds[zones == z] for z in np.unique(zones) if not self.net.is_down(int(z))}

    def stop_all(self) -> dict[int, np.ndarray]:
        """Commands bringing every walker to a halt."""
        owners = self.owners()
        cmds = np.zeros(len(owners), COMMAND_DTYPE)
        cmds["id"] = np.array(list(owners), dtype=np.uint64)
        cmds["kind"] = CommandKind.VELOCITY
        zones = np.array(list(owners.values()), dtype=np.int64)
        return {int(z): cmds[zones == z] for z in np.unique(zones)}

    def owners(self) -> dict[int, int]:
        """Entity id → zone holding authority at the highest epoch."""
        rec = authority_records(self.net.held_states())
        auth = (rec["status"] == Status.OWNED) | (rec["status"] == Status.STAGING)
        order = np.lexsort((rec["epoch"][auth], rec["id"][auth]))
        return dict(
            zip(rec["id"][auth][order].tolist(), rec["zone"][auth][order].tolist(), strict=False)
        )

    def record_spawns(self, outputs: list[StepOutput | None]) -> None:
        spawned = [o.spawned for o in outputs if o is not None and o.spawned.size]
        if spawned:
            self.expected = np.union1d(self.expected, np.concatenate(spawned))

    def _headings(self, count: int) -> np.ndarray:
        return headings(self.rng, count, self.speed_range)


def headings(rng: np.random.Generator, count: int, speed_range: tuple[float, float]) -> np.ndarray:
    """Random floor velocities: any direction, speeds uniform in `speed_range` (m/s)."""
    angle = rng.uniform(0, 2 * np.pi, count)
    speed = rng.uniform(*speed_range, count)
    vel = np.zeros((count, 3), np.float32)
    vel[:, 0], vel[:, 2] = speed * np.cos(angle), speed * np.sin(angle)
    return vel


def floor_points(
    ranges: RangeMap,
    zone: int,
    rng: np.random.Generator,
    count: int,
    lo: np.ndarray,
    hi: np.ndarray,
) -> np.ndarray:
    """`count` random points on the floor (y = 1 m) of `zone`'s region."""
    found: list[np.ndarray] = []
    have = 0
    for _ in range(1000):
        candidates = rng.uniform(lo, hi, size=(max(4 * count, 64), 3)).astype(np.float32)
        candidates[:, 1] = FLOOR_Y_M
        inside = candidates[ranges.assign(encode_positions(candidates, lo, hi)) == zone]
        found.append(inside)
        have += inside.shape[0]
        if have >= count:
            return np.concatenate(found)[:count]
    raise ValueError(f"zone {zone} has no floor to stand on")


def steer_walkers(
    state: ZoneState,
    rng: np.random.Generator,
    lo: np.ndarray,
    hi: np.ndarray,
    *,
    turn_probability: float = 0.03,
    speed_range: tuple[float, float] = (0.5, 4.0),
) -> np.ndarray:
    """Velocity commands for the NPC walkers this zone owns: random turns, and away from walls.

    The owner of a walker decides where it goes, so each zone steers only its own.
    """
    mine = np.flatnonzero((state.status == Status.OWNED) & ((state.kind & RowFlag.NPC) != 0))
    pos = state.pos[mine]
    margin = 2.0
    floor = pos[:, [0, 2]]
    near_wall = (floor < lo[[0, 2]] + margin) | (floor > hi[[0, 2]] - margin)
    at_wall: np.ndarray = np.any(near_wall, axis=1)
    turning = at_wall | (rng.random(mine.size) < turn_probability)
    slots = mine[turning]
    vel = headings(rng, slots.size, speed_range)
    # at a wall, walk towards the middle of the floor instead
    walled = at_wall[turning]
    if walled.any():
        towards = (lo + hi) / 2 - state.pos[slots[walled]]
        towards[:, 1] = 0.0
        norm = np.linalg.norm(towards, axis=1, keepdims=True) + 1e-6
        speed = np.linalg.norm(vel[walled], axis=1, keepdims=True)
        vel[walled] = (towards / norm * speed).astype(np.float32)
    cmds = np.zeros(slots.size, COMMAND_DTYPE)
    cmds["id"], cmds["kind"], cmds["vec"] = state.id[slots], CommandKind.VELOCITY, vel
    return cmds
