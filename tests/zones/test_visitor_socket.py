"""The visitor socket of a real market (docs/protocol.md §2–§4), misused every way §4 lists.

One `manage.py runmarket` serves the whole module. A well-behaved visitor (the
watcher) stays connected from the first test to the last, in its own thread,
while the other tests open sockets that misbehave; the last test checks that it
kept receiving frames at the tick rate and was never closed, and that the
server logged no traceback.
"""

import asyncio
import contextlib
import json
import re
import sqlite3
import threading
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pytest
from django.conf import settings
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from market.tickets import (
    RESUME_TTL_S,
    resume_entity,
    ticket_issue,
    visitor_entity_disposable,
)
from tests.live import LiveMarket, live_market
from zones.core.constants import HYSTERESIS_TICKS, MARKET_SIZE_M, SIM_TICK_HZ
from zones.core.crowd import FLOOR_Y_M
from zones.core.ranges import RangeMap, floor_ranges
from zones.core.wire import INPUT_DTYPE, frame_decode

MARKET = 1  # the demo market runmarket creates in an empty database
BOOTHS = 3  # ... with its three booths
LO = np.zeros(3, np.float32)
HI = np.array(MARKET_SIZE_M, np.float32)
TICK_S = 1.0 / SIM_TICK_HZ


# --- the server and a well-behaved visitor for the whole module ------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveMarket]:
    # The server gets this process's SECRET_KEY, so tickets minted here verify there.
    with live_market(
        tmp_path_factory.mktemp("visitor-socket"),
        args=["--walkers", "20"],
        DJANGO_SECRET_KEY=settings.SECRET_KEY,
    ) as market:
        yield market


def join(server: LiveMarket, market: int = MARKET, **body: Any) -> dict[str, Any]:
    """POST /api/markets/<market>/join/ with `body`; the 200 answer."""
    request = urllib.request.Request(
        f"{server.url}/api/markets/{market}/join/",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        return json.loads(response.read())


def visit_url(server: LiveMarket, ticket: str | None, market: int = MARKET) -> str:
    url = f"ws://{server.address}/ws/markets/{market}/visit/"
    return url if ticket is None else f"{url}?{urlencode({'ticket': ticket})}"


class Watcher(threading.Thread):
    """A visitor that only listens, on its own event loop, until stopped."""

    def __init__(self, server: LiveMarket) -> None:
        super().__init__(name="well-behaved-visitor", daemon=True)
        self.server = server
        self.welcome: dict[str, Any] = {}
        self.stamps: list[float] = []  # monotonic arrival time of each interest frame
        self.missing_self = 0  # frames without the watcher's own root
        self.texts: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.failure: BaseException | None = None
        self.ready = threading.Event()
        self.halt = threading.Event()

    def run(self) -> None:
        try:
            asyncio.run(self._watch())
        except BaseException as exc:  # reported by the last test
            self.failure = exc
        finally:
            self.ready.set()

    async def _watch(self) -> None:
        ticket = join(self.server, at=[100.0, FLOOR_Y_M, 100.0])
        async with connect(visit_url(self.server, ticket["ticket"]), open_timeout=10) as ws:
            self.welcome = json.loads(await ws.recv())
            entity = self.welcome["entity"]
            self.ready.set()
            while not self.halt.is_set():
                try:
                    message = await asyncio.wait_for(ws.recv(), 0.25)
                except TimeoutError:
                    continue
                except ConnectionClosed as closed:
                    self.close_code = closed.rcvd.code if closed.rcvd else 1006
                    return
                if isinstance(message, bytes):
                    self.stamps.append(time.monotonic())
                    _, rows, _ = frame_decode(message)
                    self.missing_self += int(entity not in rows["id"])
                else:
                    self.texts.append(json.loads(message))


@pytest.fixture(scope="module", autouse=True)
def watcher(server: LiveMarket) -> Iterator[Watcher]:
    watcher = Watcher(server)
    watcher.start()
    assert watcher.ready.wait(15), "the well-behaved visitor never got its welcome"
    assert watcher.failure is None, watcher.failure
    assert watcher.welcome.get("type") == "welcome", watcher.welcome
    yield watcher
    watcher.halt.set()
    watcher.join(5)


# --- a visitor socket, for the tests ---------------------------------------------------------


@dataclass
class Visit:
    """An open visitor socket after its welcome."""

    ws: ClientConnection
    welcome: dict[str, Any]
    seen: list[dict[str, Any]] = field(default_factory=list)  # JSON frames read so far

    @property
    def entity(self) -> int:
        return int(self.welcome["entity"])

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        await self.ws.send(json.dumps(message) if isinstance(message, dict) else message)

    async def until(
        self, wanted: Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> dict[str, Any]:
        """The next JSON frame that `wanted` accepts, skipping interest frames."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.ws.recv()
                if isinstance(message, str):
                    parsed = json.loads(message)
                    self.seen.append(parsed)
                    if wanted(parsed):
                        return parsed

    async def error(self, timeout: float = 5.0) -> dict[str, Any]:
        return await self.until(lambda m: m["type"] == "error", timeout)

    async def frames(
        self,
        seconds: float = 0.0,
        *,
        count: int = 0,
        until: Callable[[Any, np.ndarray], bool] | None = None,
        timeout: float = 10.0,
    ) -> list[tuple[float, Any, np.ndarray, np.ndarray]]:
        """(arrival, header, rows, bodies) of the interest frames of the next `seconds`, and
        on until there are `count` of them and `until(header, rows)` held for the last one.

        A loaded machine may be slow to send them: what a test needs is `count` frames or
        the frame `until` waits for, never what a window of wall time happens to hold;
        AssertionError when they have not come after `timeout` s.
        """
        got: list[tuple[float, Any, np.ndarray, np.ndarray]] = []
        start = time.monotonic()

        def wanting() -> bool:
            return len(got) < count or (
                until is not None and not (got and until(got[-1][1], got[-1][2]))
            )

        while (window := start + seconds - time.monotonic()) > 0 or wanting():
            left = start + timeout - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{len(got)} frames in {timeout:g} s, none the one awaited")
            try:
                message = await asyncio.wait_for(self.ws.recv(), max(window, 0) or left)
            except TimeoutError:
                continue
            if isinstance(message, bytes):
                header, rows, bodies = frame_decode(message)
                got.append((time.monotonic(), header, rows.copy(), bodies.copy()))
            else:
                self.seen.append(json.loads(message))
        return got

    async def own_positions(self, seconds: float = 0.0, count: int = 0) -> np.ndarray:
        """(n, 3) positions of this visitor's root in the frames of the next `seconds`, and
        on until there are `count`."""
        rows = [r[r["id"] == self.entity] for _, _, r, _ in await self.frames(seconds, count=count)]
        assert all(r.size == 1 for r in rows), "a frame lacks the visitor's own root"
        return np.array([r["pos"][0] for r in rows])

    async def ack(self) -> int:
        """The ack_seq of the frames once everything sent so far was read and taken.

        The zones acknowledge an input in the rows of the tick that took it, which reach
        the frames a tick or two after the web process passed the input on.
        """
        await self.ping(0xACC)  # answered only after the messages sent before it
        # the zones take them at their next tick: frames of ticks 250 ms on carry them
        later = now_ms() + 250
        frames = await self.frames(until=lambda header, _: header["tick_ms"] >= later)
        return int(frames[-1][1]["ack_seq"])

    async def ping(self, ident: int = 1) -> dict[str, Any]:
        await self.send({"type": "ping", "id": ident, "t": 0.5})
        return await self.until(lambda m: m["type"] == "pong" and m["id"] == ident)


async def refusal(ws: ClientConnection, timeout: float = 5.0) -> tuple[list[dict[str, Any]], int]:
    """Every JSON frame until the server closes the socket, and the close code."""
    texts = []
    async with asyncio.timeout(timeout):
        try:
            while True:
                message = await ws.recv()
                if isinstance(message, str):
                    texts.append(json.loads(message))
        except ConnectionClosed as closed:
            assert closed.rcvd is not None, "the server dropped the socket without a close frame"
            return texts, closed.rcvd.code


@asynccontextmanager
async def visiting(server: LiveMarket, **body: Any) -> AsyncIterator[Visit]:
    """A new visitor (POST join with `body`, then the socket), closed afterwards."""
    ticket = await asyncio.to_thread(join, server, **body)
    async with connect(visit_url(server, ticket["ticket"]), open_timeout=10) as ws:
        welcome = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert welcome["type"] == "welcome", welcome
        assert welcome["entity"] == ticket["entity"]
        yield Visit(ws, welcome)


async def refused(url: str) -> tuple[list[dict[str, Any]], int]:
    async with connect(url, open_timeout=10) as ws:
        return await refusal(ws)


def fresh_key() -> str:
    return f"socket-test-key-{uuid.uuid4().hex}"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# --- tickets ---------------------------------------------------------------------------------


async def test_a_socket_without_a_ticket_is_refused_with_4401(server):
    texts, code = await refused(visit_url(server, None))
    assert code == 4401
    assert [t["code"] for t in texts] == ["ticket_malformed"]


async def test_a_garbage_ticket_is_refused_with_4401(server):
    texts, code = await refused(visit_url(server, "not-a-ticket.at-all"))
    assert code == 4401
    assert [t["code"] for t in texts] == ["ticket_malformed"]


async def test_a_ticket_with_one_character_of_its_signature_changed_is_refused_as_forged(server):
    ticket = (await asyncio.to_thread(join, server))["ticket"]
    payload, signature = ticket.split(".")
    tampered = signature[:10] + ("B" if signature[10] != "B" else "C") + signature[11:]
    texts, code = await refused(visit_url(server, f"{payload}.{tampered}"))
    assert code == 4401
    assert [t["code"] for t in texts] == ["ticket_forged"]


async def test_a_second_socket_with_the_same_ticket_is_refused_with_4403(server):
    ticket = await asyncio.to_thread(join, server)
    async with connect(visit_url(server, ticket["ticket"]), open_timeout=10) as first:
        assert json.loads(await first.recv())["type"] == "welcome"
        texts, code = await refused(visit_url(server, ticket["ticket"]))
        assert code == 4403
        assert [t["code"] for t in texts] == ["ticket_replayed"]
        # the first socket is untouched by the replay
        visit = Visit(first, {})
        assert (await visit.ping(5))["id"] == 5


async def test_a_ticket_minted_with_this_process_settings_is_accepted_by_the_server(server):
    """The premise of the expiry and wrong-market tests: both sides sign with one key."""
    entity = visitor_entity_disposable()
    ticket = ticket_issue(market_id=MARKET, entity=entity, identity="anon")
    async with connect(visit_url(server, ticket), open_timeout=10) as ws:
        welcome = json.loads(await ws.recv())
        assert welcome["type"] == "welcome" and welcome["entity"] == entity


async def test_an_expired_ticket_is_refused_with_4402(server):
    ticket = ticket_issue(
        market_id=MARKET,
        entity=visitor_entity_disposable(),
        identity="anon",
        now_ms=now_ms() - 20_000,
    )
    texts, code = await refused(visit_url(server, ticket))
    assert code == 4402
    assert [t["code"] for t in texts] == ["ticket_expired"]


async def test_a_ticket_for_another_market_is_refused_with_4404(server):
    ticket = ticket_issue(market_id=MARKET + 1, entity=visitor_entity_disposable(), identity="anon")
    texts, code = await refused(visit_url(server, ticket))
    assert code == 4404
    assert [t["code"] for t in texts] == ["ticket_wrong_market"]


async def test_a_socket_for_a_market_that_is_not_live_here_is_refused_with_4404(server):
    ticket = (await asyncio.to_thread(join, server))["ticket"]
    texts, code = await refused(visit_url(server, ticket, market=MARKET + 1))
    assert code == 4404
    assert [t["code"] for t in texts] == ["market_not_live"]


# --- what a visitor sends --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["{", "not json", "[1, 2, 3]", "42", '"input"', "null"],
    ids=["truncated", "words", "array", "number", "string", "null"],
)
async def test_a_text_frame_that_is_not_a_json_object_gets_bad_json_and_the_socket_stays_open(
    server, text
):
    async with visiting(server) as visit:
        await visit.send(text)
        error = await visit.error()
        assert error["code"] == "bad_json"
        assert (await visit.ping(2))["id"] == 2


@pytest.mark.parametrize("message", [{"type": "dance"}, {"seq": 1}, {"type": 7}])
async def test_a_message_of_an_unknown_type_gets_unknown_type(server, message):
    async with visiting(server) as visit:
        await visit.send(message)
        assert (await visit.error())["code"] == "unknown_type"
        assert (await visit.ping(3))["id"] == 3


@pytest.mark.parametrize(
    "text",
    [
        '{"type": "input", "vel": [1, 0, 0]}',
        '{"type": "input", "seq": "1", "vel": [1, 0, 0]}',
        '{"type": "input", "seq": 0, "vel": [1, 0, 0]}',
        '{"type": "input", "seq": true, "vel": [1, 0, 0]}',
        '{"type":"input","seq":1,"vel":[NaN,0,0]}',
        '{"type": "input", "seq": 1, "vel": [Infinity, 0, 0]}',
        '{"type": "input", "seq": 1, "vel": [1, 0]}',
        '{"type": "input", "seq": 1}',
        '{"type": "move", "seq": 1, "to": "here"}',
        '{"type": "ping", "id": "x", "t": 1}',
        '{"type": "ping", "id": 1}',
    ],
    ids=[
        "missing-seq",
        "seq-string",
        "seq-zero",
        "seq-bool",
        "vel-nan",
        "vel-infinity",
        "vel-two",
        "missing-vel",
        "to-string",
        "ping-id-string",
        "ping-missing-t",
    ],
)
async def test_a_missing_or_mistyped_field_gets_bad_field(server, text):
    async with visiting(server) as visit:
        await visit.send(text)
        error = await visit.error()
        assert error["code"] == "bad_field", error
        assert (await visit.ping(4))["id"] == 4
        # and nothing of it was taken as an input
        assert await visit.ack() == 0


@pytest.mark.parametrize("size", [5, 15, 17])
async def test_a_binary_frame_that_is_not_16_bytes_gets_bad_binary(server, size):
    async with visiting(server) as visit:
        await visit.send(bytes(range(size)))
        assert (await visit.error())["code"] == "bad_binary"
        assert (await visit.ping(6))["id"] == 6


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
async def test_a_frame_over_4096_bytes_is_refused_by_the_server_with_close_1009(server, binary):
    async with visiting(server) as visit:
        await visit.send(
            b"\0" * 5000 if binary else json.dumps({"type": "ping", "pad": "x" * 5000})
        )
        _, code = await refusal(visit.ws)
        reason = visit.ws.close_reason or ""
    assert code == 1009
    assert "4096" in reason  # refused from its length, by the server's websocket layer


async def test_a_burst_beyond_the_limit_is_rate_limited_and_the_extra_inputs_dropped(server):
    async with visiting(server) as visit:
        for seq in range(1, 121):
            await visit.send({"type": "input", "seq": seq, "vel": [0.0, 0.0, 0.0]})
        assert (await visit.error())["code"] == "rate_limited"
        await asyncio.sleep(1.0)  # let the bucket refill: the socket is still good
        assert (await visit.ping(8))["id"] == 8
        ack = await visit.ack()
        # the burst of 80 was taken; the tail of the 120 was dropped
        assert 80 <= ack < 120


async def test_an_input_flood_is_rate_limited_then_closed_with_4429(server):
    async with visiting(server) as visit:
        try:
            for seq in range(1, 1001):
                await visit.send({"type": "input", "seq": seq, "vel": [0.1, 0.0, 0.0]})
        except ConnectionClosed:
            pass  # closed while still flooding
        texts, code = await refusal(visit.ws)
    codes = [t["code"] for t in texts if t["type"] == "error"]
    assert "rate_limited" in codes
    assert codes[-1] == "flood"
    assert code == 4429


async def test_a_move_faster_than_v_max_is_refused_with_too_fast_and_the_entity_stays(server):
    start = np.array([40.0, FLOOR_Y_M, 90.0])
    async with visiting(server, at=start.tolist()) as visit:
        await visit.send({"type": "move", "seq": 1, "to": (start + [50.0, 0, 0]).tolist()})
        error = await visit.error()
        assert error["code"] == "too_fast"
        assert error["seq"] == 1
        positions = await visit.own_positions(count=10)
    np.testing.assert_allclose(positions, np.broadcast_to(start, positions.shape), atol=0.01)


async def test_fifty_protocol_errors_close_the_socket_with_4400(server):
    async with visiting(server) as visit:
        for _ in range(49):
            await visit.send("{")
        assert (await visit.ping(9))["id"] == 9  # 49 errors: still open
        await visit.send("{")
        texts, code = await refusal(visit.ws)
    codes = [t["code"] for t in visit.seen + texts if t["type"] == "error"]
    assert codes == ["bad_json"] * 50 + ["too_many_errors"]
    assert code == 4400


# --- resume, takeover, leave -----------------------------------------------------------------


async def test_a_visitor_that_reconnects_with_its_key_resumes_the_same_entity(server):
    key = fresh_key()
    async with visiting(server, key=key) as first:
        assert not first.welcome["resumed"]
        assert first.welcome["last_seq"] == 0
        for seq in (1, 2, 3):
            await first.send({"type": "input", "seq": seq, "vel": [0.2, 0.0, 0.0]})
        assert (await first.ping(1))["id"] == 1
        entity = first.entity
    async with visiting(server, key=key) as again:
        assert again.entity == entity
        assert again.welcome["resumed"] is True
        assert again.welcome["last_seq"] == 3
        frames = await again.frames(count=10)
    for _, _, rows, _ in frames:
        assert np.count_nonzero(rows["id"] == entity) == 1  # never doubled, never missing


async def test_a_disposable_visitor_resumes_with_its_resume_token(server):
    async with visiting(server) as first:
        token, entity = first.welcome["resume"], first.entity
    async with visiting(server, resume=token) as again:
        assert again.entity == entity
        assert again.welcome["resumed"] is True
        frames = await again.frames(0.5)
    assert frames and all(np.count_nonzero(r["id"] == entity) == 1 for _, _, r, _ in frames)


def test_the_welcome_says_how_long_its_resume_token_lives(watcher):
    welcome = watcher.welcome
    assert welcome["resume_expires_in"] == RESUME_TTL_S
    late_ms = (int(time.time()) + RESUME_TTL_S - 60) * 1000
    assert resume_entity(welcome["resume"], now_ms=late_ms) == welcome["entity"]


async def test_a_second_socket_of_the_same_key_closes_the_first_with_4409(server):
    key = fresh_key()
    async with visiting(server, key=key) as first, visiting(server, key=key) as second:
        texts, code = await refusal(first.ws)
        assert code == 4409
        assert [t["code"] for t in texts if t["type"] == "error"] == ["superseded"]
        assert second.entity == first.entity
        assert second.welcome["resumed"] is True
        assert (await second.ping(3))["id"] == 3


async def test_a_takeover_reports_the_inputs_taken_from_the_first_socket(server):
    key = fresh_key()
    async with visiting(server, key=key) as first:
        for seq in (1, 2, 3):
            await first.send({"type": "input", "seq": seq, "vel": [0.0, 0.0, 0.0]})
        assert (await first.ping(1))["id"] == 1
        async with visiting(server, key=key) as second:
            assert second.welcome["last_seq"] == 3
            # a resent input is ignored: the ack stays at 3
            await second.send({"type": "input", "seq": 2, "vel": [1.0, 0.0, 0.0]})
            assert await second.ack() == 3


async def test_leave_closes_with_1000_and_the_entity_vanishes_from_its_neighbours(server):
    spot = [70.0, FLOOR_Y_M, 110.0]
    async with visiting(server, at=spot) as stayer, visiting(server, at=spot) as leaver:
        before = await stayer.frames(0.5)
        assert any(leaver.entity in rows["id"] for _, _, rows, _ in before)
        await leaver.send({"type": "leave"})
        _, code = await refusal(leaver.ws)
        assert code == 1000
        await stayer.frames(1.0)  # the neighbours' interest may hold it that long
        late = await stayer.frames(count=5)
    for _, _, rows, bodies in late:
        assert leaver.entity not in rows["id"]
        assert leaver.entity not in bodies["id"]


# --- moving ----------------------------------------------------------------------------------


async def test_a_ping_is_answered_with_a_pong_echoing_id_and_t(server):
    async with visiting(server) as visit:
        sent = now_ms()
        await visit.send({"type": "ping", "id": 123456, "t": 987.25})
        pong = await visit.until(lambda m: m["type"] == "pong")
    assert pong["id"] == 123456 and pong["t"] == 987.25
    assert sent - 1000 <= pong["server_ms"] <= now_ms() + 1000


async def test_a_binary_input_walks_the_entity(server):
    start = np.array([30.0, FLOOR_Y_M, 30.0])
    async with visiting(server, at=start.tolist()) as visit:
        still = await visit.own_positions(0.3)
        np.testing.assert_allclose(still[-1], start, atol=0.01)
        record = np.zeros(1, INPUT_DTYPE)
        record["seq"], record["vel"] = 1, (2.0, 0.0, 0.0)
        await visit.send(record.tobytes())
        frames = await visit.frames(
            until=lambda _, rows: rows["pos"][rows["id"] == visit.entity, 0].max() > start[0] + 1
        )
    own = [rows[rows["id"] == visit.entity][0] for _, _, rows, _ in frames]
    assert own[-1]["pos"][0] - start[0] > 1.0
    np.testing.assert_allclose(own[-1]["vel"], [2.0, 0.0, 0.0], atol=1e-5)
    assert abs(own[-1]["pos"][2] - start[2]) < 0.01
    assert int(frames[-1][1]["ack_seq"]) == 1


def border_crossing(ranges: RangeMap) -> tuple[np.ndarray, np.ndarray, int, int]:
    """A floor point on a booth border, a walking direction, and the booths on either side.

    The booth is the same for 3 m before the point and for 20 m after it, so a
    walker at 2 m/s stays outside its first zone for longer than the hysteresis.
    """
    before = np.arange(0.05, 3.0, 0.25)
    after = np.arange(0.05, 20.0, 0.25)
    for axis in (0, 2):
        for sign in (1.0, -1.0):
            direction = np.zeros(3)
            direction[axis] = sign
            for across in np.arange(12.0, 116.0, 4.0):
                for along in np.arange(12.0, 116.0, 0.25):
                    point = np.array([along, FLOOR_Y_M, across])
                    if axis == 2:
                        point = point[[2, 1, 0]]
                    path = np.concatenate(
                        [point - before[:, None] * direction, point + after[:, None] * direction]
                    )
                    floor = path[:, [0, 2]]
                    if np.any(floor < 2.0) or np.any(floor > HI[[0, 2]] - 2.0):
                        continue
                    zones = ranges.assign_positions(path.astype(np.float32), LO, HI)
                    first, then = zones[: before.size], zones[before.size :]
                    uniform = (first == first[0]).all() and (then == then[0]).all()
                    if uniform and first[0] != then[0]:
                        return point, direction, int(first[0]), int(then[0])
    raise AssertionError("no straight booth border on this floor")


async def test_walking_across_a_booth_border_enters_the_booth_then_changes_zone(server, watcher):
    ranges = floor_ranges(BOOTHS)
    assert watcher.welcome["layout"]["starts"] == [int(s) for s in ranges.starts]
    border, direction, home, other = border_crossing(ranges)
    start = border - 1.5 * direction
    async with visiting(server, at=start.tolist()) as visit:
        assert visit.welcome["zone"] == home and visit.welcome["booth"]["zone"] == home
        await visit.send({"type": "input", "seq": 1, "vel": (2.0 * direction).tolist()})
        walked = time.monotonic()
        entered = await visit.until(lambda m: m["type"] == "booth_entered", timeout=10.0)
        entered_after = time.monotonic() - walked
        changed = await visit.until(lambda m: m["type"] == "zone_changed", timeout=10.0)
        changed_after = time.monotonic() - walked
        await visit.send({"type": "leave"})
    assert entered["zone"] == other
    assert entered["name"] == visit.welcome["layout"]["booths"][other]["name"]
    assert (changed["from"], changed["to"]) == (home, other)
    # both are market events after the welcome's position, in publish order
    start = visit.welcome["events"]
    assert start["recovered"] is None and start["epoch"]
    assert start["offset"] < entered["offset"] < changed["offset"]
    assert entered["v"] == changed["v"] == 1 and entered["entity"] == visit.entity
    # the border is 0.75 s away; the handoff waits HYSTERESIS_TICKS beyond it
    assert entered_after > 0.5  # (seconds later on a loaded machine)
    assert changed_after >= 0.75 + HYSTERESIS_TICKS * TICK_S - 0.5
    assert not [m for m in visit.seen if m["type"] == "error"]


# --- market events: resume ------------------------------------------------------------------


def publish_asset_changes(server: LiveMarket, *zones: int) -> None:
    """One `asset_changed` per zone given, written to the outbox by another process in one
    transaction: the server's relay brings them to the market's stream after the commit."""
    events = ", ".join(
        f"AssetChanged(zone={z}, booth={z + 1}, asset={i}, name='a{i}', change='published')"
        for i, z in enumerate(zones)
    )
    code = (
        "from django.db import transaction\n"
        "from market.events.publish import event_publish_on_commit\n"
        "from market.events.types import AssetChanged\n"
        "with transaction.atomic():\n"
        f"    for event in [{events}]:\n"
        f"        event_publish_on_commit({MARKET}, event)\n"
    )
    done = server.manage("shell", "-c", code)
    assert done.returncode == 0, done.stderr


async def test_a_visitor_that_comes_back_gets_exactly_the_events_it_missed_in_order(server):
    key = fresh_key()
    async with visiting(server, key=key, booth=0) as first:
        position = first.welcome["events"]
        assert first.welcome["booth"]["zone"] == 0
    # while it is away: three changes in its booth, one in another booth
    await asyncio.to_thread(publish_asset_changes, server, 0, 1, 0, 0)
    ticket = await asyncio.to_thread(join, server, key=key)
    resume = {"offset": position["offset"], "epoch": position["epoch"]}
    query = urlencode({"ticket": ticket["ticket"], **resume})
    async with connect(f"{visit_url(server, None)}?{query}", open_timeout=10) as ws:
        visit = Visit(ws, json.loads(await ws.recv()))
        assert visit.welcome["events"]["recovered"] is True
        missed = [await visit.until(lambda m: m["type"] == "asset_changed") for _ in range(3)]
        assert [m["name"] for m in missed] == ["a0", "a2", "a3"]  # booth 1's is not its own
        offsets = [m["offset"] for m in missed]
        assert offsets == sorted(offsets) and offsets[0] > position["offset"]
        frames = await visit.frames(0.5)
        assert frames and not [m for m in visit.seen if m["type"] == "asset_changed"][3:]


async def test_a_visitor_with_a_stale_epoch_starts_from_its_welcome(server):
    ticket = await asyncio.to_thread(join, server)
    query = urlencode({"ticket": ticket["ticket"], "offset": 1, "epoch": "gone"})
    async with connect(f"{visit_url(server, None)}?{query}", open_timeout=10) as ws:
        welcome = json.loads(await ws.recv())
    assert welcome["type"] == "welcome"
    assert welcome["events"]["recovered"] is False
    assert welcome["events"]["reason"] == "epoch_changed"


async def test_a_visitor_resuming_from_an_offset_not_given_yet_is_told_and_starts_afresh(server):
    async with visiting(server) as first:
        epoch = first.welcome["events"]["epoch"]
    ticket = await asyncio.to_thread(join, server)
    query = urlencode({"ticket": ticket["ticket"], "offset": 10**12, "epoch": epoch})
    async with connect(f"{visit_url(server, None)}?{query}", open_timeout=10) as ws:
        error = json.loads(await ws.recv())
        welcome = json.loads(await ws.recv())
    assert error["type"] == "error" and error["code"] == "future_offset"
    assert (
        welcome["events"]["recovered"] is False and welcome["events"]["reason"] == "future_offset"
    )


@pytest.mark.parametrize(
    "position", [{"offset": 3}, {"offset": "x", "epoch": "e"}, {"offset": 1, "epoch": "e" * 65}]
)
async def test_a_malformed_events_position_is_refused_with_bad_position_and_4400(server, position):
    ticket = await asyncio.to_thread(join, server)
    query = urlencode({"ticket": ticket["ticket"], **position})
    texts, code = await refused(f"{visit_url(server, None)}?{query}")
    assert [t["code"] for t in texts] == ["bad_position"] and code == 4400


# --- the bystander ---------------------------------------------------------------------------


def test_the_well_behaved_visitor_was_served_throughout_and_never_closed(server, watcher):
    """Runs (nearly) last: every test above misbehaved next to the watcher."""
    assert watcher.failure is None, repr(watcher.failure)
    assert watcher.is_alive() and watcher.close_code is None
    stamps = np.array(watcher.stamps)
    span = stamps[-1] - stamps[0]
    assert span > 10.0, "the module ran for less time than this check assumes"
    rate = (stamps.size - 1) / span
    gaps = np.diff(stamps)
    # the zones tick at SIM_TICK_HZ; a loaded machine may run the module's server late
    assert rate > 0.5 * SIM_TICK_HZ, f"{rate:.1f} frames/s over {span:.0f} s"
    assert gaps.max() < 2.0, f"a gap of {gaps.max():.2f} s between frames"
    assert watcher.missing_self == 0
    assert not [t for t in watcher.texts if t["type"] == "error"], watcher.texts


async def test_tickets_never_reach_the_servers_log(server):
    async with visiting(server) as visit:
        assert visit.welcome["type"] == "welcome"
    log = server.log()
    assert "ticket=[redacted]" in log  # the socket's URL was logged, without its ticket
    assert re.search(r"ticket=(?!\[redacted\])", log) is None


def test_the_server_logged_no_traceback_while_visitors_misbehaved(server):
    log = server.log()
    at = log.find("Traceback")
    assert at < 0, log[max(0, at - 300) : at + 4000]


def booths_visited(server: LiveMarket, entity: int) -> list[str]:
    """The booths the server's database says `entity` is a visitor of."""
    database = Path(server.env["FABRIC_DATA_DIR"]) / "fabric.sqlite3"
    with contextlib.closing(sqlite3.connect(database, timeout=10)) as db:
        rows = db.execute(
            "SELECT object_id FROM market_relationtuple WHERE object_type = 'booth' "
            "AND relation = 'visitor' AND subject_type = 'visitor' AND subject_id = ?",
            (f"{MARKET}-{entity}",),
        ).fetchall()
    return [object_id for (object_id,) in rows]


async def test_a_visitor_is_its_booths_visitor_before_it_reads_the_welcome(server):
    """So that it may fetch the booth's manifest straight away, as after a booth_entered."""
    for _ in range(3):
        async with visiting(server) as visit:
            assert len(await asyncio.to_thread(booths_visited, server, visit.entity)) == 1
