"""The join endpoint: `POST /api/markets/<id>/join/` hands out one-time tickets.

A plain Django view rather than DRF: its callers are visitor programs, not
browsers with a session, so there is no cookie to protect with CSRF and no user
to authenticate beyond the optional authKey; the request and answer shapes are
the protocol's own (docs/protocol.md §1). The view parses, asks the ORM and the
ticket module one thing each, and shapes the answer; it never logs the raw key.

Anyone may call it, so what one caller can spend is bounded (market/limits.py): joins
per address, counted before anything else is done; joins per visitor key or resume
token; and new visitor keys per address, since each new key is a database row.
"""

import json
import logging
import math
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from redis import RedisError

from fabric_site.readiness import RETRY_AFTER_S, quiet, readiness
from host.client import host_link
from market.host_calls import HostCallRefused, host_call
from market.limits import RateLimited, limit_spend
from market.live import LiveMarket, live_market
from market.models import Market
from market.services import visitor_identity_for_key
from market.tickets import (
    TICKET_TTL_S,
    TicketError,
    resume_entity,
    ticket_issue,
    visitor_entity_disposable,
    visitor_identity_kind,
)
from market.transfers import (
    character_arrive,
    transfer_accept,
)
from zones.core.constants import MARKET_SIZE_M

logger = logging.getLogger(__name__)

KEY_MIN_CHARS = 16
KEY_MAX_CHARS = 256


class JoinRefused(Exception):
    """A join request answered with an error: its HTTP status, `error` code and detail."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        headers: dict[str, str] | None = None,
        **fields: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}
        self.fields = fields  # more of the answer, for programs (a market's url)

    def response(self) -> JsonResponse:
        response = JsonResponse(
            {"error": self.code, "detail": self.detail, **self.fields}, status=self.status
        )
        for name, value in self.headers.items():
            response[name] = value
        return response


def _rate_limited(limited: RateLimited) -> JoinRefused:
    return JoinRefused(
        429, "rate_limited", limited.detail, headers={"Retry-After": str(limited.retry_after)}
    )


def _spend(scope: str, subject: str, rate_setting: str, what: str) -> None:
    """One event from the budget the setting `rate_setting` gives, or JoinRefused 429."""
    try:
        limit_spend(scope, subject, getattr(settings, rate_setting), what)
    except RateLimited as limited:
        raise _rate_limited(limited) from None


class ServiceUnavailable(JoinRefused):
    """503: a service the market needs is down (fabric_site/readiness.py logs it)."""

    def __init__(self, reason: str) -> None:
        retry = {"Retry-After": str(RETRY_AFTER_S)}
        super().__init__(503, "service_unavailable", reason[:1].upper() + reason[1:] + ".", retry)

    def response(self) -> JsonResponse:
        response = super().response()
        quiet(response)
        return response


def _services_answer() -> None:
    """JoinRefused 503 while a service the market needs is down: a ticket would open no
    socket (fabric_site/readiness.py)."""
    state = readiness()
    if not state.ready:
        raise ServiceUnavailable(state.reason())


def _bad_request(detail: str) -> JoinRefused:
    return JoinRefused(400, "bad_request", detail)


@dataclass(frozen=True)
class JoinRequest:
    """The fields of a join request, each checked for type and range on its own."""

    key: str | None = None
    resume: str | None = None
    booth: int | None = None
    at: tuple[float, float, float] | None = None
    transfer: str | None = None  # a transfer token from another market's portal
    character: dict[str, str] | None = None  # the name and colour the visitor goes by


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _body_object(body: bytes) -> dict[str, Any]:
    """The JSON object of the body; an empty body is an empty object (all fields optional)."""
    if not body.strip():
        return {}
    try:
        fields = json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise _bad_request("The body is not JSON; send a JSON object or nothing.") from error
    if not isinstance(fields, dict):
        raise _bad_request("The body must be a JSON object.")
    return fields


def _key_parse(key: Any) -> str | None:
    if key is not None and not (
        isinstance(key, str) and KEY_MIN_CHARS <= len(key) <= KEY_MAX_CHARS
    ):
        raise _bad_request(
            f"key must be a string of {KEY_MIN_CHARS} to {KEY_MAX_CHARS} characters."
        )
    return key


def _at_parse(at: Any) -> tuple[float, float, float] | None:
    if at is None:
        return None
    shaped = isinstance(at, list) and len(at) == 3
    if not (shaped and all((_is_int(v) or isinstance(v, float)) and math.isfinite(v) for v in at)):
        raise _bad_request("at must be a list of three finite numbers [x, y, z] in metres.")
    if not all(0.0 <= v <= size for v, size in zip(at, MARKET_SIZE_M, strict=True)):
        bounds = " × ".join(f"{size:g}" for size in MARKET_SIZE_M)
        raise _bad_request(f"at {at} is outside the market, which spans 0 to {bounds} m.")
    return (float(at[0]), float(at[1]), float(at[2]))


NAME_MAX_CHARS = 32
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


def _character_parse(fields: dict[str, Any]) -> dict[str, str] | None:
    """The optional `name` and `colour` a visitor goes by, each checked."""
    name, colour = fields.get("name"), fields.get("colour")
    if name is not None and not (
        isinstance(name, str) and 0 < len(name) <= NAME_MAX_CHARS and name.isprintable()
    ):
        raise _bad_request(f"name must be 1 to {NAME_MAX_CHARS} printable characters.")
    if colour is not None and not (isinstance(colour, str) and _COLOUR.fullmatch(colour)):
        raise _bad_request("colour must be #rrggbb, six hexadecimal digits.")
    character = {"name": name, "colour": None if colour is None else colour.lower()}
    return {k: v for k, v in character.items() if v is not None} or None


def join_request_parse(body: bytes) -> JoinRequest:
    """The join request in `body`, or JoinRefused(400 bad_request) saying what is wrong."""
    fields = _body_object(body)
    key, resume, booth = _key_parse(fields.get("key")), fields.get("resume"), fields.get("booth")
    if resume is not None and not isinstance(resume, str):
        raise _bad_request("resume must be the string token from an earlier welcome.")
    if key is not None and resume is not None:
        raise _bad_request("Send key or resume, not both: each names a visitor.")
    if booth is not None and not _is_int(booth):
        raise _bad_request("booth must be an integer zone index.")
    transfer = fields.get("transfer")
    if transfer is not None:
        if not isinstance(transfer, str) or not 0 < len(transfer) <= 4096:
            raise _bad_request("transfer must be the token string from a transfer message.")
        if any(
            fields.get(name) is not None
            for name in ("key", "resume", "booth", "at", "name", "colour")
        ):
            raise _bad_request(
                "Send transfer alone: the token names the visitor and what it goes by, and it"
                " arrives at the portal it came through."
            )
    return JoinRequest(
        key=key,
        resume=resume,
        booth=booth,
        at=_at_parse(fields.get("at")),
        transfer=transfer,
        character=_character_parse(fields),
    )


def _market_live(market_id: int) -> LiveMarket:
    """The live layout of `market_id`, or JoinRefused 404 / 409."""
    if not Market.objects.filter(pk=market_id).exists():
        raise JoinRefused(404, "no_market", f"There is no market {market_id}.")
    live = live_market()
    if live is None or live.market_id != market_id:
        _market_elsewhere(market_id)
        raise JoinRefused(
            409, "market_not_live", f"Market {market_id} exists but no zones run for it here."
        )
    return live


ELSEWHERE_READY_S = 20.0  # how long a join waits for a market its host starts for it


def _market_elsewhere(market_id: int) -> None:
    """Under a host, JoinRefused 409 market_elsewhere with the market's url: the host runs
    it, starting it first if it was not running (a market starts on its first join)."""
    link = host_link()
    if link is None:
        return
    try:
        report = host_call(
            link.market_id,
            f"/markets/{market_id}/start",
            {"wait_ready_s": ELSEWHERE_READY_S},
            timeout=ELSEWHERE_READY_S + 5,
        )
    except HostCallRefused as refused:
        raise JoinRefused(refused.status, refused.code, refused.detail) from None
    if report.get("state") != "ready":
        raise JoinRefused(
            503,
            "market_starting",
            f"Market {market_id} is starting on this host ({report.get('state')}); ask again.",
            headers={"Retry-After": "2"},
        )
    raise JoinRefused(
        409,
        "market_elsewhere",
        f"Market {market_id} is served at {report['url']} on this host: ask there.",
        url=report["url"],
    )


def _booth_check(booth: int | None, live: LiveMarket) -> None:
    if booth is not None and not 0 <= booth < len(live.booths):
        count = len(live.booths)
        raise _bad_request(f"booth {booth} is unknown: the market has {count}, numbered from 0.")


def _join_entity(join: JoinRequest, address: str) -> tuple[int, str]:
    """(entity id, identity kind) of the visitor joining: keyed, resumed or new.

    A keyed or resumed visitor spends from its own budget of joins, whichever address
    it comes from; a key seen for the first time also spends one of the address's new
    keys before its row is written.
    """
    if join.key is not None:

        def new_key_spend() -> None:
            _spend("new-key", address, "FABRIC_NEW_KEYS_PER_ADDRESS", "new keys from this address")

        entity, identity = visitor_identity_for_key(join.key, before_create=new_key_spend), "key"
    elif join.resume is not None:
        try:
            entity = resume_entity(join.resume)
        except TicketError as error:
            raise JoinRefused(400, error.code, error.message) from error
        identity = visitor_identity_kind(entity)
    else:
        return visitor_entity_disposable(), "anon"
    _spend("join-visitor", str(entity), "FABRIC_JOINS_PER_KEY", "joins as this visitor")
    return entity, identity


@csrf_exempt  # an API for programs: no cookies, so nothing for CSRF to protect
def market_join(request: HttpRequest, market_id: int) -> JsonResponse:
    """A one-time ticket to open the visitor socket of a live market."""
    if request.method != "POST":
        refusal = JoinRefused(405, "method_not_allowed", "Ask for a join ticket with POST.")
        response = refusal.response()
        response["Allow"] = "POST"
        return response
    address = request.META.get("REMOTE_ADDR") or "unknown"
    try:
        _spend("join-address", address, "FABRIC_JOINS_PER_ADDRESS", "joins from this address")
        join = join_request_parse(request.body)
        _services_answer()
        live = _market_live(market_id)
        _booth_check(join.booth, live)
        if join.transfer is not None:
            arrival = transfer_accept(token=join.transfer, live=live)
            entity, identity, at = arrival.entity, arrival.identity, arrival.at
            character = arrival.character
        else:
            arrival, at, character = None, join.at, join.character
            entity, identity = _join_entity(join, address)
            if join.key is not None or join.resume is not None:  # a character seen before
                last = character_arrive(market_id=market_id, entity=entity)
                if at is None and join.booth is None:
                    at = last  # it stands where it stood when last seen here
    except JoinRefused as refusal:
        return refusal.response()
    except HostCallRefused as refused:
        return JoinRefused(refused.status, refused.code, refused.detail).response()
    except (RedisError, OSError, DatabaseError):  # a service went down since it was checked
        return ServiceUnavailable(readiness().reason() or "a service is not answering").response()
    ticket = ticket_issue(
        market_id=market_id,
        entity=entity,
        identity=identity,
        booth=join.booth,
        at=at,
        transfer=None if arrival is None else arrival.transfer_id,
        character=character,
    )
    logger.info("join ticket: market %s, entity %s (%s)", market_id, entity, identity)
    answer = {
        "ticket": ticket,
        "expires_in": TICKET_TTL_S,
        "entity": entity,
        "ws": f"/ws/markets/{market_id}/visit/",
    }
    if arrival is not None:
        answer["transfer"] = {"id": arrival.transfer_id, "from": arrival.source}
    return JsonResponse(answer)
