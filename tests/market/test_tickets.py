"""Join tickets verify only as issued, for 10 s, for one market, once; resume tokens likewise."""

import asyncio
import base64
import json
import uuid

import pytest
import redis
from django.core.cache import cache
from django.test import override_settings

from market import tickets
from market.tickets import (
    DISPOSABLE_ID_END,
    DISPOSABLE_ID_MIN,
    RESUME_PURPOSE,
    RESUME_TTL_S,
    TICKET_PURPOSE,
    TICKET_TTL_S,
    VISITOR_ID_BASE,
    TicketClaims,
    TicketError,
    aticket_redeem,
    resume_entity,
    resume_token,
    ticket_issue,
    ticket_redeem,
    ticket_verify,
    visitor_entity_disposable,
    visitor_entity_keyed,
    visitor_identity_kind,
)
from tests.subprocesses import embedded_environment, run_python

NOW_MS = 1_795_000_000_000
MARKET = 7
ENTITY = VISITOR_ID_BASE + 42


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()
    yield
    cache.clear()


def issue(**overrides):
    fields = {"market_id": MARKET, "entity": ENTITY, "identity": "key", "now_ms": NOW_MS}
    return ticket_issue(**{**fields, **overrides})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def payload_of(token: str) -> dict:
    text = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


def signed(payload_text: str) -> str:
    """A token whose payload text is genuinely signed, to reach the checks after the signature."""
    return f"{payload_text}.{tickets._signature(TICKET_PURPOSE, payload_text)}"


def refusal(call, *args, **kwargs) -> TicketError:
    with pytest.raises(TicketError) as caught:
        call(*args, **kwargs)
    return caught.value


# --- round trip ---------------------------------------------------------------


def test_issued_ticket_verifies_with_every_claim_it_was_given():
    token = issue(booth=2, at=(1.5, 2, 3.25))

    claims = ticket_verify(token, MARKET, now_ms=NOW_MS)

    assert claims == TicketClaims(
        market_id=MARKET,
        entity=ENTITY,
        identity="key",
        booth=2,
        at=(1.5, 2.0, 3.25),
        nonce=claims.nonce,
        expires_ms=NOW_MS + TICKET_TTL_S * 1000,
    )
    assert len(claims.nonce) >= 16


def test_ticket_without_booth_or_position_carries_none():
    claims = ticket_verify(issue(identity="anon"), MARKET, now_ms=NOW_MS)

    assert (claims.identity, claims.booth, claims.at) == ("anon", None, None)


def test_every_ticket_has_its_own_nonce():
    nonces = {ticket_verify(issue(), MARKET, now_ms=NOW_MS).nonce for _ in range(50)}

    assert len(nonces) == 50


def test_issue_refuses_an_unknown_identity_kind():
    with pytest.raises(ValueError):
        issue(identity="admin")


# --- expiry -------------------------------------------------------------------


def test_ticket_verifies_up_to_its_tenth_second():
    assert ticket_verify(issue(), MARKET, now_ms=NOW_MS + TICKET_TTL_S * 1000).entity == ENTITY


def test_ticket_older_than_ten_seconds_is_expired_with_4402():
    error = refusal(ticket_verify, issue(), MARKET, now_ms=NOW_MS + TICKET_TTL_S * 1000 + 1)

    assert (error.code, error.close_code) == ("ticket_expired", 4402)


def test_ticket_issued_now_expires_by_the_real_clock():
    token = ticket_issue(market_id=MARKET, entity=ENTITY, identity="anon")

    assert ticket_verify(token, MARKET).entity == ENTITY
    error = refusal(ticket_verify, token, MARKET, now_ms=payload_of(token)["x"] + 1)
    assert error.code == "ticket_expired"


# --- forgery ------------------------------------------------------------------


def with_payload(token: str, **changes) -> str:
    """The token with its payload edited and its old signature kept."""
    payload = {**payload_of(token), **changes}
    return f"{b64(json.dumps(payload).encode())}.{token.split('.')[1]}"


def with_signature_char(token: str, index: int) -> str:
    payload, signature = token.split(".")
    swapped = "B" if signature[index] == "A" else "A"
    return f"{payload}.{signature[:index]}{swapped}{signature[index + 1 :]}"


FORGERIES = {
    "entity changed": lambda token: with_payload(token, e=VISITOR_ID_BASE + 1),
    "expiry pushed back": lambda token: with_payload(token, x=NOW_MS + 10**9),
    "market changed": lambda token: with_payload(token, m=MARKET + 1),
    "first signature char": lambda token: with_signature_char(token, 0),
    "middle signature char": lambda token: with_signature_char(token, 20),
    "signature of a resume token": lambda token: (
        f"{token.split('.')[0]}.{tickets._signature(RESUME_PURPOSE, token.split('.')[0])}"
    ),
}


@pytest.mark.parametrize("forge", FORGERIES.values(), ids=FORGERIES.keys())
def test_tampered_ticket_is_forged_with_4401(forge):
    token = issue()
    assert ticket_verify(token, MARKET, now_ms=NOW_MS)  # the control: untouched, it passes

    error = refusal(ticket_verify, forge(token), MARKET, now_ms=NOW_MS)

    assert (error.code, error.close_code) == ("ticket_forged", 4401)


def test_ticket_signed_with_another_secret_key_is_forged():
    with override_settings(SECRET_KEY="another-deployment-another-secret-key"):
        token = issue()
        assert ticket_verify(token, MARKET, now_ms=NOW_MS)  # genuine where it was made

    error = refusal(ticket_verify, token, MARKET, now_ms=NOW_MS)

    assert (error.code, error.close_code) == ("ticket_forged", 4401)


# --- malformed ----------------------------------------------------------------

MALFORMED = {
    "empty": "",
    "garbage": "garbage",
    "missing dot": "eyJtIjo3fQ" + "A" * 43,
    "two dots": "a.b.c",
    "characters outside base64url": "eyJ+IjoxfQ==." + "A" * 43,
    "short signature": "eyJtIjo3fQ.abc",
    "whitespace around": " eyJtIjo3fQ." + "A" * 43 + " ",
    "bad base64 length, signed": signed("A"),
    "non-JSON payload, signed": signed(b64(b"not json at all")),
    "invalid UTF-8, signed": signed(b64(b"\xc3\x28{}")),
    "JSON list, signed": signed(b64(b"[7, 1, 2]")),
    "missing fields, signed": signed(b64(b'{"m": 7, "e": 1}')),
    "entity as a string, signed": signed(
        b64(b'{"m":7,"e":"1","i":"key","b":null,"a":null,"n":"x","x":1}')
    ),
    "booth true, signed": signed(b64(b'{"m":7,"e":1,"i":"key","b":true,"a":null,"n":"x","x":1}')),
    "at of two numbers, signed": signed(
        b64(b'{"m":7,"e":1,"i":"key","b":null,"a":[1,2],"n":"x","x":1}')
    ),
    "unknown identity, signed": signed(
        b64(b'{"m":7,"e":1,"i":"root","b":null,"a":null,"n":"x","x":1}')
    ),
}


@pytest.mark.parametrize("token", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_ticket_is_refused_with_4401(token):
    error = refusal(ticket_verify, token, MARKET, now_ms=0)

    assert (error.code, error.close_code) == ("ticket_malformed", 4401)


@pytest.mark.parametrize("token", [None, 7, b"bytes.token"])
def test_a_ticket_that_is_not_a_string_is_malformed(token):
    assert refusal(ticket_verify, token, MARKET).code == "ticket_malformed"


def test_the_malformed_control_payload_passes_once_complete():
    """The signed payloads above fail for their defect alone: a complete one verifies."""
    payload = b'{"m":7,"e":1,"i":"key","b":null,"a":[1,2,3],"n":"x","x":1}'

    assert ticket_verify(signed(b64(payload)), MARKET, now_ms=0).at == (1.0, 2.0, 3.0)


# --- market binding -----------------------------------------------------------


def test_ticket_for_another_market_is_refused_with_4404():
    error = refusal(ticket_verify, issue(), MARKET + 1, now_ms=NOW_MS)

    assert (error.code, error.close_code) == ("ticket_wrong_market", 4404)


# --- one use ------------------------------------------------------------------


def test_second_redeem_of_a_ticket_is_replayed_with_4403():
    token = issue()

    assert ticket_redeem(token, MARKET, now_ms=NOW_MS).entity == ENTITY
    error = refusal(ticket_redeem, token, MARKET, now_ms=NOW_MS)

    assert (error.code, error.close_code) == ("ticket_replayed", 4403)


def test_verify_does_not_use_the_ticket_up():
    token = issue()
    ticket_verify(token, MARKET, now_ms=NOW_MS)
    ticket_verify(token, MARKET, now_ms=NOW_MS)

    assert ticket_redeem(token, MARKET, now_ms=NOW_MS).entity == ENTITY


def test_a_refused_redeem_does_not_use_the_ticket_up():
    token = issue()
    assert refusal(ticket_redeem, token, MARKET + 1, now_ms=NOW_MS).code == "ticket_wrong_market"

    assert ticket_redeem(token, MARKET, now_ms=NOW_MS).entity == ENTITY


def test_two_tickets_of_one_visitor_are_each_good_once():
    first, second = issue(), issue()

    ticket_redeem(first, MARKET, now_ms=NOW_MS)
    ticket_redeem(second, MARKET, now_ms=NOW_MS)

    assert refusal(ticket_redeem, first, MARKET, now_ms=NOW_MS).code == "ticket_replayed"


async def redeem_concurrently(token: str, attempts: int) -> list[TicketClaims | TicketError]:
    return await asyncio.gather(
        *(aticket_redeem(token, MARKET, now_ms=NOW_MS) for _ in range(attempts)),
        return_exceptions=True,
    )


async def test_of_concurrent_async_redeems_exactly_one_gets_in():
    outcomes = await redeem_concurrently(issue(), 8)

    admitted = [o for o in outcomes if isinstance(o, TicketClaims)]
    refused = [o for o in outcomes if isinstance(o, TicketError)]
    assert len(admitted) == 1 and admitted[0].entity == ENTITY
    assert [(e.code, e.close_code) for e in refused] == [("ticket_replayed", 4403)] * 7


async def test_async_redeem_refuses_a_ticket_the_sync_redeem_used():
    token = issue()
    ticket_redeem(token, MARKET, now_ms=NOW_MS)

    with pytest.raises(TicketError) as caught:
        await aticket_redeem(token, MARKET, now_ms=NOW_MS)

    assert caught.value.code == "ticket_replayed"


async def test_async_redeem_checks_the_ticket_before_using_it():
    with pytest.raises(TicketError) as caught:
        await aticket_redeem(issue(), MARKET, now_ms=NOW_MS + 60_000)

    assert caught.value.code == "ticket_expired"


# --- one use across processes: Redis ------------------------------------------


@pytest.fixture
def redis_cache(redis_url, settings):
    """The default cache in Redis under a prefix of this test's own."""
    prefix = f"test-tickets-{uuid.uuid4().hex}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": prefix,
        }
    }
    client = redis.Redis.from_url(redis_url)
    yield client, prefix
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)


def test_redis_remembers_a_used_ticket(redis_cache):
    client, prefix = redis_cache
    token = issue()

    claims = ticket_redeem(token, MARKET, now_ms=NOW_MS)
    error = refusal(ticket_redeem, token, MARKET, now_ms=NOW_MS)

    assert error.code == "ticket_replayed"
    stored = list(client.scan_iter(f"{prefix}:*join-ticket:{claims.nonce}"))
    assert len(stored) == 1  # the memory is in Redis, where every web process sees it
    assert 0 < client.ttl(stored[0]) <= TICKET_TTL_S + 5


async def test_redis_lets_one_of_concurrent_async_redeems_in(redis_cache):
    outcomes = await redeem_concurrently(issue(), 8)

    assert sum(isinstance(o, TicketClaims) for o in outcomes) == 1
    assert sum(isinstance(o, TicketError) and o.code == "ticket_replayed" for o in outcomes) == 7


def test_redis_url_puts_the_ticket_memory_in_redis_and_embedded_keeps_it_in_memory(tmp_path):
    read = (
        "import django, json; from django.conf import settings; django.setup(); "
        "print(json.dumps(settings.CACHES['default']))"
    )
    url = "redis://127.0.0.1:6379/3"
    base = embedded_environment(tmp_path, DJANGO_SETTINGS_MODULE="fabric_site.settings")

    distributed = run_python(read, {**base, "REDIS_URL": url})
    embedded = run_python(read, base)

    assert distributed.returncode == 0, distributed.stderr
    assert json.loads(distributed.stdout) == {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": url,
        "KEY_PREFIX": "fabric",
    }
    assert embedded.returncode == 0, embedded.stderr
    assert json.loads(embedded.stdout)["BACKEND"].endswith("LocMemCache")


# --- close codes --------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "close_code"),
    [
        ("ticket_malformed", 4401),
        ("ticket_forged", 4401),
        ("ticket_expired", 4402),
        ("ticket_replayed", 4403),
        ("ticket_wrong_market", 4404),
        ("bad_resume", 4401),
        ("resume_expired", 4402),
    ],
)
def test_each_refusal_has_its_protocol_close_code_and_a_sentence(code, close_code):
    error = TicketError(code)

    assert (error.code, error.close_code) == (code, close_code)
    assert error.message[0].isupper() and error.message.endswith(".")
    assert str(error) == error.message


# --- resume tokens ------------------------------------------------------------


@pytest.mark.parametrize("entity", [VISITOR_ID_BASE + 1, DISPOSABLE_ID_MIN, DISPOSABLE_ID_END - 1])
def test_resume_token_names_its_entity(entity):
    assert resume_entity(resume_token(entity)) == entity


def test_a_resume_token_lives_its_ttl_then_is_refused_as_expired():
    token = resume_token(ENTITY, now_ms=NOW_MS)
    last_good = NOW_MS + RESUME_TTL_S * 1000
    assert resume_entity(token, now_ms=last_good) == ENTITY
    error = refusal(resume_entity, token, now_ms=last_good + 1000)
    assert (error.code, error.close_code) == ("resume_expired", 4402)
    assert str(RESUME_TTL_S) in error.message


def resume_forgeries() -> dict[str, str]:
    genuine = resume_token(DISPOSABLE_ID_MIN + 5, now_ms=NOW_MS)
    entity, expiry, signature = genuine.split(".")
    text = f"{entity}.{expiry}"
    return {
        "other entity, same signature": f"{DISPOSABLE_ID_MIN + 6}.{expiry}.{signature}",
        "expiry pushed back, same signature": f"{entity}.{int(expiry) + 3600}.{signature}",
        "signature char changed": f"{text}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}",
        "signed as a ticket": f"{text}.{tickets._signature(TICKET_PURPOSE, text)}",
        "NPC id, genuinely signed": f"5.{expiry}.{tickets._signature(RESUME_PURPOSE, f'5.{expiry}')}",
        "without an expiry, genuinely signed": (
            f"{entity}.{tickets._signature(RESUME_PURPOSE, entity)}"
        ),
        "garbage": "resume-me-please",
        "leading zero": f"0{text}.{signature}",
        "empty": "",
    }


@pytest.mark.parametrize("name", list(resume_forgeries()))
def test_forged_resume_token_is_bad_resume_with_4401(name):
    error = refusal(resume_entity, resume_forgeries()[name], now_ms=NOW_MS)

    assert (error.code, error.close_code) == ("bad_resume", 4401)


def test_resume_token_from_another_secret_key_is_bad_resume():
    with override_settings(SECRET_KEY="another-deployment-another-secret-key"):
        token = resume_token(DISPOSABLE_ID_MIN + 5)

    assert refusal(resume_entity, token).code == "bad_resume"


def test_an_npc_gets_no_resume_token():
    with pytest.raises(ValueError):
        resume_token(VISITOR_ID_BASE - 1)


# --- entity ids ---------------------------------------------------------------


def test_keyed_entity_ids_sit_above_the_npcs_and_below_the_disposable_ones():
    assert visitor_entity_keyed(1) == VISITOR_ID_BASE + 1
    assert visitor_identity_kind(visitor_entity_keyed(1)) == "key"
    with pytest.raises(ValueError):
        visitor_entity_keyed(DISPOSABLE_ID_MIN - VISITOR_ID_BASE)


def test_disposable_entity_ids_are_random_and_in_their_range():
    ids = [visitor_entity_disposable() for _ in range(1000)]

    assert all(DISPOSABLE_ID_MIN <= entity < DISPOSABLE_ID_END for entity in ids)
    assert len(set(ids)) == len(ids)
    assert visitor_identity_kind(ids[0]) == "anon"
    assert max(ids) > DISPOSABLE_ID_MIN + (DISPOSABLE_ID_END - DISPOSABLE_ID_MIN) // 2
