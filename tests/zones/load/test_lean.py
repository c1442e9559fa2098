"""The harness's lean visitor: the SDK's header-only figures from the same bytes, garbage
refused, the wake-up clock, keep-alive tickets, and every way a socket ends."""

import asyncio
import base64
import contextlib
import hashlib
import json
import re
import struct
import time

import numpy as np
import pytest
import uvloop

from tests.waiting import until
from tests.zones.client.fake_market import FakeMarket
from zones.client.burst import CHECK_S
from zones.client.visitor import OWN_ID, JoinRefused, Visitor, VisitorClosed
from zones.core import skeleton
from zones.core.wire import (
    BODY_DTYPE,
    FRAME_HEADER,
    FRAME_ROW_DTYPE,
    ROW_DTYPE,
    RowFlag,
    frame_encode,
)
from zones.load.drive import TIMER_SLACK_S, Pacer
from zones.load.lean import LeanFleet, LeanVisitor, TicketPool, WakeClock, motions_of

ENTITY = 0x0000_0203_0405_0607
WELCOME = {
    "type": "welcome",
    "protocol": 1,
    "entity": ENTITY,
    "zone": 2,
    "booth": {"zone": 2, "name": "Dye Works", "colour": "#4682b4"},
    "tick_ms": 1,
    "resumed": False,
    "last_seq": 7,
    "resume": "r",
    "events": {"offset": 10, "epoch": "e1", "recovered": None, "reason": ""},
    "layout": {
        "version": 1,
        "bounds": [[0, 0, 0], [128, 64, 128]],
        "starts": [0, 100, 200],
        "booths": [{"zone": i, "name": f"b{i}", "colour": "#000000"} for i in range(3)],
    },
}


class StillClock(WakeClock):
    """A clock that says what the test sets."""

    def __init__(self, ms: float) -> None:
        super().__init__()
        self.ms = ms

    def now_ms(self) -> float:
        return self.ms


def rows(ids, *, flags=RowFlag.AUTHORITATIVE | RowFlag.VISITOR_ROOT, zone=1) -> np.ndarray:
    out = np.zeros(len(ids), FRAME_ROW_DTYPE)
    out["id"] = ids
    for i in range(len(ids)):
        out["pos"][i], out["vel"][i] = (100 * (i + 1), 100, 250 + i), (-30 + i, 0, 12)
    out["flags"], out["zone"] = flags, zone
    return out


def frames() -> list[bytes]:
    """Frames of every shape a run meets: near, far, with bodies, own row or not, ghosts."""
    tick = 1_795_000_000_000
    own = rows([ENTITY])
    others = rows([11, 12, 13])
    ghost = rows([ENTITY], flags=RowFlag.GHOST | RowFlag.STAGING | RowFlag.VISITOR_ROOT, zone=0)
    bodies = skeleton.bodies(np.zeros(2, ROW_DTYPE))
    return [
        frame_encode(
            np.concatenate([others, own]),
            np.zeros(0, BODY_DTYPE),
            ack_seq=3,
            tick_ms=tick,
            far=False,
        ),
        frame_encode(
            np.concatenate([own, others, others]), bodies, ack_seq=4, tick_ms=tick + 50, far=True
        ),
        frame_encode(others, np.zeros(0, BODY_DTYPE), ack_seq=5, tick_ms=tick + 100, far=False),
        frame_encode(
            np.concatenate([others, ghost]), bodies[:1], ack_seq=6, tick_ms=tick + 150, far=False
        ),
        frame_encode(rows([]), np.zeros(0, BODY_DTYPE), ack_seq=6, tick_ms=tick + 200, far=True),
    ]


async def sdk_and_lean(clock_ms: float) -> tuple[Visitor, LeanVisitor]:
    """Both clients, welcomed with the same welcome, no socket."""
    sdk = Visitor("http://127.0.0.1:1", 1, decode="header")
    sdk._welcomed(dict(WELCOME))
    lean = LeanVisitor(StillClock(clock_ms))
    lean._text(json.dumps(WELCOME))
    return sdk, lean


def same_figures(sdk: Visitor, lean: LeanVisitor) -> None:
    ours, theirs = lean.stats, sdk.stats
    for name in (
        "frames",
        "bytes",
        "far_frames",
        "bad_frames",
        "rows",
        "bodies",
        "events_repeated",
    ):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert (lean.zone, lean.booth, lean.ack_seq, lean.tick_ms) == (
        sdk.zone,
        sdk.booth,
        sdk.ack_seq,
        sdk.tick_ms,
    )
    if sdk.position is None:
        assert lean.position is None and lean.velocity is None
    else:
        assert lean.position is not None and lean.velocity is not None
        np.testing.assert_array_equal(lean.position, sdk.position)
        np.testing.assert_array_equal(lean.velocity, sdk.velocity)


# --- the same figures as the SDK's header-only path -------------------------------------------


async def test_every_frame_shape_gives_the_sdks_header_only_figures(monkeypatch):
    received_ms = 1_795_000_000_321.5
    monkeypatch.setattr("zones.client.visitor._now_ms", lambda: received_ms)
    sdk, lean = await sdk_and_lean(received_ms)
    for frame in frames():
        sdk._frame_header(frame)
        lean._binary(frame)
        same_figures(sdk, lean)
    assert lean.stats.frames == 5 and lean.stats.far_frames == 2 and lean.stats.bodies == 3
    assert list(lean.stats.latencies_ms) == list(sdk.stats.latencies_ms)
    assert lean.stats.latencies_ms[0] == received_ms - 1_795_000_000_000
    assert lean.zone == 1  # the ghost row (zone 0, not authoritative) did not move it


async def test_the_own_ids_bytes_inside_another_rows_fields_are_not_the_own_row(monkeypatch):
    monkeypatch.setattr("zones.client.visitor._now_ms", lambda: 2_000.0)
    sdk, lean = await sdk_and_lean(2_000.0)
    decoy = rows([99])
    raw = bytearray(decoy.tobytes())
    raw[9:17] = OWN_ID.pack(ENTITY)  # inside pos and vel, one byte off a row boundary
    decoy = np.frombuffer(bytes(raw), FRAME_ROW_DTYPE)
    real = rows([ENTITY], zone=2)
    real["pos"] = (4321, 100, 1234)
    frame = frame_encode(
        np.concatenate([decoy, real]), np.zeros(0, BODY_DTYPE), ack_seq=1, tick_ms=1_000, far=False
    )
    sdk._frame_header(frame)
    lean._binary(frame)
    same_figures(sdk, lean)
    np.testing.assert_allclose(lean.position, [43.21, 1.0, 12.34])


@pytest.mark.parametrize(
    "mangle",
    [
        lambda f: f[:10],  # shorter than the header
        lambda f: b"XX" + f[2:],  # magic
        lambda f: f[:2] + b"\x01" + f[3:],  # version 1
        lambda f: f[:3] + b"\x02" + f[4:],  # kind 2 (an overview frame)
        lambda f: f[:-1],  # the header announces more rows than follow
        lambda f: f + b"\0" * 24,  # or fewer
        lambda f: b"",
    ],
    ids=["short", "magic", "version", "kind", "truncated", "trailing", "empty"],
)
async def test_garbage_is_counted_as_a_bad_frame_and_changes_nothing_else(mangle, monkeypatch):
    monkeypatch.setattr("zones.client.visitor._now_ms", lambda: 5.0)
    sdk, lean = await sdk_and_lean(5.0)
    good, bad = frames()[0], mangle(frames()[1])
    for frame in (good, bad):
        sdk._frame_header(frame)
        lean._binary(frame)
    same_figures(sdk, lean)
    assert lean.stats.bad_frames == 1 and lean.stats.frames == 1
    assert lean.ack_seq == 3  # the bad frame's header was not taken


async def test_events_errors_and_noise_are_filed_as_the_sdk_files_them(monkeypatch):
    monkeypatch.setattr("zones.client.visitor._now_ms", lambda: 7.0)
    sdk, lean = await sdk_and_lean(7.0)
    messages = [
        {"type": "booth_entered", "v": 1, "offset": 11, "entity": ENTITY, "zone": 0},
        {"type": "zone_changed", "v": 1, "offset": 12, "entity": ENTITY, "from": 2, "to": 0},
        {"type": "zone_changed", "v": 1, "offset": 12, "entity": ENTITY, "from": 2, "to": 0},
        {"type": "error", "code": "rate_limited", "message": "slow down"},
        {"type": "resume", "resume": "a-fresher-token", "expires_in": 600},
        {"type": "asset_changed", "v": 1, "offset": 13, "zone": 0, "booth": 0, "asset": 4},
        {"type": "events_reset", "offset": 40, "epoch": "e2", "snapshot": {"zone": 1, "booth": 1}},
        {"type": "booth_entered", "v": 1, "offset": 41, "entity": ENTITY, "zone": 2},
        {"type": "zone_changed", "offset": 42, "to": "nowhere"},
        [1, 2, 3],
    ]
    for message in [*(json.dumps(m) for m in messages), "not json {"]:
        sdk._text(message)
        lean._text(message)
    same_figures(sdk, lean)
    assert lean.events == sdk.events and lean.errors == sdk.errors
    assert lean.welcome["resume"] == sdk.welcome["resume"] == "a-fresher-token"
    assert lean.events_after == sdk.events_after == (42, "e2")  # the bad one's offset counts
    assert lean.stats.events_repeated == 1 and lean.stats.bad_frames == 3
    assert [e["received_ms"] for e in lean.events] == [7.0] * 4


# --- the clock --------------------------------------------------------------------------------


async def test_the_clock_is_read_once_per_wake_up_of_the_loop():
    clock = WakeClock()
    first = [clock.now_ms() for _ in range(100)]
    assert len(set(first)) == 1 and clock.reads == 1
    time.sleep(0.002)
    assert clock.now_ms() == first[0]  # still the same wake-up
    await asyncio.sleep(0)
    later = clock.now_ms()
    assert later >= first[0] + 2 and clock.reads == 2
    assert abs(later - time.time_ns() / 1e6) < 50  # the clock of tick_ms: wall-clock ms


# --- against the fake market ------------------------------------------------------------------


@pytest.fixture(params=[False, True], ids=["picows", "compiled"])
def compiled(request) -> bool:
    """Every socket test runs on both sockets: picows's, and the compiled reader's."""
    return request.param


async def test_a_lean_visitor_joins_counts_frames_walks_with_binary_inputs_and_leaves(compiled):
    async with FakeMarket() as market:
        fleet = LeanFleet(market.base_url, 1, compiled=compiled)
        start = market.booth_point(0)
        visitor = await fleet.connect(at=start.tolist())
        assert visitor.entity in market.entities and visitor.zone == 0
        await asyncio.sleep(0.2)
        np.testing.assert_allclose(visitor.position, start, atol=0.01)
        end = start + np.array([1.0, 0.0, 0.0])
        np.testing.assert_array_equal(fleet.motions([visitor]), [visitor.motion])
        walking = Pacer(fleet.motions).walk(visitor, end, (1.0, 0.0, 0.0), timeout_s=5.0, speed=2.0)
        await walking
        await asyncio.sleep(0.1)  # the stop on its way to the market
        kinds = {r.kind for r in market.received if r.entity == visitor.entity}
        assert kinds == {"binary"}
        seqs = market.taken(visitor.entity)
        assert seqs == sorted(seqs) and seqs[0] == 1
        assert market.entities[visitor.entity].vel.tolist() == [0.0, 0.0, 0.0]  # stopped
        assert market.entities[visitor.entity].pos[0] >= end[0] - 0.01
        stats = visitor.stats
        assert stats.frames > 10 and stats.bad_frames == 0
        assert stats.bytes > stats.frames * FRAME_HEADER.size
        assert len(stats.latencies_ms) == stats.frames
        assert all(0 <= age < 1_000 for age in stats.latencies_ms)
        assert await visitor.leave() == 1000
        assert visitor.closed and visitor.close_reason == "left"
        assert visitor.entity not in market.entities
        with pytest.raises(VisitorClosed):
            visitor.walk_binary((1.0, 0.0, 0.0))
        await fleet.aclose()


async def test_a_socket_the_server_closes_is_recorded_and_ends_the_walk(compiled):
    async with FakeMarket() as market:
        fleet = LeanFleet(market.base_url, 1, compiled=compiled)
        key = "k" * 20
        first = await fleet.connect(key=key)
        walking = Pacer().walk(first, np.array([100.0, 1.0, 100.0]), np.array([1.0, 0, 0]), 30, 1.0)
        second = await fleet.connect(key=key)  # a newer socket of the same identity
        with pytest.raises(VisitorClosed) as closed:
            await asyncio.wait_for(walking, 5.0)
        assert closed.value.close_code == 4409
        await first.wait_closed()
        assert first.closed and first.close_code == 4409
        assert first.close_reason == "a newer socket took over"
        assert second.entity == first.entity and second.resumed and not second.closed
        await second.close()
        assert second.closed and second.close_code == 1000
        await second.close()  # twice is harmless
        await fleet.aclose()


async def test_refusals_before_the_welcome_raise_what_the_sdk_raises(compiled):
    async with FakeMarket() as market:
        fleet = LeanFleet(market.base_url, 1, compiled=compiled)
        market.refuse_next = ("booth_full", "booth 0 is full")
        with pytest.raises(VisitorClosed) as refused:
            await fleet.connect()
        assert refused.value.close_code == 4503
        assert refused.value.error is not None and refused.value.error["code"] == "booth_full"
        market.forge_tickets = True
        with pytest.raises(VisitorClosed) as forged:
            await fleet.connect()
        assert forged.value.close_code == 4401
        market.forge_tickets, market.live = False, False
        with pytest.raises(JoinRefused) as not_live:
            await fleet.connect()
        assert (not_live.value.status, not_live.value.code) == (409, "market_not_live")
        started = time.monotonic()
        with pytest.raises(JoinRefused):
            await fleet.connect_retrying(retry_s=0.6)
        assert 0.6 <= time.monotonic() - started < 3.0
        market.live = True
        visitor = await fleet.connect_retrying(retry_s=1.0)
        assert not visitor.closed
        await visitor.close()
        await fleet.aclose()


# --- a server written by hand: keep-alive, fragments, a dropped connection ---------------------

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    head = (0x80 if fin else 0) | opcode
    if len(payload) < 126:
        return bytes((head, len(payload))) + payload
    if len(payload) < 65536:
        return bytes((head, 126)) + struct.pack("!H", len(payload)) + payload
    return bytes((head, 127)) + struct.pack("!Q", len(payload)) + payload


class HandServer:
    """Join tickets (keep-alive unless told), then a socket that runs `script`."""

    def __init__(self, script) -> None:
        self.script = script
        self.connections = 0
        self.requests = 0
        self.hang_up_after_answer = False  # as a server closing an idle keep-alive connection
        self.tasks: set[asyncio.Task] = set()

    async def __aenter__(self) -> "HandServer":
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def serve(self, reader, writer) -> None:
        self.tasks.add(asyncio.current_task())
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if head.startswith(b"POST "):
                    length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])
                    await reader.readexactly(length)
                    self.requests += 1
                    body = json.dumps({"ticket": f"t{self.requests}", "ws": "/ws/1/"}).encode()
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                    )
                    await writer.drain()
                    if self.hang_up_after_answer:
                        return
                    continue
                key = re.search(rb"(?i)sec-websocket-key: *(\S+)", head)[1]
                accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
                writer.write(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
                )
                await self.script(reader, writer)
                return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def test_tickets_share_one_keep_alive_connection_and_survive_an_idle_close():
    async def nothing(reader, writer):
        return None

    async with HandServer(nothing) as server:
        pool = TicketPool(server.url, 1)
        tickets = [await pool.ticket(at=[1.0, 1.0, 1.0]) for _ in range(5)]
        assert [t["ticket"] for t in tickets] == ["t1", "t2", "t3", "t4", "t5"]
        assert server.connections == 1 and pool.opened == 1
        server.hang_up_after_answer = True
        await pool.ticket()  # answered, then the server hangs up: the kept one is stale
        await asyncio.sleep(0.05)
        assert (await pool.ticket())["ticket"] == "t7"  # sent again on a new connection
        assert server.requests == 7 and pool.opened == 2
        await pool.aclose()


async def test_fragmented_messages_are_joined_and_a_dropped_connection_closes_with_1006(compiled):
    frame = frames()[0]
    welcome = json.dumps(WELCOME).encode()
    pongs: list[bytes] = []

    async def script(reader, writer):
        writer.write(ws_frame(0x1, welcome[:50], fin=False) + ws_frame(0x0, welcome[50:]))
        writer.write(ws_frame(0x2, frame[:30], fin=False) + ws_frame(0x0, frame[30:60], fin=False))
        writer.write(ws_frame(0x9, b"hi"))  # a ping between fragments, answered
        writer.write(ws_frame(0x0, frame[60:]) + ws_frame(0x2, frame))
        await writer.drain()
        pong = await asyncio.wait_for(reader.readexactly(2 + 4 + 2), 5.0)
        assert pong[:2] == bytes((0x8A, 0x82))  # FIN, pong, masked, 2 bytes
        assert bytes(b ^ pong[2 + i % 4] for i, b in enumerate(pong[6:])) == b"hi"
        pongs.append(pong)
        await asyncio.sleep(0.2)
        writer.transport.abort()  # no close frame

    async with HandServer(script) as server:
        fleet = LeanFleet(server.url, 1, compiled=compiled)
        visitor = await fleet.connect()
        assert visitor.entity == ENTITY and visitor.booth == 2
        await asyncio.wait_for(visitor.wait_closed(), 5.0)
        assert visitor.stats.frames == 2 and visitor.stats.bad_frames == 0
        assert visitor.zone == 1  # from the frames' own row
        assert visitor.close_code == 1006 and visitor.closed
        assert len(pongs) == 1
        with pytest.raises(VisitorClosed):
            visitor.walk_binary((0.0, 0.0, 0.0))
        await fleet.aclose()


async def test_an_unreadable_welcome_or_a_silent_server_fails_the_join_clearly(compiled):
    async def garbage(reader, writer):
        writer.write(ws_frame(0x1, b'{"type": "welcome", "entity": "x"}'))
        await writer.drain()
        with contextlib.suppress(Exception):
            await reader.read(100)

    async def silent(reader, writer):
        await asyncio.sleep(5)

    async with HandServer(garbage) as server:
        fleet = LeanFleet(server.url, 1, compiled=compiled)
        with pytest.raises(VisitorClosed, match="unreadable welcome"):
            await fleet.connect()
        await fleet.aclose()
    async with HandServer(silent) as server:
        fleet = LeanFleet(server.url, 1, compiled=compiled)
        with pytest.raises(TimeoutError):
            await fleet.connect(timeout=0.3)
        await fleet.aclose()


def test_a_market_url_that_is_not_http_is_refused_with_what_it_must_be():
    with pytest.raises(ValueError, match=r"http\(s\)://host\[:port\]"):
        TicketPool("ws://127.0.0.1:8000", 1)


# --- the pacer --------------------------------------------------------------------------------


class SentInputs:
    """A transport that keeps the binary inputs sent."""

    is_close_frame_sent = False

    def __init__(self) -> None:
        self.inputs: list[tuple[float, tuple]] = []

    def send(self, kind, payload) -> None:
        self.inputs.append((time.monotonic(), struct.unpack("<I3f", payload)))


def standing(motion) -> LeanVisitor:
    visitor = LeanVisitor(WakeClock())
    visitor._transport = SentInputs()
    visitor.motion = motion
    return visitor


async def test_the_pacer_checks_each_walker_as_walk_to_does_on_its_grid():
    pacer = Pacer()
    east = np.array([1.0, 0.0, 0.0])
    arrived = standing((1_000, 100, 500, 0, 0, 0, 1, 0))  # at x 10 m: past an end at 9 m
    stuck = standing((100, 100, 500, 0, 0, 0, 1, 0))  # at x 1 m, not moving
    moving = standing((100, 100, 500, 150, 0, 0, 1, 0))  # walking east at 1.5 m/s
    started = time.monotonic()
    legs = [
        pacer.walk(arrived, np.array([9.0, 1.0, 5.0]), east, 5.0, 1.5),
        pacer.walk(stuck, np.array([9.0, 1.0, 5.0]), east, 0.35, 1.5),
        pacer.walk(moving, np.array([9.0, 1.0, 5.0]), east, 0.35, 1.5),
    ]
    await asyncio.wait_for(asyncio.gather(*legs), 10.0)
    first = arrived._transport.inputs
    assert [i[1][1:] for i in first] == [(0.0, 0.0, 0.0)]  # stopped at the first check
    assert first[0][0] - started >= CHECK_S - TIMER_SLACK_S  # (a loaded machine: later)
    sent = [i[1] for i in stuck._transport.inputs]
    assert [s[0] for s in sent] == list(range(1, len(sent) + 1))  # seqs in order
    assert sent[:-1] == [(n, 1.5, 0.0, 0.0) for n in range(1, len(sent))]  # walk, every check
    assert sent[-1][1:] == (0.0, 0.0, 0.0) and len(sent) >= 2  # then stopped at the deadline
    at = np.array([i[0] for i in stuck._transport.inputs])
    assert np.all(np.diff(at[:-1]) >= CHECK_S - TIMER_SLACK_S)  # a walk a check, a check a CHECK_S
    assert at[-1] - started >= 0.35 - TIMER_SLACK_S  # not stopped before its deadline
    assert [i[1][1:] for i in moving._transport.inputs] == [(0.0, 0.0, 0.0)]  # only the stop
    cancelled = pacer.walk(stuck, np.array([9.0, 1.0, 5.0]), east, 5.0, 1.5)
    pacer.close()
    assert cancelled.cancelled()


def test_the_pacer_wakes_once_a_check_on_uvloop_whose_timers_fire_early():
    """uvloop keeps its timers in milliseconds and fires them up to one early: a timer for
    a slot's start must still find the slot due, not be set again for the instant left."""

    async def walk() -> Pacer:
        pacer = Pacer()
        walker = standing((100, 100, 500, 150, 0, 0, 1, 0))  # walking east, far from the end
        await pacer.walk(walker, (90.0, 1.0, 5.0), (1.0, 0.0, 0.0), 1.0, 1.5)
        return pacer

    pacer = uvloop.run(walk())
    assert pacer.checks >= 5  # every CHECK_S for a second (fewer on a loaded machine)
    assert pacer.wakeups <= pacer.checks + 1


async def test_legs_due_together_are_checked_as_one_group_and_a_closed_visitor_fails_alone():
    asked: list[int] = []

    def motions(visitors):
        asked.append(len(visitors))
        return motions_of(visitors)

    pacer = Pacer(motions)
    east = (1.0, 0.0, 0.0)
    walkers = [standing((100, 100, 500, 150, 0, 0, 1, 0)) for _ in range(3)]  # walking east
    quiet = standing(None)  # no own row came yet: only its deadline ends it
    legs = [pacer.walk(v, (9.0, 1.0, 5.0), east, 5.0, 1.5) for v in walkers]
    waiting = pacer.walk(quiet, (9.0, 1.0, 5.0), east, 0.25, 1.5)
    await until(lambda: len(asked) >= 2, "two checks")
    assert asked[:2] == [4, 4] and pacer.checks == 8  # two checks, each one call for all
    walkers[1]._gone.set_result(None)  # its socket closed: its leg fails at the next check
    await asyncio.wait_for(waiting, 10.0)
    assert [i[1][1:] for i in quiet._transport.inputs] == [(0.0, 0.0, 0.0)]
    with pytest.raises(VisitorClosed):
        await asyncio.wait_for(legs[1], 10.0)
    checked = len(asked)
    await until(lambda: len(asked) > checked, "a check after the closed visitor's")
    assert asked[-1] == 2 and not legs[0].done() and not legs[2].done()
    walkers[0].motion = (1_000, 100, 500, 150, 0, 0, 1, 0)  # past the end: stopped, alone
    await asyncio.wait_for(legs[0], 10.0)
    assert [i[1][1:] for i in walkers[0]._transport.inputs] == [(0.0, 0.0, 0.0)]
    assert walkers[2]._transport.inputs == [] and not legs[2].done()  # walking on, untouched
    pacer.close()
    assert legs[2].cancelled()
