"""Readiness (fabric_site/readiness.py): each service checked, the answer reused briefly,
and joins refused with the reason while one is down. `tests/zones/test_redis_outage.py`
kills a real Redis under a running market."""

import json

import pytest
from django.test import Client

from fabric_site import readiness as readiness_module
from fabric_site.readiness import FRESH_S, readiness
from market.live import LiveMarket, live_market_set
from market.models import Market
from tests.live import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_checks():
    """Each test checks anew, with its own Redis client."""
    readiness_module._latest = None
    readiness_module._redis_client = None
    yield
    readiness_module._latest = None
    readiness_module._redis_client = None


def test_an_embedded_market_is_ready_with_its_database(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"ready": True, "checks": {"database": "ok"}}


def test_a_redis_that_does_not_answer_makes_the_process_not_ready(client, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json() == {"ready": False, "checks": {"database": "ok", "redis": "down"}}
    assert client.get("/healthz").status_code == 200  # alive all the same


def test_a_redis_that_answers_makes_it_ready(client, settings, redis_url):
    settings.REDIS_URL = redis_url

    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "redis": "ok"}


def test_a_check_is_reused_for_a_second_then_made_again(monkeypatch, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    answers = iter([None, "ConnectionError: refused"])
    calls = []

    def redis_check():
        calls.append(1)
        return next(answers)

    monkeypatch.setattr(readiness_module, "_redis", redis_check)

    assert readiness(now=100.0).ready
    assert readiness(now=100.0 + FRESH_S / 2).ready  # the same answer, not asked again
    assert len(calls) == 1
    later = readiness(now=100.0 + FRESH_S)
    assert not later.ready and len(calls) == 2
    assert later.reason().startswith("Redis, the market's message broker not answering")
    assert "refused" not in later.reason()  # no error text or address for visitors


def test_a_join_is_refused_503_with_the_reason_while_a_service_is_down(settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    market = Market.objects.create(name="Outage Market")
    live_market_set(LiveMarket(market_id=market.pk, booths=(("Loom", "#d2691e"),), starts=(0,)))
    try:
        response = Client().post(
            f"/api/markets/{market.pk}/join/", data="{}", content_type="application/json"
        )
    finally:
        live_market_set(None)

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    body = json.loads(response.content)
    assert body["error"] == "service_unavailable"
    assert body["detail"].startswith("Redis, the market's message broker not answering")
    assert "ticket" not in body
