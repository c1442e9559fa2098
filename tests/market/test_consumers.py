"""The summary socket relays every market summary published to its group."""

import pytest
from channels.testing import WebsocketCommunicator

from fabric_site.asgi import application
from market.events import market_summary_publish

SUMMARY = {
    "tick": 41,
    "hlc": 123456789,
    "zones": [
        {
            "zone": 0,
            "name": "Looms",
            "colour": "#aa3300",
            "entities": 812,
            "capacity": 1800,
            "tick_ms": 0.74,
            "migrations_per_s": 3.5,
        }
    ],
}


@pytest.fixture(autouse=True)
def in_memory_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


def summary_socket():
    return WebsocketCommunicator(
        application, "/ws/market/summary/", headers=[(b"origin", b"http://127.0.0.1:8000")]
    )


async def test_published_summary_reaches_the_browser_as_json():
    socket = summary_socket()
    connected, _ = await socket.connect()
    assert connected

    await market_summary_publish(SUMMARY)

    assert await socket.receive_json_from(timeout=2) == {
        "type": "market.summary",
        "summary": SUMMARY,
    }
    await socket.disconnect()


async def test_every_open_socket_gets_each_summary_in_order():
    sockets = [summary_socket(), summary_socket()]
    for socket in sockets:
        assert (await socket.connect())[0]

    await market_summary_publish({**SUMMARY, "tick": 1})
    await market_summary_publish({**SUMMARY, "tick": 2})

    for socket in sockets:
        ticks = [(await socket.receive_json_from(timeout=2))["summary"]["tick"] for _ in range(2)]
        assert ticks == [1, 2]
        await socket.disconnect()


async def test_messages_from_the_browser_are_ignored():
    socket = summary_socket()
    assert (await socket.connect())[0]

    await socket.send_to(text_data="not even json")
    await market_summary_publish(SUMMARY)

    assert (await socket.receive_json_from(timeout=2))["summary"]["tick"] == 41
    await socket.disconnect()


async def test_a_foreign_origin_is_refused():
    socket = WebsocketCommunicator(
        application, "/ws/market/summary/", headers=[(b"origin", b"https://evil.example")]
    )

    connected, _ = await socket.connect()

    assert not connected
