"""Steps of the visitor page's browser tests: walking in, walking to a booth."""

import numpy as np

from chunks.layouts import market_columns

BOOTHS = 3


def walk_in(page, url: str, *, booth: int | None = None, at=None, guest: bool = False) -> None:
    """Open the visitor page and join; returns once the HUD says Live and a frame showed me."""
    if booth is not None:
        url += f"?booth={booth}"
    elif at is not None:
        url += "?at=" + ",".join(str(v) for v in at)
    page.goto(url)
    page.get_by_role(
        "button", name="Walk in as a guest" if guest else "Walk in", exact=True
    ).click()
    page.wait_for_function("() => document.getElementById('hud').dataset.connection === 'live'")
    page.wait_for_function("() => window.fabricVisit.state.me !== null")


def me(page) -> tuple[float, float]:
    return tuple(
        page.evaluate("() => [window.fabricVisit.state.me.x, window.fabricVisit.state.me.z]")
    )


def nearest_column_of(zone: int, x: float, z: float) -> tuple[float, float]:
    grid = market_columns(BOOTHS)
    width = 128.0 / grid.shape[0]
    centres = (np.argwhere(grid == zone) + 0.5) * width
    best = centres[int(np.argmin(np.linalg.norm(centres - [x, z], axis=1)))]
    return float(best[0]), float(best[1])


def walk_to_booth(page, zone: int, timeout_s: float = 40.0) -> None:
    """Hold the arrow keys towards the nearest column of `zone` until the HUD names it."""
    x, z = me(page)
    tx, tz = nearest_column_of(zone, x, z)
    keys = []
    if abs(tx - x) > 0.5:
        keys.append("ArrowRight" if tx > x else "ArrowLeft")
    if abs(tz - z) > 0.5:
        keys.append("ArrowDown" if tz > z else "ArrowUp")
    page.locator("#scene").focus()
    for key in keys:
        page.keyboard.down(key)
    try:
        page.wait_for_function(
            "zone => document.getElementById('hud').dataset.booth === String(zone)",
            arg=zone,
            timeout=timeout_s * 1000,
        )
    finally:
        for key in keys:
            page.keyboard.up(key)
