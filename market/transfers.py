"""A market process's side of transfers through portals (docs/host.md).

The orchestrator decides every step and records it before it answers; a market
process only asks it and does what the answer says:

- the source, when its visitor steps into a portal: `transfer_request` gets the
  one-time token that the visitor's socket hands to the client;
- the destination, when the client joins with that token: `transfer_accept` gets the
  character to spawn (the orchestrator has the source release it first), and, once
  the visitor's welcome is out, `transfer_complete`;
- the source again, when the orchestrator asks it to release a character: the
  visitor's socket closes with CLOSE_TRANSFERRED and its entity leaves the market.
"""

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from host.client import host_link
from market.host_calls import host_call
from market.live import LiveMarket, PortalRegion
from zones.gateway import gateway_for

TRANSFER_REQUEST_TIMEOUT_S = 40.0  # the host may start the destination first (up to 30 s)
RELEASE_CLOSE_S = 1.0  # the longest a release waits for the visitor's socket to say goodbye

CLOSE_TRANSFERRED = 4310  # 4409 is a newer socket of the same visitor


@dataclass(frozen=True)
class Accepted:
    """A transfer the orchestrator let into this market: who arrives, from where, and where."""

    transfer_id: str
    entity: int
    identity: str  # "key" or "anon", as in the source market
    source: int
    at: tuple[float, float, float] | None  # beside the portal from the source, if any
    character: dict[str, Any] | None  # what it goes by and carries, as the source gave it


def transfer_request(
    *,
    market_id: int,
    entity: int,
    identity: str,
    portal: PortalRegion,
    character: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The orchestrator's transfer of `entity` through `portal`: token, url, expiry."""
    answer = host_call(
        market_id,
        "/transfers",
        {
            "character_id": str(entity),
            "source": market_id,
            "destination": portal.target,
            "state": {"entity": entity, "identity": identity, "character": character or {}},
        },
        timeout=TRANSFER_REQUEST_TIMEOUT_S,
    )
    return {
        "type": "transfer",
        "transfer_id": answer["transfer_id"],
        "token": answer["token"],
        "market": portal.target,
        "url": answer["url"],
        "expires_in_ms": answer["expires_in_ms"],
        "portal": portal.id,
    }


def transfer_accept(*, token: str, live: LiveMarket) -> Accepted:
    """The character a transfer token brings into `live`, once the source released it."""
    answer = host_call(
        live.market_id,
        "/transfers/accept",
        {"token": token, "destination": live.market_id, "instance_id": 0},
    )
    state, source = answer["state"], int(answer["source"])
    arrival = live.portal_leading_to(source)
    return Accepted(
        transfer_id=str(answer["transfer_id"]),
        entity=int(state["entity"]),
        identity=str(state["identity"]),
        source=source,
        at=None if arrival is None else arrival.arrival(),
        character=state.get("character") or None,
    )


async def transfer_release(*, live: LiveMarket, entity: int) -> bool:
    """Let go of `entity`: its socket here closes CLOSE_TRANSFERRED, its entity leaves.

    True if its socket was in this process. Leaving is sent to its zone either way, so
    an entity waiting for a client that already went through the portal goes too.
    """
    gateway = gateway_for(live)
    link = gateway.links.get(entity)
    if link is not None:
        # a slow socket must not hold the release past the orchestrator's patience
        with contextlib.suppress(Exception):
            await asyncio.wait_for(link.sink.transferred(), RELEASE_CLOSE_S)
    gateway.leave(entity)
    return link is not None


def character_arrive(*, market_id: int, entity: int) -> tuple[float, float, float] | None:
    """Tell the host a character joins this market directly (its key or a resume token);
    where it stood when last seen here, if it was.

    Under a host, the market the book placed it in lets it go first, so it is never live
    in two markets; on its own, a market has nobody to tell.
    """
    link = host_link()
    if link is None or link.market_id != market_id:
        return None
    answer = host_call(market_id, f"/characters/{entity}/arrive", {"market": market_id})
    last = answer.get("last") if isinstance(answer, dict) else None
    if not isinstance(last, dict) or last.get("market") != market_id:
        return None
    pos = last.get("pos")
    if not (
        isinstance(pos, list) and len(pos) == 3 and all(isinstance(v, int | float) for v in pos)
    ):
        return None
    return (float(pos[0]), float(pos[1]), float(pos[2]))


def transfer_complete(*, market_id: int, transfer_id: str) -> None:
    """Tell the orchestrator the character is live here: the transfer is complete."""
    host_call(market_id, "/transfers/complete", {"transfer_id": transfer_id})
