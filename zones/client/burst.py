"""The crossing burst: many visitors walk across booth borders at the same moment.

`plan_crossings` picks, for each visitor, a start a little inside one booth
and an end a little inside a neighbouring one, straight across the border.
`run_burst` joins every visitor at its start through the SDK, sends them all
walking at once, stops each once the market shows it past its end point, and
waits until every one is held by its destination zone. While it runs, every visitor records what it sees of
the others, so the report can say whether anyone's position jumped.
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from zones.core.wire import RowFlag

from .layout import Layout
from .visitor import JoinRefused, Visitor, VisitorClosed

WALK_SPEED_M_S = 1.5
INSIDE_M = 1.0  # how far inside its booth each end of a crossing is
JUMP_M = 0.5  # a larger step between two sightings…
GAP_MS = 200.0  # …is a jump unless at least this long passed between them
CHECK_S = 0.1  # how often a walking visitor checks whether it has arrived


@dataclass(frozen=True)
class Crossing:
    start: np.ndarray  # (3,) metres
    end: np.ndarray
    src: int
    dst: int


def plan_crossings(layout: Layout, count: int, rng: np.random.Generator) -> list[Crossing]:
    """`count` straight walks from one booth into a neighbour, spread over every border."""
    step = 0.5
    xs = np.arange(INSIDE_M, float(layout.hi[0]) - INSIDE_M, step)
    zs = np.arange(INSIDE_M, float(layout.hi[2]) - INSIDE_M, step)
    grid = np.stack(np.meshgrid(xs, zs, indexing="ij"), axis=-1).reshape(-1, 2)
    points = np.zeros((grid.shape[0], 3), np.float32)
    points[:, 0], points[:, 1], points[:, 2] = grid[:, 0], 1.0, grid[:, 1]
    length = 2 * INSIDE_M + step
    found: list[Crossing] = []
    for direction in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        d = np.array([direction[0], 0.0, direction[1]], np.float32)
        ends = points + d * length
        inside = (ends[:, 0] > 0) & (ends[:, 0] < layout.hi[0]) & (ends[:, 2] > 0)
        inside &= ends[:, 2] < layout.hi[2]
        # the zone must change once along the walk, and both ends must sit inside their booth
        samples = [layout.zone_at(points + d * t) for t in np.linspace(0, length, 7)]
        src, dst = samples[0], samples[-1]
        straight = inside & (src != dst)
        for k in range(1, 6):
            straight &= (samples[k] == src) | (samples[k] == dst)
        straight &= (samples[1] == src) & (samples[5] == dst)
        for i in np.flatnonzero(straight):
            found.append(Crossing(points[i], ends[i], int(src[i]), int(dst[i])))
    if len(found) < count:
        raise ValueError(f"only {len(found)} border crossings in this layout, {count} wanted")
    chosen = rng.choice(len(found), size=count, replace=False)
    return [found[i] for i in chosen]


@dataclass
class Sightings:
    """What one visitor saw of the other visitors' roots: (tick ms, id, position)."""

    times: list[np.ndarray] = field(default_factory=list)
    ids: list[np.ndarray] = field(default_factory=list)
    positions: list[np.ndarray] = field(default_factory=list)

    def record(
        self, visitor: Visitor, header: Any, rows: np.ndarray, bodies: Any, received_ms: float
    ) -> None:
        roots = rows[(rows["flags"] & RowFlag.VISITOR_ROOT) != 0]
        # market time of the sighting (the frame's tick), not when this client got to it:
        # a client that falls behind reads several frames at once, which is no jump
        self.times.append(np.full(roots.size, float(header["tick_ms"])))
        self.ids.append(roots["id"].copy())
        self.positions.append(roots["pos"].copy())

    def jumps(self) -> list[tuple[int, float, float]]:
        """(id, metres, ms) of every step longer than JUMP_M taken in less than GAP_MS."""
        if not self.ids:
            return []
        ids = np.concatenate(self.ids)
        times = np.concatenate(self.times)
        pos = np.concatenate(self.positions)
        order = np.lexsort((times, ids))
        ids, times, pos = ids[order], times[order], pos[order]
        same = ids[1:] == ids[:-1]
        dist = np.linalg.norm(pos[1:] - pos[:-1], axis=1)
        dt = times[1:] - times[:-1]
        bad = np.flatnonzero(same & (dist > JUMP_M) & (dt < GAP_MS))
        return [(int(ids[i]), float(dist[i]), float(dt[i])) for i in bad]


@dataclass
class BurstReport:
    visitors: int
    arrived: int
    missing: list[int]  # entities not held by their destination zone at the end
    jumps: list[tuple[int, float, float]]  # (entity, metres, ms)
    join_s: float
    crossing_s: float  # from the start signal until the last visitor arrived
    frames: int
    latency_p50_ms: float
    latency_p99_ms: float
    entities: list[int]
    ended_ms: int  # wall-clock ms when the burst was over, before the visitors left

    def ok(self) -> bool:
        return not self.missing and not self.jumps


async def connect_retrying(
    base_url: str, market_id: int, *, retry_s: float = 30.0, **options: Any
) -> Visitor:
    """Visitor.connect, retried every half second while the zones are still coming up."""
    deadline = time.monotonic() + retry_s
    while True:
        try:
            return await Visitor.connect(base_url, market_id, **options)
        except (VisitorClosed, JoinRefused, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def join_all(
    base_url: str,
    market_id: int,
    crossings: list[Crossing],
    *,
    concurrency: int = 16,
    retry_s: float = 30.0,
) -> list[Visitor]:
    """One visitor per crossing, standing at its start; joins retry while zones come up."""
    gate = asyncio.Semaphore(concurrency)

    async def one(crossing: Crossing) -> Visitor:
        async with gate:
            return await connect_retrying(
                base_url, market_id, retry_s=retry_s, at=crossing.start.tolist()
            )

    return list(await asyncio.gather(*(one(c) for c in crossings)))


async def walk_to(
    visitor: Visitor,
    end: np.ndarray,
    heading: np.ndarray,
    timeout_s: float,
    speed: float = WALK_SPEED_M_S,
) -> None:
    """Keep walking along `heading` at `speed` m/s until past `end`, then stop.

    The goal is a place, not a duration: if the market loses the visitor's motion (a
    zone restarting from a snapshot a moment old), the visitor walks on from wherever
    the market says it stands.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        await asyncio.sleep(CHECK_S)
        if visitor.position is None:
            continue
        if float(np.dot(end - visitor.position, heading)) <= 0.0:
            await visitor.walk([0.0, 0.0, 0.0])
            return
        moving = visitor.velocity is not None and float(np.dot(visitor.velocity, heading)) > 0.1
        if not moving:
            await visitor.walk((heading * speed).tolist())
    await visitor.walk([0.0, 0.0, 0.0])


async def run_burst(
    base_url: str,
    market_id: int,
    count: int,
    *,
    seed: int = 144,
    timeout_s: float = 60.0,
    during: Callable[[], Any] | None = None,
    progress: Callable[[str], None] | None = None,
    layout: Layout | None = None,
) -> BurstReport:
    """Join `count` visitors at borders, send them all across at once, report what happened.

    `during` (optional) is awaited one second after the start signal, while everyone is
    walking: the kill variant of the smoke test stops a zone worker there.
    """
    say = progress or (lambda _: None)
    started = time.monotonic()
    probe = await connect_retrying(base_url, market_id)
    layout = layout or probe.layout
    await probe.leave()
    assert layout is not None
    crossings = plan_crossings(layout, count, np.random.default_rng(seed))
    say(f"joining {count} visitors at booth borders…")
    visitors = await join_all(base_url, market_id, crossings)
    join_s = time.monotonic() - started
    sightings = [Sightings() for _ in visitors]
    for visitor, seen in zip(visitors, sightings, strict=True):
        visitor.on_frame = seen.record
    say(f"{count} joined in {join_s:.1f} s; everyone walks across now")
    go = time.monotonic()
    headings = [(c.end - c.start) / np.linalg.norm(c.end - c.start) for c in crossings]
    await asyncio.gather(
        *(v.walk((h * WALK_SPEED_M_S).tolist()) for v, h in zip(visitors, headings, strict=True))
    )
    walkers = [
        asyncio.create_task(walk_to(v, c.end, h, timeout_s))
        for v, c, h in zip(visitors, crossings, headings, strict=True)
    ]
    if during is not None:
        await asyncio.sleep(1.0)
        await during()
    await asyncio.gather(*walkers)

    def arrived(v: Visitor, c: Crossing) -> bool:
        return v.zone == c.dst

    deadline = go + timeout_s
    while time.monotonic() < deadline:
        done = sum(arrived(v, c) for v, c in zip(visitors, crossings, strict=True))
        if done == len(visitors):
            break
        say(f"{done}/{count} held by their destination booth")
        await asyncio.sleep(1.0)
    crossing_s = time.monotonic() - go
    missing = [v.entity for v, c in zip(visitors, crossings, strict=True) if not arrived(v, c)]
    jumps = [j for seen in sightings for j in seen.jumps()]
    latencies = np.concatenate([np.asarray(v.stats.latencies_ms) for v in visitors])
    frames = sum(v.stats.frames for v in visitors)
    entities = [v.entity for v in visitors]
    ended_ms = time.time_ns() // 1_000_000  # the burst is over; leaving is not part of it
    await asyncio.gather(*(v.close() for v in visitors))
    return BurstReport(
        visitors=count,
        arrived=count - len(missing),
        missing=missing,
        jumps=jumps,
        join_s=join_s,
        crossing_s=crossing_s,
        frames=frames,
        latency_p50_ms=float(np.percentile(latencies, 50)) if latencies.size else float("nan"),
        latency_p99_ms=float(np.percentile(latencies, 99)) if latencies.size else float("nan"),
        entities=entities,
        ended_ms=ended_ms,
    )
