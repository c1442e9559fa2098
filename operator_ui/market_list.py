"""`/dashboard/markets/`: every market of this site, and, on a host, how each one runs.

A market process started by a host's orchestrator (`manage.py runhost`) asks the
orchestrator for its health report and shows each market's state, address, restarts and
visitors beside the database's list; an operator can start a market the host is not
running yet (one created since, on `/dashboard/markets/new/`). A market running on its
own shows the list alone and says so.
"""

from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from host.client import HostRefused, HostUnavailable, host_link
from market.models import Market, MarketMap
from operator_ui.markets import may_create_markets


def host_report() -> tuple[dict[int, dict[str, Any]] | None, str]:
    """Each market's report from this host's orchestrator (None when there is none) and
    why it is missing, if it is."""
    link = host_link()
    if link is None:
        return None, "This market runs on its own, not under a host's orchestrator."
    try:
        health = link.call("GET", "/health")
    except (HostRefused, HostUnavailable) as error:
        return None, f"The host's orchestrator did not answer: {error}"
    return {int(m["market_id"]): m for m in health["markets"]}, ""


@login_required
def market_list(request: HttpRequest) -> HttpResponse:
    """Every market, with the host's report of each when there is a host."""
    if not may_create_markets(request.user):
        return render(request, "operator_ui/not_operator.html", {"market": None}, status=403)
    reports, missing = host_report()
    generated = set(MarketMap.objects.values_list("market_id", flat=True))
    rows = [
        {
            "market": market,
            "booths": market.booths.count(),
            "generated": market.pk in generated,
            "host": None if reports is None else reports.get(market.pk),
        }
        for market in Market.objects.order_by("pk")
    ]
    return render(
        request,
        "operator_ui/market_list.html",
        {
            "rows": rows,
            "on_host": reports is not None,
            "missing": missing,
            "error": request.GET.get("error", ""),
        },
    )


@login_required
@require_POST
def market_start(request: HttpRequest, market_id: int) -> HttpResponse:
    """Ask the host to start a market (one it does not run yet joins it)."""
    if not may_create_markets(request.user):
        return render(request, "operator_ui/not_operator.html", {"market": None}, status=403)
    link = host_link()
    error = "This market runs on its own: there is no host to start markets on."
    if link is not None:
        try:
            link.call("POST", f"/markets/{market_id}/start", {})
            error = ""
        except (HostRefused, HostUnavailable) as refused:
            error = str(refused)
    response = redirect("market-list")
    if error:
        response["Location"] += "?" + urlencode({"error": error})
    return response
