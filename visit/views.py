"""The visitor page, `/visit/<market>/`: the market as a visitor sees it, in the browser.

The page is a visitor like any program speaking docs/protocol.md (static/visit/protocol.js
is its JavaScript implementation): it asks for a join ticket, opens the visitor socket and
walks. This view hands it the market's floor from above (the columns each booth owns, as
the dashboard draws them); everything else comes over the socket and the chunk API.
"""

import numpy as np
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from market.live import live_market
from market.models import Market
from zones.core.ranges import RangeMap, column_booths


def visit_page(request: HttpRequest, market_id: int) -> HttpResponse:
    """The visitor page of the market live in this process; 404 with why for any other."""
    live = live_market()
    if live is None or live.market_id != market_id:
        return render(request, "visit/not_live.html", {"market_id": market_id}, status=404)
    grid = column_booths(RangeMap(starts=np.array(live.starts, dtype=np.int64)))
    return render(
        request,
        "visit/visit.html",
        {
            "market": Market.objects.filter(pk=market_id).first(),
            "visit": {
                "market": market_id,
                "plan": {
                    "layout": live.layout(),
                    "columns": {"count": int(grid.shape[0]), "booth": grid.tolist()},
                },
            },
        },
    )
