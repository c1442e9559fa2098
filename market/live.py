"""Which market this process runs zones for, if any.

The zone runtime sets it once its zones are up and clears it when they stop; the
join endpoint reads it to refuse tickets for a market no zone here would admit
(409 `market_not_live`). It is a plain module-level holder on purpose: it
describes this process, not the database, so it needs no ORM and no cache.
"""

from dataclasses import dataclass
from typing import Any

from zones.core.constants import MARKET_SIZE_M


@dataclass(frozen=True)
class PortalRegion:
    """A portal of a generated market: where a visitor steps to go to another market."""

    index: int  # its place in the layout's `portals`
    id: str  # the layout's id, `portal.<i>`
    side: str  # the side of the floor it stands on: north, east, south or west
    rect_m: tuple[float, float, float, float]  # x0, z0, x1, z1 on the floor, metres
    target: int  # the market it leads to

    def arrival(self) -> tuple[float, float, float]:
        """Where a visitor coming through this portal stands: clear of it, on the floor side.

        ARRIVAL_CLEARANCE_M past its inner edge, so that arriving is not entering it again.
        """
        x0, z0, x1, z1 = self.rect_m
        x, z = (x0 + x1) / 2, (z0 + z1) / 2
        if self.side == "north":
            z = z1 + ARRIVAL_CLEARANCE_M
        elif self.side == "south":
            z = z0 - ARRIVAL_CLEARANCE_M
        elif self.side == "west":
            x = x1 + ARRIVAL_CLEARANCE_M
        else:
            x = x0 - ARRIVAL_CLEARANCE_M
        size_x, _, size_z = MARKET_SIZE_M
        return (min(max(x, 0.0), size_x), 0.0, min(max(z, 0.0), size_z))


ARRIVAL_CLEARANCE_M = 2.0


def portal_regions(layout: dict[str, Any] | None) -> tuple[PortalRegion, ...]:
    """The portals of a generated market's layout that lead somewhere (a target market)."""
    if not layout:
        return ()
    return tuple(
        PortalRegion(
            index=i,
            id=str(portal["id"]),
            side=str(portal["side"]),
            rect_m=tuple(v / 100.0 for v in portal["rect"]),  # type: ignore[arg-type]
            target=int(portal["target"]),
        )
        for i, portal in enumerate(layout.get("portals", ()))
        if portal.get("target") is not None
    )


@dataclass(frozen=True)
class LiveMarket:
    """The live market's id and its zone layout, in zone order."""

    market_id: int
    booths: tuple[tuple[str, str], ...]  # (name, colour) per zone index
    starts: tuple[int, ...]  # first Hilbert code of each zone
    portals: tuple[PortalRegion, ...] = ()  # where visitors go to other markets
    spares: int = 0  # zones beside the booths', serving part of a crowded booth when split

    @property
    def zones(self) -> int:
        """The booths' zones and the spares: every zone number of the market."""
        return len(self.booths) + self.spares

    def portal_leading_to(self, market_id: int) -> PortalRegion | None:
        """This market's portal to `market_id`, where a visitor from there arrives."""
        return next((p for p in self.portals if p.target == market_id), None)

    def layout(self) -> dict[str, Any]:
        """The booth layout as clients receive it (docs/protocol.md §2)."""
        return {
            "version": 1,
            "bounds": [[0.0, 0.0, 0.0], list(MARKET_SIZE_M)],
            "starts": list(self.starts),
            "booths": [
                {"zone": z, "name": name, "colour": colour}
                for z, (name, colour) in enumerate(self.booths)
            ],
            "portals": [
                {"id": p.id, "side": p.side, "rect": list(p.rect_m), "target": p.target}
                for p in self.portals
            ],
        }


_live: LiveMarket | None = None


def live_market_set(live: LiveMarket | None) -> None:
    """Announce the market whose zones now run in this process (None: no longer any)."""
    global _live
    _live = live


def live_market() -> LiveMarket | None:
    """The market whose zones run in this process, or None while none do."""
    return _live
