"""Reads of markets and booths."""

from market.models import Market


def market_for_landing() -> Market | None:
    """The market the landing page presents: the first one created, booths prefetched."""
    return Market.objects.prefetch_related("booths").first()
