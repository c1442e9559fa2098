"""The market's booth layout as a visitor sees it in its welcome (docs/protocol.md §2).

Zone i owns the Hilbert codes [starts[i], starts[i+1]) of the market's bounds, the
last one up to 2^30; a position's zone is found the way the zones find it: encode
the position, then binary-search the starts.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np

from zones.core.constants import FLOOR_HEIGHT_M
from zones.core.hilbert import encode_positions
from zones.core.ranges import RangeMap

STANDING_HEIGHT_M = 1.0
"""Height of a visitor's root above the floor: inside the walkable band."""


@dataclass(frozen=True, eq=False)
class Layout:
    """Bounds, zone starts and booths of one market layout version."""

    version: int
    lo: np.ndarray  # (3,) float32, metres
    hi: np.ndarray  # (3,) float32, metres
    starts: np.ndarray  # (zones,) uint32, first Hilbert code of each zone
    booths: list[dict[str, Any]]  # {"zone", "name", "colour"} per zone

    @classmethod
    def from_welcome(cls, layout: dict[str, Any]) -> "Layout":
        """The layout from a welcome's `layout` object; malformed layouts raise ValueError."""
        try:
            lo, hi = (np.array(corner, dtype=np.float32) for corner in layout["bounds"])
            # RangeMap refuses starts that are not sorted, disjoint and covering
            starts = RangeMap(np.array(layout["starts"], dtype=np.int64)).starts
            booths = [dict(booth) for booth in layout["booths"]]
            version = int(layout["version"])
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"malformed layout in welcome: {error}") from error
        if lo.shape != (3,) or hi.shape != (3,) or not np.all(lo < hi):
            raise ValueError(f"layout bounds must be [lo, hi] with lo < hi, got {lo}, {hi}")
        lo.setflags(write=False)
        hi.setflags(write=False)
        return cls(version=version, lo=lo, hi=hi, starts=starts, booths=booths)

    @property
    def zones(self) -> int:
        """Number of zones (booths)."""
        return int(self.starts.size)

    def zone_at(self, positions: np.ndarray) -> np.ndarray:
        """(n,) int64 zone index of each of the (n, 3) positions in metres."""
        codes = encode_positions(np.asarray(positions, dtype=np.float64), self.lo, self.hi)
        return np.searchsorted(self.starts, codes, side="right").astype(np.int64) - 1

    def zone_of(self, pos: Any) -> int:
        """Zone index of one position [x, y, z] in metres."""
        return int(self.zone_at(np.asarray(pos, dtype=np.float64).reshape(1, 3))[0])

    def booth(self, zone: int) -> dict[str, Any]:
        """The booth of a zone index: {"zone", "name", "colour"}."""
        for booth in self.booths:
            if booth.get("zone") == zone:
                return booth
        return self.booths[zone]

    def floor_points(self, step: float = 1.0, height: float = STANDING_HEIGHT_M) -> np.ndarray:
        """(n, 3) float64 points on a grid of `step` metres over the floor, at `height`."""
        height = min(height, FLOOR_HEIGHT_M / 2)
        xs = np.arange(self.lo[0] + step / 2, self.hi[0], step)
        zs = np.arange(self.lo[2] + step / 2, self.hi[2], step)
        grid = np.stack(np.meshgrid(xs, zs, indexing="ij"), -1).reshape(-1, 2)
        y = np.full(len(grid), self.lo[1] + height)
        return np.column_stack([grid[:, 0], y, grid[:, 1]])

    def nearest_in_other_zone(
        self, pos: Any, *, step: float = 1.0, zone: int | None = None
    ) -> tuple[np.ndarray, int] | None:
        """The nearest floor grid point outside `zone` (default: the zone of `pos`) and its zone.

        None when the whole floor is one zone.
        """
        here = np.asarray(pos, dtype=np.float64).reshape(3)
        own = self.zone_of(here) if zone is None else zone
        points = self.floor_points(step, height=float(here[1] - self.lo[1]))
        zones = self.zone_at(points)
        others = np.flatnonzero(zones != own)
        if others.size == 0:
            return None
        distance = np.linalg.norm(points[others] - here, axis=1)
        best = others[int(np.argmin(distance))]
        return points[best], int(zones[best])
