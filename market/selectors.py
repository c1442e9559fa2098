"""Reads of markets and booths."""

from market.models import Market


def market_for_landing() -> Market | None:
    """The market the landing page presents: the first one created, booths prefetched."""
    return Market.objects.prefetch_related("booths").first()


def market_zone_booths(market: Market) -> list[tuple[str, str]]:
    """(name, colour) of the market's booths in zone order: zone i simulates booth i."""
    return [(b.name, b.colour) for b in market.booths.order_by("zone_index")]
