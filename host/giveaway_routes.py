"""The control API's giveaway routes: a booth's limited items, claimed one a visitor.

    POST /giveaways                       offer N items at a booth of a market
    GET  /giveaways/{giveaway_id}         how many are claimed and left
    POST /giveaways/{giveaway_id}/claim   a visitor standing in that booth claims one

A claim is durable (with its critical event) before the answer leaves, so a visitor told
"item 3 is yours" keeps item 3 whatever crashes next; asking again with the same claim
id, or as the same character, answers the same item.
"""

import asyncio
import time
from typing import Any

from host.control import ControlApp, ControlRefusal, ControlRequest, body_whole
from host.giveaways import (
    GiveawayExhausted,
    GiveawayUnknown,
    giveaway_claim,
    giveaway_create,
    giveaway_state,
)
from host.persistence import GameStore, PersistenceError


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _text(body: Any, name: str) -> str:
    value = body.get(name) if isinstance(body, dict) else None
    if not isinstance(value, str) or not value:
        raise ControlRefusal(400, f"{name} must be a non-empty string", "bad_request")
    return value


def _refusal(error: PersistenceError) -> ControlRefusal:
    if isinstance(error, GiveawayUnknown):
        return ControlRefusal(404, str(error), "giveaway_unknown")
    if isinstance(error, GiveawayExhausted):
        return ControlRefusal(409, str(error), "giveaway_exhausted")
    return ControlRefusal(400, str(error), "bad_request")


class GiveawayRoutes:
    """The giveaway routes over the host's one game store."""

    def __init__(self, *, store: GameStore) -> None:
        self.store = store

    def routes_add(self, app: ControlApp) -> None:
        app.route_add("POST", "/giveaways", self._create)
        app.route_add("GET", "/giveaways/{giveaway_id}", self._state)
        app.route_add("POST", "/giveaways/{giveaway_id}/claim", self._claim)

    async def _create(self, request: ControlRequest) -> dict[str, Any]:
        body = request.body
        giveaway_id = _text(body, "giveaway_id")
        market, booth, items = (
            body_whole(body, "market_id"),
            body_whole(body, "booth"),
            body_whole(body, "items"),
        )
        try:
            created = await asyncio.to_thread(
                giveaway_create,
                self.store,
                giveaway_id=giveaway_id,
                market_id=market,
                booth=str(booth),
                items=items,
                at_ms=_now_ms(),
            )
        except PersistenceError as error:
            raise _refusal(error) from None
        return {"giveaway_id": giveaway_id, "created": created, **await self._figures(giveaway_id)}

    async def _state(self, request: ControlRequest) -> dict[str, Any]:
        return {
            "giveaway_id": request.params["giveaway_id"],
            **await self._figures(request.params["giveaway_id"]),
        }

    async def _figures(self, giveaway_id: str) -> dict[str, Any]:
        try:
            state = await asyncio.to_thread(giveaway_state, self.store, giveaway_id=giveaway_id)
        except PersistenceError as error:
            raise _refusal(error) from None
        return {
            "market_id": state.market_id,
            "booth": int(state.booth),
            "items": state.items,
            "claimed": state.claimed,
            "remaining": state.remaining,
        }

    async def _claim(self, request: ControlRequest) -> dict[str, Any]:
        giveaway_id, body = request.params["giveaway_id"], request.body
        character, claim = _text(body, "character_id"), _text(body, "claim_id")
        market, booth = body_whole(body, "market_id"), body_whole(body, "booth")
        offered = await self._figures(giveaway_id)
        if (offered["market_id"], offered["booth"]) != (market, booth):
            raise ControlRefusal(
                409,
                f"giveaway {giveaway_id!r} is offered at booth {offered['booth']} of market"
                f" {offered['market_id']}: stand there to claim it",
                "not_here",
            )
        try:
            won = await asyncio.to_thread(
                giveaway_claim,
                self.store,
                giveaway_id=giveaway_id,
                character_id=character,
                claim_id=claim,
                at_ms=_now_ms(),
            )
        except PersistenceError as error:
            raise _refusal(error) from None
        return {"giveaway_id": giveaway_id, "claim_id": won.claim_id, "item": won.item}
