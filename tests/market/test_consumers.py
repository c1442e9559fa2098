"""The landing page's socket: a snapshot of the market's ops, then its ops events, resumable."""

import asyncio
import json

import pytest
from channels.testing import WebsocketCommunicator

from fabric_site.asgi import application
from market.events.publish import event_publish
from market.events.streams import event_log
from market.events.types import MarketSummaryReported, ZoneChanged, ZoneHealthChanged

# Channels tidies the database connections of every socket it opens.
pytestmark = pytest.mark.django_db

MARKET = 3
ZONE = {
    "zone": 0,
    "name": "Looms",
    "colour": "#aa3300",
    "entities": 812,
    "capacity": 1800,
    "tick_ms": 0.74,
    "migrations_per_s": 3.5,
}


def summary(tick: int) -> MarketSummaryReported:
    return MarketSummaryReported(tick=tick, hlc=123456789, overruns=0, zones=[ZONE])


@pytest.fixture(autouse=True)
def in_memory_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


def summary_socket(query: str = "", origin: bytes = b"http://127.0.0.1:8000"):
    return WebsocketCommunicator(
        application, f"/ws/markets/{MARKET}/summary/{query}", headers=[(b"origin", origin)]
    )


async def opened(socket) -> dict:
    connected, _ = await socket.connect()
    assert connected
    return await socket.receive_json_from(timeout=2)


async def test_a_new_page_gets_a_snapshot_with_its_position_then_newer_events():
    await event_publish(MARKET, summary(40))
    socket = summary_socket()
    snapshot = await opened(socket)
    assert snapshot["type"] == "snapshot" and snapshot["recovered"] is None
    assert snapshot["state"]["zones"]["0"]["entities"] == 812 and snapshot["offset"] == 1

    await event_publish(MARKET, summary(41))

    event = await socket.receive_json_from(timeout=2)
    assert event == {
        "type": "market_summary",
        "v": 1,
        "offset": 2,
        "tick": 41,
        "hlc": 123456789,
        "overruns": 0,
        "zones": [ZONE],
    }
    await socket.disconnect()


async def test_a_page_that_reconnects_gets_exactly_what_it_missed_in_order():
    socket = summary_socket()
    first = await opened(socket)
    await socket.disconnect()
    await event_publish(MARKET, summary(1), summary(2))
    await event_publish(MARKET, ZoneHealthChanged(zones=[0], health="restarting", reason="r"))
    await event_publish(MARKET, ZoneChanged(entity=1, from_zone=0, to_zone=1, tick_ms=5))

    again = summary_socket(f"?offset={first['offset']}&epoch={first['epoch']}")
    resumed = await opened(again)
    assert resumed["recovered"] is True and resumed["state"] is None
    got = [await again.receive_json_from(timeout=2) for _ in range(3)]
    assert [(g["type"], g["offset"]) for g in got] == [
        ("market_summary", 1),
        ("market_summary", 2),
        ("zone_health", 3),
    ]
    assert await again.receive_nothing(timeout=0.2)  # the visitor's event is not an ops event
    await again.disconnect()


async def test_a_stale_epoch_gets_recovered_false_and_a_fresh_snapshot():
    await event_publish(MARKET, summary(7))
    socket = summary_socket("?offset=1&epoch=lost")
    resumed = await opened(socket)
    assert resumed["recovered"] is False and resumed["reason"] == "epoch_changed"
    assert resumed["state"]["tick"] == 7
    await socket.disconnect()


async def test_an_offset_in_the_future_is_refused_then_served_from_a_snapshot():
    await event_publish(MARKET, summary(7))
    epoch = (await event_log(MARKET).head()).epoch
    socket = summary_socket(f"?offset=500&epoch={epoch}")
    error = await opened(socket)
    assert error["type"] == "error" and error["code"] == "future_offset"
    resumed = await socket.receive_json_from(timeout=2)
    assert resumed["recovered"] is False and resumed["state"]["tick"] == 7
    await socket.disconnect()


@pytest.mark.parametrize("query", ["?offset=1", "?offset=x&epoch=e", "?offset=1&epoch="])
async def test_a_malformed_position_is_refused_with_a_reason(query):
    socket = summary_socket(query)
    error = await opened(socket)
    assert error["type"] == "error" and error["code"] == "bad_position"
    assert (await socket.receive_output(timeout=2))["code"] == 4400


async def test_messages_from_the_browser_are_ignored():
    socket = summary_socket()
    await opened(socket)
    await socket.send_to(text_data="not even json")
    await event_publish(MARKET, summary(41))
    assert json.loads(await socket.receive_from(timeout=2))["tick"] == 41
    await socket.disconnect()


async def test_a_foreign_origin_is_refused():
    socket = summary_socket(origin=b"https://evil.example")
    connected, _ = await socket.connect()
    assert not connected


async def test_a_socket_that_stops_reading_is_cut_off_with_4408_and_resumes_without_loss(
    settings, monkeypatch
):
    from market.consumers import MarketSummaryConsumer

    settings.FABRIC_EVENTS_QUEUE = 5
    stuck = asyncio.Event()  # never set: the browser stopped reading after the snapshot
    write = MarketSummaryConsumer.send_text

    async def snapshot_then_nothing(self, text):
        if json.loads(text)["type"] != "snapshot":
            await stuck.wait()
        await write(self, text)

    monkeypatch.setattr(MarketSummaryConsumer, "send_text", snapshot_then_nothing)
    socket = summary_socket()
    first = await opened(socket)
    for tick in range(1, 10):
        await event_publish(MARKET, summary(tick))
    error = await socket.receive_json_from(timeout=2)
    assert error["code"] == "slow_consumer"
    assert error["resume"] == {"offset": first["offset"], "epoch": first["epoch"]}
    assert (await socket.receive_output(timeout=2))["code"] == 4408
    # other sockets and the publisher went on meanwhile; this one comes back and loses nothing
    monkeypatch.undo()
    position = error["resume"]
    again = summary_socket(f"?offset={position['offset']}&epoch={position['epoch']}")
    assert (await opened(again))["recovered"] is True
    ticks = [(await again.receive_json_from(timeout=2))["tick"] for _ in range(9)]
    assert ticks == list(range(1, 10))
    await again.disconnect()
