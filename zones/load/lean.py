"""The harness's own visitor connection: lean enough for a thousand visitors on a small machine.

The load harness shares the machine with the market it measures, so what one visitor costs
it per frame is the figure that matters (about 20 frames a second each). `LeanVisitor`
speaks the visitor protocol (docs/protocol.md) as the SDK's `Visitor` does with
`decode="header"`, and keeps the same figures (`VisitorStats`: frames, bytes, rows, bodies,
far frames, bad frames, the age of every frame), but:

* the socket is picows (websocket framing in C): each frame arrives in one callback, with
  no reader task, message queue or await per frame;
* a binary frame is read as the SDK's header-only path reads it (header, then the own row
  found by a byte search), and positions become numpy arrays only when asked for;
* a frame's arrival is taken from `WakeClock`: one wall-clock read per wake-up of the
  event loop, shared by every frame delivered in it (the first frame's arrival, not the
  moment this process got round to the last one);
* walking inputs go out as 16-byte binary inputs (protocol §2, "Client → server, binary");
* join tickets come from `TicketPool`: keep-alive HTTP/1.1 connections on the event loop,
  no thread per request.

`LeanFleet` holds what a run's visitors share (the ticket pool and the clock) and opens
them. With `compiled=True` (what `manage.py loadtest` uses) the sockets are not picows's:
rawsocket.py hands them to one compiled thread that reads every visitor's interest frames
without Python, and the rest of a visitor's frames reach the same `LeanVisitor` code. The
SDK stays the visitor client of everything else; this one only reads what the harness
needs (no decoded rows, no pings, no reconnect: the harness counts a disconnect).
"""

import asyncio
import contextlib
import json
import ssl
import struct
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import urljoin, urlsplit

import h11
import numpy as np
from picows import (
    WSCloseCode,
    WSFrame,
    WSHandshakeError,
    WSListener,
    WSMsgType,
    WSTransport,
    ws_connect,
)

from zones.client.visitor import (
    HEADER,
    MAX_SEQ,
    OWN_ID,
    ROW_MOTION,
    ROW_MOTION_AT,
    ROW_OWNER,
    ROW_OWNER_AT,
    ROW_SIZE,
    JoinRefused,
    VisitorClosed,
    VisitorStats,
    join_body,
    join_refused,
    visit_url,
)
from zones.core.wire import (
    BODY_DTYPE,
    FRAME_FAR_ROWS,
    FRAME_KIND_INTEREST,
    FRAME_MAGIC,
    FRAME_VERSION,
    INPUT_DTYPE,
    RowFlag,
)

BINARY, TEXT, CONTINUATION, CLOSE = (
    WSMsgType.BINARY,
    WSMsgType.TEXT,
    WSMsgType.CONTINUATION,
    WSMsgType.CLOSE,
)
CLOSED_NO_STATUS = 1005  # a close frame without a code (what the SDK's websockets reports)
CLOSED_ABNORMALLY = 1006  # the connection ended without a close frame
MAX_MESSAGE = 2**22  # as the SDK's max_size
INPUT = struct.Struct("<I3f")  # INPUT_DTYPE: seq, velocity m/s
assert INPUT.size == INPUT_DTYPE.itemsize
HEADER_SIZE = HEADER.size
# HEADER with magic, version and kind read as one u32, compared at once
HEADER_LEAN = struct.Struct("<IIQHHI")
FRAME_IDENT = FRAME_MAGIC | FRAME_VERSION << 16 | FRAME_KIND_INTEREST << 24
assert HEADER_LEAN.size == HEADER_SIZE
# the own row from its pos on: ROW_MOTION then ROW_OWNER (pos, vel, flags, zone), in one read
OWN_ROW = struct.Struct("<3H3hHH")
OWN_ROW_AT = ROW_MOTION_AT
assert OWN_ROW.size == ROW_MOTION.size + ROW_OWNER.size
assert ROW_MOTION_AT + ROW_MOTION.size == ROW_OWNER_AT
BODY_SIZE = BODY_DTYPE.itemsize
AUTHORITATIVE = RowFlag.AUTHORITATIVE
TICKET_CONNECTIONS = 32  # keep-alive connections of a ticket pool, at most
READ_CHUNK = 65536
COMPILED_SOCKETS = 4096  # sockets a fleet's compiled reader holds at once, at most


class WakeClock:
    """Wall-clock milliseconds (the clock of a frame's tick_ms), read once per loop wake-up.

    The first call in an iteration of the event loop reads the clock and schedules the
    reading's expiry with call_soon, which runs before the loop waits for I/O again;
    every later call in the same iteration returns the same reading.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()
        self._ms: float | None = None
        self.reads = 0  # clock reads so far (one per wake-up that asked)

    def now_ms(self) -> float:
        ms = self._ms
        if ms is None:
            ms = self._ms = time.time_ns() / 1e6
            self.reads += 1
            self._loop.call_soon(self._expire)
        return ms

    def _expire(self) -> None:
        self._ms = None

    @contextlib.contextmanager
    def reading(self, ms: float) -> Iterator[None]:
        """now_ms() answers `ms` inside: for bytes that another thread read at `ms`."""
        kept, self._ms = self._ms, ms
        try:
            yield
        finally:
            self._ms = kept


# --- join tickets --------------------------------------------------------------------------


class TicketPool:
    """POST /api/markets/<id>/join/ over keep-alive HTTP/1.1 connections, on the event loop.

    At most `connections` requests are under way at once, each on a connection of its own;
    a finished connection waits for the next request unless the server said it would
    close it. A request on a connection the server closed while it sat idle is sent again
    on a new one (the server never saw it).
    """

    def __init__(self, base_url: str, market_id: int, connections: int = TICKET_CONNECTIONS):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the market URL must be http(s)://host[:port], not {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.tls = parts.scheme == "https"
        self.authority = parts.netloc.rsplit("@", 1)[-1]
        target = urljoin(base_url.rstrip("/") + "/", f"api/markets/{market_id}/join/")
        self.target = urlsplit(target).path
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, h11.Connection]] = []
        self._gate = asyncio.Semaphore(connections)
        self.opened = 0  # connections opened so far

    async def ticket(
        self,
        *,
        key: str | None = None,
        resume: str | None = None,
        booth: int | None = None,
        at: Sequence[float] | None = None,
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        """The 200 body of a join (the SDK's join_ticket); JoinRefused on any other status."""
        body = join_body(key=key, resume=resume, booth=booth, at=at)
        async with self._gate, asyncio.timeout(timeout):
            status, raw = await self._post(json.dumps(body).encode())
        if status == 200:
            return json.loads(raw)
        raise join_refused(status, raw)

    async def _post(self, payload: bytes) -> tuple[int, bytes]:
        while self._idle:
            reader, writer, conn = self._idle.pop()
            if reader.at_eof() or writer.is_closing():
                writer.close()
                continue
            try:
                return await self._exchange(reader, writer, conn, payload)
            except _StaleConnection:
                continue  # closed by the server while idle: try the next one
        reader, writer = await asyncio.open_connection(
            self.host, self.port, ssl=ssl.create_default_context() if self.tls else None
        )
        self.opened += 1
        try:
            return await self._exchange(reader, writer, h11.Connection(h11.CLIENT), payload)
        except _StaleConnection:
            raise ConnectionResetError(
                "the join endpoint closed the connection unanswered"
            ) from None

    async def _exchange(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        conn: h11.Connection,
        payload: bytes,
    ) -> tuple[int, bytes]:
        """One request and its response; the connection is kept for the next if it can be."""
        kept = False
        answered = False
        try:
            headers = [
                ("Host", self.authority),
                ("Content-Type", "application/json"),
                ("Accept", "application/json"),
                ("Content-Length", str(len(payload))),
            ]
            request = h11.Request(method="POST", target=self.target, headers=headers)
            writer.write(conn.send(request) + conn.send(h11.Data(data=payload)))
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()
            status, body = 0, bytearray()
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await reader.read(READ_CHUNK)
                    if not data and not answered:
                        raise _StaleConnection
                    conn.receive_data(data)
                elif isinstance(event, h11.Response):
                    status, answered = event.status_code, True
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    raise ConnectionResetError("the join endpoint closed the connection mid-answer")
            if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                conn.start_next_cycle()
                self._idle.append((reader, writer, conn))
                kept = True
            return status, bytes(body)
        except h11.RemoteProtocolError as error:
            if not answered:
                raise _StaleConnection from None
            raise ConnectionResetError(f"the join endpoint's answer is not HTTP: {error}") from None
        except ConnectionResetError:
            if not answered and conn.their_state is h11.IDLE:
                raise _StaleConnection from None
            raise
        finally:
            if not kept:
                writer.close()

    async def aclose(self) -> None:
        """Close the idle connections."""
        idle, self._idle = self._idle, []
        for _, writer, _ in idle:
            writer.close()
        for _, writer, _ in idle:
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class _StaleConnection(Exception):
    """A kept connection the server had closed before it answered."""


# --- the visitor ---------------------------------------------------------------------------


class LeanVisitor(WSListener):
    """One harness visitor's socket: what it received, where it stands, how it walks.

    Attributes have the meaning of the SDK Visitor's of the same name. The counters live
    in slots (a frame updates them without a dict lookup); `stats` gathers them.
    """

    __slots__ = (
        "clock",
        "welcome",
        "entity",
        "_zone",
        "booth",
        "resumed",
        "ack_seq",
        "tick_ms",
        "events",
        "events_after",
        "events_recovered",
        "errors",
        "close_code",
        "close_reason",
        "_motion",
        "frames",
        "bytes",
        "rows",
        "bodies",
        "far_frames",
        "bad_frames",
        "events_repeated",
        "latencies_ms",
        "_seq",
        "_seen",
        "_position",
        "_velocity",
        "_own_id",
        "_fragments",
        "_fragments_binary",
        "_transport",
        "_open",
        "_welcomed",
        "_gone",
    )

    def __init__(self, clock: WakeClock) -> None:
        self.clock = clock
        self.welcome: dict[str, Any] = {}
        self.entity = 0
        self._zone: int | None = None
        self.booth: int | None = None
        self.resumed = False
        self.ack_seq = 0
        self.tick_ms = 0
        self.events: list[dict[str, Any]] = []
        self.events_after: tuple[int, str] | None = None
        self.events_recovered: bool | None = None
        self.errors: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.close_reason = ""
        # the own row of the latest frame that had it: position in cm ×3, velocity in cm/s ×3,
        # flags, zone
        self._motion: tuple[int, ...] | None = None
        # VisitorStats's counters
        self.frames = self.bytes = self.rows = self.bodies = 0
        self.far_frames = self.bad_frames = self.events_repeated = 0
        self.latencies_ms = array("d")  # received_ms - tick_ms of every frame
        self._seq = 0
        self._seen: tuple[int, ...] | None = None  # the motion behind _position/_velocity
        self._position: np.ndarray | None = None
        self._velocity: np.ndarray | None = None
        self._own_id = b""
        self._fragments: bytearray | None = None
        self._fragments_binary = False
        self._transport: WSTransport | None = None
        self._open = False  # welcomed: frames count from now on
        loop = clock._loop
        self._welcomed: asyncio.Future[None] = loop.create_future()
        self._gone: asyncio.Future[None] = loop.create_future()

    def _sync(self) -> None:
        """Bring what another thread counted for this visitor into its attributes (none here)."""

    @property
    def motion(self) -> tuple[int, ...] | None:
        """The own row of the latest frame that had it: position in cm ×3, velocity in cm/s
        ×3, flags, zone."""
        self._sync()
        return self._motion

    @motion.setter
    def motion(self, motion: tuple[int, ...] | None) -> None:
        self._motion = motion

    @property
    def zone(self) -> int | None:
        """The zone holding the visitor's entity, by the latest frame or event that said."""
        self._sync()
        return self._zone

    @zone.setter
    def zone(self, zone: int | None) -> None:
        self._zone = zone

    @property
    def stats(self) -> VisitorStats:
        """What it received so far, as the SDK's Visitor.stats (`latencies_ms` is the live array)."""
        self._sync()
        return VisitorStats(
            frames=self.frames,
            bytes=self.bytes,
            far_frames=self.far_frames,
            bad_frames=self.bad_frames,
            rows=self.rows,
            bodies=self.bodies,
            events_repeated=self.events_repeated,
            latencies_ms=self.latencies_ms,
        )

    # --- what the harness reads ------------------------------------------------------------

    @property
    def position(self) -> np.ndarray | None:
        """Metres, from the own row of the latest frame that had it (a new array per frame)."""
        self._decode_motion()
        return self._position

    @property
    def velocity(self) -> np.ndarray | None:
        """Metres per second, as `position`."""
        self._decode_motion()
        return self._velocity

    def _decode_motion(self) -> None:
        motion = self.motion
        if motion is not self._seen and motion is not None:
            self._seen = motion
            self._position = np.array(motion[:3], dtype=np.float64) / 100.0
            self._velocity = np.array(motion[3:6], dtype=np.float64) / 100.0

    @property
    def closed(self) -> bool:
        """Whether the socket has closed (for any reason), or never opened."""
        return self._transport is None or self._gone.done()

    @property
    def seq(self) -> int:
        """The highest input sequence number used so far."""
        return self._seq

    # --- picows callbacks ------------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self._transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind == BINARY and frame.fin:
            if self._open:  # a frame before the welcome has no entity to read it for
                self._binary(frame.get_payload_as_bytes())
        elif kind in (TEXT, BINARY):
            if frame.fin:
                self._message_text(frame)
            else:
                self._fragments = bytearray(frame.get_payload_as_memoryview())
                self._fragments_binary = kind == BINARY
        elif kind == CONTINUATION:
            self._continuation(frame)
        elif kind == CLOSE:
            self._closing(transport, frame)

    def _message_text(self, frame: WSFrame) -> None:
        try:
            text = frame.get_payload_as_utf8_text()
        except UnicodeDecodeError:
            self.bad_frames += 1
            return
        self._text(text)

    def _continuation(self, frame: WSFrame) -> None:
        parts = self._fragments
        if parts is None:
            self.bad_frames += 1  # a continuation of nothing
            return
        parts += frame.get_payload_as_memoryview()
        if len(parts) > MAX_MESSAGE:
            self._fragments = None
            assert self._transport is not None
            self._transport.send_close(WSCloseCode.MESSAGE_TOO_BIG, b"message too big")
            self._transport.disconnect()
            return
        if not frame.fin:
            return
        self._fragments = None
        if self._fragments_binary:
            if self._open:
                self._binary(bytes(parts))
            return
        try:
            text = parts.decode()
        except UnicodeDecodeError:
            self.bad_frames += 1
            return
        self._text(text)

    def _closing(self, transport: WSTransport, frame: WSFrame) -> None:
        """The server's close frame: keep its code and reason, answer it, hang up."""
        code = int(frame.get_close_code().value)
        self.close_code = code if code else CLOSED_NO_STATUS
        self.close_reason = frame.get_close_reason() or ""
        if not transport.is_close_frame_sent:  # echo its code, as websocket clients do
            echo = frame.get_close_code() if code else WSCloseCode.OK
            transport.send_close(echo, frame.get_close_message())
        transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self.close_code is None:
            self.close_code = CLOSED_ABNORMALLY
        error = self.errors[-1] if self.errors else None
        if not self._welcomed.done():
            closed = VisitorClosed(self.close_code, self.close_reason, error)
            self._welcomed.set_exception(closed)
            self._welcomed.exception()  # retrieved: connect() may be gone (a timeout)
        if not self._gone.done():
            self._gone.set_result(None)

    # --- what it receives -------------------------------------------------------------------

    def _binary(self, data: bytes) -> None:
        """An interest frame: header and own row only, with the checks of `frame_decode`."""
        received_ms = self.clock.now_ms()
        size = len(data)
        if size < HEADER_SIZE:
            self.bad_frames += 1
            return
        ident, ack_seq, tick_ms, n_rows, n_bodies, flags = HEADER_LEAN.unpack_from(data)
        rows_end = HEADER_SIZE + n_rows * ROW_SIZE
        if ident != FRAME_IDENT or size != rows_end + n_bodies * BODY_SIZE:
            self.bad_frames += 1
            return
        self.ack_seq = ack_seq
        self.tick_ms = tick_ms
        own = self._own_id
        at = data.find(own, HEADER_SIZE, rows_end)
        while at != -1 and (at - HEADER_SIZE) % ROW_SIZE:
            at = data.find(own, at + 1, rows_end)  # the id's bytes inside another field
        if at != -1:
            motion = self._motion = OWN_ROW.unpack_from(data, at + OWN_ROW_AT)
            if motion[6] & AUTHORITATIVE:
                self._zone = motion[7]
        self.frames += 1
        self.bytes += size
        self.rows += n_rows
        self.bodies += n_bodies
        if flags & FRAME_FAR_ROWS:
            self.far_frames += 1
        self.latencies_ms.append(received_ms - tick_ms)

    def _text(self, message: str) -> None:
        if not self._open:
            self._before_welcome(message)
            return
        try:
            data = json.loads(message)
            kind = data.get("type")
            data["received_ms"] = self.clock.now_ms()
            if kind == "error":
                self.errors.append(data)
            elif kind == "resume":  # a fresh token: the one a reconnect would use
                self.welcome["resume"] = str(data["resume"])
            elif kind == "events_reset":  # the market lost its stream: start over from this
                self.events_after = (int(data["offset"]), str(data["epoch"]))
                self.zone = int(data["snapshot"]["zone"])
                self.booth = int(data["snapshot"]["booth"])
                self.events_recovered = False
            elif kind != "pong":  # no pings are sent: a pong is nobody's answer
                offset = data.get("offset")
                if isinstance(offset, int) and self.events_after is not None:
                    if offset <= self.events_after[0]:
                        self.events_repeated += 1  # never expected: counted, not applied
                        return
                    self.events_after = (offset, self.events_after[1])
                if kind == "zone_changed":
                    self.zone = int(data["to"])
                elif kind == "booth_entered":
                    self.booth = int(data["zone"])
                self.events.append(data)
        except (ValueError, TypeError, KeyError, AttributeError):
            self.bad_frames += 1  # not the protocol: counted, never fatal

    def _before_welcome(self, message: str) -> None:
        """Errors before the welcome are kept; the welcome opens the visit."""
        try:
            data = json.loads(message)
            kind = data.get("type")
            if kind == "error":
                self.errors.append({**data, "received_ms": self.clock.now_ms()})
            elif kind == "welcome":
                self._welcome(data)
                self._open = True
                self._welcomed.set_result(None)
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            self._welcomed.set_exception(
                VisitorClosed(None, f"unreadable welcome: {type(error).__name__}: {error}", None)
            )
            if self._transport is not None:
                self._transport.send_close(WSCloseCode.PROTOCOL_ERROR, b"unreadable welcome")
                self._transport.disconnect()

    def _welcome(self, welcome: dict[str, Any]) -> None:
        entity, zone = int(welcome["entity"]), int(welcome["zone"])
        self.welcome = welcome
        self.entity, self.zone = entity, zone
        self.booth = int(welcome["booth"]["zone"]) if welcome.get("booth") else zone
        self.resumed = bool(welcome.get("resumed", False))
        events = welcome.get("events")
        if isinstance(events, dict):
            self.events_recovered = events.get("recovered")
            if events.get("recovered") is not True:  # the welcome is the snapshot to start from
                self.events_after = (int(events["offset"]), str(events["epoch"]))
        self._seq = max(self._seq, int(welcome.get("last_seq", 0)))
        self._own_id = OWN_ID.pack(entity)

    # --- what it sends ----------------------------------------------------------------------

    def walk_binary(self, vel: Sequence[float]) -> int:
        """Walk with this velocity (m/s) as a 16-byte binary input; returns the seq sent.

        VisitorClosed once the socket has closed, as the SDK's sends.
        """
        transport = self._sendable()
        if self._seq >= MAX_SEQ:
            raise OverflowError("input sequence numbers are exhausted (u32)")
        self._seq += 1
        x, y, z = vel
        transport.send(BINARY, INPUT.pack(self._seq, x, y, z))
        return self._seq

    def ensure_open(self) -> None:
        """VisitorClosed (with the close code and the last error) once the socket has closed."""
        self._sendable()

    def _sendable(self) -> WSTransport:
        transport = self._transport
        if transport is None:
            raise RuntimeError("the visitor is not connected")
        if self._gone.done() or transport.is_close_frame_sent:
            error = self.errors[-1] if self.errors else None
            raise VisitorClosed(self.close_code, self.close_reason, error)
        return transport

    async def leave(self, timeout: float = 5.0) -> int | None:
        """Remove the entity now and wait for the server's close; returns the close code."""
        self._sendable().send(TEXT, b'{"type": "leave"}')
        async with asyncio.timeout(timeout):
            await asyncio.shield(self._gone)
        return self.close_code

    async def close(self, timeout: float = 5.0) -> None:
        """Close the socket without leaving (code 1000); hang up if the server does not answer."""
        transport = self._transport
        if transport is None or self._gone.done():
            return
        if not transport.is_close_frame_sent:
            transport.send_close(WSCloseCode.OK)
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._gone)
        except TimeoutError:
            transport.disconnect(graceful=False)
            await asyncio.shield(self._gone)

    async def wait_closed(self) -> None:
        """Until the socket has closed."""
        await asyncio.shield(self._gone)


def motions_of(visitors: list[LeanVisitor]) -> np.ndarray:
    """Each visitor's own row as floats (NaN where none came yet), one visitor at a time."""
    out = np.full((len(visitors), 8), np.nan)
    for i, visitor in enumerate(visitors):
        motion = visitor.motion
        if motion is not None:
            out[i] = motion
    return out


class LeanFleet:
    """What a run's lean visitors share: one ticket pool, one clock; opens them."""

    def __init__(
        self,
        base_url: str,
        market_id: int,
        *,
        connections: int = TICKET_CONNECTIONS,
        compiled: bool = False,
        sockets: int = COMPILED_SOCKETS,
    ):
        """`compiled`: the visitors' frames are read by the compiled reader (rawsocket.py),
        `sockets` of them open at once at most; a market on https:// keeps picows sockets."""
        self.base_url, self.market_id = base_url, market_id
        self.tickets = TicketPool(base_url, market_id, connections)
        self.clock = WakeClock()
        self.compiled = compiled and not self.tickets.tls
        self._raw: Any = None  # rawsocket.RawFleet
        if self.compiled:
            from .rawsocket import RawFleet  # numba: compiles the reader on its first use

            self._raw = RawFleet(self.clock, sockets)

    async def connect(
        self,
        *,
        key: str | None = None,
        booth: int | None = None,
        at: Sequence[float] | None = None,
        timeout: float = 10.0,
    ) -> LeanVisitor:
        """Join with a fresh ticket and wait for the welcome (the SDK's Visitor.connect).

        JoinRefused when the endpoint refuses, VisitorClosed when the socket is refused or
        closes before the welcome, OSError (TimeoutError included) when nothing answers.
        """
        ticket = await self.tickets.ticket(key=key, booth=booth, at=at, timeout=timeout)
        url = visit_url(self.base_url, self.market_id, ticket)
        if self._raw is not None:
            visitor: LeanVisitor = await self._raw.open(url, timeout)
            return await self._welcomed(visitor, timeout)
        visitor = LeanVisitor(self.clock)
        try:
            await ws_connect(
                lambda: visitor,
                url,
                websocket_handshake_timeout=timeout,
                max_frame_size=MAX_MESSAGE,
                enable_auto_pong=True,
                use_aiofastnet=False,  # uvloop's own transport: no reader handle per wake-up
            )
        except WSHandshakeError as error:  # refused before the upgrade: no close code exists
            if error.response is not None:
                raise VisitorClosed(None, f"HTTP {error.response.status}", None) from None
            raise ConnectionError(f"websocket handshake failed: {error}") from None
        return await self._welcomed(visitor, timeout)

    @staticmethod
    async def _welcomed(visitor: LeanVisitor, timeout: float) -> LeanVisitor:
        """The visitor once welcomed; its socket hung up when the welcome does not come."""
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(visitor._welcomed)
        except BaseException:
            transport = visitor._transport
            if transport is not None:
                transport.disconnect(graceful=False)
            raise
        return visitor

    async def connect_retrying(
        self,
        *,
        retry_s: float = 30.0,
        refused: Callable[[Exception], None] | None = None,
        **options: Any,
    ) -> LeanVisitor:
        """connect, retried every half second while the zones are still coming up
        (the SDK's connect_retrying); `refused` hears of every attempt that failed."""
        deadline = time.monotonic() + retry_s
        while True:
            try:
                return await self.connect(**options)
            except (VisitorClosed, JoinRefused, OSError) as error:
                if refused is not None:
                    refused(error)
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)

    def motions(self, visitors: list[LeanVisitor]) -> np.ndarray:
        """The own rows of open visitors of this fleet as (n, 8) floats, NaN where none came
        yet (what `Pacer` checks a group of legs by)."""
        if self._raw is not None:
            return self._raw.motions(visitors)
        return motions_of(visitors)

    async def aclose(self) -> None:
        await self.tickets.aclose()
        if self._raw is not None:
            await self._raw.aclose()
