"""`/dashboard/markets/`: every market, with the host's report of each on a host."""

from collections.abc import Iterator

import pytest

from market.models import Market
from market.services import market_sized_ensure
from tests.host.fake_control import FakeControl, fake_control

pytestmark = pytest.mark.django_db

SECRET = "s3cret-of-this-host-0123456789abcdef"


REPORT = {
    "market_id": 1,
    "state": "ready",
    "health": "healthy",
    "pid": 4242,
    "port": 8001,
    "url": "http://127.0.0.1:8001/",
    "restarts": 2,
    "last_exit": "exited with -9",
    "stats": {"connections": 0, "zones": 2, "walkers": 0},
}


@pytest.fixture
def host(monkeypatch) -> Iterator[FakeControl]:
    with fake_control() as control:
        control.answers = {
            "/health": (200, {"orchestrator": {}, "markets": [REPORT]}),
            "/markets/": (200, {**REPORT, "state": "starting"}),
            "/markets/99/": (
                404,
                {"error": "this host runs no market 99", "reason": "unknown_market"},
            ),
        }
        monkeypatch.setenv("FABRIC_HOST_CONTROL_URL", control.url)
        monkeypatch.setenv("FABRIC_HOST_SECRET", SECRET)
        monkeypatch.setenv("FABRIC_HOST_MARKET_ID", "1")
        yield control


@pytest.fixture
def markets():
    return [market_sized_ensure(booths=n) for n in (2, 3)]


def test_on_a_host_every_market_shows_how_it_runs(client, olga, host, markets) -> None:
    client.force_login(olga)
    page = client.get("/dashboard/markets/").content.decode()
    for market in markets:
        assert f'data-market="{market.pk}"' in page and market.name in page
    assert "state-ready" in page and "http://127.0.0.1:8001/" in page
    assert "2 (exited with -9)" in page  # restarts, and why the last process ended
    assert "not on this host" in page  # the host runs market 1 only
    off_host = Market.objects.exclude(pk=1).count()
    assert off_host >= 2 and page.count(">Start</button>") == off_host


def test_start_asks_the_host_and_a_refusal_is_shown(client, olga, host, markets) -> None:
    client.force_login(olga)
    response = client.post(f"/dashboard/markets/{markets[1].pk}/start/")
    assert response.status_code == 302 and response["Location"] == "/dashboard/markets/"
    assert [(m, p) for m, p, _, _ in host.calls] == [("POST", f"/markets/{markets[1].pk}/start")]
    refused = client.post("/dashboard/markets/99/start/")
    assert "unknown_market" in refused["Location"]
    page = client.get(refused["Location"]).content.decode()
    assert "this host runs no market 99" in page


def test_a_market_on_its_own_lists_the_markets_and_says_so(client, olga, markets) -> None:
    client.force_login(olga)
    page = client.get("/dashboard/markets/").content.decode()
    assert "runs on its own" in page and ">Start</button>" not in page
    assert all(market.name in page for market in markets)


def test_only_operators_see_the_markets(client, django_user_model) -> None:
    assert client.get("/dashboard/markets/").status_code == 302  # sign in first
    client.force_login(django_user_model.objects.create_user("sam", password="pw"))
    assert client.get("/dashboard/markets/").status_code == 403
    assert client.post("/dashboard/markets/1/start/").status_code == 403
