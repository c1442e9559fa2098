"""Each visitor's share of the market for one tick, and what changed for it.

The input is the merged view: one ROW_DTYPE row per entity, sorted by id, as
`interest.resolve_authority` makes it from every zone's rows (so an entity in a
handoff is in it once). `cut` picks every visitor's rows and bodies through three
radius queries, answered here by one distance matrix for everyone (`DistanceMatrix`;
the gateway asks a k-d tree instead for large views, zones/nearest.py); `frames`
encodes them; `detect_events` compares each visitor's own row with what was last
known of it. Units: metres, metres squared for squared distances; V visitors, N rows.

Level of detail keeps a frame's size independent of the crowd:

  * the nearest NEAR_ROWS rows within INTEREST_RADIUS_M every tick;
  * the nearest FAR_ROWS rows within FAR_RADIUS_M every FAR_EVERY-th tick;
  * the bodies of the NEAR_BODIES nearest visitors within INTEREST_RADIUS_M every
    BODIES_EVERY-th tick, BODIES_PHASE ticks after the far rows.

A visitor's phase (the tick count plus its own stagger) says which of these its
frame carries, so the bigger frames spread evenly over the ticks.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .constants import INTEREST_RADIUS_M, MARKET_SIZE_M
from .ranges import RangeMap
from .skeleton import bodies as body_blocks
from .wire import BODY_DTYPE, BODY_RECORD, ROW_RECORD, RowFlag, frame_rows, frames_encode

FAR_RADIUS_M = 20.0
FAR_EVERY = 4
BODIES_EVERY = 4
BODIES_PHASE = 2  # bodies go on the ticks halfway between two far ticks
NEAR_ROWS = 32
FAR_ROWS = 96
NEAR_BODIES = 4
MARKET_LO = np.zeros(3, np.float32)
MARKET_HI = np.array(MARKET_SIZE_M, np.float32)


def own_rows(view: np.ndarray, entities: np.ndarray) -> np.ndarray:
    """Index in `view` (ROW_DTYPE, sorted by id) of each entity's row, -1 for none.

    `entities` is (V,) u64; the result (V,) int64.
    """
    if view.size == 0:
        return np.full(entities.size, -1, np.int64)
    found = np.minimum(np.searchsorted(view["id"], entities), view.size - 1)
    return np.where(view["id"][found] == entities, found, -1).astype(np.int64)


def booths_under(positions: np.ndarray, ranges: RangeMap) -> np.ndarray:
    """(V,) int64: the booth whose floor each (V, 3) float32 position stands on."""
    return ranges.assign_positions(positions, MARKET_LO, MARKET_HI).astype(np.int64)


@dataclass(frozen=True)
class Cut:
    """What each of V visitors receives this tick, as indices into the view's N rows.

    A visitor's line of `rows` (and of `bodies`) lists the view rows it gets in
    ascending order, then `n` (no row) to the width of the array: picks, as the radius
    queries give them (`Nearest`). A thousand visitors' picks are a few dozen indices
    each where masks over the view would be a million cells to scan.
    """

    rows: np.ndarray  # (V, R) int64 picks: the rows of its frame
    bodies: np.ndarray  # (V, B) int64 picks: the visitor roots whose bodies it gets
    far: np.ndarray  # (V,) bool: its rows reach FAR_RADIUS_M this tick
    n: int  # the view's rows, N: the index that stands for none

    def rows_mask(self) -> np.ndarray:
        """(V, N) bool: the rows of each visitor's frame."""
        return mask_of(self.rows, self.n)

    def bodies_mask(self) -> np.ndarray:
        """(V, N) bool: the roots whose bodies each visitor gets."""
        return mask_of(self.bodies, self.n)


def picks_of(mask: np.ndarray) -> np.ndarray:
    """(V, K) int64 picks of a (V, N) bool mask: each line's columns in ascending order,
    padded with N; K is the most any line has."""
    v, n = mask.shape
    counts = np.count_nonzero(mask, axis=1)
    out = np.full((v, int(counts.max()) if v else 0), n, np.int64)
    flat = np.flatnonzero(mask)
    rank = np.arange(flat.size) - np.repeat(np.cumsum(counts) - counts, counts)
    out[flat // n, rank] = flat % n
    return out


def mask_of(picks: np.ndarray, n: int) -> np.ndarray:
    """(V, N) bool of (V, K) picks padded with N."""
    out = np.zeros((picks.shape[0], n + 1), bool)
    out[np.arange(picks.shape[0])[:, None], picks] = True
    return out[:, :n]


class Nearest(Protocol):
    """The radius queries a cut is made of, over one view and its visitors."""

    def __call__(
        self, which: np.ndarray | None, radius: float, most: int, roots: bool
    ) -> np.ndarray:
        """(len(which), K ≤ most) picks, padded with N: for each visitor `which[i]` (an
        index into `own`; None: every visitor), its `most` nearest rows within `radius`
        metres, each once, in any order, its own row counted as the nearest of all;
        among the visitor roots only, when `roots`."""
        ...


class DistanceMatrix:
    """Nearest rows out of one distance matrix of every visitor to every row (V × N)."""

    def __init__(self, view: np.ndarray, own: np.ndarray) -> None:
        pos = view["pos"]
        self.d2 = squared_distances(pos[own], pos)
        self.d2[np.arange(own.size), own] = -1.0  # your own root: always the nearest
        self.roots = (view["flags"] & RowFlag.VISITOR_ROOT) != 0

    def __call__(
        self, which: np.ndarray | None, radius: float, most: int, roots: bool
    ) -> np.ndarray:
        d2 = self.d2 if which is None else self.d2[which]
        if roots:
            d2 = np.where(self.roots[None, :], d2, np.inf)
        return picks_of(nearest_within(d2, radius**2, most))


def cut(
    view: np.ndarray,
    own: np.ndarray,
    phases: np.ndarray,
    nearest: Callable[[np.ndarray, np.ndarray], Nearest] = DistanceMatrix,
) -> Cut:
    """Every visitor's rows and bodies out of `view` (ROW_DTYPE, N rows, sorted by id).

    `own` (V,) int64 is the index of each visitor's own row, which its frame always
    holds; `phases` (V,) int64 picks far rows and bodies (module docstring). `nearest`
    answers the radius queries over the view (zones/nearest.py has a k-d tree's).
    """
    find = nearest(view, own)
    n = view.size
    far = phases % FAR_EVERY == 0
    parts = [
        (which, find(which, radius, most, roots=False))
        for which, radius, most in (
            (np.flatnonzero(~far), INTEREST_RADIUS_M, NEAR_ROWS),
            (np.flatnonzero(far), FAR_RADIUS_M, FAR_ROWS),
        )
        if which.size
    ]
    dressed = np.flatnonzero(phases % BODIES_EVERY == BODIES_PHASE)
    bodies = []
    if dressed.size:
        bodies.append((dressed, find(dressed, INTEREST_RADIUS_M, NEAR_BODIES, roots=True)))
    return Cut(rows=_picks(parts, own.size, n), bodies=_picks(bodies, own.size, n), far=far, n=n)


def _picks(parts: list[tuple[np.ndarray, np.ndarray]], v: int, n: int) -> np.ndarray:
    """(V, K) picks, each line ascending, from the picks of some visitors in each part."""
    out = np.full((v, max((found.shape[1] for _, found in parts), default=0)), n, np.int64)
    for which, found in parts:
        out[which, : found.shape[1]] = found
    out.sort(axis=1)
    return out


def squared_distances(centres: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """(V, N) float32 squared distances, m², between (V, 3) centres and (N, 3) positions.

    Expanded as |c|² − 2c·p + |p|² so that it is one matrix product for everyone, about
    the positions' middle: float32 keeps 7 digits of |c|² and |p|², so 60 m from the
    origin two visitors 0.18 m apart came out up to 6 mm nearer or farther; measured
    from the middle of a crowd, a small fraction of a millimetre.
    """
    middle = (pos.min(axis=0) + pos.max(axis=0)) / 2 if pos.size else 0.0
    centres, pos = centres - middle, pos - middle
    return (
        np.einsum("ij,ij->i", centres, centres)[:, None]
        - 2.0 * centres @ pos.T
        + np.einsum("ij,ij->i", pos, pos)[None, :]
    )


def nearest_within(d2: np.ndarray, radius2: float, most: int) -> np.ndarray:
    """Per row of (V, N) squared distances: a mask of the `most` nearest within the radius."""
    mask = d2 <= radius2
    crowded = np.flatnonzero(np.count_nonzero(mask, axis=1) > most)
    if crowded.size:
        nearest = np.argpartition(d2[crowded], most - 1, axis=1)[:, :most]
        mask[crowded] = False
        mask[crowded[:, None], nearest] = True
    return mask


def frames(view: np.ndarray, cut: Cut, acks: list[int], tick_ms: int) -> list[bytes | memoryview]:
    """Each visitor's interest frame (wire.frame_encode's bytes): its rows in view order,
    then bodies; one buffer for all of them (wire.frames_encode).

    `acks` holds each visitor's highest input seq taken. The view is quantised once and
    each body block built once, however many visitors receive it.
    """
    picked = cut.rows < cut.n
    rows = np.take(frame_rows(view).view(ROW_RECORD), cut.rows[picked])
    dressed_by = cut.bodies < cut.n
    body_columns = cut.bodies[dressed_by]
    dressed = np.unique(body_columns)
    blocks = body_blocks(view[dressed]) if dressed.size else np.zeros(0, BODY_DTYPE)
    bodies = np.take(blocks.view(BODY_RECORD), np.searchsorted(dressed, body_columns))
    return frames_encode(
        rows,
        np.count_nonzero(picked, axis=1),
        bodies,
        np.count_nonzero(dressed_by, axis=1),
        acks=np.array(acks, np.int64),
        tick_ms=tick_ms,
        far=cut.far,
    )


class EventKind:
    """Values of VisitorEvents.kind."""

    ZONE_CHANGED = 1  # authority over the visitor settled in another zone
    BOOTH_ENTERED = 2  # the visitor stands on another booth's floor


@dataclass(frozen=True)
class VisitorEvents:
    """E events for visitors, zone changes first, then booth changes."""

    entity: np.ndarray  # (E,) uint64: whose
    kind: np.ndarray  # (E,) uint8: EventKind
    before: np.ndarray  # (E,) int64: the zone or booth last known
    after: np.ndarray  # (E,) int64: the zone or booth now


def detect_events(
    own: np.ndarray, booths: np.ndarray, known_zone: np.ndarray, known_booth: np.ndarray
) -> VisitorEvents:
    """What changed for V visitors, from their own rows (ROW_DTYPE, (V,)) this tick.

    A zone change counts only once the row is settled (authoritative, not staging): a
    staging row still names the source. `booths` (V,) is the booth under each visitor
    now (`booths_under`); `known_zone` and `known_booth` (V,) what was last reported.
    """
    flags = own["flags"]
    settled = ((flags & RowFlag.AUTHORITATIVE) != 0) & ((flags & RowFlag.STAGING) == 0)
    zone = own["zone"].astype(np.int64)
    moved = np.flatnonzero(settled & (zone != known_zone))
    entered = np.flatnonzero(booths != known_booth)
    return VisitorEvents(
        entity=np.concatenate([own["id"][moved], own["id"][entered]]).astype(np.uint64),
        kind=np.repeat(
            np.array([EventKind.ZONE_CHANGED, EventKind.BOOTH_ENTERED], np.uint8),
            [moved.size, entered.size],
        ),
        before=np.concatenate([known_zone[moved], known_booth[entered]]).astype(np.int64),
        after=np.concatenate([zone[moved], booths[entered]]).astype(np.int64),
    )
