"""The operators' feed socket: who is refused, and what an operator receives."""

import asyncio
import json

import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from market.live import live_market_set
from operator_ui.access import may_operate
from operator_ui.routing import websocket_urlpatterns
from zones.core.npcview import FRAME_KIND_NPC_STATUS, npc_status_decode, status_fields
from zones.core.overview import DotKind, overview_decode
from zones.core.wire import NpcState
from zones.worker import ZoneWorker

pytestmark = [pytest.mark.django_db, pytest.mark.asyncio]


@pytest.fixture(autouse=True)
def in_memory_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture(autouse=True)
def answered_before(monkeypatch, market, olga, sam):
    """Who operates the market, asked of the real ReBAC store before any socket opens.

    The consumer asks on asgiref's worker thread; a connection opened there outlives a
    test and trips the next one that is not allowed the database, so the answers are
    taken here, on the test's own thread, with the same function."""
    answers = {(u.pk, market.pk): may_operate(u, market.pk) for u in (olga, sam)}
    monkeypatch.setattr(
        "operator_ui.consumers.may_operate",
        lambda user, market_id: answers.get((user.pk, market_id), False),
    )


def feed(market_id, user):
    socket = WebsocketCommunicator(
        URLRouter(websocket_urlpatterns), f"/ws/markets/{market_id}/operate/"
    )
    socket.scope["user"] = user
    return socket


async def refusal(socket):
    connected, _ = await socket.connect()
    assert connected  # accepted first, so that the refusal can say why
    error = json.loads(await socket.receive_from(timeout=2))
    closed = await socket.receive_output(timeout=2)
    return error, closed["code"]


async def test_an_anonymous_socket_is_told_to_sign_in(market):
    error, code = await refusal(feed(market.pk, AnonymousUser()))
    assert (error["code"], code) == ("sign_in", 4401)


@pytest.fixture
def sam(django_user_model):
    return django_user_model.objects.create_user("sam", password="pw")


async def test_a_signed_in_stranger_is_not_an_operator(sam, market):
    error, code = await refusal(feed(market.pk, sam))
    assert (error["code"], code) == ("not_operator", 4403)
    assert "not an operator" in error["message"]


async def test_a_market_with_no_zones_here_is_not_live(olga, market):
    live_market_set(None)
    error, code = await refusal(feed(market.pk, olga))
    assert (error["code"], code) == ("market_not_live", 4404)


async def test_an_operator_gets_the_layout_then_summaries_and_every_entity_ten_times_a_second(
    olga, market, plan
):
    found = market
    worker = ZoneWorker(
        market_id=found.pk, zones=range(3), booths=plan.booths, data_dir=None, walkers=30
    )
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    socket = feed(found.pk, olga)
    try:
        connected, _ = await socket.connect()
        assert connected
        hello = json.loads(await socket.receive_from(timeout=3))
        assert hello["type"] == "hello" and hello["market"] == found.pk
        assert [b["name"] for b in hello["layout"]["booths"]] == [n for n, _ in plan.booths]
        grid = hello["columns"]["booth"]
        assert hello["columns"]["count"] == len(grid) == 16
        assert {z for column in grid for z in column} == {0, 1, 2}
        assert hello["capacity"] == 1800 and hello["overview_hz"] == 10
        snapshot = json.loads(await socket.receive_from(timeout=3))
        assert snapshot["type"] == "snapshot" and snapshot["recovered"] is None
        summaries, frames, statuses = [], [], []
        deadline = asyncio.get_running_loop().time() + 5
        while (
            not summaries or len(frames) < 5 or not statuses
        ) and asyncio.get_running_loop().time() < deadline:
            message = await socket.receive_output(timeout=3)
            data = message.get("bytes")
            if data is not None and data[3] == FRAME_KIND_NPC_STATUS:
                statuses.append(npc_status_decode(data))
            elif data is not None:
                frames.append(overview_decode(data))
            else:
                summaries.append(json.loads(message["text"]))
        assert summaries and summaries[0]["type"] == "market_summary"
        assert summaries[0]["offset"] > snapshot["offset"]
        assert {z["zone"] for z in summaries[0]["zones"]} == {0, 1, 2}
        assert len(frames) >= 5
        ticks = [tick for tick, _ in frames]
        assert ticks == sorted(ticks) and all(
            b - a >= 100 for a, b in zip(ticks, ticks[1:], strict=False)
        )
        tick_ms, records = frames[-1]
        assert records.size == 30
        assert all(k & DotKind.NPC for k in records["kind"].tolist())
        # once a second, what each of the 30 NPCs does and needs most
        _, status = statuses[0]
        assert sorted(status["id"].tolist()) == sorted(records["id"].tolist())
        state, need, _, _ = status_fields(status["status"])
        assert set(state.tolist()) <= {NpcState.IDLE, NpcState.MOVING, NpcState.INTERACTING}
        assert set(need.tolist()) <= {0, 1, 2, 3}
    finally:
        await socket.disconnect()
        stop.set()
        await running
