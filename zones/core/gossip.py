"""How a range map travels from zone to zone, with no coordinator.

The choice: **push the whole map**, at once when a zone adopts a newer one and then
once every GOSSIP_EVERY_TICKS to every zone of the market, rather than a periodic
digest (the version) answered by a pull of newer maps.

* A map is at most MAX_ZONES starts and owners, a few hundred bytes: sending it costs
  about what a digest would, so the digest saves nothing, while a pull adds a round
  trip, a request message, and a second message that can be lost.
* Push on change alone is not enough on a network that drops messages: the one push
  of a change can be lost, and a zone that was down when it came never hears it. The
  periodic push repairs both within a period, whoever holds the newest map.
* Receivers adopt only a newer map (`ranges.adopt`), so duplicates, reordering and old
  maps still on their way change nothing, and every view only moves forward.

Peers are every zone of the market, not only those with a range in the map: a spare
zone that a split is about to hand a range to, and a zone a merge retires, must hear
the map that concerns them. A zone's view is always a map that was validated when it
was built (disjoint, covering), so every view is valid at every moment.
"""

from collections.abc import Iterable

from .constants import GOSSIP_EVERY_TICKS
from .messages import Gossip
from .ranges import RangeMap, adopt


class GossipError(ValueError):
    """Gossip asked of a zone with bad arguments; the message says which."""


def gossip_due(*, zone: int, tick: int, adopted: bool) -> bool:
    """Whether `zone` pushes its map this tick: on adopting a newer one, and once a period.

    The periodic pushes of the zones are spread over the period by zone number.
    """
    if zone < 0 or tick < 0:
        raise GossipError(f"zone and tick must be non-negative, got zone={zone}, tick={tick}")
    return adopted or tick % GOSSIP_EVERY_TICKS == zone % GOSSIP_EVERY_TICKS


def gossip_messages(*, zone: int, ranges: RangeMap, peers: Iterable[int], hlc: int) -> list[Gossip]:
    """One Gossip carrying `ranges` from `zone` to each other zone in `peers`."""
    return [
        Gossip(src=zone, dst=peer, hlc=hlc, ranges=ranges)
        for peer in sorted(set(peers))
        if peer != zone
    ]


def gossip_receive(*, view: RangeMap, received: list[RangeMap]) -> RangeMap:
    """The view after taking `received` maps in order: each newer one replaces it."""
    for ranges in received:
        view = adopt(view, ranges)
    return view
