"""Pages of the market app."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from market.selectors import market_for_landing


def landing(request: HttpRequest) -> HttpResponse:
    """What Fabric Market is, the market's booths, and the live zone table."""
    market = market_for_landing()
    booths = list(market.booths.all()) if market else []
    return render(request, "market/landing.html", {"market": market, "booths": booths})
