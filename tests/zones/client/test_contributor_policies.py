"""The contributor SDK's policies: utility, and an OpenAI-compatible endpoint (a local stub)."""

import asyncio
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zones.client import contributor
from zones.client.contributor import (
    MAX_MESSAGE_BYTES,
    MCPPolicy,
    OpenAIPolicy,
    decision_messages,
    socket_url,
    utility_policy,
)
from zones.core.dispatch import reasonable


def observation(hunger: float = 10.0) -> dict:
    return {
        "npc": 11,
        "lease": 4,
        "needs": {"hunger": hunger, "hygiene": 90.0, "fun": 90.0, "energy": 90.0},
        "pos": [50.0, 1.0, 50.0],
        "state": "idle",
        "items": [
            {"id": 500, "kind": "food_stall", "distance": 3.0, "free": 1,
             "restores": {"hunger": 64.0, "hygiene": 0.0, "fun": 0.0, "energy": 8.0}},
        ],
        "npcs": [],
        "visitors": [],
    }  # fmt: skip


def test_the_utility_policy_feeds_the_hungry_and_walks_the_content():
    assert utility_policy(observation(10.0)) == {
        "npc": 11,
        "lease": 4,
        "action": "use_item",
        "item": 500,
    }
    calm = utility_policy(observation(95.0))
    assert calm["action"] == "move_to" and len(calm["to"]) == 2
    x, z = calm["to"]
    assert 0 < ((x - 50) ** 2 + (z - 50) ** 2) ** 0.5 <= 12.01


NEEDS = ("hunger", "hygiene", "fun", "energy")


@settings(max_examples=300, deadline=None)
@given(
    needs=st.lists(st.floats(0, 100), min_size=4, max_size=4),
    items=st.lists(
        st.tuples(
            st.integers(0, 2),  # free slots
            st.floats(0, 10),  # distance, m
            st.lists(st.sampled_from([0.0, 0.5, 4.0, 30.0, 64.0]), min_size=4, max_size=4),
        ),
        max_size=4,
    ),
)
def test_the_utility_policy_never_takes_a_decision_the_spot_checks_call_unreasonable(needs, items):
    obs = {
        "npc": 3,
        "lease": 9,
        "needs": dict(zip(NEEDS, needs, strict=True)),
        "pos": [60.0, 1.0, 60.0],
        "items": [
            {
                "id": 100 + i,
                "distance": d,
                "free": free,
                "restores": dict(zip(NEEDS, r, strict=True)),
            }
            for i, (free, d, r) in enumerate(items)
        ],
        "npcs": [],
        "visitors": [],
    }
    assert reasonable(obs, utility_policy(obs))


def test_a_desperate_npc_takes_an_item_that_restores_its_need_even_a_little():
    obs = observation(20.0)
    obs["items"][0]["restores"] = {"hunger": 0.5, "hygiene": 0.0, "fun": 0.0, "energy": 0.0}
    assert utility_policy(obs)["action"] == "use_item"  # it walked off before: unreasonable
    obs["needs"]["hunger"] = 60.0
    assert utility_policy(obs)["action"] == "move_to"  # not desperate: worth no detour


def test_the_socket_url_follows_the_scheme():
    assert socket_url("https://m.example:8443", 3, "k e y") == (
        "wss://m.example:8443/ws/markets/3/contribute/?key=k%20e%20y"
    )


@pytest.fixture
def endpoint():
    """A local stand-in for an OpenAI-compatible server: answers what `replies` holds."""
    seen: list[dict] = []
    replies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            seen.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            body = replies.pop(0) if replies else b"{}"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen, replies
    server.shutdown()
    server.server_close()


def chat(content: str) -> bytes:
    return json.dumps(
        {"choices": [{"message": {"role": "assistant", "content": content}}]}
    ).encode()


def test_the_openai_policy_asks_for_a_schema_and_keeps_the_lease_its_own(endpoint):
    url, seen, replies = endpoint
    replies.append(chat(json.dumps({"action": "wait", "seconds": 2, "npc": 999, "lease": 999})))
    policy = OpenAIPolicy(url, "tiny", timeout=2.0)
    decision = policy(observation())
    assert decision == {"npc": 11, "lease": 4, "action": "wait", "seconds": 2}
    (request,) = seen
    assert request["model"] == "tiny"
    assert request["response_format"]["type"] == "json_schema"
    assert json.loads(request["messages"][1]["content"])["needs"]["hunger"] == 10.0
    assert policy.fallbacks == 0


@pytest.mark.parametrize(
    "reply", [b"not json", chat("no decision here"), chat(json.dumps({"action": "fly"})), b"{}"]
)
def test_an_endpoint_answering_nonsense_falls_back_to_the_utility_policy(endpoint, reply):
    url, _, replies = endpoint
    replies.append(reply)
    policy = OpenAIPolicy(url, "tiny", timeout=2.0)
    assert policy(observation()) == utility_policy(observation())
    assert policy.fallbacks == 1


def test_an_endpoint_that_is_not_there_falls_back_too():
    policy = OpenAIPolicy("http://127.0.0.1:9", "tiny", timeout=0.5)
    assert policy(observation())["action"] == "use_item"
    assert policy.fallbacks == 1


def test_many_decisions_go_in_messages_the_market_takes():
    decisions = [utility_policy({**observation(95.0), "npc": 2**40 + i}) for i in range(300)]
    messages = decision_messages(decisions)
    assert len(messages) > 1
    assert all(len(m.encode()) <= MAX_MESSAGE_BYTES for m in messages)
    back = [d for m in messages for d in json.loads(m)["decisions"]]
    assert back == decisions


def example_server(*args: str) -> list[str]:
    return [sys.executable, "-m", "zones.client.mcp_example", *args]


def test_the_mcp_policy_calls_the_example_servers_decide_tool():
    policy = MCPPolicy(example_server(), timeout=10.0)
    try:
        for hunger in (10.0, 95.0):
            assert policy(observation(hunger)) == utility_policy(observation(hunger))
        assert policy.asked == 2 and policy.fallbacks == 0
    finally:
        policy.close()


def test_an_mcp_server_too_slow_for_the_timeout_falls_back_then_catches_up():
    policy = MCPPolicy(example_server("--delay", "0.6"), timeout=5.0)
    try:
        policy.timeout = 0.2
        assert policy(observation()) == utility_policy(observation())
        assert policy.fallbacks == 1
        policy.timeout = 5.0  # its late answer to the first call is skipped, not taken
        assert policy(observation(95.0)) == utility_policy(observation(95.0))
        assert policy.fallbacks == 1
    finally:
        policy.close()


def test_an_mcp_server_that_is_gone_falls_back():
    policy = MCPPolicy(example_server(), timeout=10.0)
    policy.close()
    policy.timeout = 0.5
    assert policy(observation())["action"] == "use_item"
    assert policy.fallbacks == 1


def test_the_example_server_offers_its_decide_tool_to_the_official_client():
    from mcp import ClientSession, StdioServerParameters, stdio_client

    async def ask():
        params = StdioServerParameters(command=sys.executable, args=example_server()[1:])
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            tools = (await session.list_tools()).tools
            called = await session.call_tool("decide", {"observation": observation()})
            return tools, called

    tools, called = asyncio.run(ask())
    (tool,) = tools
    assert tool.name == "decide" and tool.input_schema["required"] == ["observation"]
    assert called.structured_content == {"action": "use_item", "item": 500}


def test_a_command_that_starts_no_mcp_server_is_refused_with_a_reason(monkeypatch):
    with pytest.raises(ValueError, match="needs a command"):
        MCPPolicy([])
    with pytest.raises(OSError, match="could not be used: FileNotFoundError"):
        MCPPolicy(["/no/such/mcp-server"], timeout=2.0)
    monkeypatch.setattr(contributor, "MCP_START_S", 1.0)
    mute = [sys.executable, "-c", "import sys; sys.stdin.read()"]  # never answers initialize
    with pytest.raises(TimeoutError, match="did not start within 1 s"):
        MCPPolicy(mute, timeout=0.5)
