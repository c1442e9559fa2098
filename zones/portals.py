"""Which visitors stand in a portal: one numpy test for every visitor of a tick."""

from collections.abc import Sequence

import numpy as np

from market.live import PortalRegion

NO_PORTAL = -1


def portal_rects(portals: Sequence[PortalRegion]) -> np.ndarray:
    """(P, 4) float32 rectangles x0, z0, x1, z1 in metres, in the order of `portals`."""
    return np.array([p.rect_m for p in portals], np.float32).reshape(len(portals), 4)


def portals_under(pos: np.ndarray, rects: np.ndarray) -> np.ndarray:
    """For each position (N, 3) metres, the index of the portal it stands in, or NO_PORTAL.

    Portals never overlap (the generator places them apart), so the first match is the
    only one.
    """
    if not len(rects) or not len(pos):
        return np.full(len(pos), NO_PORTAL, np.int64)
    x, z = pos[:, 0:1], pos[:, 2:3]
    inside = (x >= rects[:, 0]) & (x < rects[:, 2]) & (z >= rects[:, 1]) & (z < rects[:, 3])
    return np.where(inside.any(axis=1), inside.argmax(axis=1), NO_PORTAL).astype(np.int64)
