"""What a market process answers its host's orchestrator, and nobody else.

`POST /api/markets/<id>/host/release/` lets a character go: the orchestrator asks it of
the market a visitor leaves through a portal (or by joining another market of the host
directly), once the destination has accepted it. Only loopback callers holding the
host's secret are answered.
"""

import hmac
import json

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from host.client import SECRET_HEADER, host_link
from host.control import address_is_loopback
from market.api import JoinRefused
from market.live import live_market
from market.transfers import transfer_release


def _from_orchestrator(request: HttpRequest) -> bool:
    """The request comes from this host's orchestrator: over loopback, with its secret."""
    link = host_link()
    address = request.META.get("REMOTE_ADDR") or ""
    secret = request.headers.get(SECRET_HEADER, "")
    loopback = address_is_loopback(address)
    return bool(
        link is not None and loopback and hmac.compare_digest(secret.encode(), link.secret.encode())
    )


@csrf_exempt  # called by the orchestrator with its secret, never by a browser
async def host_release(request: HttpRequest, market_id: int) -> JsonResponse:
    """The orchestrator releases a character that went through a portal to another market."""
    if request.method != "POST":
        return JoinRefused(405, "method_not_allowed", "Release with POST.").response()
    if not _from_orchestrator(request):
        return JoinRefused(
            403, "forbidden", "Only this host's orchestrator releases characters."
        ).response()
    live = live_market()
    if live is None or live.market_id != market_id:
        return JoinRefused(
            409, "market_not_live", f"Market {market_id} is not live here."
        ).response()
    try:
        entity = int(json.loads(request.body)["character_id"])
    except (ValueError, KeyError, TypeError):
        return JoinRefused(400, "bad_request", 'Send {"character_id": "<entity id>"}.').response()
    was_here = await transfer_release(live=live, entity=entity)
    return JsonResponse({"released": True, "socket_here": was_here})
