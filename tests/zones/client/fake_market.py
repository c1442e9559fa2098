"""A small market that speaks docs/protocol.md, to test the visitor SDK without Django.

One TCP port serves both halves of the protocol, as the real site does: a POST is
answered as the join endpoint, anything else is piped to a websockets server on
a private port. The market ticks every `tick_s`, moves entities by their
velocity, sends booth_entered when a visitor's floor changes booth and
zone_changed `handoff_ticks` later, and sends each visitor an interest frame built
with zones.core.wire.frame_encode. Knobs let a test refuse sockets, hold inputs
back (as if lost with a dropped socket) or age the frames.
"""

import asyncio
import contextlib
import hashlib
import json
import math
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from zones.core import skeleton
from zones.core.constants import MARKET_SIZE_M
from zones.core.ranges import floor_ranges
from zones.core.wire import BODY_DTYPE, INPUT_DTYPE, ROW_DTYPE, RowFlag, frame_encode

BOOTHS = [
    ("Loom Hall", "#d2691e"),
    ("Dye Works", "#4682b4"),
    ("Button Bazaar", "#9acd32"),
    ("Thread Row", "#ba55d3"),
]
KEY_ID_BASE = 1 << 40
DISPOSABLE_ID_BASE = 1 << 41
NPC_ID_BASE = 1000
LIMITS = {
    "max_frame_bytes": 4096,
    "inputs_per_s": 40,
    "burst": 80,
    "radius_m": 5.0,
    "far_radius_m": 20.0,
    "v_max": 10.0,
}
MAX_PROTOCOL_ERRORS = 50


def now_ms() -> int:
    """Wall-clock milliseconds, the clock of tick_ms."""
    return time.time_ns() // 1_000_000


@dataclass
class Ticket:
    identity: str
    entity: int
    spawn: np.ndarray
    market_id: int
    expires: float
    used: bool = False


@dataclass
class Entity:
    id: int
    identity: str
    pos: np.ndarray  # (3,) float64 metres
    zone: int  # the zone holding authority
    booth: int  # the zone of the floor it stands on
    vel: np.ndarray = field(default_factory=lambda: np.zeros(3))
    outside_ticks: int = 0
    socket: ServerConnection | None = None


@dataclass
class Received:
    """One input as the market got it; `taken` says whether it moved the entity."""

    entity: int
    kind: str  # "input", "binary" or "move"
    seq: int
    vec: list[float]
    taken: bool


class FakeMarket:
    """The join endpoint and visitor socket of one market, in this process."""

    def __init__(
        self,
        *,
        market_id: int = 1,
        zones: int = 3,
        tick_s: float = 0.01,
        handoff_ticks: int = 3,
        frame_age_ms: int = 0,
    ) -> None:
        self.market_id, self.tick_s, self.handoff_ticks = market_id, tick_s, handoff_ticks
        self.frame_age_ms = frame_age_ms
        self.lo = np.zeros(3)
        self.hi = np.array(MARKET_SIZE_M, dtype=np.float64)
        self.ranges = floor_ranges(zones)
        self.layout = {
            "version": 1,
            "bounds": [self.lo.tolist(), self.hi.tolist()],
            "starts": [int(s) for s in self.ranges.starts],
            "booths": [
                {"zone": i, "name": BOOTHS[i][0], "colour": BOOTHS[i][1]} for i in range(zones)
            ],
        }
        # knobs a test turns
        self.live = True
        self.ticket_ttl_s = 10.0
        self.forge_tickets = False  # hand out tickets the socket will not recognise
        self.refuse_next: tuple[str, str] | None = None  # (code, message) → error + 4503
        self.refuse_all: tuple[str, str] | None = None  # the same for every visit while set
        self.hold_inputs = False  # receive inputs without taking them
        self.npcs = np.zeros((0, 3))  # NPC positions, metres
        self.spawn_at: np.ndarray | None = None  # where a join without booth or at spawns
        self.row_override: dict[int, tuple[int, int]] = {}  # entity → (zone, flags) of its row
        # what happened
        self.joins: list[dict[str, Any]] = []
        self.received: list[Received] = []
        self.pings: list[dict[str, Any]] = []
        self.entities: dict[int, Entity] = {}
        self.last_seq: dict[str, int] = {}
        self.tick = 0
        self._tickets: dict[str, Ticket] = {}
        self._resume_tokens: dict[str, tuple[str, int]] = {}
        self._key_ids: dict[str, int] = {}
        self._next_disposable = DISPOSABLE_ID_BASE
        self._rng = np.random.default_rng(7)
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    # --- lifecycle --------------------------------------------------------------

    async def __aenter__(self) -> "FakeMarket":
        self._ws_server = await serve(
            self._visit, "127.0.0.1", 0, max_size=LIMITS["max_frame_bytes"], compression=None
        )
        self._ws_port = self._ws_server.sockets[0].getsockname()[1]
        self._front = await asyncio.start_server(self._route, "127.0.0.1", 0)
        self.port = self._front.sockets[0].getsockname()[1]
        self._ticker = asyncio.create_task(self._tick_loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        died = self._ticker.done() and self._ticker.exception()
        self._ticker.cancel()
        self._front.close()
        self._ws_server.close()
        await self._ws_server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(self._ticker, *self._tasks, return_exceptions=True)
        if died:  # a silent ticker would only show as timeouts in the tests
            raise RuntimeError("the fake market's ticker died") from died

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def booth_point(self, zone: int) -> np.ndarray:
        """A floor point of a booth: the grid point nearest its centre, 1 m above the floor."""
        grid = np.stack(np.meshgrid(np.arange(0.5, 128), np.arange(0.5, 128)), -1).reshape(-1, 2)
        points = np.column_stack([grid[:, 0], np.ones(len(grid)), grid[:, 1]])
        inside = points[self.ranges.assign_positions(points, self.lo, self.hi) == zone]
        centre = inside.mean(axis=0)
        return inside[np.argmin(np.linalg.norm(inside - centre, axis=1))]

    def zone_of(self, pos: np.ndarray) -> int:
        return int(self.ranges.assign_positions(np.asarray(pos).reshape(1, 3), self.lo, self.hi)[0])

    def taken(self, entity: int) -> list[int]:
        """Seqs of the inputs this entity's moves were taken from, in arrival order."""
        return [r.seq for r in self.received if r.entity == entity and r.taken]

    # --- one port, two protocols ------------------------------------------------

    async def _route(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if head.startswith(b"POST "):
                await self._http(head, reader, writer)
            else:
                await self._proxy(head, reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _proxy(
        self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._ws_port)
        up_writer.write(head)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except ConnectionError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def _http(
        self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1]
        headers = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
        length = int({k.strip().lower(): v for k, v in headers.items()}.get("content-length", 0))
        body = await reader.readexactly(length)
        match = re.fullmatch(r"/api/markets/(\d+)/join/", path)
        if match:
            status, answer = self.join(int(match[1]), body)
        else:
            status, answer = 404, {"error": "not_found", "detail": path}
        payload = json.dumps(answer).encode()
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
            + payload
        )
        await writer.drain()

    # --- the join endpoint ------------------------------------------------------

    def join(self, market_id: int, raw: bytes) -> tuple[int, dict[str, Any]]:
        """(status, body) of POST /api/markets/<market_id>/join/ (protocol §1)."""

        def refuse(status: int, code: str, detail: str) -> tuple[int, dict[str, Any]]:
            return status, {"error": code, "detail": detail}

        if market_id != self.market_id:
            return refuse(404, "no_market", f"no market {market_id}")
        if not self.live:
            return refuse(409, "market_not_live", "no zones run for this market here")
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return refuse(400, "bad_request", "the body must be a JSON object")
        self.joins.append(body)
        key, resume = body.get("key"), body.get("resume")
        if key is not None and resume is not None:
            return refuse(400, "bad_request", "give key or resume, not both")
        if key is not None and not (isinstance(key, str) and 16 <= len(key) <= 256):
            return refuse(400, "bad_request", "key must be 16 to 256 characters")
        if resume is not None and resume not in self._resume_tokens:
            return refuse(400, "bad_resume", "the resume token was not issued here")
        booth = body.get("booth")
        if booth is not None and not (isinstance(booth, int) and 0 <= booth < self.ranges.n):
            return refuse(400, "bad_request", f"no booth {booth}")
        at = body.get("at")
        if at is not None:
            spot = np.asarray(at, dtype=np.float64) if _is_vector(at) else None
            if spot is None or not np.all((spot >= self.lo) & (spot <= self.hi)):
                return refuse(400, "bad_request", "at must be [x, y, z] inside the market")
        if key is not None:
            identity = "key:" + hashlib.sha256(key.encode()).hexdigest()
            entity = self._key_ids.setdefault(identity, KEY_ID_BASE + len(self._key_ids) + 1)
        elif resume is not None:
            identity, entity = self._resume_tokens[resume]
        else:
            entity = self._next_disposable = self._next_disposable + 1
            identity = f"anon:{entity}"
        if at is None and booth is None and self.spawn_at is not None:
            at = self.spawn_at
        if at is None:
            zone = int(self._rng.integers(self.ranges.n)) if booth is None else booth
            at = self.booth_point(zone)
        ticket = "forged" if self.forge_tickets else secrets.token_urlsafe(16)
        if not self.forge_tickets:
            spawn = np.asarray(at, dtype=np.float64)
            expires = time.monotonic() + self.ticket_ttl_s
            self._tickets[ticket] = Ticket(identity, entity, spawn, market_id, expires)
        return 200, {
            "ticket": ticket,
            "expires_in": 10,
            "entity": entity,
            "ws": f"/ws/markets/{market_id}/visit/",
        }

    # --- the visitor socket -----------------------------------------------------

    async def _visit(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        url = urlsplit(ws.request.path)
        match = re.fullmatch(r"/ws/markets/(\d+)/visit/", url.path)
        ticket = self._tickets.get(parse_qs(url.query).get("ticket", [""])[0])
        if ticket is None:
            await ws.close(4401, "ticket missing, malformed or forged")
            return
        if ticket.used:
            await ws.close(4403, "ticket already used")
            return
        ticket.used = True
        if time.monotonic() > ticket.expires:
            await ws.close(4402, "ticket expired")
            return
        if match is None or int(match[1]) != ticket.market_id:
            await ws.close(4404, "ticket for another market")
            return
        if self.refuse_next is not None or self.refuse_all is not None:
            refusal = self.refuse_next or self.refuse_all
            assert refusal is not None
            (code, message), self.refuse_next = refusal, None
            await ws.send(json.dumps({"type": "error", "code": code, "message": message}))
            await ws.close(4503, code)
            return
        entity, welcome = self._admit(ticket)
        try:
            await self._serve_visitor(ws, entity, welcome)
        finally:
            if entity.socket is ws:
                entity.socket = None

    def _admit(self, ticket: Ticket) -> tuple[Entity, dict[str, Any]]:
        """The ticket's entity, spawned or resumed, and its welcome."""
        entity = self.entities.get(ticket.entity)
        resumed = entity is not None
        if entity is None:
            zone = self.zone_of(ticket.spawn)
            entity = Entity(ticket.entity, ticket.identity, ticket.spawn.copy(), zone, zone)
            self.entities[entity.id] = entity
        elif entity.socket is not None:
            previous = entity.socket
            asyncio.ensure_future(previous.close(4409, "a newer socket took over"))
        token = f"r{entity.id}.{secrets.token_urlsafe(8)}"
        self._resume_tokens[token] = (entity.identity, entity.id)
        welcome = {
            "type": "welcome",
            "protocol": 1,
            "entity": entity.id,
            "zone": entity.zone,
            "booth": self.layout["booths"][entity.booth],
            "tick_ms": now_ms(),
            "hlc": now_ms() << 16,
            "resumed": resumed,
            "last_seq": self.last_seq.get(entity.identity, 0),
            "resume": token,
            "layout": self.layout,
            "limits": LIMITS,
        }
        return entity, welcome

    async def _serve_visitor(
        self, ws: ServerConnection, entity: Entity, welcome: dict[str, Any]
    ) -> None:
        await ws.send(json.dumps(welcome))
        entity.socket = ws  # frames start after the welcome
        errors = 0
        async for message in ws:
            reply = self._apply(entity, message)
            if reply is None:
                continue
            if reply.get("type") == "leave":
                del self.entities[entity.id]
                entity.socket = None
                await ws.close(1000, "left")
                return
            await ws.send(json.dumps(reply))
            if reply["type"] == "error":
                errors += 1
                if errors >= MAX_PROTOCOL_ERRORS:
                    await ws.close(4400, "too many protocol errors")
                    return

    def _apply(self, entity: Entity, message: str | bytes) -> dict[str, Any] | None:
        """Apply one client message; the reply to send, if any."""
        if isinstance(message, bytes):
            if len(message) != INPUT_DTYPE.itemsize:
                return _error("bad_binary", f"{len(message)} bytes, expected 16")
            frame = np.frombuffer(message, INPUT_DTYPE)[0]
            return self._input(entity, "binary", int(frame["seq"]), frame["vel"].tolist())
        try:
            data = json.loads(message)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return _error("bad_json", "a text frame must be a JSON object")
        kind = data.get("type")
        if kind == "leave":
            return {"type": "leave"}
        if kind == "ping":
            if not isinstance(data.get("id"), int) or not _is_number(data.get("t")):
                return _error("bad_field", "ping needs an integer id and a number t")
            self.pings.append(data)
            return {"type": "pong", "id": data["id"], "t": data["t"], "server_ms": now_ms()}
        if kind not in ("input", "move"):
            return _error("unknown_type", f"no message type {kind!r}")
        field_name = "vel" if kind == "input" else "to"
        seq, vec = data.get("seq"), data.get(field_name)
        if not (isinstance(seq, int) and 0 <= seq < 2**32) or not _is_vector(vec):
            return _error("bad_field", f"{kind} needs a u32 seq and a finite {field_name}")
        return self._input(entity, kind, seq, [float(v) for v in vec])

    def _input(self, entity: Entity, kind: str, seq: int, vec: list[float]) -> dict | None:
        taken = seq > self.last_seq.get(entity.identity, 0) and not self.hold_inputs
        self.received.append(Received(entity.id, kind, seq, vec, taken))
        if not taken:
            return None
        target = np.asarray(vec, dtype=np.float64)
        if kind == "move":
            # a fake speed rule: no single move longer than half a second of walking
            if np.linalg.norm(target - entity.pos) > LIMITS["v_max"] * 0.5:
                self.received[-1].taken = False
                return {**_error("too_fast", "that move is faster than v_max"), "seq": seq}
            entity.pos = target
        else:
            speed = np.linalg.norm(target)
            entity.vel = target * min(1.0, LIMITS["v_max"] / speed) if speed else target
        self.last_seq[entity.identity] = seq
        return None

    # --- ticking ----------------------------------------------------------------

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            self.tick += 1
            for entity in list(self.entities.values()):
                entity.pos = np.clip(entity.pos + entity.vel * self.tick_s, self.lo, self.hi)
            await self._send_events()
            await self._send_frames()

    async def _send_events(self) -> None:
        for entity in list(self.entities.values()):
            booth = self.zone_of(entity.pos)
            if booth != entity.booth:
                entity.booth = booth
                await _send(entity, {"type": "booth_entered", **self.layout["booths"][booth]})
            entity.outside_ticks = entity.outside_ticks + 1 if booth != entity.zone else 0
            if entity.outside_ticks >= self.handoff_ticks:
                change = {"type": "zone_changed", "from": entity.zone, "to": booth}
                entity.zone, entity.outside_ticks = booth, 0
                await _send(entity, {**change, "tick_ms": now_ms()})

    def _world_rows(self, tick_ms: int) -> np.ndarray:
        """Rows of every visitor root and NPC in the market this tick."""
        visitors = list(self.entities.values())
        rows = np.zeros(len(visitors) + len(self.npcs), ROW_DTYPE)
        n = len(visitors)
        rows["id"][:n] = [e.id for e in visitors]
        rows["pos"][:n] = [e.pos for e in visitors] if visitors else np.zeros((0, 3))
        rows["vel"][:n] = [e.vel for e in visitors] if visitors else np.zeros((0, 3))
        rows["zone"][:n] = [e.zone for e in visitors]
        rows["flags"][:n] = RowFlag.AUTHORITATIVE | RowFlag.VISITOR_ROOT
        rows["id"][n:] = NPC_ID_BASE + np.arange(len(self.npcs))
        rows["pos"][n:] = self.npcs
        rows["zone"][n:] = self.ranges.assign_positions(self.npcs, self.lo, self.hi)
        rows["flags"][n:] = RowFlag.AUTHORITATIVE | RowFlag.NPC
        rows["hlc"], rows["epoch"] = tick_ms << 16, 1
        for index, visitor in enumerate(visitors):
            if visitor.id in self.row_override:
                rows["zone"][index], rows["flags"][index] = self.row_override[visitor.id]
        return rows

    async def _send_frames(self) -> None:
        tick_ms = now_ms() - self.frame_age_ms
        world = self._world_rows(tick_ms)
        far = self.tick % 4 == 0
        with_bodies = self.tick % 2 == 0
        for entity in list(self.entities.values()):
            if entity.socket is None:
                continue
            distance = np.linalg.norm(world["pos"] - entity.pos.astype(np.float32), axis=1)
            radius = LIMITS["far_radius_m"] if far else LIMITS["radius_m"]
            rows = world[(distance <= radius) | (world["id"] == entity.id)]
            is_root = (world["flags"] & RowFlag.VISITOR_ROOT) != 0
            near_roots = world[(distance <= LIMITS["radius_m"]) & is_root]
            bodies = skeleton.bodies(near_roots) if with_bodies else np.zeros(0, BODY_DTYPE)
            frame = frame_encode(
                rows,
                bodies,
                ack_seq=self.last_seq.get(entity.identity, 0),
                tick_ms=tick_ms,
                far=far,
            )
            await _send(entity, frame)


async def _send(entity: Entity, message: dict[str, Any] | bytes) -> None:
    if entity.socket is None:
        return
    with contextlib.suppress(ConnectionClosed):
        await entity.socket.send(message if isinstance(message, bytes) else json.dumps(message))


def _error(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_vector(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 3 and all(_is_number(v) for v in value)
