"""POST /api/markets/<id>/join/ hands a live market's visitors one-time tickets (protocol §1)."""

import hashlib
import json
import logging
import time
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.urls import reverse

from market.live import LiveMarket, live_market_set
from market.models import Booth, Market, VisitorIdentity
from market.tickets import (
    DISPOSABLE_ID_END,
    DISPOSABLE_ID_MIN,
    RESUME_TTL_S,
    TICKET_TTL_S,
    VISITOR_ID_BASE,
    resume_token,
    ticket_redeem,
)

pytestmark = pytest.mark.django_db

KEY = "k3y-of-a-visitor-program-0123456789abcdef"
OTHER_KEY = "another-visitor-key-fedcba9876543210"


@pytest.fixture(autouse=True)
def nothing_live():
    cache.clear()
    live_market_set(None)
    yield
    live_market_set(None)


@pytest.fixture
def market():
    market = Market.objects.create(name="Weavers' Row", slug="weavers-row")
    for i, (name, colour) in enumerate([("Looms", "#aa3300"), ("Dyes", "#0055ff")]):
        Booth.objects.create(market=market, name=name, colour=colour, zone_index=i)
    return market


@pytest.fixture
def live(market):
    layout = LiveMarket(
        market_id=market.id,
        booths=(("Looms", "#aa3300"), ("Dyes", "#0055ff")),
        starts=(0, 1 << 29),
    )
    live_market_set(layout)
    return layout


def join(market_id, body=b"", client=None, method="post"):
    client = client or Client()
    url = reverse("market-join", args=[market_id])
    return getattr(client, method)(url, data=body, content_type="application/json")


def join_json(market_id, fields, **kwargs):
    return join(market_id, json.dumps(fields), **kwargs)


def refused(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"] == code
    assert isinstance(body["detail"], str) and body["detail"]
    assert set(body) == {"error", "detail"}
    return body


# --- success ------------------------------------------------------------------


def test_anonymous_join_gets_a_ticket_for_a_new_disposable_visitor(live):
    response = join(live.market_id)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"ticket", "expires_in", "entity", "ws"}
    assert body["expires_in"] == TICKET_TTL_S == 10
    assert body["ws"] == f"/ws/markets/{live.market_id}/visit/"
    assert DISPOSABLE_ID_MIN <= body["entity"] < DISPOSABLE_ID_END
    claims = ticket_redeem(body["ticket"], live.market_id)
    assert (claims.entity, claims.identity, claims.booth, claims.at) == (
        body["entity"],
        "anon",
        None,
        None,
    )


def test_each_anonymous_join_is_another_visitor(live):
    first, second = join(live.market_id).json(), join_json(live.market_id, {}).json()

    assert first["entity"] != second["entity"]
    assert first["ticket"] != second["ticket"]


def test_the_same_key_is_the_same_visitor_and_another_key_another(live):
    first = join_json(live.market_id, {"key": KEY}).json()
    again = join_json(live.market_id, {"key": KEY}).json()
    other = join_json(live.market_id, {"key": OTHER_KEY}).json()

    assert first["entity"] == again["entity"]
    assert other["entity"] != first["entity"]
    assert VISITOR_ID_BASE < first["entity"] < DISPOSABLE_ID_MIN
    assert VisitorIdentity.objects.count() == 2
    assert first["ticket"] != again["ticket"]  # a ticket is still good once
    assert ticket_redeem(again["ticket"], live.market_id).identity == "key"


def test_a_returning_key_moves_its_last_join(live):
    join_json(live.market_id, {"key": KEY})
    identity = VisitorIdentity.objects.get()
    long_ago = identity.last_joined - timedelta(days=3)
    VisitorIdentity.objects.filter(pk=identity.pk).update(last_joined=long_ago)

    join_json(live.market_id, {"key": KEY})

    identity.refresh_from_db()
    assert identity.last_joined > long_ago + timedelta(days=2)


@pytest.mark.parametrize("key", ["k" * 16, "k" * 256])
def test_keys_of_16_and_256_characters_are_accepted(live, key):
    assert join_json(live.market_id, {"key": key}).status_code == 200


def test_booth_and_position_travel_in_the_ticket(live):
    body = join_json(live.market_id, {"booth": 1, "at": [12, 0.5, 99.25]}).json()

    claims = ticket_redeem(body["ticket"], live.market_id)
    assert (claims.booth, claims.at) == (1, (12.0, 0.5, 99.25))


@pytest.mark.parametrize("at", [[0, 0, 0], [128, 64, 128]])
def test_positions_on_the_market_bounds_are_inside(live, at):
    assert join_json(live.market_id, {"at": at}).status_code == 200


def test_resume_rejoins_as_the_same_disposable_visitor(live):
    first = join(live.market_id).json()

    again = join_json(live.market_id, {"resume": resume_token(first["entity"])}).json()

    assert again["entity"] == first["entity"]
    assert ticket_redeem(again["ticket"], live.market_id).identity == "anon"


def test_resume_of_a_keyed_visitor_keeps_its_identity_kind(live):
    keyed = join_json(live.market_id, {"key": KEY}).json()

    again = join_json(live.market_id, {"resume": resume_token(keyed["entity"])}).json()

    assert again["entity"] == keyed["entity"]
    assert ticket_redeem(again["ticket"], live.market_id).identity == "key"


def test_programs_join_without_a_csrf_token(live):
    response = join(live.market_id, client=Client(enforce_csrf_checks=True))

    assert response.status_code == 200


# --- the raw key is never kept ------------------------------------------------


def test_only_the_hash_of_the_key_is_stored(live):
    join_json(live.market_id, {"key": KEY})

    assert VisitorIdentity.objects.get().key_hash == hashlib.sha256(KEY.encode()).hexdigest()
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f'SELECT * FROM "{table}"')
            assert KEY not in repr(cursor.fetchall()), f"the raw key is stored in {table}"


def test_the_raw_key_is_never_logged_but_its_hash_prefix_may_be(live, caplog):
    caplog.set_level(logging.DEBUG)

    join_json(live.market_id, {"key": KEY})
    join_json(live.market_id, {"key": KEY, "booth": 9})  # refused requests log too

    logged = caplog.text + repr([record.__dict__ for record in caplog.records])
    assert KEY not in logged
    assert hashlib.sha256(KEY.encode()).hexdigest()[:8] in caplog.text  # the join was logged


def test_the_ticket_does_not_carry_the_key(live):
    ticket = join_json(live.market_id, {"key": KEY}).json()["ticket"]

    assert KEY not in ticket
    assert hashlib.sha256(KEY.encode()).hexdigest() not in ticket


# --- 400 ----------------------------------------------------------------------

BAD_BODIES = {
    "a JSON list": b"[]",
    "a JSON string": b'"key"',
    "JSON null": b"null",
    "not JSON": b"key=abc",
    "not UTF-8": b"\xff\xfe\xfd",
    "a number beyond float": b'{"at": [1e400, 0, 0]}',
    "NaN": b'{"at": [NaN, 0, 0]}',
}
BAD_FIELDS = {
    "key too short": {"key": "k" * 15},
    "key too long": {"key": "k" * 257},
    "key not a string": {"key": 1234567890123456789},
    "resume not a string": {"resume": 12},
    "key and resume": {"key": KEY, "resume": "whatever"},
    "booth a string": {"booth": "1"},
    "booth a boolean": {"booth": True},
    "booth a float": {"booth": 1.0},
    "booth negative": {"booth": -1},
    "booth unknown": {"booth": 2},
    "at of two numbers": {"at": [1, 2]},
    "at of four numbers": {"at": [1, 2, 3, 4]},
    "at a string": {"at": "1,2,3"},
    "at with a string": {"at": [1, "2", 3]},
    "at with a boolean": {"at": [1, True, 3]},
    "at below the floor": {"at": [0, -0.01, 0]},
    "at beyond x": {"at": [128.01, 0, 0]},
    "at beyond y": {"at": [0, 64.5, 0]},
    "at beyond z": {"at": [0, 0, 1000]},
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_a_body_that_is_not_a_json_object_of_numbers_is_a_bad_request(live, body):
    refused(join(live.market_id, body), 400, "bad_request")


@pytest.mark.parametrize("fields", BAD_FIELDS.values(), ids=BAD_FIELDS.keys())
def test_a_field_out_of_shape_or_range_is_a_bad_request(live, fields):
    refused(join_json(live.market_id, fields), 400, "bad_request")

    assert VisitorIdentity.objects.count() == 0  # nothing was written for a refused join


def test_a_forged_resume_token_is_bad_resume(live):
    token = resume_token(DISPOSABLE_ID_MIN + 1)
    forged = f"{DISPOSABLE_ID_MIN + 2}.{token.split('.', 1)[1]}"

    refused(join_json(live.market_id, {"resume": forged}), 400, "bad_resume")


def test_an_expired_resume_token_is_refused_and_nothing_is_written(live):
    issued_ms = (int(time.time()) - RESUME_TTL_S - 2) * 1000
    token = resume_token(DISPOSABLE_ID_MIN + 1, now_ms=issued_ms)

    body = refused(join_json(live.market_id, {"resume": token}), 400, "resume_expired")
    assert "expired" in body["detail"]
    assert VisitorIdentity.objects.count() == 0


# --- 404, 409, 405 ------------------------------------------------------------


def test_an_unknown_market_is_no_market(live):
    refused(join(live.market_id + 1000), 404, "no_market")


def test_an_unknown_market_is_no_market_with_nothing_live(db):
    refused(join(4242), 404, "no_market")


def test_a_market_without_zones_here_is_not_live(market):
    refused(join(market.id), 409, "market_not_live")


def test_a_market_is_not_live_while_another_one_is(live):
    other = Market.objects.create(name="Other", slug="other")

    refused(join(other.id), 409, "market_not_live")
    assert join(live.market_id).status_code == 200  # the control: the live one joins


def test_a_key_is_not_stored_for_a_market_that_is_not_live(market):
    refused(join_json(market.id, {"key": KEY}), 409, "market_not_live")

    assert VisitorIdentity.objects.count() == 0


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_only_post_asks_for_a_ticket(live, method):
    response = join(live.market_id, method=method)

    refused(response, 405, "method_not_allowed")
    assert response["Allow"] == "POST"
