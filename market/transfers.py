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

from dataclasses import dataclass
from typing import Any

from host.client import HostLink, HostRefused, HostUnavailable, host_link
from market.live import LiveMarket, PortalRegion
from zones.gateway import gateway_for

CLOSE_TRANSFERRED = 4310  # 4409 is a newer socket of the same visitor


class TransferUnavailable(Exception):
    """No transfer here: `status` and `code` for the answer, `detail` for people."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


@dataclass(frozen=True)
class Accepted:
    """A transfer the orchestrator let into this market: who arrives, from where, and where."""

    transfer_id: str
    entity: int
    identity: str  # "key" or "anon", as in the source market
    source: int
    at: tuple[float, float, float] | None  # beside the portal from the source, if any


def _link_for(market_id: int) -> HostLink:
    link = host_link()
    if link is None or link.market_id != market_id:
        raise TransferUnavailable(
            409,
            "no_host",
            f"Market {market_id} runs on its own here, not under a host's orchestrator:"
            " its portals lead nowhere.",
        )
    return link


def _call(link: HostLink, path: str, body: dict[str, Any]) -> Any:
    try:
        return link.call("POST", path, body)
    except HostRefused as refused:
        raise TransferUnavailable(refused.status, refused.reason, refused.message) from None
    except HostUnavailable as error:
        raise TransferUnavailable(503, "host_unavailable", str(error)) from None


def transfer_request(
    *, market_id: int, entity: int, identity: str, portal: PortalRegion
) -> dict[str, Any]:
    """The orchestrator's transfer of `entity` through `portal`: token, url, expiry."""
    link = _link_for(market_id)
    answer = _call(
        link,
        "/transfers",
        {
            "character_id": str(entity),
            "source": market_id,
            "destination": portal.target,
            "state": {"entity": entity, "identity": identity},
        },
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
    link = _link_for(live.market_id)
    answer = _call(
        link, "/transfers/accept", {"token": token, "destination": live.market_id, "instance_id": 0}
    )
    state, source = answer["state"], int(answer["source"])
    arrival = live.portal_leading_to(source)
    return Accepted(
        transfer_id=str(answer["transfer_id"]),
        entity=int(state["entity"]),
        identity=str(state["identity"]),
        source=source,
        at=None if arrival is None else arrival.arrival(),
    )


async def transfer_release(*, live: LiveMarket, entity: int) -> bool:
    """Let go of `entity`: its socket here closes CLOSE_TRANSFERRED, its entity leaves.

    True if its socket was in this process. Leaving is sent to its zone either way, so
    an entity waiting for a client that already went through the portal goes too.
    """
    gateway = gateway_for(live)
    link = gateway.links.get(entity)
    if link is not None:
        await link.sink.transferred()
    gateway.leave(entity)
    return link is not None


def character_arrive(*, market_id: int, entity: int) -> None:
    """Tell the host a character joins this market directly (its key or a resume token).

    Under a host, the market the book placed it in lets it go first, so it is never live
    in two markets; on its own, a market has nobody to tell.
    """
    link = host_link()
    if link is not None and link.market_id == market_id:
        _call(link, f"/characters/{entity}/arrive", {"market": market_id})


def transfer_complete(*, market_id: int, transfer_id: str) -> None:
    """Tell the orchestrator the character is live here: the transfer is complete."""
    _call(_link_for(market_id), "/transfers/complete", {"transfer_id": transfer_id})
