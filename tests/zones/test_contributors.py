"""Contributors on their socket, with a zone worker on the in-memory layer: requests out,
decisions in, NPCs acting on them; bad input refused; the zones' own decisions when
nobody contributes."""

import asyncio
import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import uvicorn
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from market.events.subjects import ops_npcs_subject
from market.events.types import ContributorBanned, NpcDecisionsReported
from market.live import LiveMarket, live_market_set
from market.services import DEMO_BOOTHS
from tests.events import EventWatch
from zones import contribute
from zones.client.contributor import Contributor, utility_policy
from zones.contribute import CLOSE_BANNED, hubs_stop
from zones.core.mapgen import MapConfig, generate
from zones.core.wire import Action, RowFlag
from zones.routing import websocket_urlpatterns
from zones.web_limits import WS_MAX_MESSAGE_BYTES
from zones.worker import ZoneWorker

MARKET = 7
KEY = "test-contributor-key-0001"
app = URLRouter(websocket_urlpatterns)
# The socket asks the database for the key's verdict (zones/contributor_keys.py), from
# its own thread: the test's rows must be committed to be seen.
pytestmark = pytest.mark.django_db(transaction=True)


@contextlib.asynccontextmanager
async def running_market(walkers: int = 30):
    worker = ZoneWorker(
        market_id=MARKET, zones=range(3), booths=DEMO_BOOTHS, data_dir=None, walkers=walkers, seed=5
    )
    starts = tuple(int(s) for s in worker.ranges.starts[: len(DEMO_BOOTHS)])
    live_market_set(LiveMarket(MARKET, tuple(DEMO_BOOTHS), starts))

    async def ticking():
        while True:
            await worker.tick(int(time.time() * 1000))
            await asyncio.sleep(0.05)

    tasks = [asyncio.create_task(worker._receive())]  # every hosted zone's channel
    tasks.append(asyncio.create_task(ticking()))
    try:
        yield worker
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await hubs_stop()
        live_market_set(None)


async def contributor(key: str = KEY, capacity: int = 64, market: int = MARKET):
    ws = WebsocketCommunicator(app, f"/ws/markets/{market}/contribute/?key={key}")
    connected, _ = await ws.connect()
    assert connected
    await ws.send_json_to({"type": "hello", "capacity": capacity, "results": True})
    welcome = await ws.receive_json_from(timeout=2)
    assert welcome["type"] == "welcome", welcome
    return ws


async def next_of(ws, kind: str, timeout: float = 8.0) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        message = await ws.receive_json_from(timeout=max(0.05, end - time.monotonic()))
        if message["type"] == kind:
            return message
    raise AssertionError(f"no {kind} message")


def npc_rows(worker):
    for hz in worker.hosted.values():
        s = hz.state
        mine = np.flatnonzero((s.status != 0) & ((s.kind & RowFlag.NPC) != 0))
        yield from ((hz, int(slot)) for slot in mine)


async def test_npcs_act_on_a_contributors_decisions(monkeypatch):
    monkeypatch.setattr(contribute, "REPORT_EVERY_S", 1.0)
    async with running_market() as worker, EventWatch(MARKET, ops_npcs_subject(MARKET)) as watch:
        ws = await contributor()
        applied = 0
        used = set()
        end = time.monotonic() + 20
        while applied < 20 and time.monotonic() < end:
            message = await ws.receive_json_from(timeout=8)
            if message["type"] == "requests":
                decisions = []
                for obs in message["requests"]:
                    assert {"needs", "pos", "items", "npcs", "visitors", "interactions"} <= set(obs)
                    assert obs["deadline_ms"] > time.time() * 1000
                    decision = utility_policy(obs)
                    if obs["items"] and obs["items"][0]["free"]:
                        decision = {**decision, "action": "use_item"}
                        decision["item"] = obs["items"][0]["id"]
                        decision.pop("to", None)
                        used.add((obs["npc"], obs["lease"], obs["items"][0]["id"]))
                    decisions.append(decision)
                await ws.send_json_to({"type": "decisions", "decisions": decisions})
            elif message["type"] == "result" and message["result"] == "applied":
                applied += 1
        assert applied >= 20
        actions = {int(hz.state.action[slot]) for hz, slot in npc_rows(worker)}
        assert actions & {Action.MOVE_TO, Action.USE_ITEM}
        assert any(hz.state.lease[slot] > 0 for hz, slot in npc_rows(worker))
        report = await watch.next(timeout=3)
        while report.decided < 20:  # an earlier report, from before the 20th
            report = await watch.next(timeout=3)
        assert isinstance(report, NpcDecisionsReported)
        assert [c["capacity"] for c in report.contributors] == [64]
        await ws.disconnect()


async def test_bad_input_on_the_socket_is_refused_and_changes_nothing():
    async with running_market() as worker:
        ws = await contributor()
        await ws.send_to(text_data="{not json")
        assert (await next_of(ws, "error"))["code"] == "malformed"
        await ws.send_json_to({"type": "decisions", "decisions": "all of them"})
        assert (await next_of(ws, "error"))["code"] == "malformed"
        request = (await next_of(ws, "requests"))["requests"][0]
        npc, lease = request["npc"], request["lease"]
        bad = [
            {"npc": npc, "lease": lease, "action": "teleport"},
            {"npc": npc, "lease": lease + 5, "action": "wait", "seconds": 1},
            {"npc": 123456789, "lease": 1, "action": "wait", "seconds": 1},
        ]
        await ws.send_json_to({"type": "decisions", "decisions": bad})
        reasons = [(await next_of(ws, "refused"))["reason"] for _ in bad]
        assert reasons == ["unknown_action", "stale_lease", "stale_lease"]
        # out of range and a missing item are the zone's to refuse; it says so
        far = {"npc": npc, "lease": lease, "action": "move_to", "to": [request["pos"][0] + 60, 5]}
        await ws.send_json_to({"type": "decisions", "decisions": [far]})
        result = await next_of(ws, "result")
        assert (result["npc"], result["lease"], result["result"]) == (npc, lease, "out_of_range")
        for hz, slot in npc_rows(worker):
            if int(hz.state.id[slot]) == npc:
                assert hz.state.goal[slot][0] != np.float32(far["to"][0])
        await ws.disconnect()


async def test_an_answer_for_an_npc_leased_to_another_contributor_is_refused():
    async with running_market() as _:
        first = await contributor(capacity=2)
        request = (await next_of(first, "requests"))["requests"][0]
        second = await contributor(key="another-contributor-key-02")
        stolen = {"npc": request["npc"], "lease": request["lease"], "action": "wait", "seconds": 1}
        await second.send_json_to({"type": "decisions", "decisions": [stolen]})
        assert (await next_of(second, "refused"))["reason"] == "not_leased"
        await first.disconnect()
        await second.disconnect()


async def test_a_contributor_answering_nonsense_is_banned_and_kept_out():
    async with running_market() as _, EventWatch(MARKET, ops_npcs_subject(MARKET)) as watch:
        ws = await contributor()
        nonsense = [{"npc": i, "lease": 1, "action": "sing"} for i in range(1, 51)]
        await ws.send_json_to({"type": "decisions", "decisions": nonsense})
        error = await next_of(ws, "error")
        assert error["code"] == "banned"
        assert (await ws.receive_output(timeout=2))["code"] == CLOSE_BANNED
        event = await watch.next()
        assert isinstance(event, ContributorBanned) and event.seconds == 3600.0
        again = WebsocketCommunicator(app, f"/ws/markets/{MARKET}/contribute/?key={KEY}")
        await again.connect()
        await again.send_json_to({"type": "hello", "capacity": 4})
        assert (await again.receive_json_from(timeout=2))["code"] == "banned"
        await again.disconnect()


async def test_a_short_key_or_a_market_not_live_is_refused():
    async with running_market() as _:
        ws = WebsocketCommunicator(app, f"/ws/markets/{MARKET}/contribute/?key=short")
        await ws.connect()
        assert (await ws.receive_json_from(timeout=2))["code"] == "bad_key"
        await ws.disconnect()
        ws = WebsocketCommunicator(app, f"/ws/markets/99/contribute/?key={KEY}")
        await ws.connect()
        assert (await ws.receive_json_from(timeout=2))["code"] == "market_not_live"
        await ws.disconnect()


async def test_with_no_contributor_the_zones_decide_and_every_npc_lives():
    async with running_market() as worker:
        await asyncio.sleep(3.0)
        assert all(hz.delegate_until_ms == 0 for hz in worker.hosted.values())
        acting = [hz.state.action[slot] != Action.NONE for hz, slot in npc_rows(worker)]
        assert len(acting) == 30 and sum(acting) >= 25
        assert all(hz.state.lease[slot] == 0 for hz, slot in npc_rows(worker))


async def test_when_the_contributor_goes_the_zones_take_over_without_a_freeze():
    async with running_market() as worker:
        ws = await contributor()
        await next_of(ws, "requests")
        await ws.disconnect()
        await asyncio.sleep(0.2)
        leases = [int(hz.state.lease[slot]) for hz, slot in npc_rows(worker)]
        await asyncio.sleep(9.0)  # presence lapses (3 s), then every lease out lapses (5 s)
        assert all(hz.delegate_until_ms < time.time() * 1000 for hz in worker.hosted.values())
        rows = list(npc_rows(worker))
        assert all(hz.state.lease_left[slot] == 0 for hz, slot in rows)
        assert sum(hz.state.action[slot] != Action.NONE for hz, slot in rows) >= 25
        assert max(leases) >= 1  # they were asked for while the contributor was there


async def test_the_sdk_contributor_runs_against_a_real_server():
    async with running_market(walkers=300) as worker:
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            lifespan="off",
            log_level="error",
            ws_max_size=WS_MAX_MESSAGE_BYTES,  # as the market's web processes serve it
        )
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            sdk = Contributor(f"http://127.0.0.1:{port}", MARKET, KEY, 128, utility_policy)

            async def ask_late():
                await asyncio.sleep(5.0)
                await sdk.ask_stats()

            stats, _ = await asyncio.gather(sdk.run(seconds=6.0), ask_late())
        finally:
            server.should_exit = True
            await serving
        assert sdk.closed == ""  # its batches of decisions fit the market's message size
        assert stats.requests > 100 and stats.answered == stats.requests
        # the market's figures, asked through the SDK: its own time per decision too
        figures = sdk.server_stats
        assert figures["type"] == "stats" and figures["decided"] >= stats.answered // 2
        assert figures["latency_p50_ms"] <= figures["latency_p95_ms"]
        server = figures["server"]
        assert 0 <= server["answer_ms_p50"] <= server["answer_ms_p99"] < 1000
        assert 0 <= server["queue_ms_p50"] <= server["queue_ms_p99"] < 5000
        assert stats.results["applied"] >= 0.9 * stats.answered
        assert any(hz.state.lease[slot] > 0 for hz, slot in npc_rows(worker))


def test_a_generated_markets_items_are_its_booths_items():
    layout = generate(MapConfig(market_id=MARKET, seed=3))
    worker = ZoneWorker(
        market_id=MARKET, zones=range(3), booths=DEMO_BOOTHS, data_dir=None, layout=layout
    )
    found = sum(hz.params.items.size for hz in worker.hosted.values())
    assert found == len(layout["items"]) > 0
    kinds = {
        hz.params.items.kind_name(i)
        for hz in worker.hosted.values()
        for i in range(hz.params.items.size)
    }
    assert kinds <= {item["kind"] for item in layout["items"]}


async def test_with_a_fallback_endpoint_and_no_contributor_the_endpoint_decides(settings):
    asked: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            asked.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            content = json.dumps({"action": "wait", "seconds": 4})
            body = json.dumps({"choices": [{"message": {"content": content}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.NPC_FALLBACK_URL = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        async with running_market() as worker:
            hub = contribute.fallback_start(MARKET, len(DEMO_BOOTHS))
            assert hub is not None
            end = time.monotonic() + 12
            waiting = 0
            while time.monotonic() < end and waiting < 10:
                await asyncio.sleep(0.5)
                waiting = sum(hz.state.action[s] == Action.WAIT for hz, s in npc_rows(worker))
            assert waiting >= 10, "the endpoint's decisions (wait) were not applied"
            assert asked and asked[0]["response_format"]["type"] == "json_schema"
            assert hub.dispatcher.decided >= 10
    finally:
        server.shutdown()
        server.server_close()


async def test_only_listed_keys_are_let_in_when_the_market_lists_them(settings):
    settings.NPC_CONTRIBUTOR_KEYS = (contribute.key_identity(KEY),)
    async with running_market() as _:
        ws = await contributor()  # listed
        await ws.disconnect()
        other = WebsocketCommunicator(
            app, f"/ws/markets/{MARKET}/contribute/?key=some-other-key-00001"
        )
        await other.connect()
        assert (await other.receive_json_from(timeout=2))["code"] == "bad_key"
        assert (await other.receive_output(timeout=2))["code"] == contribute.CLOSE_REFUSED
        await other.disconnect()
