"""Resume tokens expire, so an open socket keeps its visitor supplied with fresh ones."""

import asyncio
import json
import time

from market.tickets import DISPOSABLE_ID_MIN, RESUME_TTL_S, resume_entity
from zones import consumers
from zones.client.visitor import Visitor
from zones.consumers import VisitorConsumer

ENTITY = DISPOSABLE_ID_MIN + 77


async def test_an_open_socket_sends_a_fresh_resume_token_every_refresh(monkeypatch):
    monkeypatch.setattr(consumers, "RESUME_REFRESH_S", 0.01)
    consumer = VisitorConsumer()
    sent: list[dict] = []

    async def record(content):
        sent.append(content)

    consumer.send_json = record
    task = asyncio.create_task(consumer.resume_refresh(ENTITY))
    for _ in range(200):
        if len(sent) >= 3:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    assert len(sent) >= 3
    for message in sent:
        assert message["type"] == "resume" and message["expires_in"] == RESUME_TTL_S
        assert resume_entity(message["resume"]) == ENTITY
        # good for its whole lifetime from now, not from the welcome
        late_ms = (int(time.time()) + RESUME_TTL_S - 2) * 1000
        assert resume_entity(message["resume"], now_ms=late_ms) == ENTITY


async def test_the_refresh_stops_quietly_when_the_socket_is_gone(monkeypatch):
    monkeypatch.setattr(consumers, "RESUME_REFRESH_S", 0.01)
    consumer = VisitorConsumer()

    async def closed(content):
        raise RuntimeError("the socket is closed")

    consumer.send_json = closed
    await asyncio.wait_for(consumer.resume_refresh(ENTITY), 2)  # returns, raises nothing


def test_the_sdk_reconnects_with_the_freshest_resume_token():
    visitor = Visitor("http://127.0.0.1:1", 1)
    visitor.welcome = {"type": "welcome", "resume": "from-the-welcome"}
    visitor._text(json.dumps({"type": "resume", "resume": "fresher", "expires_in": 600}))
    assert visitor.welcome["resume"] == "fresher"
    assert not visitor.events  # a token is not a market event
