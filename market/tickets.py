"""One-time join tickets and resume tokens: who may open a visitor socket.

The join endpoint knows the visitor (its authKey, the database); the socket does
not, and must not touch the ORM inside async code. So the endpoint writes what it
decided into a ticket, signs it, and the socket only has to check the signature,
the 10 s lifetime, the market, and that the ticket was not used before: a ticket
copied from a log or a URL opens no second socket (docs/protocol.md §1).

Tokens are `<b64url(json payload)>.<b64url(HMAC-SHA256)>`. Each kind of token
has its own key, derived from SECRET_KEY with a purpose string, so a resume token
can never pass as a ticket nor the reverse.

A resume token is `<entity>.<expiry, unix s>.<b64url(HMAC-SHA256)>` and lives
RESUME_TTL_S. The visitor socket gives a fresh one in its welcome and again every
RESUME_REFRESH_S while it stays open, so whenever a socket drops its visitor holds
a token good for at least RESUME_TTL_S − RESUME_REFRESH_S: longer than the 30 s
its entity waits in the market and the 120 s its last input is remembered. A
leaked or forgotten token opens nothing after that.

Entity ids tell NPCs and visitors apart by range: below VISITOR_ID_BASE are
NPCs, [VISITOR_ID_BASE, DISPOSABLE_ID_MIN) are visitors with a key (one per
VisitorIdentity row), [DISPOSABLE_ID_MIN, DISPOSABLE_ID_END) disposable ones.
"""

import base64
import binascii
import hmac
import json
import math
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.utils.crypto import salted_hmac

TICKET_TTL_S = 10
REPLAY_MEMORY_S = TICKET_TTL_S + 5
"""How long a used ticket's nonce is remembered: as long as the ticket verifies,
plus a margin for clocks that differ between the web processes."""

RESUME_TTL_S = 600
RESUME_REFRESH_S = RESUME_TTL_S // 2

TICKET_PURPOSE = "fabric.join-ticket"
RESUME_PURPOSE = "fabric.resume-token"
IDENTITIES = ("key", "anon")

VISITOR_ID_BASE = 1 << 40
DISPOSABLE_ID_MIN = 1 << 41
DISPOSABLE_ID_END = 1 << 62
"""Exclusive: every visitor id fits a signed 64-bit integer, so the database, the
u64 wire rows and numpy int64 arrays all hold it unchanged."""

# A SHA-256 digest is 43 unpadded base64 characters; a payload is far below 1 KiB.
# Checking the shape first means no decoder ever sees input we did not expect.
_TICKET_SHAPE = re.compile(r"([A-Za-z0-9_-]{1,1024})\.([A-Za-z0-9_-]{43})")
_RESUME_SHAPE = re.compile(r"([1-9][0-9]{0,18}\.[1-9][0-9]{0,11})\.([A-Za-z0-9_-]{43})")

CLOSE_CODES = {
    "ticket_malformed": 4401,
    "ticket_forged": 4401,
    "ticket_expired": 4402,
    "ticket_replayed": 4403,
    "ticket_wrong_market": 4404,
    "bad_resume": 4401,
    "resume_expired": 4402,
}
MESSAGES = {
    "ticket_malformed": "This is not a join ticket; ask POST /api/markets/<id>/join/ for one.",
    "ticket_forged": "The ticket's signature does not match: it was altered or not issued here.",
    "ticket_expired": f"The ticket has expired (tickets live {TICKET_TTL_S} s); ask for a new one.",
    "ticket_replayed": "The ticket was already used: each ticket opens one socket; ask for another.",
    "ticket_wrong_market": "The ticket was issued for another market.",
    "bad_resume": "The resume token was altered or not issued by this server.",
    "resume_expired": (
        f"The resume token has expired (resume tokens live {RESUME_TTL_S} s, and an open"
        " socket sends fresh ones); join with your key, or as a new visitor."
    ),
}


class TicketError(Exception):
    """A ticket or resume token refused: `code` for programs, `message` for people.

    `close_code` is the websocket close code the protocol gives the refusal (§4).
    """

    def __init__(self, code: str, message: str | None = None) -> None:
        self.code = code
        self.message = message or MESSAGES[code]
        self.close_code = CLOSE_CODES[code]
        super().__init__(self.message)


@dataclass(frozen=True)
class TicketClaims:
    """What the join endpoint decided, as the socket reads it back from a ticket."""

    market_id: int
    entity: int
    identity: str  # "key" or "anon"
    booth: int | None
    at: tuple[float, float, float] | None
    nonce: str
    expires_ms: int
    transfer: str | None = None  # the transfer through a portal this join completes
    character: dict[str, Any] | None = None  # name and colour the visitor goes by, if any


def _now_ms(now_ms: int | None) -> int:
    return time.time_ns() // 1_000_000 if now_ms is None else now_ms


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(purpose: str, text: str) -> str:
    """The HMAC-SHA256 of `text` under the key for `purpose`, base64url-encoded.

    Comparing encoded text (rather than decoded bytes) keeps one valid spelling
    per token: base64 has spare bits that would otherwise admit variants.
    """
    return _b64encode(salted_hmac(purpose, text, algorithm="sha256").digest())


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def ticket_issue(
    *,
    market_id: int,
    entity: int,
    identity: str,
    booth: int | None = None,
    at: tuple[float, float, float] | list[float] | None = None,
    transfer: str | None = None,
    character: dict[str, Any] | None = None,
    now_ms: int | None = None,
) -> str:
    """A signed ticket for one socket to `market_id` as `entity`, good for TICKET_TTL_S.

    `transfer` names the transfer through a portal that this join completes.
    """
    if identity not in IDENTITIES:
        raise ValueError(f"identity must be one of {IDENTITIES}, not {identity!r}")
    claims = {
        "m": market_id,
        "e": entity,
        "i": identity,
        "b": booth,
        "a": None if at is None else [float(v) for v in at],
        "n": secrets.token_urlsafe(16),
        "x": _now_ms(now_ms) + TICKET_TTL_S * 1000,
    }
    if transfer is not None:
        claims["t"] = transfer
    if character:
        claims["c"] = character
    payload = _b64encode(json.dumps(claims, separators=(",", ":"), allow_nan=False).encode())
    return f"{payload}.{_signature(TICKET_PURPOSE, payload)}"


def _claims_parse(payload: str) -> TicketClaims:
    """The claims of a payload already known to be signed by us, or ticket_malformed."""
    try:
        claims = json.loads(_b64decode(payload))
    except (binascii.Error, ValueError) as error:  # ValueError covers JSON and UTF-8
        raise TicketError("ticket_malformed") from error
    if not isinstance(claims, dict):
        raise TicketError("ticket_malformed")
    at = claims.get("a")
    well_formed = (
        all(_is_int(claims.get(name)) for name in ("m", "e", "x"))
        and claims.get("i") in IDENTITIES
        and (claims.get("b") is None or _is_int(claims.get("b")))
        and (at is None or (isinstance(at, list) and len(at) == 3 and all(map(_is_number, at))))
        and isinstance(claims.get("n"), str)
        and (claims.get("t") is None or isinstance(claims.get("t"), str))
        and (claims.get("c") is None or isinstance(claims.get("c"), dict))
    )
    if not well_formed:
        raise TicketError("ticket_malformed")
    return TicketClaims(
        market_id=claims["m"],
        entity=claims["e"],
        identity=claims["i"],
        booth=claims["b"],
        at=None if at is None else (float(at[0]), float(at[1]), float(at[2])),
        nonce=claims["n"],
        expires_ms=claims["x"],
        transfer=claims.get("t"),
        character=claims.get("c"),
    )


def ticket_verify(token: str, market_id: int, now_ms: int | None = None) -> TicketClaims:
    """The claims of a genuine, unexpired ticket for `market_id`; does not check replay."""
    match = _TICKET_SHAPE.fullmatch(token) if isinstance(token, str) else None
    if match is None:
        raise TicketError("ticket_malformed")
    payload, signature = match.groups()
    if not hmac.compare_digest(signature, _signature(TICKET_PURPOSE, payload)):
        raise TicketError("ticket_forged")
    claims = _claims_parse(payload)
    if _now_ms(now_ms) > claims.expires_ms:
        raise TicketError("ticket_expired")
    if claims.market_id != market_id:
        raise TicketError("ticket_wrong_market")
    return claims


def _replay_key(nonce: str) -> str:
    return f"join-ticket:{nonce}"


def ticket_redeem(token: str, market_id: int, now_ms: int | None = None) -> TicketClaims:
    """ticket_verify, then mark the ticket used: a second redeem raises ticket_replayed.

    `cache.add` is atomic in every backend we use (Redis SET NX), so of two
    sockets racing with one ticket exactly one gets in.
    """
    claims = ticket_verify(token, market_id, now_ms)
    if not cache.add(_replay_key(claims.nonce), 1, timeout=REPLAY_MEMORY_S):
        raise TicketError("ticket_replayed")
    return claims


async def aticket_redeem(token: str, market_id: int, now_ms: int | None = None) -> TicketClaims:
    """ticket_redeem for async callers (the visitor consumer)."""
    claims = ticket_verify(token, market_id, now_ms)
    if not await cache.aadd(_replay_key(claims.nonce), 1, timeout=REPLAY_MEMORY_S):
        raise TicketError("ticket_replayed")
    return claims


def resume_token(entity: int, now_ms: int | None = None) -> str:
    """A token that lets whoever holds it rejoin as the visitor `entity`, for RESUME_TTL_S."""
    if not VISITOR_ID_BASE <= entity < DISPOSABLE_ID_END:
        raise ValueError(f"{entity} is not a visitor's entity id")
    text = f"{entity}.{_now_ms(now_ms) // 1000 + RESUME_TTL_S}"
    return f"{text}.{_signature(RESUME_PURPOSE, text)}"


def resume_entity(token: str, now_ms: int | None = None) -> int:
    """The visitor entity a resume token names; TicketError "bad_resume" for a token not
    issued here, "resume_expired" for one older than RESUME_TTL_S."""
    match = _RESUME_SHAPE.fullmatch(token) if isinstance(token, str) else None
    if match is None:
        raise TicketError("bad_resume")
    text, signature = match.groups()
    if not hmac.compare_digest(signature, _signature(RESUME_PURPOSE, text)):
        raise TicketError("bad_resume")
    entity, expires_s = (int(part) for part in text.split("."))
    if not VISITOR_ID_BASE <= entity < DISPOSABLE_ID_END:
        raise TicketError("bad_resume")
    if _now_ms(now_ms) > expires_s * 1000:
        raise TicketError("resume_expired")
    return entity


def visitor_entity_keyed(identity_pk: int) -> int:
    """The entity id of the visitor whose VisitorIdentity has primary key `identity_pk`."""
    if not 0 < identity_pk < DISPOSABLE_ID_MIN - VISITOR_ID_BASE:
        raise ValueError(f"identity {identity_pk} has no entity id in the keyed range")
    return VISITOR_ID_BASE + identity_pk


def visitor_entity_disposable() -> int:
    """A fresh random entity id for a visitor without a key.

    2^62 - 2^41 ids make a collision among even a million live visitors
    unlikely to the order of 1e-7, so no registry of used ids is kept.
    """
    return DISPOSABLE_ID_MIN + secrets.randbelow(DISPOSABLE_ID_END - DISPOSABLE_ID_MIN)


def visitor_identity_kind(entity: int) -> str:
    """ "key" for a keyed visitor's entity id, "anon" for a disposable one."""
    return "key" if entity < DISPOSABLE_ID_MIN else "anon"
