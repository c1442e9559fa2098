"""A Redis outage shows, refuses with reasons, stays quiet in the log, and ends by itself.

A distributed market runs on a Redis of this test's own (never the shared one), which
the test kills and later starts again on the same port. While it is down, `/readyz`
answers 503 naming it and `/healthz` stays 200 (the process is alive); the join
endpoint answers 503 `service_unavailable`; a socket opened with a ticket issued just
before is told `service_unavailable` and closed with 4503; and each kind of warning
reaches the log at most once per 10 s. Once Redis is back, readiness returns and a
visitor joins, with no restart. The dashboard names the service while it is down.
"""

import asyncio
import json
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path

import pytest
import websockets

from tests.browser import browser, page  # noqa: F401  (fixtures)
from tests.conftest import service_missing
from tests.live import LiveMarket, free_port, live_market
from tests.operator_ui.dashboard_browser import open_dashboard, wait_until, with_operator
from zones.client.visitor import JoinRefused, Visitor, join_ticket, visit_url

WAIT_S = 30.0
OUTAGE_S = 25.0  # how long the log is watched while Redis is down
MAX_OUTAGE_LINES = 100  # warnings in OUTAGE_S, for three zone workers and the web process


@dataclass
class OwnRedis:
    """redis-server on a port of its own, killed and started again by the test."""

    folder: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
            + ["--save", "", "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + WAIT_S
        while (
            subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True
            ).stdout.strip()
            != "PONG"
        ):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.1)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        service_missing("redis-server is not installed; apt-get install -y redis-server")
    server = OwnRedis(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def market(tmp_path: Path, own_redis: OwnRedis) -> Iterator[LiveMarket]:
    with live_market(
        tmp_path / "market", args=["--walkers", "12"], REDIS_URL=own_redis.url
    ) as server:
        yield server


def get(url: str) -> tuple[int, dict, Message]:
    """(status, JSON body, headers) of a GET, whatever the status."""
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, json.loads(answer.read()), answer.headers
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), error.headers


def wait_ready(url: str, ready: bool) -> dict:
    deadline = time.monotonic() + WAIT_S
    while True:
        status, body, _ = get(url + "/readyz")
        if body["ready"] is ready and status == (200 if ready else 503):
            return body
        assert time.monotonic() < deadline, f"/readyz still says {body}"
        time.sleep(0.2)


async def refusal(url: str) -> tuple[list[dict], int]:
    """The error frames and the close code of a socket the server refuses."""
    texts = []
    async with websockets.connect(url, open_timeout=10) as ws:
        try:
            while True:
                message = await asyncio.wait_for(ws.recv(), WAIT_S)
                if isinstance(message, str):
                    texts.append(json.loads(message))
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None, "dropped without a close frame"
            return texts, closed.rcvd.code


def warnings_by_kind(log: str) -> Counter[str]:
    """Warning and error lines, by their text with every number masked."""
    kinds: Counter[str] = Counter()
    for line in log.splitlines():
        if " WARNING " in line or " ERROR " in line:
            text = line.split(" ", 2)[2]  # without the time stamp
            kinds[re.sub(r"\d+", "N", text.split("(")[0])] += 1
    return kinds


async def visitor_joins(url: str) -> Visitor:
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            return await Visitor.connect(url, 1, timeout=10)
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


def test_a_redis_outage_is_visible_refused_with_reasons_quiet_and_recovered(market, own_redis):
    url = market.url
    assert wait_ready(url, True)["checks"] == {"database": "ok", "redis": "ok"}

    async def before() -> dict:
        visitor = await visitor_joins(url)  # once the zone workers are up
        await visitor.close()
        return await join_ticket(url, 1)

    ticket = asyncio.run(before())

    own_redis.kill()
    log_before = len(market.log())

    # A ticket issued just before the outage opens no socket: it is told why.
    texts, code = asyncio.run(refusal(visit_url(url, 1, ticket)))
    assert code == 4503
    assert texts[-1]["code"] == "service_unavailable"

    body = wait_ready(url, False)
    assert body["checks"] == {"database": "ok", "redis": "down"}
    status, _, headers = get(url + "/readyz")
    assert status == 503 and headers.get("Retry-After") == "5"
    assert get(url + "/healthz")[:2] == (200, {"ok": True})  # alive, not ready

    with pytest.raises(JoinRefused) as refused:
        asyncio.run(join_ticket(url, 1))
    assert (refused.value.status, refused.value.code) == (503, "service_unavailable")
    assert "Redis" in refused.value.detail

    time.sleep(OUTAGE_S)
    outage = warnings_by_kind(market.log()[log_before:])
    assert outage, "the outage was not logged at all"
    # Unthrottled, this market wrote about 600 lines in 25 s of outage: every receive,
    # publish and send of three zone workers, the supervisor and the web process, each
    # several times a second. Throttled, each kind writes a line when it starts and one
    # per 10 s (a few dozen kinds across the processes).
    assert sum(outage.values()) <= MAX_OUTAGE_LINES, outage.most_common(8)

    own_redis.start()  # the same port, empty, as after a restart without persistence
    assert wait_ready(url, True)["checks"]["redis"] == "ok"

    async def after() -> None:
        visitor = await visitor_joins(url)
        assert visitor.welcome["type"] == "welcome"
        await visitor.leave()

    asyncio.run(after())
    assert "ready again: redis answers" in market.log()
    assert market.process.poll() is None


def test_the_dashboard_names_the_service_that_is_down(page, market, own_redis):  # noqa: F811
    with_operator(market)
    open_dashboard(page, market.url)
    line = page.locator("#readiness")
    assert line.is_hidden()

    own_redis.kill()
    wait_until(line.is_visible, WAIT_S, "the readiness line did not appear")
    assert "redis" in line.inner_text()
    assert "joins are refused" in line.inner_text()

    own_redis.start()
    wait_until(line.is_hidden, WAIT_S, "the readiness line did not go")
    # The browser reports each 503 of /readyz on the console; nothing else may fail.
    unexpected = [e for e in page.errors if "responded with a status of 503" not in e]
    assert not unexpected, unexpected
