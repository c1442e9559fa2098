"""1,000 reconnects of SDK visitors while events flow, their web process killed in between.

A distributed market (zone workers on Redis, events on Redis Streams) with a second web
process of its own (`uvicorn` with FABRIC_MARKET_ID) that the visitors use. While events
flow into the market's stream, 50 keyed visitors reconnect 20 times each; the web process
is killed with SIGKILL twice and started again on the same port, and the visitors come
back as soon as it answers. Every visitor must end up with exactly the events of its
subjects that the stream holds after its first welcome: none lost, none twice, in order.
"""

import asyncio
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from websockets.exceptions import WebSocketException

from market.events.backends import Retention
from market.events.backends.redis_streams import RedisStreamsBackend
from market.events.envelope import envelope_new, envelope_parse
from market.events.subjects import stream_name, subject_matches, visitor_subjects
from market.events.types import AssetChanged
from market.rates import JOIN_LIMIT_DEFAULTS
from tests.live import free_port, http_get, live_market
from tests.subprocesses import REPO_ROOT
from tests.waiting import until
from zones.client.visitor import JoinRefused, Visitor, VisitorClosed

MARKET = 1
BOOTHS = 3
VISITORS = 50
RECONNECTS_EACH = 20
KILL_AT = (300, 700)  # reconnects done when the web process is killed
EVENTS_PER_S = 60


@pytest.fixture
def market(tmp_path, redis_url):
    prefix = f"resume{uuid.uuid4().hex[:8]}"
    # 1,050 joins from 127.0.0.1 in a few minutes: far beyond the join limits for one caller
    no_join_limits = dict.fromkeys(JOIN_LIMIT_DEFAULTS, "off")
    with live_market(
        tmp_path,
        args=["--walkers", "0"],
        REDIS_URL=redis_url,
        FABRIC_CHANNEL_PREFIX=prefix,
        **no_join_limits,
    ) as running:
        yield running, prefix


class WebProcess:
    """A web process of its own serving the market's visitors, killable and restartable."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = {**env, "FABRIC_MARKET_ID": str(MARKET)}
        self.port = free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.kills = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "fabric_site.asgi:application"]
                + ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
                cwd=REPO_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if http_get(self.url + "/healthz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"the web process did not answer: {self.log_path.read_text()}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()  # SIGKILL: no goodbye to anyone
        self.process.wait()
        self.kills += 1

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)


async def publish_forever(log, stop: asyncio.Event) -> int:
    """asset_changed events for every booth, as the outbox relay appends them."""
    published = 0
    while not stop.is_set():
        zone = published % BOOTHS
        event = AssetChanged(zone=zone, booth=zone + 1, asset=published, name="a", change="changed")
        envelope = envelope_new(MARKET, event)
        await log.append([(envelope.subject, envelope.to_bytes(), envelope.id)])
        published += 1
        await asyncio.sleep(1 / EVENTS_PER_S)
    return published


async def come_back(visitor: Visitor) -> None:
    """Reconnect, waiting out the time the web process is down."""
    while True:
        try:
            await visitor.reconnect(timeout=10)
            return
        except (JoinRefused, VisitorClosed, WebSocketException, OSError, TimeoutError):
            await asyncio.sleep(0.2)


async def stored_events(log) -> list:
    """Every event of the market's stream, oldest first."""
    stored = []
    cursor = 0
    while batch := (await log.read(cursor, 1000)).entries:
        stored += batch
        cursor = batch[-1].offset
    return stored


def expected_offsets(visitor: Visitor, first: int, stored: list) -> list[int]:
    """The offsets of the stored events after `first` that the visitor's socket delivers."""
    return [
        e.offset
        for e in stored
        if e.offset > first and wanted(visitor, envelope_parse(e.data).subject, visitor.booth)
    ]


async def run(web: WebProcess, log) -> tuple[list[Visitor], dict[int, int], int, list]:
    stop = asyncio.Event()
    publisher = asyncio.create_task(publish_forever(log, stop))
    visitors = [
        await Visitor.connect(web.url, MARKET, key=f"resume-{i}-{uuid.uuid4().hex}", booth=i % 3)
        for i in range(VISITORS)
    ]
    first = {v.entity: v.welcome["events"]["offset"] for v in visitors}
    done = 0
    rng = random.Random(7)

    async def keep_coming_back(visitor: Visitor) -> None:
        nonlocal done
        for _ in range(RECONNECTS_EACH):
            await asyncio.sleep(rng.uniform(0.0, 0.15))
            await come_back(visitor)
            done += 1

    async def killer() -> None:
        for at in KILL_AT:
            while done < at:
                await asyncio.sleep(0.05)
            await asyncio.to_thread(web.kill)
            await asyncio.sleep(0.5)
            await asyncio.to_thread(web.start)

    await asyncio.gather(killer(), *(keep_coming_back(v) for v in visitors))
    await asyncio.sleep(1.0)  # events published with everyone connected
    stop.set()
    published = await publisher
    stored = await stored_events(log)
    for visitor in visitors:  # the last events reach every socket
        last = max(expected_offsets(visitor, first[visitor.entity], stored), default=0)
        await until(
            lambda v=visitor, last=last: (
                max((e.get("offset", 0) for e in v.events), default=0) >= last
            ),
            f"visitor {visitor.entity}'s last event",
            timeout=30.0,
        )
    for visitor in visitors:
        await visitor.close()
    return visitors, first, published, stored


def wanted(visitor: Visitor, subject: str, booth: int) -> bool:
    """What the visitor's socket delivers: its own events and its booth's asset changes."""
    own = subject_matches(visitor_subjects(MARKET, visitor.entity), subject)
    return own or subject == f"market.{MARKET}.booth.{booth}.assets"


def test_a_thousand_reconnects_through_two_killed_web_processes_lose_and_repeat_nothing(
    market, redis_url, tmp_path
):
    running, prefix = market
    web = WebProcess(running.env, tmp_path / "web.log")
    web.start()
    backend = RedisStreamsBackend(redis_url, Retention(), prefix=prefix)
    log = backend.log(stream_name(MARKET))

    async def go():
        try:
            return await run(web, log)
        finally:
            await backend.close()

    try:
        visitors, first, published, stored = asyncio.run(go())
    finally:
        web.stop()
    assert web.kills == len(KILL_AT)
    assert published > 500
    for visitor in visitors:
        expected = expected_offsets(visitor, first[visitor.entity], stored)
        received = [e["offset"] for e in visitor.events if "offset" in e]
        assert visitor.stats.events_repeated == 0
        lost, extra = sorted(set(expected) - set(received)), sorted(set(received) - set(expected))
        assert received == expected, f"visitor {visitor.entity}: lost {lost[:5]}, extra {extra[:5]}"
        assert len(received) > 50
