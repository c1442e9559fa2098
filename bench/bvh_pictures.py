"""Pictures of trees over crowds: every node's box over the market floor, seen from above, as SVG.

One picture per crowd, one panel per tree, drawn at the same scale: the floor around the
crowd seen from above (x to the right, z downwards: the market's front edge, where its
doors are, at the top), the entities as red dots, and the box of every internal
node over MIN_LEAVES entities or more, coloured by depth (the root's box in dark blue,
the deepest in yellow). Boxes of a flat crowd have no height, so the floor is all there is.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zones.core.bvh import Bvh

PANEL_PX = 420
GAP_PX = 16
TITLE_PX = 22
MARGIN_M = 1.5
MIN_LEAVES = 4
PALETTE = ("#1d3557", "#2a6f97", "#2c7da0", "#468faf", "#52b69a", "#99d98c", "#d9ed92", "#f4d35e")


@dataclass(frozen=True)
class Panel:
    title: str
    tree: Bvh
    positions: np.ndarray


def depths(tree: Bvh) -> np.ndarray:
    """(N-1,) depth of every internal node, the root's 0."""
    depth = np.zeros(tree.size - 1, np.int64)
    level, d = np.array([tree.root]), 0
    while level.size:
        depth[level] = d
        kids = np.concatenate([tree.left[level], tree.right[level]])
        level, d = kids[kids >= 0], d + 1
    return depth


def _rectangles(xs: np.ndarray, zs: np.ndarray, ws: np.ndarray, hs: np.ndarray) -> str:
    return "".join(
        f"M{x:.1f} {z:.1f}h{w:.1f}v{h:.1f}h{-w:.1f}z"
        for x, z, w, h in zip(xs.tolist(), zs.tolist(), ws.tolist(), hs.tolist(), strict=True)
    )


def _panel(
    panel: Panel, lo: np.ndarray, scale: float, ox: float, oy: float, height: float
) -> list[str]:
    tree, pos = panel.tree, panel.positions
    out = [
        f'<g transform="translate({ox:.0f},{oy:.0f})">',
        f'<text x="0" y="15" font-family="sans-serif" font-size="14">{panel.title}</text>',
        f'<rect x="0" y="{TITLE_PX}" width="{PANEL_PX}" height="{height:.0f}" fill="#fbfbf8" '
        'stroke="#ccc"/>',
    ]
    top = TITLE_PX
    if tree.size > 1:
        size = tree.last - tree.first + 1
        depth = depths(tree)
        keep = np.flatnonzero(size >= MIN_LEAVES)
        x0 = (tree.lo[keep, 0] - lo[0]) * scale
        z0 = (tree.lo[keep, 2] - lo[1]) * scale + top
        w = np.maximum((tree.hi[keep, 0] - tree.lo[keep, 0]) * scale, 0.3)
        h = np.maximum((tree.hi[keep, 2] - tree.lo[keep, 2]) * scale, 0.3)
        band = np.minimum(
            depth[keep] * len(PALETTE) // max(int(depth.max()) + 1, 1), len(PALETTE) - 1
        )
        for b in range(len(PALETTE) - 1, -1, -1):  # deep boxes first, the root's on top
            mine = band == b
            if mine.any():
                out.append(
                    f'<path fill="none" stroke="{PALETTE[b]}" stroke-width="0.7" '
                    f'stroke-opacity="0.85" d="{_rectangles(x0[mine], z0[mine], w[mine], h[mine])}"/>'
                )
    dots = "".join(
        f"M{x:.1f} {z:.1f}h0.01"
        for x, z in zip(
            ((pos[:, 0] - lo[0]) * scale).tolist(),
            ((pos[:, 2] - lo[1]) * scale + top).tolist(),
            strict=True,
        )
    )
    out.append(f'<path stroke="#b03020" stroke-width="2.2" stroke-linecap="round" d="{dots}"/>')
    out.append("</g>")
    return out


def write_svg(path: Path, caption: str, panels: list[Panel], columns: int = 2) -> None:
    """Write `panels` side by side, `columns` to a row, over one scale fitting every crowd."""
    floor = np.concatenate([p.positions[:, [0, 2]] for p in panels])
    lo, hi = floor.min(axis=0) - MARGIN_M, floor.max(axis=0) + MARGIN_M
    scale = PANEL_PX / float(max(hi - lo))
    panel_height = float(hi[1] - lo[1]) * scale
    rows = -(-len(panels) // columns)
    width = columns * PANEL_PX + (columns - 1) * GAP_PX
    height = TITLE_PX + rows * (TITLE_PX + panel_height + GAP_PX)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height:.0f}" '
        f'viewBox="0 0 {width} {height:.0f}">',
        f'<text x="0" y="15" font-family="sans-serif" font-size="15" font-weight="bold">{caption}</text>',
    ]
    for i, panel in enumerate(panels):
        ox = (i % columns) * (PANEL_PX + GAP_PX)
        oy = TITLE_PX + (i // columns) * (TITLE_PX + panel_height + GAP_PX)
        parts += _panel(panel, lo, scale, ox, oy, panel_height)
    parts.append("</svg>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
