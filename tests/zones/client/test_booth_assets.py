"""The SDK's booth assets: which events start a fetch, and the token each fetch presents."""

import asyncio
import json
from pathlib import Path

import pytest

from chunks.client import FetchReport
from market.asset_tokens import asset_token_verify
from zones import consumers
from zones.client import Visitor
from zones.client.assets import BoothAssets, BoothLoad
from zones.client.example import describe_loads


class Recorded(BoothAssets):
    """BoothAssets that records what it would fetch, and the token it would send."""

    def __init__(self, tmp_path) -> None:
        super().__init__("http://127.0.0.1:9", tmp_path / "cache", tmp_path / "out")
        self.fetched: list[tuple[int, str, str]] = []

    def fetch(self, zone: int, reason: str = "asked"):
        self.fetched.append((zone, reason, self.client.headers.get("Authorization", "")))


def visitor_with(assets: BoothAssets) -> Visitor:
    visitor = Visitor("http://127.0.0.1:9", 7, assets=assets)
    visitor.booth = 0
    visitor.events_after = (10, "epoch")
    return visitor


def receive(visitor: Visitor, **message) -> None:
    visitor._text(json.dumps(message))


def test_entering_a_booth_fetches_it_with_the_newest_token(tmp_path):
    assets = Recorded(tmp_path)
    visitor = visitor_with(assets)
    assets.welcomed(7, {"assets": {"token": "first", "expires_in": 120}})

    receive(visitor, type="booth_entered", v=1, offset=11, entity=1, zone=2, name="", colour="")
    receive(visitor, type="asset_token", token="second", expires_in=120)
    receive(visitor, type="booth_entered", v=1, offset=12, entity=1, zone=1, name="", colour="")

    assert assets.fetched == [
        (2, "booth_entered", "Bearer first"),
        (1, "booth_entered", "Bearer second"),
    ]
    assert visitor.asset_token == "second" and assets.market_id == 7


def test_a_changed_asset_of_the_booth_stood_in_is_fetched_again_and_others_are_not(tmp_path):
    assets = Recorded(tmp_path)
    visitor = visitor_with(assets)

    for offset, zone, change in ((11, 0, "changed"), (12, 2, "published")):
        receive(
            visitor,
            type="asset_changed",
            v=1,
            offset=offset,
            zone=zone,
            booth=zone + 5,
            asset=offset,
            name="a",
            change=change,
        )
    receive(visitor, type="zone_changed", v=1, offset=13, entity=1, to=1, tick_ms=1, **{"from": 0})

    assert [(zone, reason) for zone, reason, _ in assets.fetched] == [(0, "asset_changed")]


async def test_a_refused_or_unreachable_fetch_is_recorded_not_raised(tmp_path):
    assets = BoothAssets("http://127.0.0.1:9", tmp_path / "cache", tmp_path / "out")
    assets.welcomed(7, {"assets": {"token": "t", "expires_in": 120}})

    load = await assets.fetch(3, "booth_entered")
    await assets.idle()

    assert isinstance(load, BoothLoad) and load.report is None
    assert load.zone == 3 and "no answer" in load.error
    assert assets.loads == [load]


async def test_an_open_socket_sends_a_fresh_asset_token_before_the_last_expires(monkeypatch):
    monkeypatch.setattr(consumers, "ASSET_TOKEN_REFRESH_S", 0.01)
    consumer = consumers.VisitorConsumer()
    sent: list[dict] = []

    async def send_json(message):
        sent.append(message)

    consumer.send_json = send_json
    refresher = asyncio.create_task(consumer.asset_token_refresh(3, 1099511627777))
    while len(sent) < 2:
        await asyncio.sleep(0.01)
    refresher.cancel()

    assert {message["type"] for message in sent} == {"asset_token"}
    for message in sent:
        claims = asset_token_verify(message["token"])
        assert (claims.market_id, claims.entity) == (3, 1099511627777)
        assert message["expires_in"] == consumers.ASSET_TOKEN_TTL_S


@pytest.mark.parametrize("token", [None, 5, ""])
def test_a_welcome_without_a_usable_token_sends_none(tmp_path, token):
    assets = Recorded(tmp_path)

    assets.welcomed(7, {"assets": {"token": token}} if token is not None else {})

    assert "Authorization" not in assets.client.headers


def test_the_example_prints_what_each_load_brought_and_why_one_did_not(tmp_path):
    assets = BoothAssets("http://127.0.0.1:9", tmp_path / "cache", tmp_path)
    loaded = FetchReport(assets=[Path("lantern.glb")], chunks_total=4, chunks_downloaded=3)
    loaded.bytes_downloaded, loaded.chunks_cached = 3 * 1048576, 1
    assets.loads = [
        BoothLoad(1, "booth_entered", loaded),
        BoothLoad(0, "booth_entered", None, "GET …: 403 Forbidden", 403),
    ]

    lines = describe_loads(assets)

    assert lines == [
        f"booth 1 (booth_entered): lantern.glb in {tmp_path / 'zone-1'}; 3 chunks downloaded"
        " (3,145,728 bytes), 1 from the cache",
        "booth 0 (booth_entered): not loaded: GET …: 403 Forbidden",
    ]
