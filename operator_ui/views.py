"""The dashboard page: the live market from above, for its operators."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from chunks.models import Placement
from market.live import live_market
from market.models import Market, MarketMap
from operator_ui.access import may_operate
from zones.core.constants import ZONE_CAPACITY


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """The live market of this process; 403 for users who do not operate it."""
    live = live_market()
    if live is None:
        return render(request, "operator_ui/not_live.html", status=503)
    market = Market.objects.filter(pk=live.market_id).first()
    if not may_operate(request.user, live.market_id):
        return render(request, "operator_ui/not_operator.html", {"market": market}, status=403)
    found = MarketMap.objects.filter(market_id=live.market_id).first()
    return render(
        request,
        "operator_ui/dashboard.html",
        {
            "market": market,
            "market_id": live.market_id,
            "capacity": ZONE_CAPACITY,
            "map_config": found.config if found else None,
            # the booths the orbit view furnishes (static/operator_ui/orbit_assets.js)
            "furnished_zones": sorted(
                set(
                    Placement.objects.filter(booth__market_id=live.market_id).values_list(
                        "booth__zone_index", flat=True
                    )
                )
            ),
        },
    )
