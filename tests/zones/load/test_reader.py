"""The compiled frame reader: the lean visitor's figures from the same bytes however reads cut
them, everything else handed to Python in order, and every way a socket ends."""

import asyncio
import base64
import hashlib
import json
import socket
import time

import numpy as np
import pytest

from tests.zones.load.test_lean import (
    ENTITY,
    WELCOME,
    HandServer,
    StillClock,
    frames,
    same_figures,
    sdk_and_lean,
    ws_frame,
)
from tests.zones.load.test_lean import rows as own_rows
from zones.client.visitor import VisitorClosed
from zones.core.wire import BODY_DTYPE, frame_encode
from zones.load import reader as rd
from zones.load.lean import LeanFleet, LeanVisitor, WakeClock
from zones.load.rawsocket import WS_GUID, CountedVisitor, RawFleet, _check_upgrade, client_frame

TICK0 = 1_795_000_000_000


@pytest.fixture
def reader():
    frame_reader = rd.FrameReader(4)
    frame_reader.start()
    yield frame_reader
    frame_reader.close()


@pytest.fixture
def pairs():
    made: list[tuple[socket.socket, socket.socket]] = []

    def pair() -> tuple[socket.socket, socket.socket]:
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        made.append((ours, theirs))
        return ours, theirs

    yield pair
    for ours, theirs in made:
        ours.close()
        theirs.close()


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the reader did not get there"
        time.sleep(0.002)


def messages(reader: rd.FrameReader, count: int) -> list[tuple[int, int, bool, bytes, float]]:
    """Wait for `count` more messages and take them."""
    taken: list[tuple[int, int, bool, bytes, float]] = []

    def enough() -> bool:
        taken.extend(reader.take_messages())
        return len(taken) >= count

    wait_until(enough)
    return taken


async def lean_figures(stream: list[bytes]) -> dict[str, object]:
    """What the lean visitor's Python path makes of the same interest frames."""
    lean = LeanVisitor(StillClock(TICK0 + 1_000))
    lean._text(json.dumps(WELCOME))
    for frame in stream:
        lean._binary(frame)
    stats = lean.stats
    return {
        "frames": stats.frames,
        "bytes": stats.bytes,
        "rows": stats.rows,
        "bodies": stats.bodies,
        "far": stats.far_frames,
        "bad": stats.bad_frames,
        "ack_seq": lean.ack_seq,
        "tick_ms": lean.tick_ms,
        "motion": lean.motion,
        "zone": lean.zone,
    }


def counted(reader: rd.FrameReader, slot: int) -> dict[str, object]:
    row = reader.counts[slot].tolist()
    return {
        "frames": row[rd.FRAMES],
        "bytes": row[rd.BYTES],
        "rows": row[rd.ROWS],
        "bodies": row[rd.BODIES],
        "far": row[rd.FAR],
        "bad": row[rd.BAD],
        "ack_seq": row[rd.ACK_SEQ],
        "tick_ms": row[rd.TICK_MS],
        "motion": tuple(row[rd.MOTION : rd.MOTION + 8]) if row[rd.MOTION_SEEN] else None,
        "zone": row[rd.ZONE] if row[rd.ZONE_SEEN] else WELCOME["zone"],
    }


def mangled() -> list[bytes]:
    """Interest frames the lean visitor refuses: short, a wrong magic, a wrong row count."""
    good = frames()[0]
    return [good[:10], b"XX" + good[2:], good[:16] + b"\x09\x00" + good[18:], good + b"\x00"]


@pytest.mark.parametrize("cut", [0, 1, 7, 100], ids=["whole", "byte-by-byte", "7-bytes", "100"])
async def test_counted_frames_give_the_lean_visitors_figures_however_reads_cut_them(
    reader, pairs, cut
):
    stream = frames() + mangled() + frames()[:2]
    wire = b"".join(ws_frame(0x2, frame) for frame in stream)
    ours, theirs = pairs()
    slot = reader.add(ours.fileno(), b"")
    reader.count(slot, ENTITY)
    if cut == 0:
        theirs.sendall(wire)
    else:
        for at in range(0, len(wire), cut):
            theirs.sendall(wire[at : at + cut])
            if cut < 100 and at % (cut * 37) == 0:
                time.sleep(0.001)  # let the reader read what came so far: a read cut here
    wait_until(lambda: reader.counts[slot, rd.FRAMES] + reader.counts[slot, rd.BAD] == len(stream))
    assert counted(reader, slot) == await lean_figures(stream)
    slots, ages = reader.take_ages()
    assert slots.tolist() == [slot] * reader.counts[slot, rd.FRAMES]
    assert ages.size and np.all(ages > 0)  # wall-clock now against ticks in 2026
    assert reader.take_ages()[0].size == 0  # taken once


async def test_bytes_read_before_the_hand_over_are_walked_at_once(pairs):
    stream = frames()
    wire = b"".join(ws_frame(0x2, frame) for frame in stream)
    ours, _theirs = pairs()
    frame_reader = rd.FrameReader(4)  # started only once the slot counts: no race with its walk
    try:
        slot = frame_reader.add(ours.fileno(), wire[:-5])  # the last frame cut: its end later
        frame_reader.count(slot, ENTITY)  # before the reader's first walk
        frame_reader.start()
        wait_until(lambda: frame_reader.counts[slot, rd.FRAMES] == len(stream) - 1)
        _theirs.sendall(wire[-5:])
        wait_until(lambda: frame_reader.counts[slot, rd.FRAMES] == len(stream))
        assert counted(frame_reader, slot) == await lean_figures(stream)
    finally:
        frame_reader.close()


def test_frames_other_than_counted_interest_frames_reach_python_in_order(reader, pairs):
    ours, theirs = pairs()
    slot = reader.add(ours.fileno(), b"")
    before = frames()[0]
    theirs.sendall(ws_frame(0x2, before) + ws_frame(0x1, b'{"type": "welcome"}'))
    taken = messages(reader, 2)
    assert [(s, kind, fin, payload) for s, kind, fin, payload, _ in taken] == [
        (slot, 0x2, True, before),  # not counted yet: no welcome has been read
        (slot, 0x1, True, b'{"type": "welcome"}'),
    ]
    assert abs(taken[0][4] - time.time_ns() / 1e6) < 5_000  # the wall clock of the read
    reader.count(slot, ENTITY)
    long_text = json.dumps({"type": "booth_entered", "pad": "x" * 130_000})[:120_000].encode()
    theirs.sendall(
        ws_frame(0x2, frames()[1])
        + ws_frame(0x1, b'{"type": "zo', fin=False)
        + ws_frame(0x9, b"ping?")
        + ws_frame(0x0, b'ne_changed"}')
        + ws_frame(0x2, before[:40], fin=False)  # a fragmented binary: Python joins it
        + ws_frame(0x1, long_text)
        + ws_frame(0x8, (1001).to_bytes(2, "big") + b"bye")
    )
    taken = messages(reader, 6)
    assert [(kind, fin, payload) for _, kind, fin, payload, _ in taken] == [
        (0x1, False, b'{"type": "zo'),
        (0x9, True, b"ping?"),
        (0x0, True, b'ne_changed"}'),
        (0x2, False, before[:40]),
        (0x1, True, long_text),
        (0x8, True, (1001).to_bytes(2, "big") + b"bye"),
    ]
    assert reader.counts[slot, rd.FRAMES] == 1 and reader.dropped == (0, 0)


@pytest.mark.parametrize(
    ("wire", "why"),
    [
        (client_frame(0x2, frames()[0]), rd.PROTOCOL),  # a server never masks
        (bytes((0xC2, 4)) + b"abcd", rd.PROTOCOL),  # a reserved bit: no extension was agreed
        (bytes((0x82, 127)) + (rd.CARRY + 1).to_bytes(8, "big"), rd.TOO_BIG),
        (bytes((0x82, 127)) + (2**63 + 5).to_bytes(8, "big"), rd.TOO_BIG),
    ],
    ids=["masked", "reserved-bit", "longer-than-the-carry", "length-past-int64"],
)
def test_a_frame_the_reader_cannot_take_ends_its_socket_and_is_counted(reader, pairs, wire, why):
    ours, theirs = pairs()
    slot = reader.add(ours.fileno(), b"")
    reader.count(slot, ENTITY)
    theirs.sendall(ws_frame(0x2, frames()[0]) + wire + ws_frame(0x2, frames()[0]))
    [(got_slot, kind, _fin, _payload, _at)] = messages(reader, 1)
    assert (got_slot, kind) == (slot, why)
    assert reader.counts[slot, rd.BAD] == 1 and reader.counts[slot, rd.FRAMES] == 1
    assert reader.counts[slot, rd.MODE] == rd.ENDED
    theirs.sendall(ws_frame(0x2, frames()[0]))  # no longer read
    time.sleep(0.05)
    assert reader.counts[slot, rd.FRAMES] == 1


def test_an_ended_socket_is_said_and_a_released_slot_serves_the_next_socket(reader, pairs):
    first, theirs = pairs()
    slot = reader.add(first.fileno(), b"")
    reader.count(slot, ENTITY)
    theirs.sendall(ws_frame(0x2, frames()[0]))
    wait_until(lambda: reader.counts[slot, rd.FRAMES] == 1)
    theirs.close()
    [(got_slot, kind, _fin, payload, _at)] = messages(reader, 1)
    assert (got_slot, kind, payload) == (slot, rd.EOF, bytes(4))  # an orderly end: errno 0
    reader.release(slot)
    assert [m[:2] for m in messages(reader, 1)] == [(slot, rd.RELEASED)]
    reader.free(slot)
    reused = [reader.add(pairs()[0].fileno(), b"") for _ in range(4)]
    assert slot in reused  # and its counts start from nothing
    assert reader.counts[slot, rd.FRAMES] == 0 and reader.counts[slot, rd.MODE] == rd.PASS
    with pytest.raises(RuntimeError, match="all 4 slots"):
        reader.add(pairs()[0].fileno(), b"")


def test_a_live_socket_is_released_on_request_and_read_no_more(reader, pairs):
    ours, theirs = pairs()
    slot = reader.add(ours.fileno(), b"")
    reader.count(slot, ENTITY)
    reader.release(slot)
    assert [m[:2] for m in messages(reader, 1)] == [(slot, rd.RELEASED)]
    theirs.sendall(ws_frame(0x2, frames()[0]))
    time.sleep(0.05)
    assert reader.counts[slot, rd.FRAMES] == 0


def test_what_cannot_be_handed_over_is_refused_clearly(pairs):
    with pytest.raises(ValueError, match="at least one slot"):
        rd.FrameReader(0)
    with pytest.raises(ValueError, match="pace must be 0 to 100 ms, not 250"):
        rd.FrameReader(1, pace_ms=250)
    frame_reader = rd.FrameReader(1)
    try:
        with pytest.raises(ValueError, match=f"more than {rd.CARRY} bytes"):
            frame_reader.add(0, bytes(rd.CARRY + 1))
        closed, _ = pairs()
        gone = closed.fileno()
        closed.close()
        with pytest.raises(OSError, match=f"epoll_ctl ADD of descriptor {gone}"):
            frame_reader.add(gone, b"")
        assert frame_reader.add(pairs()[0].fileno(), b"") == 0  # the slot was not lost
    finally:
        frame_reader.close()


@pytest.mark.parametrize(
    ("wire", "code"),
    [(bytes((0x82, 127)) + (rd.CARRY + 1).to_bytes(8, "big"), 1009), (bytes((0xC2, 0)), 1002)],
    ids=["too-big", "reserved-bit"],
)
async def test_a_visitor_hangs_up_on_a_frame_its_reader_cannot_take_and_says_why(wire, code):
    said: list[bytes] = []

    async def script(reader, writer):
        writer.write(ws_frame(0x1, json.dumps(WELCOME).encode()) + ws_frame(0x2, frames()[0]))
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(wire)
        await writer.drain()
        said.append(await asyncio.wait_for(reader.read(64), 5.0))

    async with HandServer(script) as server:
        fleet = LeanFleet(server.url, 1, compiled=True)
        visitor = await fleet.connect()
        await asyncio.wait_for(visitor.wait_closed(), 5.0)
        stats = visitor.stats
        assert (stats.frames, stats.bad_frames) == (1, 1)
        assert visitor.close_code == 1006  # ended without the server's close frame
        [close] = said
        assert close[0] == 0x88 and close[1] & 0x80  # FIN, close, masked
        payload = bytes(b ^ close[2 + i % 4] for i, b in enumerate(close[6:]))
        assert int.from_bytes(payload[:2], "big") == code
        await fleet.aclose()


async def test_a_visitor_on_a_raw_socket_is_refused_as_on_picows():
    async def not_found(reader, writer):
        return None

    async with HandServer(not_found) as server:
        fleet = LeanFleet(server.url, 1, compiled=True)
        with pytest.raises(ValueError, match="ws://host"):
            await fleet._raw.open("wss://127.0.0.1:1/ws/", 1.0)
        await fleet.aclose()


def test_a_frame_is_dated_when_the_kernel_received_it_not_when_the_reader_woke():
    listener = socket.create_server(("127.0.0.1", 0))
    ours = socket.create_connection(listener.getsockname())
    theirs, _ = listener.accept()
    ours.setblocking(False)
    frame_reader = rd.FrameReader(1)
    try:
        slot = frame_reader.add(ours.fileno(), b"")
        frame_reader.count(slot, ENTITY)
        tick_ms = time.time_ns() // 1_000_000
        theirs.sendall(ws_frame(0x2, frame_encode(own_rows([ENTITY]), np.zeros(0, BODY_DTYPE),
                                                   ack_seq=1, tick_ms=tick_ms, far=False)))  # fmt: skip
        time.sleep(0.3)  # the frame waits in the socket: the reader has not started
        frame_reader.start()
        wait_until(lambda: frame_reader.counts[slot, rd.FRAMES] == 1)
        [age] = frame_reader.take_ages()[1].tolist()
        assert -1 <= age < 100, age  # not the 300 ms it waited to be read
    finally:
        frame_reader.close()
        for sock in (ours, theirs, listener):
            sock.close()


def test_a_socket_holding_more_than_a_carry_is_read_to_the_end_in_one_wake_up():
    """Edge-triggered: no new event comes for bytes already there, so a read that filled
    the carry must be followed by another."""
    listener = socket.create_server(("127.0.0.1", 0))
    ours = socket.socket()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * rd.CARRY)  # before the connect
    ours.connect(listener.getsockname())
    theirs, _ = listener.accept()
    ours.setblocking(False)
    wire = ws_frame(0x2, frames()[0])
    count = 3 * rd.CARRY // len(wire)
    frame_reader = rd.FrameReader(1)
    try:
        slot = frame_reader.add(ours.fileno(), b"")
        frame_reader.count(slot, ENTITY)
        theirs.sendall(wire * count)  # all of it waiting before the reader starts
        time.sleep(0.1)
        frame_reader.start()
        wait_until(lambda: frame_reader.counts[slot, rd.FRAMES] == count, timeout=3.0)
        assert frame_reader.counts[slot, rd.BAD] == 0
    finally:
        frame_reader.close()
        for sock in (ours, theirs, listener):
            sock.close()


async def test_a_visitor_on_the_reader_has_the_sdks_figures_from_the_same_frames():
    stream = frames() + mangled() + frames()

    async def script(reader, writer):
        writer.write(ws_frame(0x1, json.dumps(WELCOME).encode()))
        writer.write(b"".join(ws_frame(0x2, frame) for frame in stream))
        await writer.drain()
        await asyncio.sleep(5)

    async with HandServer(script) as server:
        fleet = LeanFleet(server.url, 1, compiled=True)
        visitor = await fleet.connect()
        for _ in range(500):
            stats = visitor.stats
            if stats.frames + stats.bad_frames == len(stream):
                break
            await asyncio.sleep(0.01)
        sdk, _lean = await sdk_and_lean(0.0)
        for frame in stream:
            sdk._frame_header(frame)
        same_figures(sdk, visitor)  # counts, zone, booth, ack_seq, tick_ms, position, velocity
        assert len(visitor.stats.latencies_ms) == visitor.stats.frames
        await visitor.close()
        await fleet.aclose()


async def test_the_own_rows_of_a_group_come_from_their_slots_or_else_from_python():
    fleet = RawFleet(WakeClock(), 4)
    try:
        counted_row, early, silent = (
            CountedVisitor(fleet.clock, fleet, slot) for slot in (1, 0, 3)
        )
        fleet.reader.counts[1, rd.MOTION : rd.MOTION + 8] = [120, 100, -40, 150, 0, -5, 1, 2]
        fleet.reader.counts[1, rd.MOTION_SEEN] = 1
        early.motion = (7, 8, 9, 1, 2, 3, 1, 0)  # a frame that came with the welcome, in Python
        np.testing.assert_array_equal(
            fleet.motions([counted_row, early, silent]),
            [[120, 100, -40, 150, 0, -5, 1, 2], [7, 8, 9, 1, 2, 3, 1, 0], [np.nan] * 8],
        )
    finally:
        await fleet.aclose()


KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


@pytest.mark.parametrize(
    ("head", "error", "message"),
    [
        (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0", VisitorClosed, "HTTP 403"),
        (b"SSH-2.0-OpenSSH_9.2", ConnectionError, "not HTTP"),
        (
            b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: bm90IG91cnM=",
            ConnectionError,
            "does not accept our websocket key",
        ),
    ],
    ids=["refused", "not-http", "wrong-accept"],
)
def test_an_upgrade_answer_that_is_not_ours_is_refused_clearly(head, error, message):
    with pytest.raises(error, match=message):
        _check_upgrade(head, KEY)


def test_the_upgrade_answer_of_rfc_6455_is_accepted():
    accept = base64.b64encode(hashlib.sha1(KEY + WS_GUID).digest())
    assert accept == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 §1.3's own example
    _check_upgrade(b"HTTP/1.1 101 Switching Protocols\r\nsec-websocket-accept: " + accept, KEY)
