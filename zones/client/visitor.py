"""A visitor program's side of the market protocol (docs/protocol.md).

`join_ticket` asks the REST endpoint for a one-time ticket; `Visitor.connect`
spends it on a websocket, waits for the welcome and starts one reader task that
decodes every interest frame into read-only numpy views (no per-row Python work,
so one process can drive a thousand visitors). A visitor opened with
`decode="header"` reads only each frame's header and its own row: the statistics,
position, velocity and zone are kept, `rows` and `bodies` stay empty, at about a
quarter of the cost (for load harnesses, whose own CPU competes with the server's).
"""

import asyncio
import contextlib
import json
import math
import secrets
import struct
import time
from array import array
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from zones.core.wire import (
    BODY_DTYPE,
    FRAME_FAR_ROWS,
    FRAME_HEADER,
    FRAME_HEADER_DTYPE,
    FRAME_KIND_INTEREST,
    FRAME_MAGIC,
    FRAME_ROW_DTYPE,
    FRAME_VERSION,
    INPUT_DTYPE,
    VIEW_DTYPE,
    RowFlag,
    frame_decode,
)

from .assets import BoothAssets
from .http import post_json
from .layout import Layout

RESEND_MEMORY = 256
"""Inputs kept for resending after a reconnect (the newest ones)."""

MAX_SEQ = 2**32 - 1
"""Sequence numbers are u32 on the wire."""

FrameCallback = Callable[["Visitor", np.void, np.ndarray, np.ndarray, float], None]

DECODE_MODES = ("full", "header")

# The header-only path reads the wire with struct, at the offsets of the dtypes it follows:
# reading a numpy header (wire.frame_header) costs more than this whole path (~5 µs a frame).
HEADER = FRAME_HEADER  # FRAME_HEADER_DTYPE
ROW_MOTION = struct.Struct("<3H3h")  # FRAME_ROW_DTYPE pos, vel: centimetres (per second)
ROW_OWNER = struct.Struct("<HH")  # FRAME_ROW_DTYPE flags, zone
OWN_ID = struct.Struct("<Q")  # FRAME_ROW_DTYPE id, at offset 0
ROW_SIZE = FRAME_ROW_DTYPE.itemsize
assert HEADER.size == FRAME_HEADER_DTYPE.itemsize
ROW_MOTION_AT = FRAME_ROW_DTYPE.fields["pos"][1]
ROW_OWNER_AT = FRAME_ROW_DTYPE.fields["flags"][1]


class JoinRefused(Exception):
    """The join endpoint answered with an error (`status`, `code`, `detail`; `url` where the
    market is served, for `market_elsewhere`)."""

    def __init__(self, status: int, code: str, detail: str, url: str | None = None) -> None:
        self.status, self.code, self.detail, self.url = status, code, detail, url
        super().__init__(f"join refused: {status} {code}: {detail}")


class VisitorClosed(Exception):
    """The server closed the socket: `close_code`, `reason`, and the last `error` frame if any."""

    def __init__(self, close_code: int | None, reason: str, error: dict[str, Any] | None) -> None:
        self.close_code, self.reason, self.error = close_code, reason, error
        said = f" after error {error.get('code')!r}" if error else ""
        super().__init__(f"socket closed with {close_code} {reason!r}{said}")


@dataclass
class VisitorStats:
    """What one visitor received: counts, and the age of every interest frame on arrival."""

    frames: int = 0
    bytes: int = 0
    far_frames: int = 0
    bad_frames: int = 0
    rows: int = 0  # entity rows over all frames
    bodies: int = 0  # body blocks over all frames
    events_repeated: int = 0  # market events received twice (none should be)
    latencies_ms: array = field(default_factory=lambda: array("d"))  # received_ms - tick_ms

    def latency_percentile(self, q: float) -> float:
        """The q-th percentile (0..100) of frame latency in ms; NaN before any frame."""
        if not self.latencies_ms:
            return math.nan
        return float(np.percentile(np.frombuffer(self.latencies_ms, np.float64), q))


def _now_ms() -> float:
    """Wall-clock milliseconds, the clock of a frame's tick_ms."""
    return time.time_ns() / 1e6


def _vector(values: Sequence[float] | np.ndarray) -> list[float]:
    """Three floats for a JSON vector field."""
    return [float(v) for v in np.asarray(values, dtype=np.float64).reshape(3)]


async def join_ticket(
    base_url: str,
    market_id: int,
    *,
    key: str | None = None,
    resume: str | None = None,
    booth: int | None = None,
    at: Sequence[float] | None = None,
    transfer: str | None = None,
    name: str | None = None,
    colour: str | None = None,
    timeout: float = 5.0,
) -> dict[str, Any]:
    """POST /api/markets/<id>/join/ and return the 200 body; JoinRefused on any other status."""
    body = join_body(
        key=key, resume=resume, booth=booth, at=at, transfer=transfer, name=name, colour=colour
    )
    url = urljoin(base_url.rstrip("/") + "/", f"api/markets/{market_id}/join/")
    status, raw = await post_json(url, body, timeout)
    if status != 200:
        raise join_refused(status, raw)
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise JoinRefused(status, "bad_answer", f"the join answered {raw[:200]!r}, not an object")
    return answer


def join_body(
    *,
    key: str | None = None,
    resume: str | None = None,
    booth: int | None = None,
    at: Sequence[float] | None = None,
    transfer: str | None = None,
    name: str | None = None,
    colour: str | None = None,
) -> dict[str, Any]:
    """The JSON body of a join request: only the fields given."""
    fields = {
        "key": key,
        "resume": resume,
        "booth": booth,
        "transfer": transfer,
        "name": name,
        "colour": colour,
    }
    body: dict[str, Any] = {name: value for name, value in fields.items() if value is not None}
    if at is not None:
        body["at"] = _vector(at)
    return body


def join_refused(status: int, raw: bytes) -> JoinRefused:
    """The refusal a join endpoint's non-200 answer describes (its JSON error, or its text)."""
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = {}
    if not isinstance(answer, dict):
        answer = {}
    code = str(answer.get("error", "http_error"))
    detail = str(answer.get("detail", raw[:200].decode(errors="replace")))
    url = answer.get("url")
    return JoinRefused(status, code, detail, url if isinstance(url, str) else None)


def visit_url(
    base_url: str,
    market_id: int,
    ticket: dict[str, Any],
    events_after: tuple[int, str] | None = None,
) -> str:
    """The socket URL for a ticket: the ticket's `ws` path on the base URL's host, ws or wss;
    with `events_after` (offset, epoch), the events resume after that one."""
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = ticket.get("ws") or f"/ws/markets/{market_id}/visit/"
    origin = urlunsplit((scheme, parts.netloc, parts.path or "/", "", ""))
    url = f"{urljoin(origin, path)}?ticket={quote(str(ticket['ticket']), safe='')}"
    if events_after is not None:
        url += f"&offset={events_after[0]}&epoch={quote(events_after[1], safe='')}"
    return url


class Visitor:
    """One visitor's live socket: its state from the latest frame, and the calls it can make."""

    def __init__(
        self,
        base_url: str,
        market_id: int,
        *,
        key: str | None = None,
        on_frame: FrameCallback | None = None,
        decode: str = "full",
        assets: BoothAssets | None = None,
        name: str | None = None,
        colour: str | None = None,
    ) -> None:
        if decode not in DECODE_MODES:
            raise ValueError(f"decode must be one of {DECODE_MODES}, not {decode!r}")
        if decode == "header" and on_frame is not None:
            raise ValueError("on_frame needs decoded rows: use decode='full'")
        self.base_url, self.market_id, self.key = base_url, market_id, key
        self.name, self.colour = name, colour  # what the visitor goes by (both optional)
        self.on_frame = on_frame
        self.decode = decode
        self.welcome: dict[str, Any] = {}
        # The booth assets loaded in the background as the visitor walks (zones/client/assets.py)
        self.assets = assets
        self.asset_token = ""  # bearer token for the chunk API, renewed over the socket
        self.layout: Layout | None = None
        self.entity = 0
        self.zone: int | None = None
        self.booth: int | None = None
        self.resumed = False
        self.position: np.ndarray | None = None
        self.velocity: np.ndarray | None = None
        self.rows = np.zeros(0, VIEW_DTYPE)
        self.bodies = np.zeros(0, BODY_DTYPE)
        self.ack_seq = 0
        self.tick_ms = 0
        self.events: list[dict[str, Any]] = []
        # (offset, epoch) of the last market event received: a reconnect resumes after it
        self.events_after: tuple[int, str] | None = None
        self.events_recovered: bool | None = None  # what the last welcome said of the resume
        self.errors: list[dict[str, Any]] = []
        # zone → the last `zone_health` event about it: the market tells a visitor when the
        # zone holding it stops (`restarting`, `quarantined`) and when it runs again (`ok`)
        self.zone_health: dict[int, dict[str, Any]] = {}
        self.close_code: int | None = None
        self.close_reason = ""
        self.stats = VisitorStats()
        self._seq = 0
        self._sent: deque[tuple[int, str | bytes]] = deque(maxlen=RESEND_MEMORY)
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiters: list[tuple[Callable[[Visitor], bool], asyncio.Future[None]]] = []
        self._pings: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ping_id = 0
        self._taken: dict[str, int] = {}  # events already returned by wait_event, per type
        self._acked = 0  # the highest ack_seq of the sockets before the current one
        # portals taken: each `transfer` message with its "result" (completed or refused)
        self.transfers: list[dict[str, Any]] = []
        self._moving = False  # between a transfer message and the destination's welcome
        self._mover: asyncio.Task[None] | None = None
        self.timeout = 10.0

    # --- opening --------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        base_url: str,
        market_id: int,
        *,
        key: str | None = None,
        resume: str | None = None,
        booth: int | None = None,
        at: Sequence[float] | None = None,
        on_frame: FrameCallback | None = None,
        decode: str = "full",
        timeout: float = 10.0,
        assets: BoothAssets | None = None,
        name: str | None = None,
        colour: str | None = None,
    ) -> "Visitor":
        """Join with a fresh ticket and wait for the welcome; VisitorClosed if the socket is refused.

        With `assets`, every booth the visitor enters is loaded in the background.
        """
        visitor = cls(
            base_url,
            market_id,
            key=key,
            on_frame=on_frame,
            decode=decode,
            assets=assets,
            name=name,
            colour=colour,
        )
        visitor.timeout = timeout
        await visitor._open(resume, booth=booth, at=at, timeout=timeout)
        return visitor

    async def _open(
        self,
        resume: str | None,
        *,
        booth: int | None = None,
        at: Sequence[float] | None = None,
        timeout: float,
    ) -> None:
        """Ticket, socket, welcome, reader: on any failure the new socket is closed again.

        A market of a host served at another address (`market_elsewhere`) is asked there.
        """
        for _ in range(2):
            try:
                ticket = await join_ticket(
                    self.base_url,
                    self.market_id,
                    key=self.key,
                    resume=resume,
                    booth=booth,
                    at=at,
                    name=self.name,
                    colour=self.colour,
                    timeout=timeout,
                )
                break
            except JoinRefused as refused:
                if refused.code != "market_elsewhere" or not refused.url:
                    raise
                self.base_url = refused.url
        else:
            raise JoinRefused(409, "market_elsewhere", f"{self.market_id} moved again")
        await self._connect(ticket, timeout)

    async def _connect(self, ticket: dict[str, Any], timeout: float) -> None:
        """Spend `ticket` on a socket, wait for the welcome, start the reader."""
        url = visit_url(self.base_url, self.market_id, ticket, self.events_after)
        try:
            ws = await connect(url, compression=None, open_timeout=timeout, max_size=2**22)
        except InvalidStatus as error:  # refused before the upgrade: no close code exists
            status = error.response.status_code
            raise VisitorClosed(None, f"HTTP {status}", None) from None
        try:
            async with asyncio.timeout(timeout):
                welcome = await self._await_welcome(ws)
            self._welcomed(welcome)
        except BaseException:
            await ws.close()
            raise
        self._ws, self.close_code, self.close_reason = ws, None, ""
        self._reader = asyncio.create_task(self._read(ws), name=f"visitor-{self.entity}")

    async def _await_welcome(self, ws: ClientConnection) -> dict[str, Any]:
        """Messages up to the welcome; errors before it are kept, a close raises VisitorClosed."""
        error = None
        while True:
            try:
                message = await ws.recv()
            except ConnectionClosed:
                raise VisitorClosed(ws.close_code, ws.close_reason or "", error) from None
            if isinstance(message, bytes):
                continue  # a frame before the welcome has no entity to read it for
            data = json.loads(message)
            if data.get("type") == "welcome":
                return data
            if data.get("type") == "error":
                error = {**data, "received_ms": _now_ms()}
                self.errors.append(error)

    def _welcomed(self, welcome: dict[str, Any]) -> None:
        self.welcome = welcome
        self.layout = Layout.from_welcome(welcome["layout"])
        self.entity = int(welcome["entity"])
        self.zone = int(welcome["zone"])
        self.booth = int(welcome["booth"]["zone"]) if welcome.get("booth") else self.zone
        self.resumed = bool(welcome.get("resumed", False))
        self.asset_token = str((welcome.get("assets") or {}).get("token", ""))
        if self.assets is not None:
            self.assets.welcomed(self.market_id, welcome)
        events = welcome.get("events")
        if isinstance(events, dict):
            self.events_recovered = events.get("recovered")
            if events.get("recovered") is not True:  # the welcome is the snapshot to start from
                self.events_after = (int(events["offset"]), str(events["epoch"]))
        # a key visitor may come back from a new process: its seqs must continue
        self._seq = max(self._seq, int(welcome.get("last_seq", 0)))

    # --- receiving ------------------------------------------------------------

    async def _read(self, ws: ClientConnection) -> None:
        """The reader task of one socket: apply every message, then record the close."""
        try:
            header_only = self.decode == "header"
            async for message in ws:
                if isinstance(message, bytes):
                    if header_only:
                        self._frame_header(message)
                    else:
                        self._frame(message)
                else:
                    self._text(message)
                self._check_waiters()
        except ConnectionClosed:
            pass
        except Exception as error:
            self._fail_all(error)
            raise
        if ws is self._ws and not self._moving:  # a transfer's old socket closes as planned
            self._closed_by(ws)

    def _closed_by(self, ws: ClientConnection) -> None:
        """Record the close of the current socket, failing whatever waits on it."""
        self.close_code, self.close_reason = ws.close_code, ws.close_reason or ""
        self._check_waiters()
        error = self.errors[-1] if self.errors else None
        self._fail_all(VisitorClosed(self.close_code, self.close_reason, error))

    def _frame(self, data: bytes) -> None:
        received_ms = _now_ms()
        try:
            header, rows, bodies = frame_decode(data)
        except ValueError:
            self.stats.bad_frames += 1
            return
        self.rows, self.bodies = rows, bodies
        self.ack_seq = int(header["ack_seq"])
        self.tick_ms = int(header["tick_ms"])
        own = np.flatnonzero(rows["id"] == self.entity)
        if own.size:
            row = rows[own[0]]
            self.position = np.array(row["pos"], dtype=np.float64)
            self.velocity = np.array(row["vel"], dtype=np.float64)
            if row["flags"] & RowFlag.AUTHORITATIVE:
                self.zone = int(row["zone"])
        self._count(len(data), int(header["flags"]), rows.size, bodies.size, received_ms)
        if self.on_frame is not None:
            self.on_frame(self, header, rows, bodies, received_ms)

    def _frame_header(self, data: bytes) -> None:
        """The header and the own row only; the same checks as `frame_decode`."""
        received_ms = _now_ms()
        if len(data) < HEADER.size:
            self.stats.bad_frames += 1
            return
        magic, version, kind, ack_seq, tick_ms, n_rows, n_bodies, flags = HEADER.unpack_from(data)
        expected = HEADER.size + n_rows * ROW_SIZE + n_bodies * BODY_DTYPE.itemsize
        ours = (magic, version, kind) == (FRAME_MAGIC, FRAME_VERSION, FRAME_KIND_INTEREST)
        if not ours or len(data) != expected:
            self.stats.bad_frames += 1
            return
        self.ack_seq, self.tick_ms = ack_seq, tick_ms
        at = self._own_row_at(data, HEADER.size + n_rows * ROW_SIZE)
        if at is not None:
            motion = ROW_MOTION.unpack_from(data, at + ROW_MOTION_AT)
            self.position = np.array(motion[:3], dtype=np.float64) / 100.0
            self.velocity = np.array(motion[3:], dtype=np.float64) / 100.0
            row_flags, zone = ROW_OWNER.unpack_from(data, at + ROW_OWNER_AT)
            if row_flags & RowFlag.AUTHORITATIVE:
                self.zone = zone
        self._count(len(data), flags, n_rows, n_bodies, received_ms)

    def _own_row_at(self, data: bytes, rows_end: int) -> int | None:
        """Offset of the row of our entity in a frame, or None: a byte search, row-aligned."""
        wanted = OWN_ID.pack(self.entity)
        at = data.find(wanted, HEADER.size, rows_end)
        while at != -1 and (at - HEADER.size) % ROW_SIZE:
            at = data.find(wanted, at + 1, rows_end)  # the id's bytes inside another field
        return None if at == -1 else at

    def _count(self, size: int, flags: int, rows: int, bodies: int, received_ms: float) -> None:
        stats = self.stats
        stats.frames += 1
        stats.bytes += size
        stats.rows += rows
        stats.bodies += bodies
        if flags & FRAME_FAR_ROWS:
            stats.far_frames += 1
        stats.latencies_ms.append(received_ms - self.tick_ms)

    def _text(self, message: str) -> None:
        try:
            data = json.loads(message)
            kind = data.get("type")
            data["received_ms"] = _now_ms()
            if kind == "pong":
                waiter = self._pings.pop(data.get("id"), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(data)
            elif kind == "error":
                self.errors.append(data)
            elif kind == "resume":  # a fresh token: the one a reconnect will use
                self.welcome["resume"] = str(data["resume"])
            elif kind == "asset_token":  # the last one is about to expire
                self.asset_token = str(data["token"])
                if self.assets is not None:
                    self.assets.token(self.asset_token)
            elif kind == "transfer" and self._mover is None:
                self._mover = asyncio.create_task(self._go_through(data))
            elif kind == "transfer_refused":
                self.transfers.append({**data, "result": "refused"})
            elif kind == "events_reset":  # the market lost its stream: start over from this
                self.events_after = (int(data["offset"]), str(data["epoch"]))
                self.zone = int(data["snapshot"]["zone"])
                self.booth = int(data["snapshot"]["booth"])
                self.events_recovered = False
            else:
                offset = data.get("offset")
                if isinstance(offset, int) and self.events_after is not None:
                    if offset <= self.events_after[0]:
                        self.stats.events_repeated += 1  # never expected: counted, not applied
                        return
                    self.events_after = (offset, self.events_after[1])
                if kind == "zone_changed":
                    self.zone = int(data["to"])
                elif kind == "booth_entered":
                    self.booth = int(data["zone"])
                elif kind == "zone_health":
                    for zone in data["zones"]:
                        self.zone_health[int(zone)] = data
                self.events.append(data)
                if self.assets is not None:
                    self.assets.event(data, self.booth)
        except (ValueError, TypeError, KeyError, AttributeError):
            self.stats.bad_frames += 1  # not the protocol: counted, never fatal

    def _check_waiters(self) -> None:
        if not self._waiters:
            return
        pending = []
        for predicate, future in self._waiters:
            if future.done():
                continue
            try:
                if predicate(self):
                    future.set_result(None)
                    continue
            except Exception as error:
                future.set_exception(error)
                continue
            pending.append((predicate, future))
        self._waiters = pending

    def _fail_all(self, error: Exception) -> None:
        for _, future in self._waiters:
            if not future.done():
                future.set_exception(error)
        self._waiters = []
        for future in self._pings.values():
            if not future.done():
                future.set_exception(error)
        self._pings.clear()

    # --- portals --------------------------------------------------------------

    async def _go_through(self, transfer: dict[str, Any]) -> None:
        """Follow a portal to another market: a ticket for the token, then its socket.

        The market keeps this visitor until the destination has accepted the token (the
        host then releases it there, closing the old socket 4310), so a refused token
        leaves the visitor where it stood, with the refusal in `transfers`.
        """
        try:
            await self._follow(transfer)
        except (KeyError, TypeError, ValueError) as error:  # a transfer message not of the protocol
            self.transfers.append(
                {**transfer, "result": "refused", "code": "bad_transfer", "detail": repr(error)}
            )
        finally:
            self._moving, self._mover = False, None

    async def _follow(self, transfer: dict[str, Any]) -> None:
        self._moving = True
        old = self._ws
        url, market = str(transfer["url"]), int(transfer["market"])
        try:
            ticket = await join_ticket(
                url, market, transfer=str(transfer["token"]), timeout=self.timeout
            )
        except (JoinRefused, OSError) as error:
            refusal = (
                {"code": error.code, "detail": error.detail}
                if isinstance(error, JoinRefused)
                else {"code": "unreachable", "detail": str(error)}
            )
            self.transfers.append({**transfer, **refusal, "result": "refused"})
            if old is not None and old is self._ws and old.close_code is not None:
                self._closed_by(old)  # the old socket closed meanwhile, for its own reasons
            return
        self._ws = None
        if old is not None:
            await old.close()
        await self._reader_finished()
        self.base_url, self.market_id = url, market
        self.events_after, self.zone_health = None, {}
        # what the old market showed is gone: wait for the new market's first frame
        self.position = self.velocity = None
        self.rows, self.bodies = np.zeros(0, VIEW_DTYPE), np.zeros(0, BODY_DTYPE)
        # the new market counts this visitor's inputs anew: none of the old ones is resent there
        self._acked, self.ack_seq = 0, 0
        self._sent.clear()
        try:
            await self._connect(ticket, self.timeout)
        except Exception as error:
            # nobody awaits this task: the failure is told to the visitor's waiters and kept
            self.transfers.append({**transfer, "result": "failed", "detail": str(error)})
            self._fail_all(error)
            return
        came = ticket.get("transfer") or {}
        self.transfers.append(
            # received_ms (the transfer message) to welcome_ms: what the visitor waited
            {**transfer, "from": came.get("from"), "result": "completed", "welcome_ms": _now_ms()}
        )
        self._check_waiters()

    # --- waiting --------------------------------------------------------------

    @property
    def outage(self) -> dict[str, Any] | None:
        """Why the zone holding this visitor has stopped, while it has: its `zone_health`
        event (`health` "restarting" or "quarantined", `reason` saying when its worker
        starts again). No frames come meanwhile and inputs are not acted on; None once the
        zone runs again."""
        told = self.zone_health.get(self.zone) if self.zone is not None else None
        return told if told is not None and told.get("health") != "ok" else None

    @property
    def moving(self) -> bool:
        """Whether the visitor is on its way through a portal to another market."""
        return self._moving

    @property
    def closed(self) -> bool:
        """Whether the socket has closed (for any reason)."""
        reader = self._reader
        return self._ws is None or reader is None or reader.done() or self.close_code is not None

    async def wait_for(self, predicate: Callable[["Visitor"], bool], timeout: float) -> None:
        """Until predicate(self) holds, checked after every message; TimeoutError otherwise."""
        if predicate(self):
            return
        if self.closed:
            error = self.errors[-1] if self.errors else None
            raise VisitorClosed(self.close_code, self.close_reason, error)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, future))
        try:
            async with asyncio.timeout(timeout):
                await future
        finally:
            future.cancel()

    async def wait_event(self, type: str, timeout: float) -> dict[str, Any]:
        """The next event (or `error` frame) of this type not yet returned by wait_event."""
        source = self.errors if type == "error" else self.events
        start = self._taken.get(type, 0)

        def _find() -> int | None:
            for index in range(start, len(source)):
                if source[index].get("type") == type:
                    return index
            return None

        await self.wait_for(lambda _: _find() is not None, timeout)
        index = _find()
        assert index is not None
        self._taken[type] = index + 1
        return source[index]

    # --- sending --------------------------------------------------------------

    def _next_seq(self) -> int:
        if self._seq >= MAX_SEQ:
            raise OverflowError("input sequence numbers are exhausted (u32)")
        self._seq += 1
        return self._seq

    async def _send_input(self, seq: int, payload: str | bytes) -> int:
        self._sent.append((seq, payload))
        await self._send(payload)
        return seq

    async def _send(self, payload: str | bytes) -> None:
        """Send on the current socket; VisitorClosed once the server has closed it."""
        if self._ws is None:
            raise RuntimeError("the visitor is not connected")
        try:
            await self._ws.send(payload)
        except ConnectionClosed:
            error = self.errors[-1] if self.errors else None
            raise VisitorClosed(self._ws.close_code, self._ws.close_reason or "", error) from None

    @property
    def seq(self) -> int:
        """The highest input sequence number used so far."""
        return self._seq

    async def walk(self, vel: Sequence[float] | np.ndarray) -> int:
        """Walk with this velocity (m/s, JSON `input`); returns the seq sent."""
        seq = self._next_seq()
        return await self._send_input(
            seq, json.dumps({"type": "input", "seq": seq, "vel": _vector(vel)})
        )

    async def walk_binary(self, vel: Sequence[float] | np.ndarray) -> int:
        """Walk with this velocity as a 16-byte binary input; returns the seq sent."""
        seq = self._next_seq()
        frame = np.zeros(1, INPUT_DTYPE)
        frame["seq"], frame["vel"] = seq, np.asarray(vel, dtype=np.float32).reshape(3)
        return await self._send_input(seq, frame.tobytes())

    async def move(self, to: Sequence[float] | np.ndarray) -> int:
        """Step to this position (metres, JSON `move`); returns the seq sent."""
        seq = self._next_seq()
        return await self._send_input(
            seq, json.dumps({"type": "move", "seq": seq, "to": _vector(to)})
        )

    async def claim(
        self, giveaway: str, claim: str | None = None, timeout: float = 10.0
    ) -> dict[str, Any]:
        """Claim an item of a giveaway of the booth this visitor stands in (a host's market).

        The `claimed` message (its `item`) once the host has recorded the claim; the
        `error` message (its `code`: giveaway_exhausted, not_here, giveaway_unknown,
        no_host...) if refused. The same `claim` id asked again gets the same answer.
        """
        claim = claim or secrets.token_hex(8)

        def answer(v: "Visitor") -> dict[str, Any] | None:
            for message in (*v.events, *v.errors):
                if message.get("claim") == claim and message.get("type") in ("claimed", "error"):
                    return message
            return None

        await self._send(json.dumps({"type": "claim", "giveaway": giveaway, "claim": claim}))
        await self.wait_for(lambda v: answer(v) is not None, timeout)
        found = answer(self)
        assert found is not None
        return found

    async def ping(self, timeout: float = 5.0) -> float:
        """Round-trip time in ms of a ping answered by its pong."""
        self._ping_id += 1
        ping_id = self._ping_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pings[ping_id] = future
        sent = time.perf_counter() * 1000.0
        try:
            await self._send(json.dumps({"type": "ping", "id": ping_id, "t": sent}))
            async with asyncio.timeout(timeout):
                await future
        finally:
            self._pings.pop(ping_id, None)
        return time.perf_counter() * 1000.0 - sent

    async def send_raw(self, data: str | bytes) -> None:
        """Send a frame as it is (no seq, no bookkeeping): for testing the server's refusals."""
        await self._send(data)

    # --- closing and coming back ------------------------------------------------

    async def leave(self, timeout: float = 5.0) -> int | None:
        """Remove the entity now and wait for the server's close; returns the close code."""
        await self._send(json.dumps({"type": "leave"}))
        if self._reader is not None:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._reader)
        return self.close_code

    async def close(self) -> None:
        """Close the socket without leaving: the entity stays in the market for a while."""
        if self._ws is not None:
            await self._ws.close()
        await self._reader_finished()

    async def _reader_finished(self) -> None:
        """Wait for the reader task; its failure was already handed to the pending waiters."""
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader

    async def reconnect(self, timeout: float = 10.0) -> list[int]:
        """Rejoin as the same visitor on a new socket; resend inputs the market did not take.

        Uses the key if there is one, else the welcome's resume token. Returns the
        seqs resent: those above the new welcome's `last_seq` and above every `ack_seq`
        a frame carried. A web process killed outright keeps no count of what it took, so
        its successor's `last_seq` can be lower than what the frames acknowledged; those
        inputs were taken, and sent again they would be acted on twice.
        """
        self._acked = max(self._acked, self.ack_seq)
        resume = None if self.key else self.welcome.get("resume")
        old = self._ws
        if old is not None:
            self._ws = None  # the old reader must not record its close as ours
            await old.close()
        await self._reader_finished()
        await self._open(resume, timeout=timeout)
        last_seq = max(int(self.welcome.get("last_seq", 0)), self._acked)
        resent = []
        for seq, payload in list(self._sent):
            if seq > last_seq:
                await self._send(payload)
                resent.append(seq)
        return resent
