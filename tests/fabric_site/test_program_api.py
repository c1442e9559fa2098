"""The join and release endpoints, answered beside Django's middleware (fabric_site/program_api.py)."""

import asyncio
import json
import threading

import pytest
from django.core.cache import cache
from django.http import JsonResponse
from django.test import Client

from fabric_site.program_api import MAX_BODY_BYTES, ProgramApi
from market.live import LiveMarket, live_market_set
from market.models import Booth, Market
from market.tickets import ticket_redeem
from tests.chunks.asgi_calls import asgi_call

# the lane's threads keep their database connections as request threads do
pytestmark = pytest.mark.django_db(transaction=True)

KEY = "k3y-of-a-visitor-program-0123456789abcdef"


@pytest.fixture
def live():
    cache.clear()
    market = Market.objects.create(name="Weavers' Row", slug="weavers-row")
    for i, (name, colour) in enumerate([("Looms", "#aa3300"), ("Dyes", "#0055ff")]):
        Booth.objects.create(market=market, name=name, colour=colour, zone_index=i)
    layout = LiveMarket(
        market_id=market.id, booths=(("Looms", "#aa3300"), ("Dyes", "#0055ff")), starts=(0, 1 << 29)
    )
    live_market_set(layout)
    yield market
    live_market_set(None)


def _post(path, body):
    return asgi_call("POST", path, headers=[(b"content-type", b"application/json")], pieces=[body])


def test_a_join_through_the_site_is_a_ticket_that_redeems(live):
    answer = asyncio.run(_post(f"/api/markets/{live.id}/join/", json.dumps({"key": KEY}).encode()))
    assert answer.status == 200, answer.body
    assert answer.headers["content-type"] == "application/json"
    assert int(answer.headers["content-length"]) == len(answer.body)
    assert answer.headers["x-content-type-options"] == "nosniff"
    ticket = answer.json()
    assert ticket_redeem(ticket["ticket"], live.id).entity == ticket["entity"]
    # what middleware would have added is not there: the answer came from the lane
    assert "x-frame-options" not in answer.headers


@pytest.mark.parametrize(
    ("method", "body", "market"),
    [
        ("POST", b"{not json", "live"),
        ("POST", json.dumps({"key": "short"}).encode(), "live"),
        ("POST", json.dumps({"booth": 9}).encode(), "live"),
        ("POST", b"{}", "missing"),
        ("GET", b"", "live"),
    ],
)
def test_refusals_through_the_site_are_the_views_own(live, method, body, market):
    market_id = live.id if market == "live" else live.id + 100
    path = f"/api/markets/{market_id}/join/"
    through_site = asyncio.run(
        asgi_call(method, path, headers=[(b"content-type", b"application/json")], pieces=[body])
    )
    cache.clear()  # the same budget of joins for the second asking
    client = Client()
    through_django = (
        client.post(path, data=body, content_type="application/json")
        if method == "POST"
        else client.get(path)
    )
    assert through_site.status == through_django.status_code
    assert through_site.json() == through_django.json()


def test_a_release_without_the_hosts_secret_is_refused_by_its_view(live):
    answer = asyncio.run(_post(f"/api/markets/{live.id}/host/release/", b'{"character_id": "1"}'))
    assert answer.status == 403
    assert answer.json()["error"] == "forbidden"


def _recorded():
    """A lane over one sync and one async view that record their calls; and the app behind."""
    calls = []

    def sync_view(request, market_id):
        calls.append(("sync", market_id, request.body, threading.current_thread().name))
        if request.body == b"fail":
            raise RuntimeError("planted")
        return JsonResponse({"market": market_id})

    async def async_view(request, market_id):
        calls.append(("async", market_id, request.body, threading.current_thread().name))
        return JsonResponse({"market": market_id}, status=201)

    async def behind(scope, receive, send):
        calls.append(("behind", scope["path"]))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    lane = ProgramApi(
        behind,
        [
            (r"/sync/(?P<market_id>[0-9]+)/", sync_view),
            (r"/async/(?P<market_id>[0-9]+)/", async_view),
        ],
    )
    return lane, calls


def test_a_sync_view_runs_on_a_thread_of_the_lanes_pool_with_the_paths_numbers():
    lane, calls = _recorded()
    answer = asyncio.run(asgi_call("POST", "/sync/7/", pieces=[b"ab", b"cd"], app=lane))
    assert (answer.status, answer.json()) == (200, {"market": 7})
    [(kind, market, body, thread)] = calls
    assert (kind, market, body) == ("sync", 7, b"abcd")
    assert thread.startswith("program-api")


def test_an_async_view_is_awaited_on_the_loop():
    lane, calls = _recorded()
    answer = asyncio.run(asgi_call("POST", "/async/3/", pieces=[b"x"], app=lane))
    assert (answer.status, answer.json()) == (201, {"market": 3})
    assert calls[0][:3] == ("async", 3, b"x")
    assert not calls[0][3].startswith("program-api")


def test_other_paths_and_near_misses_go_to_the_app_behind():
    lane, calls = _recorded()
    for path in ("/", "/sync/7", "/sync/x/", "/sync/7/more/", "/prefix/sync/7/"):
        assert asyncio.run(asgi_call("GET", path, app=lane)).status == 204
    assert calls == [
        ("behind", p) for p in ("/", "/sync/7", "/sync/x/", "/sync/7/more/", "/prefix/sync/7/")
    ]


def test_a_body_over_the_limit_is_refused_413_before_any_view():
    lane, calls = _recorded()
    pieces = [b"x" * 40_000, b"x" * 40_000]
    answer = asyncio.run(asgi_call("POST", "/sync/1/", pieces=pieces, app=lane))
    assert sum(map(len, pieces)) > MAX_BODY_BYTES
    assert answer.status == 413 and answer.json()["error"] == "too_large"
    assert calls == []


def test_a_host_django_does_not_allow_is_refused_400_before_any_view():
    lane, calls = _recorded()
    answer = asyncio.run(asgi_call("POST", "/sync/1/", host=b"evil.example", app=lane))
    assert answer.status == 400 and answer.json()["error"] == "bad_host"
    assert calls == []


def test_a_failing_view_is_a_500_with_a_reason_and_is_logged(caplog):
    lane, calls = _recorded()
    answer = asyncio.run(asgi_call("POST", "/sync/1/", pieces=[b"fail"], app=lane))
    assert answer.status == 500
    assert answer.json() == {
        "error": "internal_error",
        "detail": "The server failed to answer; ask again later.",
    }
    assert any("planted" in r.exc_text for r in caplog.records if r.exc_text)


def test_a_client_gone_before_its_body_ends_gets_nothing_and_no_view_runs():
    lane, calls = _recorded()
    sent = []
    events = iter(
        [{"type": "http.request", "body": b"ab", "more_body": True}, {"type": "http.disconnect"}]
    )

    async def receive():
        return next(events)

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/sync/1/",
        "headers": [],
        "query_string": b"",
    }
    asyncio.run(lane(scope, receive, send))
    assert sent == [] and calls == []
