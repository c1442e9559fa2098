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
class LiveMarket:
    """The live market's id and its zone layout, in zone order."""

    market_id: int
    booths: tuple[tuple[str, str], ...]  # (name, colour) per zone index
    starts: tuple[int, ...]  # first Hilbert code of each zone

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
        }


_live: LiveMarket | None = None


def live_market_set(live: LiveMarket | None) -> None:
    """Announce the market whose zones now run in this process (None: no longer any)."""
    global _live
    _live = live


def live_market() -> LiveMarket | None:
    """The market whose zones run in this process, or None while none do."""
    return _live
