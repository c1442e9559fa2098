"""Joining a market through a portal: the join endpoint spends a transfer token with the host,
and the host's release endpoint lets a visitor go (docs/protocol.md §1, docs/host.md)."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from market.live import LiveMarket, PortalRegion, live_market_set
from market.models import Booth, Market
from market.tickets import ticket_verify
from tests.host.fake_control import FakeControl, fake_control

pytestmark = pytest.mark.django_db

SECRET = "s3cret-of-this-host-0123456789abcdef"
TOKEN = "a-transfer-token"
CHARACTER = {"name": "Ada", "colour": "#ff8800", "carrying": [{"giveaway": "lamps", "item": 3}]}


@pytest.fixture
def orchestrator(monkeypatch) -> Iterator[FakeControl]:
    with fake_control() as control:
        monkeypatch.setenv("FABRIC_HOST_CONTROL_URL", control.url)
        monkeypatch.setenv("FABRIC_HOST_SECRET", SECRET)
        yield control


@pytest.fixture
def live(monkeypatch):
    cache.clear()
    market = Market.objects.create(name="North Market", slug="north-market")
    Booth.objects.create(market=market, name="Looms", colour="#aa3300", zone_index=0)
    home = PortalRegion(index=0, id="portal.0", side="north", rect_m=(60, 2, 63, 3.5), target=7)
    layout = LiveMarket(
        market_id=market.id, booths=(("Looms", "#aa3300"),), starts=(0,), portals=(home,)
    )
    live_market_set(layout)
    monkeypatch.setenv("FABRIC_HOST_MARKET_ID", str(market.id))
    yield layout
    live_market_set(None)


def join(market_id: int, fields: dict[str, Any]):
    url = reverse("market-join", args=[market_id])
    return Client().post(url, data=json.dumps(fields), content_type="application/json")


def test_a_transfer_token_joins_as_the_character_beside_the_portal_it_came_through(
    orchestrator, live
) -> None:
    entity = (1 << 40) + 5
    orchestrator.default = (
        200,
        {
            "transfer_id": "t-1",
            "source": 7,
            "state": {"entity": entity, "identity": "key", "character": CHARACTER},
        },
    )
    response = join(live.market_id, {"transfer": TOKEN})
    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["entity"] == entity and answer["transfer"] == {"id": "t-1", "from": 7}
    claims = ticket_verify(answer["ticket"], live.market_id)
    assert (claims.entity, claims.identity, claims.transfer) == (entity, "key", "t-1")
    assert claims.character == CHARACTER  # what it goes by and carries came along
    assert claims.at == live.portals[0].arrival()
    _, path, body, secret = orchestrator.calls[0]
    assert path == "/transfers/accept" and secret == SECRET
    assert body == {"token": TOKEN, "destination": live.market_id, "instance_id": 0}


def test_a_refused_token_is_refused_with_the_hosts_reason(orchestrator, live) -> None:
    orchestrator.default = (403, {"error": "the token was used already", "reason": "replayed"})
    response = join(live.market_id, {"transfer": TOKEN})
    assert response.status_code == 403
    assert response.json() == {"error": "replayed", "detail": "the token was used already"}


def test_a_market_not_under_a_host_takes_no_transfer(live, monkeypatch) -> None:
    monkeypatch.delenv("FABRIC_HOST_CONTROL_URL", raising=False)
    response = join(live.market_id, {"transfer": TOKEN})
    assert response.status_code == 409 and response.json()["error"] == "no_host"


def test_an_orchestrator_that_does_not_answer_is_a_503(live, monkeypatch) -> None:
    monkeypatch.setenv("FABRIC_HOST_CONTROL_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("FABRIC_HOST_SECRET", SECRET)
    response = join(live.market_id, {"transfer": TOKEN})
    assert response.status_code == 503 and response.json()["error"] == "host_unavailable"


@pytest.mark.parametrize(
    "fields",
    [
        {"transfer": 5},
        {"transfer": ""},
        {"transfer": TOKEN, "key": "k" * 20},
        {"transfer": TOKEN, "booth": 0},
        {"transfer": TOKEN, "name": "Ada"},
    ],
)
def test_a_transfer_comes_alone_and_as_a_string(live, fields) -> None:
    response = join(live.market_id, fields)
    assert response.status_code == 400 and response.json()["error"] == "bad_request"


def release(market_id: int, secret: str | None, address: str = "127.0.0.1", body=None):
    headers = {} if secret is None else {"HTTP_X_FABRIC_HOST_SECRET": secret}
    return Client().post(
        reverse("market-host-release", args=[market_id]),
        data=json.dumps(body if body is not None else {"character_id": "1099511627781"}),
        content_type="application/json",
        REMOTE_ADDR=address,
        **headers,
    )


def test_only_the_orchestrator_releases_a_character(orchestrator, live) -> None:
    assert release(live.market_id, None).status_code == 403
    assert release(live.market_id, "wrong" * 8).status_code == 403
    assert release(live.market_id, SECRET, address="10.1.2.3").status_code == 403
    assert release(live.market_id, SECRET, body={"character": 1}).status_code == 400
    answer = release(live.market_id, SECRET)
    assert answer.status_code == 200
    assert answer.json() == {"released": True, "socket_here": False}


def test_a_character_joining_directly_under_a_host_is_announced_to_it(orchestrator, live) -> None:
    orchestrator.default = (200, {"moved": True, "market": live.market_id, "from": 7})
    response = join(live.market_id, {"key": "a-visitor-key-0123456789"})
    assert response.status_code == 200, response.content
    entity = response.json()["entity"]
    _, path, body, _ = orchestrator.calls[0]
    assert (path, body) == (f"/characters/{entity}/arrive", {"market": live.market_id})


def test_a_new_disposable_visitor_is_nobody_the_host_knows(orchestrator, live) -> None:
    assert join(live.market_id, {}).status_code == 200
    assert orchestrator.calls == []


def test_a_direct_join_the_host_refuses_is_refused(orchestrator, live) -> None:
    orchestrator.default = (
        409,
        {"error": "character 5 is in transfer t-1", "reason": "in_transfer"},
    )
    response = join(live.market_id, {"key": "a-visitor-key-0123456789"})
    assert response.status_code == 409 and response.json()["error"] == "in_transfer"


def test_a_visitor_may_say_the_name_and_colour_it_goes_by(live) -> None:
    response = join(live.market_id, {"name": "Ada Lovelace", "colour": "#FF8800"})
    assert response.status_code == 200, response.content
    claims = ticket_verify(response.json()["ticket"], live.market_id)
    assert claims.character == {"name": "Ada Lovelace", "colour": "#ff8800"}
    assert (
        ticket_verify(join(live.market_id, {}).json()["ticket"], live.market_id).character is None
    )


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"name": ""}, "name must be 1 to 32"),
        ({"name": "x" * 33}, "name must be 1 to 32"),
        ({"name": "tab\there"}, "printable"),
        ({"name": 7}, "name must be"),
        ({"colour": "red"}, "colour must be #rrggbb"),
        ({"colour": "#12345g"}, "colour must be #rrggbb"),
    ],
)
def test_a_bad_name_or_colour_is_refused_saying_why(live, fields, says) -> None:
    response = join(live.market_id, fields)
    assert response.status_code == 400 and says in response.json()["detail"]


def test_a_join_for_another_market_of_the_host_says_where_it_is_served(orchestrator, live) -> None:
    other = Market.objects.create(name="South Market", slug="south-market")
    orchestrator.default = (200, {"market_id": other.pk, "state": "ready", "url": "http://h:8002/"})
    response = join(other.pk, {})
    assert response.status_code == 409
    assert response.json() == {
        "error": "market_elsewhere",
        "detail": f"Market {other.pk} is served at http://h:8002/ on this host: ask there.",
        "url": "http://h:8002/",
    }
    method, path, body, _ = orchestrator.calls[0]
    assert (method, path, body) == ("POST", f"/markets/{other.pk}/start", {"wait_ready_s": 20.0})
    orchestrator.default = (200, {"market_id": other.pk, "state": "starting", "url": "x"})
    starting = join(other.pk, {})
    assert starting.status_code == 503 and starting.json()["error"] == "market_starting"
    assert starting["Retry-After"] == "2"
    orchestrator.default = (409, {"error": "it crashed", "reason": "quarantined"})
    assert join(other.pk, {}).json()["error"] == "quarantined"
