"""The booth editor page: a booth's floor from above, its assets, their placements.

The page reads and writes through the chunk store's API (the booth's manifest,
`/shards/<booth>/layout`); this view hands it only what it needs before its first
request: the booth, and the floor columns of every booth of the market, which is the
map the dashboard draws.
"""

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from chunks.layouts import booth_columns, booth_may_arrange
from market.models import Booth
from zones.core.constants import MARKET_SIZE_M


def floor_plan(booth: Booth) -> dict[str, Any]:
    """The market's booths from above, shaped like the dashboard feed's hello."""
    booths = Booth.objects.filter(market_id=booth.market_id).order_by("zone_index")
    grid = booth_columns(booth)
    return {
        "layout": {
            "bounds": [[0.0, 0.0, 0.0], list(MARKET_SIZE_M)],
            "booths": [{"zone": b.zone_index, "name": b.name, "colour": b.colour} for b in booths],
        },
        "columns": {"count": int(grid.shape[0]), "booth": grid.tolist()},
    }


@login_required
@ensure_csrf_cookie  # the page's script sends the cookie's token with every publish
def booth_arrange(request: HttpRequest, booth_id: int) -> HttpResponse:
    """The editor of one booth, for its creator; 403 (with why) for anyone else."""
    booth = Booth.objects.filter(pk=booth_id).select_related("market").first()
    if booth is None or not booth_may_arrange(request.user, booth):
        return render(request, "booth_editor/not_creator.html", {"booth_id": booth_id}, status=403)
    return render(
        request,
        "booth_editor/arrange.html",
        {
            "booth": booth,
            "editor": {
                "booth": booth.pk,
                "zone": booth.zone_index,
                "name": booth.name,
                "colour": booth.colour,
                "market": booth.market_id,
                "plan": floor_plan(booth),
            },
        },
    )
