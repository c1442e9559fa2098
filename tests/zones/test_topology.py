"""A market on several machines, played on one: every role is a process of its own.

As docs/runbook.md ("A market on several machines") starts them, against one PostgreSQL
(a schema of this test's own) and one Redis (a channel prefix of this test's own), with
events on Redis Streams:

  * zone host A: `manage.py zoneworker --market M --zones 0 --outbox-relay`;
  * zone host B: `manage.py zoneworker --market M --zones 1,2`, started by a launcher that
    exits at once (as a shell that put it in the background would): no supervisor, no
    parent to watch, and no outbox relay (one is enough; the runbook runs one on each);
  * web A and web B: `uvicorn fabric_site.asgi:application` with FABRIC_MARKET_ID and the
    connection limits' flags (zones/web_limits.py).

Each zone host and the web processes have data folders of their own. Ten SDK visitors
join through each web process; every visitor of web A stands 2 m from one of web B, in
every zone, and each must see the other in its interest frames. The summary socket of
either web process shows every zone with both web processes subscribed, and a ticket
issued by one web process opens a socket on the other. An asset change
written to the database by another process reaches the visitors of that booth on both
web processes. A visitor of web A walks from zone 0 (host A) into a zone of host B and
gets booth_entered, then zone_changed, while its neighbour on web B watches it change
hands. Then web A is stopped: its visitors come back through web B as the same
entities, their events resumed, and the walker walks back. Everything stops on SIGTERM
without a traceback.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import numpy as np
import psycopg
import pytest
import websockets

from tests.live import free_port, http_get
from tests.subprocesses import REPO_ROOT, embedded_environment, run_manage
from zones.client.burst import Crossing, connect_retrying, plan_crossings, walk_to
from zones.client.layout import Layout
from zones.client.visitor import Visitor, join_ticket, visit_url
from zones.core.wire import RowFlag
from zones.web_limits import uvicorn_flags

PER_WEB = 10  # visitors joining through each web process
PAIR_GAP_M = 2.0  # how far a visitor of web A stands from its partner of web B
SPOT_SPACING_M = 8.0  # pairs stand at least this far from one another
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 15
SEE_TIMEOUT_S = 15

SEED = "from market.services import market_demo_ensure; print(market_demo_ensure().pk)"


# --- the services: a schema of our own, a Redis prefix of our own ----------------------------


@pytest.fixture
def database_url(postgres_url: str) -> Iterator[str]:
    """The test database's URL, confined to a fresh schema that is dropped afterwards."""
    schema = f"topology_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f'create schema "{schema}"')
    parts = urlsplit(postgres_url)
    option = "options=" + quote(f"-c search_path={schema}")
    query = f"{parts.query}&{option}" if parts.query else option
    try:
        yield urlunsplit(parts._replace(query=query))
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as connection:
            connection.execute(f'drop schema "{schema}" cascade')


# --- the processes ----------------------------------------------------------------------------


def process_state(pid: int) -> str | None:
    """The kernel's one-letter state of a process (Z: exited, not reaped), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


@dataclass
class Role:
    """One host's process: started by us (`process`) or by a launcher that has exited."""

    name: str
    pid: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def running(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return process_state(self.pid) not in (None, "Z")

    def signal(self, sig: int) -> None:
        if self.running():
            os.kill(self.pid, sig)

    def wait(self, timeout: float) -> int | None:
        """The exit code (None for a process we cannot reap); AssertionError if still running."""
        if self.process is not None:
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                raise AssertionError(
                    f"{self.name} still runs {timeout} s after SIGTERM:\n{self.log()}"
                ) from None
        deadline = time.monotonic() + timeout
        while self.running():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} still runs {timeout} s after SIGTERM")
            time.sleep(0.1)
        return None

    def stop(self) -> int | None:
        """SIGTERM, then the exit code."""
        self.signal(signal.SIGTERM)
        return self.wait(STOP_TIMEOUT_S)


def assert_stopped_cleanly(role: Role, code: int | None) -> None:
    """Zone workers exit 0 on SIGTERM; uvicorn shuts down, then ends by the signal itself."""
    if role.name.startswith("web"):
        assert code in (0, -signal.SIGTERM), f"{role.name} exited with {code}:\n{role.log()}"
        assert "Finished server process" in role.log(), f"{role.name} did not shut down"
    else:
        # None: a process that is not our child, whose code only its new parent learns
        assert code in (0, None), f"{role.name} exited with {code}:\n{role.log()}"


def start_role(name: str, argv: list[str], env: dict[str, str], log_path: Path) -> Role:
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            argv, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    return Role(name=name, pid=process.pid, log_path=log_path, process=process)


# Starts argv[2:] in a session of its own with its output in argv[1], prints its pid, exits.
LAUNCHER = (
    "import subprocess, sys\n"
    "with open(sys.argv[1], 'ab') as log:\n"
    "    child = subprocess.Popen(sys.argv[2:], stdout=log, stderr=subprocess.STDOUT,"
    " start_new_session=True)\n"
    "print(child.pid)\n"
)


def launch_detached(name: str, argv: list[str], env: dict[str, str], log_path: Path) -> Role:
    """Start `argv` through a launcher that exits at once, leaving it without its parent."""
    launched = subprocess.run(
        [sys.executable, "-c", LAUNCHER, str(log_path), *argv],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return Role(name=name, pid=int(launched.stdout.strip()), log_path=log_path)


def manage_argv(*args: str) -> list[str]:
    return [sys.executable, str(REPO_ROOT / "manage.py"), *args]


def wait_healthy(role: Role, url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert role.running(), f"{role.name} exited before answering:\n{role.log()}"
        try:
            if http_get(url + "/healthz")[0] == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{role.name} did not answer within {START_TIMEOUT_S} s:\n{role.log()}")


@dataclass
class Topology:
    market: int
    zones_a: Role
    zones_b: Role
    web_a: Role
    web_b: Role
    url_a: str
    url_b: str
    env: dict[str, str]
    folders: dict[str, Path]

    @property
    def roles(self) -> list[Role]:
        return [self.web_a, self.web_b, self.zones_a, self.zones_b]


@pytest.fixture
def topology(tmp_path: Path, database_url: str, redis_url: str, channel_prefix: str):
    """Migrate, seed the demo market, start two zone hosts and two web processes."""
    folders = {name: tmp_path / name for name in ("zones-a", "zones-b", "web")}
    for folder in folders.values():
        folder.mkdir()
    # What every host of the market shares (docs/runbook.md); each keeps its own data folder.
    shared = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "FABRIC_CHANNEL_PREFIX": channel_prefix,
        "FABRIC_EVENTS_BACKEND": "redis",
        "DJANGO_SECRET_KEY": uuid.uuid4().hex * 2,
        "FABRIC_DEBUG": "0",
        "PYTHONUNBUFFERED": "1",
    }

    def env_for(folder: str, **more: str) -> dict[str, str]:
        return embedded_environment(folders[folder], **shared, **more)

    migrated = run_manage("migrate", "--noinput", env=env_for("web"))
    assert migrated.returncode == 0, migrated.stderr
    seeded = run_manage("shell", "-c", SEED, env=env_for("web"))
    assert seeded.returncode == 0, seeded.stderr
    market = int(seeded.stdout.split()[-1])  # after the shell's own note on imports

    roles: list[Role] = []
    try:
        zones_a = start_role(
            "zone host A",
            manage_argv("zoneworker", "--market", str(market), "--zones", "0", "--outbox-relay"),
            env_for("zones-a"),
            tmp_path / "zones-a.log",
        )
        roles.append(zones_a)
        zones_b = launch_detached(
            "zone host B",
            manage_argv("zoneworker", "--market", str(market), "--zones", "1,2"),
            env_for("zones-b"),
            tmp_path / "zones-b.log",
        )
        roles.append(zones_b)
        web_env = env_for("web", FABRIC_MARKET_ID=str(market))
        urls, webs = [], []
        for name in ("web A", "web B"):
            port = free_port()
            web = start_role(
                name,
                [sys.executable, "-m", "uvicorn", "fabric_site.asgi:application"]
                + ["--host", "127.0.0.1", "--port", str(port), *uvicorn_flags()],
                web_env,
                tmp_path / f"{name.replace(' ', '-')}.log",
            )
            roles.append(web)
            webs.append(web)
            urls.append(f"http://127.0.0.1:{port}")
        for web, url in zip(webs, urls, strict=True):
            wait_healthy(web, url)
        yield Topology(
            market=market,
            zones_a=zones_a,
            zones_b=zones_b,
            web_a=webs[0],
            web_b=webs[1],
            url_a=urls[0],
            url_b=urls[1],
            env=env_for("web"),
            folders=folders,
        )
    finally:
        for role in roles:  # whatever the test left running
            role.signal(signal.SIGTERM)
        for role in roles:
            try:
                role.wait(STOP_TIMEOUT_S)
            except AssertionError:
                role.signal(signal.SIGKILL)


# --- where the visitors stand -----------------------------------------------------------------


def crossing_between_hosts(layout: Layout) -> Crossing:
    """A straight walk from zone 0 (zone host A) into a zone of zone host B."""
    for crossing in plan_crossings(layout, 64, np.random.default_rng(11)):
        if crossing.src == 0 and crossing.dst != 0:
            return crossing
    raise AssertionError("no border between zone 0 and zones 1, 2 among 64 crossings")


def pair_spots(
    layout: Layout, zones: list[int], keep_away: list[np.ndarray]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each zone given, two points PAIR_GAP_M apart inside it, away from the others."""
    rng = np.random.default_rng(5)
    gap = np.array([PAIR_GAP_M, 0.0, 0.0])
    points = layout.floor_points(step=2.0)
    inside = (points[:, [0, 2]] > 4.0).all(axis=1) & (
        points[:, [0, 2]] < layout.hi[[0, 2]] - 4.0 - PAIR_GAP_M
    ).all(axis=1)
    here, there = layout.zone_at(points), layout.zone_at(points + gap)
    taken = list(keep_away)
    spots = []
    for zone in zones:
        candidates = np.flatnonzero(inside & (here == zone) & (there == zone))
        for i in rng.permutation(candidates):
            if all(np.linalg.norm(points[i] - t) >= SPOT_SPACING_M for t in taken):
                break
        else:
            raise AssertionError(f"no room for another pair in zone {zone}")
        taken.append(points[i])
        spots.append((points[i], points[i] + gap))
    return spots


def sees(visitor: Visitor, entity: int, zone: int | None = None) -> bool:
    """Whether the visitor's latest frame has `entity`'s row (held by `zone`, if given)."""
    rows = visitor.rows[visitor.rows["id"] == entity]
    if zone is None:
        return rows.size > 0
    held = (rows["flags"] & RowFlag.AUTHORITATIVE) != 0
    return bool(np.any(held & (rows["zone"] == zone)))


async def until(visitor: Visitor, predicate: Callable[[Visitor], bool], what: str) -> None:
    """Wait until `predicate` holds for the visitor; AssertionError saying `what` did not."""
    try:
        await visitor.wait_for(predicate, SEE_TIMEOUT_S)
    except TimeoutError:
        raise AssertionError(
            f"visitor {visitor.entity} of {visitor.base_url}: {what} within {SEE_TIMEOUT_S} s"
        ) from None


async def next_event(visitor: Visitor, kind: str, why: str) -> dict[str, Any]:
    """The visitor's next event of this kind; AssertionError with `why` if none comes."""
    try:
        return await visitor.wait_event(kind, SEE_TIMEOUT_S)
    except TimeoutError:
        raise AssertionError(
            f"visitor {visitor.entity} of {visitor.base_url}: no {kind} within"
            f" {SEE_TIMEOUT_S} s ({why}); its events: {visitor.events}"
        ) from None


async def join_at(url: str, market: int, spots: list[np.ndarray]) -> list[Visitor]:
    return list(
        await asyncio.gather(
            *(connect_retrying(url, market, retry_s=START_TIMEOUT_S, at=s.tolist()) for s in spots)
        )
    )


# --- the landing page's summary socket -------------------------------------------------------


async def summary_of_every_zone(url: str, market: int, zones: int) -> dict[str, dict]:
    """The summary socket's zones, once every zone shows both web processes subscribed."""
    address = urlsplit(url).netloc
    async with websockets.connect(
        f"ws://{address}/ws/markets/{market}/summary/", origin=url, open_timeout=10
    ) as socket:
        snapshot = json.loads(await socket.recv())
        assert snapshot["type"] == "snapshot", snapshot
        state = snapshot["state"]["zones"]
        wanted = {str(z) for z in range(zones)}
        try:
            async with asyncio.timeout(SEE_TIMEOUT_S):
                while not (
                    set(state) == wanted and all(s.get("subscribers") == 2 for s in state.values())
                ):
                    message = json.loads(await socket.recv())
                    if message["type"] == "market_summary":
                        state.update({str(z["zone"]): z for z in message["zones"]})
        except TimeoutError:
            seen = {zone: s.get("subscribers") for zone, s in state.items()}
            raise AssertionError(
                f"the summary socket of {url} never showed zones {sorted(wanted)} each with"
                f" 2 web processes subscribed; zone → subscribers: {seen}"
            ) from None
        return state


async def welcome_with_ticket_of(issuer: str, server: str, market: int) -> dict[str, Any]:
    """The welcome of a socket on `server` opened with a ticket `issuer` issued; then leave."""
    ticket = await join_ticket(issuer, market, booth=1)
    async with websockets.connect(visit_url(server, market, ticket), open_timeout=10) as socket:
        async with asyncio.timeout(SEE_TIMEOUT_S):
            while True:
                message = await socket.recv()
                if isinstance(message, str) and json.loads(message)["type"] in ("welcome", "error"):
                    break
        await socket.send(json.dumps({"type": "leave"}))
    return json.loads(message)


# --- the test ---------------------------------------------------------------------------------


def publish_asset_change(topology: Topology, zone: int) -> None:
    """An asset change of the booth of `zone`, written to the outbox by another process:
    only zone host A's relay can bring it to the stream."""
    code = (
        "from django.db import transaction\n"
        "from market.events.publish import event_publish_on_commit\n"
        "from market.events.types import AssetChanged\n"
        "from market.models import Booth\n"
        f"booth = Booth.objects.get(market_id={topology.market}, zone_index={zone})\n"
        "with transaction.atomic():\n"
        f"    event_publish_on_commit({topology.market}, AssetChanged(zone={zone},"
        " booth=booth.pk, asset=1, name='poster', change='published'))\n"
    )
    done = run_manage("shell", "-c", code, env=topology.env)
    assert done.returncode == 0, done.stderr


async def test_zone_hosts_and_two_web_processes_started_apart_serve_one_market(topology):
    market = topology.market
    probe = await connect_retrying(topology.url_a, market, retry_s=START_TIMEOUT_S)
    layout = probe.layout
    assert layout is not None and layout.zones == 3
    await probe.leave()

    # Where everyone stands: the walker (web A) at a border of host A's zone with host B's,
    # its watcher (web B) beside it, and nine pairs spread over the three zones.
    crossing = crossing_between_hosts(layout)
    heading = (crossing.end - crossing.start) / np.linalg.norm(crossing.end - crossing.start)
    beside = crossing.start + PAIR_GAP_M * np.array([-heading[2], 0.0, heading[0]])
    zones = [i % 3 for i in range(PER_WEB - 1)]
    spots = pair_spots(layout, zones, keep_away=[crossing.start, crossing.end, beside])
    web_a = await join_at(topology.url_a, market, [crossing.start] + [a for a, _ in spots])
    web_b = await join_at(topology.url_b, market, [beside] + [b for _, b in spots])
    walker, watcher = web_a[0], web_b[0]
    for visitor, spot in zip(
        web_a + web_b,
        [crossing.start] + [a for a, _ in spots] + [beside] + [b for _, b in spots],
        strict=True,
    ):
        assert visitor.zone == layout.zone_of(spot), f"visitor at {spot} joined zone {visitor.zone}"
    assert walker.zone == 0

    # Both web processes relay every zone: each visitor sees its partner of the other one.
    pairs = list(zip(web_a, web_b, strict=True))
    for a, b in pairs:
        await until(a, lambda v, e=b.entity: sees(v, e), f"web B's {b.entity} not seen")
        await until(b, lambda v, e=a.entity: sees(v, e), f"web A's {a.entity} not seen")

    # The landing page of either web process shows every zone, relayed by both, with the
    # visitors of both.
    standing = [sum(v.zone == zone for v in web_a + web_b) for zone in range(layout.zones)]
    for url in (topology.url_a, topology.url_b):
        summary = await summary_of_every_zone(url, market, layout.zones)
        for zone, booth in enumerate(layout.booths):
            assert summary[str(zone)]["name"] == booth["name"]
            assert summary[str(zone)]["visitors"] == standing[zone], (url, summary)

    # No stickiness needed: a ticket issued by one web process opens a socket on the other.
    welcome = await welcome_with_ticket_of(topology.url_a, topology.url_b, market)
    assert welcome["type"] == "welcome" and welcome["zone"] == 1, welcome

    # A database write's event reaches the booth's visitors on both web processes.
    await asyncio.to_thread(publish_asset_change, topology, 0)
    in_zone_0 = [v for v in web_a + web_b if v.booth == 0]
    assert {v.base_url for v in in_zone_0} == {topology.url_a, topology.url_b}
    for visitor in in_zone_0:
        changed = await next_event(visitor, "asset_changed", "is an outbox relay running?")
        assert (changed["zone"], changed["name"]) == (0, "poster")

    # The walker crosses from host A's zone into host B's; its watcher sees it change hands.
    welcome_offset = walker.welcome["events"]["offset"]
    walking = asyncio.create_task(walk_to(walker, crossing.end, heading, timeout_s=20))
    entered = await next_event(walker, "booth_entered", "walking across a booth border")
    moved = await next_event(walker, "zone_changed", "handed from zone host A to B")
    await walking
    assert entered["zone"] == crossing.dst and entered["entity"] == walker.entity
    assert (moved["from"], moved["to"]) == (crossing.src, crossing.dst)
    assert welcome_offset < entered["offset"] < moved["offset"]
    await until(
        watcher,
        lambda v: sees(v, walker.entity, crossing.dst),
        f"the walker not seen held by zone {crossing.dst}",
    )

    # Web A stops: its visitors come back through web B, the same entities, events resumed.
    assert_stopped_cleanly(topology.web_a, await asyncio.to_thread(topology.web_a.stop))
    for visitor in web_a:
        await until(visitor, lambda v: v.closed, "socket still open after web A stopped")
        entity = visitor.entity
        visitor.base_url = topology.url_b
        await visitor.reconnect()
        assert visitor.entity == entity and visitor.resumed, "a visitor was spawned again"
        assert visitor.events_recovered is True, "web B did not resume the visitor's events"
    walking = asyncio.create_task(walk_to(walker, crossing.start, -heading, timeout_s=20))
    back = await next_event(walker, "zone_changed", "walking back, served by web B")
    await walking
    assert (back["from"], back["to"]) == (crossing.dst, crossing.src)
    offsets = [e["offset"] for e in walker.events]
    assert offsets == sorted(set(offsets)) and walker.stats.events_repeated == 0
    await until(
        watcher,
        lambda v: sees(v, walker.entity, crossing.src),
        f"the walker not seen held by zone {crossing.src} again",
    )
    for visitor in web_a + web_b:
        await visitor.leave()

    # Everything stops on SIGTERM; each zone host kept the snapshots of its own zones.
    for role in (topology.web_b, topology.zones_a, topology.zones_b):
        assert_stopped_cleanly(role, await asyncio.to_thread(role.stop))
    for role in topology.roles:
        assert "Traceback" not in role.log(), f"{role.name} logged a traceback:\n{role.log()}"
    hosted = {
        host: {p.parent.name for p in (topology.folders[host] / "zones").glob("*/zone-*/*.snap")}
        for host in ("zones-a", "zones-b")
    }
    assert hosted == {"zones-a": {"zone-00"}, "zones-b": {"zone-01", "zone-02"}}
    assert "relaying the outbox" in topology.zones_a.log()
