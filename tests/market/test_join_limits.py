"""The join endpoint bounds what one caller may spend: joins per address, joins per key or
resume token, new keys (database rows) per address; refusals are 429 with Retry-After."""

import uuid

import pytest
import redis
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from market import limits
from market.live import LiveMarket, live_market_set
from market.models import Booth, Market, VisitorIdentity
from market.rates import Rate, rate_parse
from market.tickets import resume_token
from tests.market.test_join_api import KEY, OTHER_KEY
from tests.subprocesses import embedded_environment, run_python

pytestmark = pytest.mark.django_db

THIRD_KEY = "a-third-visitor-key-0123456789abcdef"


@pytest.fixture(autouse=True)
def live():
    cache.clear()
    market = Market.objects.create(name="Weavers' Row", slug="weavers-row")
    Booth.objects.create(market=market, name="Looms", zone_index=0)
    layout = LiveMarket(market_id=market.id, booths=(("Looms", "#aa3300"),), starts=(0,))
    live_market_set(layout)
    yield layout
    live_market_set(None)
    cache.clear()


def join(live, fields=None, address="192.0.2.1"):
    url = reverse("market-join", args=[live.market_id])
    return Client(REMOTE_ADDR=address).post(url, data=fields or {}, content_type="application/json")


def assert_rate_limited(response, budget):
    assert response.status_code == 429, response.content
    body = response.json()
    assert body["error"] == "rate_limited"
    assert f"Too many {budget}" in body["detail"]
    assert 1 <= int(response["Retry-After"]) <= 3600
    assert f"Try again in {response['Retry-After']} s" in body["detail"]


def test_by_default_an_address_gets_300_joins_a_minute(live):
    for _ in range(300):
        assert join(live).status_code == 200

    assert_rate_limited(join(live), "joins from this address")
    assert join(live, address="192.0.2.2").status_code == 200


def test_the_address_budget_counts_refused_requests_too(live, settings):
    settings.FABRIC_JOINS_PER_ADDRESS = Rate(count=2, seconds=60)
    url = reverse("market-join", args=[live.market_id])
    client = Client(REMOTE_ADDR="192.0.2.1")
    for _ in range(2):
        assert (
            client.post(url, data=b"not json", content_type="application/json").status_code == 400
        )

    assert_rate_limited(join(live), "joins from this address")


def test_a_key_gets_its_own_budget_whatever_the_address(live, settings):
    settings.FABRIC_JOINS_PER_KEY = Rate(count=2, seconds=60)
    assert join(live, {"key": KEY}, address="192.0.2.1").status_code == 200
    assert join(live, {"key": KEY}, address="192.0.2.2").status_code == 200

    assert_rate_limited(join(live, {"key": KEY}, address="192.0.2.3"), "joins as this visitor")
    assert join(live, {"key": OTHER_KEY}, address="192.0.2.3").status_code == 200


def test_a_resume_token_spends_from_its_visitor_s_budget(live, settings):
    settings.FABRIC_JOINS_PER_KEY = Rate(count=2, seconds=60)
    first = join(live, {"key": KEY}).json()
    token = resume_token(first["entity"])
    assert join(live, {"resume": token}).status_code == 200

    assert_rate_limited(join(live, {"resume": token}), "joins as this visitor")


def test_new_keys_per_address_are_bounded_and_a_refused_key_stores_nothing(live, settings):
    settings.FABRIC_NEW_KEYS_PER_ADDRESS = Rate(count=2, seconds=3600)
    assert join(live, {"key": KEY}).status_code == 200
    assert join(live, {"key": OTHER_KEY}).status_code == 200
    rows = VisitorIdentity.objects.count()

    assert_rate_limited(join(live, {"key": THIRD_KEY}), "new keys from this address")
    assert VisitorIdentity.objects.count() == rows == 2
    # keys already known still join from there, and new keys from elsewhere are made
    assert join(live, {"key": KEY}).status_code == 200
    assert join(live, {"key": THIRD_KEY}, address="192.0.2.9").status_code == 200
    assert VisitorIdentity.objects.count() == 3


def test_a_spent_budget_is_whole_again_when_its_window_ends(live, settings, monkeypatch):
    settings.FABRIC_JOINS_PER_ADDRESS = Rate(count=1, seconds=60)
    now = [6_000_000.0]  # the start of a window
    monkeypatch.setattr(limits.time, "time", lambda: now[0])
    assert join(live).status_code == 200
    now[0] += 45

    refused = join(live)
    assert_rate_limited(refused, "joins from this address")
    assert refused["Retry-After"] == "15"
    now[0] += 15

    assert join(live).status_code == 200


def test_off_lifts_a_limit(live, settings):
    settings.FABRIC_JOINS_PER_ADDRESS = None
    settings.FABRIC_JOINS_PER_KEY = None

    for _ in range(50):
        assert join(live, {"key": KEY}).status_code == 200


def test_on_redis_the_counts_are_shared_and_keep_apart_per_channel_prefix(
    live, settings, redis_url
):
    prefix = f"test-limits-{uuid.uuid4().hex}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": prefix,
        }
    }
    settings.FABRIC_JOINS_PER_ADDRESS = Rate(count=1, seconds=60)
    client = redis.Redis.from_url(redis_url)
    try:
        assert join(live).status_code == 200
        stored = list(client.scan_iter(f"{prefix}:*limit:{settings.FABRIC_CHANNEL_PREFIX}:*"))
        assert len(stored) == 1  # in Redis, where every web process counts
        assert_rate_limited(join(live), "joins from this address")

        settings.FABRIC_CHANNEL_PREFIX = "another-market"
        assert join(live).status_code == 200
    finally:
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)


@pytest.mark.parametrize(
    "text", ["lots", "10", "0/60", "10/0", "-1/60", "10/60s", "1.5/60", ""], ids=repr
)
def test_a_malformed_rate_is_refused_naming_the_setting(text):
    with pytest.raises(ValueError, match=r"FABRIC_JOINS_PER_KEY is a rate N/S .* or 'off'"):
        rate_parse("FABRIC_JOINS_PER_KEY", text)


def test_rates_parse(settings):
    assert rate_parse("X", " 30/60 ") == Rate(count=30, seconds=60)
    assert rate_parse("X", "OFF") is None


def test_the_site_refuses_to_start_with_a_malformed_join_limit(tmp_path):
    env = embedded_environment(
        tmp_path, DJANGO_SETTINGS_MODULE="fabric_site.settings", FABRIC_JOINS_PER_KEY="lots"
    )
    result = run_python("import django; django.setup()", env)

    assert result.returncode != 0
    assert "FABRIC_JOINS_PER_KEY is a rate N/S" in result.stderr
