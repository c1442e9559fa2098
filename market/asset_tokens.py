"""Asset tokens: how a visitor shows the chunk API who it is, without a password.

A visitor joins with an authKey (or as a disposable session) and holds a socket; it
has no Django user and no password. The socket's welcome gives it an asset token, a
bearer credential for `Authorization: Bearer <token>` on the chunk and manifest
endpoints, and sends a fresh one every ASSET_TOKEN_REFRESH_S while it stays open
(docs/protocol.md). A token is

    <market id>.<entity id>.<expiry, unix s>.<hex HMAC-SHA256>

signed under a key derived from SECRET_KEY for this purpose alone, so neither a join
ticket nor a resume token can pass as one. It is bound to the market and the
identity: the principal it proves is `visitor:<market>-<entity>`, which holds only
what the market granted that visitor in that market (market/booth_visitors.py). It
lives ASSET_TOKEN_TTL_S, so a visitor whose socket is gone stops being able to use
it within that time; checking one costs an HMAC, not a password hash.
"""

import hmac
import re
import time
from dataclasses import dataclass

from django.utils.crypto import salted_hmac

ASSET_TOKEN_TTL_S = 120
ASSET_TOKEN_REFRESH_S = ASSET_TOKEN_TTL_S // 2
"""A token is renewed halfway through its life, so an open socket's visitor always
holds one good for at least ASSET_TOKEN_TTL_S − ASSET_TOKEN_REFRESH_S."""
ASSET_TOKEN_PURPOSE = "fabric.asset-token"
VISITOR_TYPE = "visitor"

_SHAPE = re.compile(r"([1-9][0-9]{0,9})\.([1-9][0-9]{0,19})\.([1-9][0-9]{0,11})\.([0-9a-f]{64})")

MESSAGES = {
    "token_malformed": "This is not an asset token; the visitor socket's welcome gives one.",
    "token_forged": "The asset token was altered or not issued by this market.",
    "token_expired": (
        f"The asset token has expired (tokens live {ASSET_TOKEN_TTL_S} s; an open visitor"
        " socket sends fresh ones)."
    ),
}


class AssetTokenError(ValueError):
    """A token refused: `code` is a key of MESSAGES."""

    def __init__(self, code: str) -> None:
        super().__init__(MESSAGES[code])
        self.code = code
        self.message = MESSAGES[code]


@dataclass(frozen=True)
class AssetTokenClaims:
    """Who a valid token speaks for."""

    market_id: int
    entity: int
    expires_s: int

    @property
    def subject(self) -> str:
        return visitor_subject(self.market_id, self.entity)


def visitor_subject(market_id: int, entity: int) -> str:
    """The relation engine's subject for visitor `entity` in market `market_id`.

    The market is part of the id: a visitor is a visitor of booths in one market only,
    even where entity ids of two markets coincide.
    """
    return f"{VISITOR_TYPE}:{market_id}-{entity}"


def _signature(text: str) -> str:
    return salted_hmac(ASSET_TOKEN_PURPOSE, text, algorithm="sha256").hexdigest()


def asset_token_issue(market_id: int, entity: int, now_s: float | None = None) -> str:
    """A token for visitor `entity` of market `market_id`, good for ASSET_TOKEN_TTL_S."""
    if market_id < 1 or entity < 1:
        raise ValueError(f"market {market_id} and entity {entity} must be positive ids")
    now = time.time() if now_s is None else now_s
    text = f"{market_id}.{entity}.{int(now) + ASSET_TOKEN_TTL_S}"
    return f"{text}.{_signature(text)}"


def asset_token_verify(token: str, now_s: float | None = None) -> AssetTokenClaims:
    """The claims of a token this market issued and that has not expired; else
    AssetTokenError ("token_malformed", "token_forged", "token_expired")."""
    match = _SHAPE.fullmatch(token) if isinstance(token, str) else None
    if match is None:
        raise AssetTokenError("token_malformed")
    market, entity, expires, signature = match.groups()
    if not hmac.compare_digest(signature, _signature(f"{market}.{entity}.{expires}")):
        raise AssetTokenError("token_forged")
    now = time.time() if now_s is None else now_s
    if now >= int(expires):
        raise AssetTokenError("token_expired")
    return AssetTokenClaims(market_id=int(market), entity=int(entity), expires_s=int(expires))
