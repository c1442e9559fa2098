"""The orchestrator keeps each market's process up on its own, and quarantines crash loops.

The market processes are stand-ins (tests/host/fake_market.py) that talk to the
orchestrator's control API as real ones do; the tunables are shrunk through the
environment, as an operator would.
"""

import asyncio
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from host.control import ControlApp, control_server
from host.orchestrator import MarketRefused, Orchestrator
from host.orchestrator_routes import orchestrator_routes_add
from host.tunables import Tunables
from tests.live import free_port

SECRET = "orchestrator-test-secret-of-40-chars-xxx"
FAKE = str(Path(__file__).with_name("fake_market.py"))
WAIT_S = 60.0  # generous: every wait ends as soon as its condition holds


def shrunken(**variables: str) -> dict[str, str]:
    return {
        **os.environ,
        "FABRIC_HOST_HEARTBEAT_MS": "200",
        "FABRIC_HOST_HEARTBEAT_TIMEOUT_MS": "30000",
        "FABRIC_HOST_RESTART_WINDOW_MS": "60000",
        "FABRIC_HOST_RESTART_MAX_IN_WINDOW": "3",
        "FABRIC_HOST_QUARANTINE_MS": "60000",
        **variables,
    }


@asynccontextmanager
async def host(modes: dict[int, list[str]], env: dict[str, str], later=None):
    """An orchestrator of fake markets (id → fake_market.py arguments), its API live;
    `later` are markets created once it runs (the same), which it may add."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    later = later or {}
    orchestrator = Orchestrator(
        markets={market: free_port() for market in modes},
        launcher=lambda market, _port: [sys.executable, FAKE, *{**modes, **later}[market]],
        market_exists=lambda market: market in later,
        reserved_ports=[port],
        secret=SECRET,
        control_url=url,
        tunables=Tunables.from_environment(env),
        env=env,
        backoff_first_s=0.05,
    )
    app = ControlApp(secret=SECRET)
    orchestrator_routes_add(app, orchestrator)
    server = control_server(app, host="127.0.0.1", port=port)
    serving = asyncio.create_task(server.serve())
    stop = asyncio.Event()
    running = asyncio.create_task(orchestrator.run(stop))
    try:
        await until(lambda: server.started, "the control API listens")
        yield orchestrator, url
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)
        server.should_exit = True
        await asyncio.wait_for(serving, 10)


async def until(condition, what: str, timeout_s: float = WAIT_S):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting until {what}"
        await asyncio.sleep(0.05)


def call(url: str, method: str = "GET", secret: str = SECRET) -> tuple[int, dict]:
    request = urllib.request.Request(url, method=method, headers={"X-Fabric-Host-Secret": secret})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def api(url: str, method: str = "GET") -> tuple[int, dict]:
    return await asyncio.to_thread(call, url, method)


def states(orchestrator: Orchestrator) -> dict[int, str]:
    return {m: s.state for m, s in orchestrator.slots.items()}


async def test_a_killed_market_is_restarted_and_the_others_keep_running():
    async with host({1: ["serve"], 2: ["serve"], 3: ["serve"]}, shrunken()) as (boss, url):
        for market in (1, 2, 3):
            assert await boss.ensure_started(market) == "starting"
        await until(lambda: set(states(boss).values()) == {"ready"}, "every market is ready")
        pids = {m: boss.slots[m].pid for m in (1, 2, 3)}
        os.kill(pids[2], signal.SIGKILL)

        await until(lambda: boss.slots[2].restarts == 1, "market 2 is restarted")
        await until(lambda: boss.slots[2].state == "ready", "market 2 is ready again")
        assert boss.slots[2].pid not in (None, pids[2])
        assert boss.slots[2].last_exit == f"exited with {-signal.SIGKILL}"
        assert {m: boss.slots[m].pid for m in (1, 3)} == {1: pids[1], 3: pids[3]}
        assert boss.slots[1].restarts == boss.slots[3].restarts == 0

        status, health = await api(url + "/health")
        assert status == 200
        reports = {m["market_id"]: m for m in health["markets"]}
        assert [reports[m]["state"] for m in (1, 2, 3)] == ["ready"] * 3
        assert reports[2]["restarts"] == 1 and reports[2]["pid"] == boss.slots[2].pid
        assert reports[1]["port"] == boss.slots[1].port
        assert reports[1]["url"] == f"http://127.0.0.1:{boss.slots[1].port}/"
        assert health["orchestrator"]["pid"] == os.getpid()
        await until(lambda: boss.slots[1].stats.get("fake") is True, "a heartbeat's stats arrive")


async def test_a_crash_loop_is_quarantined_refused_with_a_retry_time_then_starts_again(tmp_path):
    flag = tmp_path / "crash"
    flag.touch()
    env = shrunken(FABRIC_HOST_QUARANTINE_MS="8000")
    async with host({1: ["crash-while", str(flag)], 2: ["serve"]}, env) as (boss, url):
        await boss.ensure_started(2)
        status, _ = await api(url + "/markets/1/start", "POST")
        assert status == 200
        await until(lambda: boss.slots[1].state == "quarantined", "market 1 is quarantined")
        # four crashes: the first start and three restarts, one crash more than the limit
        assert boss.slots[1].restarts == 3 and len(boss.slots[1].record.crashes) == 4
        assert boss.market_health(1) == "quarantined"

        status, refused = await api(url + "/markets/1/start", "POST")
        assert status == 409 and refused["reason"] == "quarantined"
        assert 0 < refused["retry_after_ms"] <= 8000 and refused["market_id"] == 1
        assert "quarantined" in refused["error"]
        with pytest.raises(MarketRefused) as caught:
            await boss.ensure_started(1)
        assert caught.value.reason == "quarantined" and caught.value.retry_after_ms > 0

        # the others and the orchestrator are untouched
        await until(lambda: boss.slots[2].state == "ready", "market 2 is ready")
        status, health = await api(url + "/health")
        assert status == 200 and health["markets"][0]["retry_after_ms"] > 0
        assert boss.slots[2].restarts == 0

        flag.unlink()  # whatever made it crash is fixed
        await until(lambda: boss.slots[1].state == "ready", "market 1 starts after quarantine")
        assert boss.market_health(1) == "healthy"
        status, answer = await api(url + "/markets/1/start", "POST")
        assert (status, answer["state"]) == (200, "ready")


async def test_a_market_that_stops_heartbeating_is_marked_unhealthy_and_restarted(tmp_path):
    flag = tmp_path / "mute"
    flag.touch()
    env = shrunken(FABRIC_HOST_HEARTBEAT_TIMEOUT_MS="3000")
    async with host({1: ["mute-once", str(flag)], 2: ["serve"]}, env) as (boss, url):
        await boss.ensure_started(1)
        await boss.ensure_started(2)
        await until(lambda: boss.slots[1].state == "ready" and not flag.exists(), "1 is ready")
        silent = boss.slots[1].pid
        await until(lambda: boss.slots[1].restarts == 1, "the silent market is restarted")
        assert "no heartbeat for" in boss.slots[1].last_exit
        await until(lambda: boss.slots[1].state == "ready", "market 1 is ready again")
        assert boss.slots[1].pid != silent
        history = list(boss.slots[1].history)
        assert history.index("unhealthy") < history.index("restarting")
        assert history[-1] == "ready"
        assert boss.slots[2].restarts == 0 and boss.slots[2].state == "ready"


async def test_a_market_that_heartbeats_is_not_restarted():
    # The control for the test above: beats within the timeout keep a market as it is.
    env = shrunken(FABRIC_HOST_HEARTBEAT_TIMEOUT_MS="3000")
    async with host({1: ["serve"]}, env) as (boss, url):
        await boss.ensure_started(1)
        await until(lambda: boss.slots[1].state == "ready", "market 1 is ready")
        pid = boss.slots[1].pid
        await asyncio.sleep(4)  # longer than the timeout: a silent market would be gone
        assert (boss.slots[1].pid, boss.slots[1].restarts) == (pid, 0)


async def test_stop_ends_the_process_and_start_brings_it_back():
    async with host({1: ["serve"], 2: ["serve"]}, shrunken()) as (boss, url):
        status, answer = await api(url + "/markets/1/start", "POST")
        assert (status, answer["state"]) == (200, "starting")
        assert await boss.market_ready_wait(1, timeout_s=WAIT_S)
        process = boss.slots[1].process
        status, answer = await api(url + "/markets/1/stop", "POST")
        assert (status, answer["state"], answer["pid"]) == (200, "stopped", None)
        assert process.returncode is not None
        await asyncio.sleep(0.5)  # a stop is not a crash: nothing restarts it
        assert boss.slots[1].state == "stopped" and boss.slots[1].restarts == 0
        assert boss.market_health(1) == "down" and boss.market_health(2) == "down"
        status, markets = await api(url + "/markets")
        assert [m["state"] for m in markets["markets"]] == ["stopped", "stopped"]
        await api(url + "/markets/1/start", "POST")
        assert await boss.market_ready_wait(1, timeout_s=WAIT_S)


async def test_a_market_created_since_the_start_joins_the_host_on_a_free_port():
    async with host({1: ["serve"]}, shrunken(), later={7: ["serve"]}) as (boss, url):
        got, refused = await api(url + "/markets/8/start", "POST")
        assert (got, refused["reason"]) == (404, "unknown_market")
        status, answer = await api(url + "/markets/7/start", "POST")
        assert status == 200 and answer["market_id"] == 7
        assert await boss.market_ready_wait(7, timeout_s=WAIT_S)
        ports = {slot.port for slot in boss.slots.values()}
        assert len(ports) == 2 and boss.market_health(7) == "healthy"
        status, markets = await api(url + "/markets")
        assert sorted(m["market_id"] for m in markets["markets"]) == [1, 7]


async def test_two_first_starts_of_a_new_market_at_once_make_one_process():
    async with host({1: ["serve"]}, shrunken(), later={7: ["serve"]}) as (boss, url):
        launched = []
        launch = boss.launcher
        boss.launcher = lambda market, port: launched.append((market, port)) or launch(market, port)
        await asyncio.gather(boss.ensure_started(7), boss.ensure_started(7))
        assert len(launched) == 1  # not a second process on another port
        assert await boss.market_ready_wait(7, timeout_s=WAIT_S)
        slot = boss.slots[7]
        assert boss.market_running(7) and slot.restarts == 0
        assert sorted(boss.slots) == [1, 7] and not boss.market_running(1)


async def test_stopping_the_orchestrator_stops_every_market_process():
    async with host({1: ["serve"], 2: ["serve"]}, shrunken()) as (boss, url):
        await boss.ensure_started(1)
        await boss.ensure_started(2)
        await until(lambda: set(states(boss).values()) == {"ready"}, "both are ready")
        processes = [slot.process for slot in boss.slots.values()]
    assert all(p.returncode is not None for p in processes)
    assert set(states(boss).values()) == {"stopped"}


async def test_ready_and_heartbeats_from_another_process_are_refused():
    async with host({1: ["serve"]}, shrunken()) as (boss, url):
        status, refused = await api(url + "/markets/1/heartbeat", "POST")
        assert (status, refused["reason"]) == (409, "not_running")
        await boss.ensure_started(1)
        await until(lambda: boss.slots[1].state == "ready", "market 1 is ready")
        with pytest.raises(MarketRefused, match="is not market 1's process") as caught:
            boss.market_heartbeat_note(1, pid=boss.slots[1].pid + 1, stats={})
        assert caught.value.reason == "stale_process"


@pytest.mark.parametrize(
    ("path", "status", "reason"),
    [
        ("/markets/9/start", 404, "unknown_market"),
        ("/markets/nine/start", 404, "unknown_market"),
        ("/markets/9/ready", 404, "unknown_market"),
    ],
)
async def test_unknown_markets_are_refused_by_name(path, status, reason):
    async with host({1: ["serve"]}, shrunken()) as (boss, url):
        got, refused = await api(url + path, "POST")
        assert (got, refused["reason"]) == (status, reason)
        assert "market" in refused["error"]


async def test_bad_bodies_are_refused_with_what_was_wrong():
    async with host({1: ["serve"]}, shrunken()) as (boss, url):

        def post(path: str, body: bytes) -> tuple[int, dict]:
            request = urllib.request.Request(
                url + path, data=body, method="POST", headers={"X-Fabric-Host-Secret": SECRET}
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return response.status, json.loads(response.read())
            except urllib.error.HTTPError as error:
                return error.code, json.loads(error.read())

        for body, words in [
            (b"[1, 2]", "must be a JSON object"),
            (b'{"pid": "12"}', "pid must be a positive whole number"),
            (b'{"stats": [1]}', "stats must be a JSON object"),
        ]:
            status, refused = await asyncio.to_thread(post, "/markets/1/heartbeat", body)
            assert (status, refused["reason"]) == (400, "bad_body")
            assert words in refused["error"]


def test_an_orchestrator_needs_markets_and_a_default_among_them():
    with pytest.raises(ValueError, match="at least one market"):
        Orchestrator(markets={}, launcher=list, secret=SECRET, control_url="", tunables=Tunables())
    with pytest.raises(ValueError, match="default market 3 is not one of"):
        Orchestrator(
            markets={1: 8001},
            launcher=list,
            secret=SECRET,
            control_url="",
            tunables=Tunables(),
            default_market=3,
        )
