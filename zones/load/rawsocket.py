"""Lean visitors whose frames the compiled reader reads: no Python runs for an interest frame.

`LeanFleet` (lean.py) opens its visitors here when the market is plain `http://` and
`compiled` is on (the default of `manage.py loadtest`): the socket is upgraded by hand on the
event loop, then handed to the fleet's `FrameReader` (reader.py), whose thread reads every
socket and counts every interest frame of a welcomed visitor without Python. What is not an
interest frame (the welcome, events, errors, close, ping) comes back to the event loop
through the reader's messages and reaches the visitor as a picows frame would:
`RawTransport` answers the calls `LeanVisitor` makes on picows's transport (send,
send_close, disconnect, is_close_frame_sent) and `RawFrame` the ones it makes on its frames,
so the visitor's protocol code is the same on both sockets.

`CountedVisitor` is a `LeanVisitor` whose counters are the sum of its own (frames read in
Python: before the welcome was handled, or fragmented) and its reader slot's; its motion and
zone come from the slot when the reader saw a newer own row. A frame's age goes from the
reader to the visitor's `latencies_ms` when its stats are read (`RawFleet.collect_ages`).
A slot's counters are added into the visitor's own once the reader has let the socket go,
before the slot serves another socket.
"""

import asyncio
import base64
import contextlib
import hashlib
import os
import socket
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from picows import WSCloseCode

from zones.client.visitor import VisitorClosed, VisitorStats

from . import reader as rd
from .lean import LeanVisitor, WakeClock

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_RESPONSE_HEAD = 65536
PING, PONG, CLOSE = 0x9, 0xA, 0x8
COUNTERS = (
    ("frames", rd.FRAMES),
    ("bytes", rd.BYTES),
    ("rows", rd.ROWS),
    ("bodies", rd.BODIES),
    ("far_frames", rd.FAR),
    ("bad_frames", rd.BAD),
)


# --- the opening handshake --------------------------------------------------------------------


async def upgrade(ws_url: str, timeout: float) -> tuple[socket.socket, bytes]:
    """Open `ws_url` (plain ws://) on the running loop: the non-blocking socket once the server
    said 101, and the bytes that came after its answer (the first frames, or part of one).

    VisitorClosed when the server answers anything but 101 (as the SDK: no close code
    exists yet), ConnectionError when the answer is not a websocket upgrade, OSError
    (TimeoutError included) when nothing answers.
    """
    parts = urlsplit(ws_url)
    if parts.scheme != "ws" or not parts.hostname:
        raise ValueError(f"a raw socket opens ws://host[:port]/path only, not {ws_url!r}")
    loop = asyncio.get_running_loop()
    key = base64.b64encode(os.urandom(16))
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Key: {key.decode()}\r\n\r\n"
    ).encode()
    async with asyncio.timeout(timeout):
        (family, kind, proto, _, address), *_ = await loop.getaddrinfo(
            parts.hostname, parts.port or 80, type=socket.SOCK_STREAM
        )
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await loop.sock_connect(sock, address)
            await loop.sock_sendall(sock, request)
            answer = b""
            while b"\r\n\r\n" not in answer:
                chunk = await loop.sock_recv(sock, 4096)
                if not chunk:
                    raise ConnectionError("the server closed the socket during its upgrade")
                answer += chunk
                if len(answer) > MAX_RESPONSE_HEAD:
                    raise ConnectionError("the server's upgrade answer has no end")
            head, early = answer.split(b"\r\n\r\n", 1)
            _check_upgrade(head, key)
        except BaseException:
            sock.close()
            raise
    return sock, early


def _check_upgrade(head: bytes, key: bytes) -> None:
    """The server's answer must be 101 with the accept value of our key (RFC 6455 §4.1)."""
    status_line, *lines = head.decode("latin-1").split("\r\n")
    fields = status_line.split(" ", 2)
    if len(fields) < 2 or not fields[0].startswith("HTTP/") or not fields[1].isdigit():
        raise ConnectionError(f"the server's answer is not HTTP: {status_line[:80]!r}")
    status = int(fields[1])
    if status != 101:
        raise VisitorClosed(None, f"HTTP {status}", None)
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    expected = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()
    if headers.get("sec-websocket-accept") != expected:
        raise ConnectionError("the server's upgrade does not accept our websocket key")


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One whole client frame: FIN, `opcode`, masked with a fresh key (RFC 6455 §5.3)."""
    size = len(payload)
    if size < 126:
        head = bytes((0x80 | opcode, 0x80 | size))
    elif size < 65536:
        head = bytes((0x80 | opcode, 0xFE)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0xFF)) + size.to_bytes(8, "big")
    key = os.urandom(4)
    mask = (key * (size // 4 + 1))[:size]
    masked = (int.from_bytes(payload, "little") ^ int.from_bytes(mask, "little")).to_bytes(
        size, "little"
    )
    return head + key + masked


# --- what the visitor sees ------------------------------------------------------------------


class RawFrame:
    """A whole frame the reader passed on, with the reads `LeanVisitor` makes of picows's."""

    __slots__ = ("msg_type", "fin", "_payload")

    def __init__(self, opcode: int, fin: bool, payload: bytes) -> None:
        self.msg_type, self.fin, self._payload = opcode, fin, payload

    def get_payload_as_bytes(self) -> bytes:
        return self._payload

    def get_payload_as_memoryview(self) -> memoryview:
        return memoryview(self._payload)

    def get_payload_as_utf8_text(self) -> str:
        return self._payload.decode()  # UnicodeDecodeError for what is not UTF-8, as picows

    def get_close_code(self) -> WSCloseCode:
        payload = self._payload
        return WSCloseCode(int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 0)

    def get_close_message(self) -> bytes | None:
        return self._payload[2:] or None

    def get_close_reason(self) -> str | None:
        message = self.get_close_message()
        return message.decode(errors="replace") if message else None


class RawTransport:
    """One visitor socket: the reader reads it, the event loop writes it.

    The calls `LeanVisitor` makes on a picows transport, with their meaning; the reader's
    messages for the slot come in through `received`.
    """

    def __init__(self, sock: socket.socket, fleet: "RawFleet", slot: int) -> None:
        self.sock, self.fleet, self.slot = sock, fleet, slot
        self.visitor: CountedVisitor | None = None
        self.is_close_frame_sent = False
        self._out = bytearray()  # what the socket would not take yet
        self._disconnect_after_flush = False
        self._releasing = False

    # --- writing

    def send(self, msg_type: int, message: bytes) -> None:
        self._write(client_frame(int(msg_type), bytes(message)))

    def send_close(self, close_code: int = 1000, close_message: bytes | None = None) -> None:
        if self.is_close_frame_sent:
            return
        self.is_close_frame_sent = True
        self._write(
            client_frame(CLOSE, int(close_code).to_bytes(2, "big") + (close_message or b""))
        )

    def disconnect(self, graceful: bool = True) -> None:
        """Hang up: the reader lets the socket go, then it is closed (after what waits to be
        written, when `graceful`)."""
        if graceful and self._out:
            self._disconnect_after_flush = True
            return
        if not self._releasing:
            self._releasing = True
            self.fleet.reader.release(self.slot)

    def _write(self, data: bytes) -> None:
        if self._releasing:
            return
        if self._out:
            self._out += data
            return
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self.disconnect(graceful=False)  # the reader hears of it too
            return
        if sent < len(data):
            self._out += data[sent:]
            asyncio.get_running_loop().add_writer(self.sock.fileno(), self._flush)

    def _flush(self) -> None:
        try:
            sent = self.sock.send(self._out)
        except BlockingIOError:
            return
        except OSError:
            sent = len(self._out)
        del self._out[:sent]
        if not self._out:
            asyncio.get_running_loop().remove_writer(self.sock.fileno())
            if self._disconnect_after_flush:
                self.disconnect(graceful=False)

    # --- what the reader says of the socket

    def received(self, kind: int, fin: bool, payload: bytes) -> None:
        visitor = self.visitor
        assert visitor is not None
        if kind == PING:
            self.send(PONG, payload)
        elif kind == PONG:
            pass  # no pings are sent: a pong is nobody's answer
        elif kind < rd.EOF:
            visitor.on_ws_frame(self, RawFrame(kind, fin, payload))  # type: ignore[arg-type]
        elif kind == rd.EOF:
            self.disconnect(graceful=False)
        elif kind == rd.TOO_BIG:
            self.send_close(WSCloseCode.MESSAGE_TOO_BIG, b"message too big")
            self.disconnect()
        elif kind == rd.PROTOCOL:
            self.send_close(WSCloseCode.PROTOCOL_ERROR, b"protocol error")
            self.disconnect()
        elif kind == rd.RELEASED:
            self._released(visitor)

    def _released(self, visitor: "CountedVisitor") -> None:
        self.fleet.collect_ages()
        visitor.detach()
        self.fleet.forget(self.slot)
        if self._out:
            asyncio.get_running_loop().remove_writer(self.sock.fileno())
            self._out.clear()
        self.sock.close()
        visitor.on_ws_disconnected(self)  # type: ignore[arg-type]


class CountedVisitor(LeanVisitor):
    """A lean visitor whose interest frames its reader slot counts (see the module's docstring)."""

    __slots__ = ("fleet", "slot", "_row", "_motion_seen", "_zone_seen")

    def __init__(self, clock: WakeClock, fleet: "RawFleet", slot: int) -> None:
        super().__init__(clock)
        self.fleet, self.slot = fleet, slot
        self._row: np.ndarray | None = fleet.reader.counts[slot]
        self._motion_seen = self._zone_seen = 0

    def _welcome(self, welcome: dict[str, Any]) -> None:
        super()._welcome(welcome)
        self.fleet.reader.count(self.slot, self.entity)

    def _sync(self) -> None:
        row = self._row
        if row is None:
            return
        seen = row.item(rd.MOTION_SEEN)
        if seen != self._motion_seen:
            self._motion_seen = seen
            self._motion = tuple(row[rd.MOTION : rd.MOTION + 8].tolist())
        seen = row.item(rd.ZONE_SEEN)
        if seen != self._zone_seen:
            self._zone_seen = seen
            self._zone = row.item(rd.ZONE)
        tick_ms = row.item(rd.TICK_MS)
        if tick_ms:  # the latest counted frame's header
            self.ack_seq, self.tick_ms = row.item(rd.ACK_SEQ), tick_ms

    @property
    def stats(self) -> VisitorStats:
        self.fleet.collect_ages()
        self._sync()
        row = self._row.tolist() if self._row is not None else [0] * rd.FIELDS  # detached: 0
        return VisitorStats(
            frames=self.frames + row[rd.FRAMES],
            bytes=self.bytes + row[rd.BYTES],
            far_frames=self.far_frames + row[rd.FAR],
            bad_frames=self.bad_frames + row[rd.BAD],
            rows=self.rows + row[rd.ROWS],
            bodies=self.bodies + row[rd.BODIES],
            events_repeated=self.events_repeated,
            latencies_ms=self.latencies_ms,
        )

    def detach(self) -> None:
        """The reader let the socket go: keep the slot's counts, let the slot go."""
        self._sync()
        row = self._row
        if row is None:
            return
        for name, field in COUNTERS:
            setattr(self, name, getattr(self, name) + int(row[field]))
        self._row = None


class RawFleet:
    """The frame reader of a fleet's raw sockets, and the slots' transports."""

    def __init__(self, clock: WakeClock, slots: int) -> None:
        self.clock = clock
        self.reader = rd.FrameReader(slots)
        self.transports: dict[int, RawTransport] = {}
        self._loop = asyncio.get_running_loop()
        self.reader.start()
        self._loop.add_reader(self.reader.notify_fd, self._dispatch)

    async def open(self, ws_url: str, timeout: float) -> CountedVisitor:
        """A visitor on a raw socket to `ws_url`, read by the reader from its first frame."""
        sock, early = await upgrade(ws_url, timeout)
        try:
            slot = self.reader.add(sock.fileno(), early)
        except BaseException:
            sock.close()
            raise
        transport = RawTransport(sock, self, slot)
        visitor = CountedVisitor(self.clock, self, slot)
        transport.visitor = visitor
        self.transports[slot] = transport
        visitor.on_ws_connected(transport)  # type: ignore[arg-type]
        return visitor

    def _dispatch(self) -> None:
        clock = self.clock
        for slot, kind, fin, payload, read_ms in self.reader.take_messages():
            transport = self.transports.get(slot)
            if transport is None:
                continue  # a slot let go already
            with clock.reading(read_ms):
                transport.received(kind, fin, payload)

    def collect_ages(self) -> None:
        """Every frame age the reader took since the last call, into its visitor's latencies_ms."""
        slots, ages = self.reader.take_ages()
        if not slots.size:
            return
        order = np.argsort(slots, kind="stable")
        slots, ages = slots[order], ages[order]
        starts = np.flatnonzero(np.diff(slots)) + 1
        for start, end in zip(
            np.concatenate(([0], starts)).tolist(),
            np.concatenate((starts, [slots.size])).tolist(),
            strict=True,
        ):
            transport = self.transports.get(int(slots[start]))
            if transport is not None and transport.visitor is not None:
                transport.visitor.latencies_ms.frombytes(ages[start:end].tobytes())

    def motions(self, visitors: "list[CountedVisitor]") -> np.ndarray:
        """The own rows of open visitors as (n, 8) floats, NaN where none came yet: the
        counted ones from their slots' rows at once, any other from what Python saw."""
        slots = np.fromiter((v.slot for v in visitors), np.int64, len(visitors))
        rows = self.reader.counts[slots]
        out = rows[:, rd.MOTION : rd.MOTION + 8].astype(np.float64)
        for i in np.flatnonzero(rows[:, rd.MOTION_SEEN] == 0).tolist():
            motion = visitors[i].motion  # before its first counted row: the welcome's frames
            out[i] = np.nan if motion is None else motion
        return out

    def forget(self, slot: int) -> None:
        """The reader let the slot's socket go: the slot may serve another."""
        self.transports.pop(slot, None)
        self.reader.free(slot)

    async def aclose(self) -> None:
        """Hang up every socket still open and stop the reader."""
        for transport in list(self.transports.values()):
            transport.disconnect(graceful=False)
        for _ in range(100):
            if not self.transports:
                break
            await asyncio.sleep(0.01)
        self._loop.remove_reader(self.reader.notify_fd)
        self.reader.close()
        for transport in list(self.transports.values()):
            with contextlib.suppress(OSError):
                transport.sock.close()
        self.transports.clear()
