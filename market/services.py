"""Writes to markets and booths."""

from django.db import transaction

from market.models import Booth, Market

DEMO_MARKET = ("Demo Market", "demo")
DEMO_BOOTHS = (
    ("Loom & Thread", "#e4572e"),
    ("Glass Garden", "#17bebb"),
    ("Pixel Forge", "#ffc914"),
)


@transaction.atomic
def market_demo_ensure() -> Market:
    """The first market, creating the demo market with its three booths if none exists."""
    market = Market.objects.order_by("id").first()
    if market is not None:
        return market
    name, slug = DEMO_MARKET
    market = Market.objects.create(name=name, slug=slug)
    Booth.objects.bulk_create(
        Booth(market=market, name=booth, colour=colour, zone_index=i)
        for i, (booth, colour) in enumerate(DEMO_BOOTHS)
    )
    return market
