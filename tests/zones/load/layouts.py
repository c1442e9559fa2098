"""Booth layouts as a visitor's welcome gives them, for planning without a server."""

import functools

from zones.client.layout import Layout
from zones.core.constants import MARKET_SIZE_M
from zones.core.ranges import floor_ranges


@functools.cache
def layout_of(booths: int) -> Layout:
    """The layout of a market of `booths` booths, as the server lays it out."""
    return Layout.from_welcome(
        {
            "version": 1,
            "bounds": [[0.0, 0.0, 0.0], list(MARKET_SIZE_M)],
            "starts": [int(s) for s in floor_ranges(booths).starts],
            "booths": [
                {"zone": z, "name": f"Booth {z + 1}", "colour": "#000000"} for z in range(booths)
            ],
        }
    )
