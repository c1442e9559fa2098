"""The visitor socket: `/ws/markets/<market_id>/visit/?ticket=…` (docs/protocol.md).

The consumer checks what the visitor sends and nothing else: tickets, sizes,
rates, shapes. Everything it accepts goes to this process's gateway, which
batches it per zone and tick; every frame the visitor receives comes from the
gateway too. A refusal is an error frame or a close code on this socket only.
It never touches the ORM on its loop: the join endpoint did that before the
ticket was signed, and the booth its visitor stands in is written off the loop
(market/booth_visitors.py), as is every grant to that booth's visitors.
"""

import asyncio
import contextlib
import json
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import numpy as np
from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.core.cache import cache
from redis import RedisError

from fabric_site.readiness import readiness, readiness_cached
from market.asset_tokens import ASSET_TOKEN_REFRESH_S, ASSET_TOKEN_TTL_S, asset_token_issue
from market.booth_visitors import BoothPresence
from market.events.backends import StreamLost
from market.events.feed import EventFeed, event_message, position_from_query, position_message
from market.events.hub import Delivered, Position, PositionError
from market.events.streams import event_hub
from market.events.subjects import assets_subjects, ops_health_subject, visitor_subjects
from market.events.types import AssetChanged, BoothEntered, ZoneChanged, ZoneHealthChanged
from market.giveaways import giveaway_claim_request
from market.host_calls import HostCallRefused
from market.live import PortalRegion, live_market
from market.tickets import (
    RESUME_REFRESH_S,
    RESUME_TTL_S,
    TicketError,
    aticket_redeem,
    resume_token,
)
from market.transfers import CLOSE_TRANSFERRED, transfer_complete, transfer_request
from zones.core.constants import INTEREST_RADIUS_M, V_MAX_M_PER_S
from zones.core.views import FAR_RADIUS_M
from zones.core.wire import INPUT_DTYPE, CommandKind
from zones.gateway import Gateway, JoinRefused, gateway_for
from zones.logthrottle import LogThrottle
from zones.sockets import direct_binary_writer
from zones.web_limits import WS_MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)
_service_errors = LogThrottle(log)

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = WS_MAX_MESSAGE_BYTES  # the server refuses larger ones before reading them
INPUTS_PER_S = 40.0
BURST = 80.0
FLOOD_DROPS = 200  # dropped messages within FLOOD_WINDOW_S that end the socket
FLOOD_WINDOW_S = 5.0
MAX_PROTOCOL_ERRORS = 50
LAST_SEQ_MEMORY_S = 120  # how long a dropped socket's last seq is kept for a resume
PRESENCE_WAIT_S = 1.0  # longest a booth_entered waits for its visitor's booth to be written

CLOSE_LEAVE = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_TOO_BIG = 1009
CLOSE_PROTOCOL = 4400
CLOSE_NOT_LIVE = 4404
CLOSE_SLOW = 4408
CLOSE_SUPERSEDED = 4409
CLOSE_FLOOD = 4429
CLOSE_JOIN_REFUSED = 4503
SERVICE_DOWN = "a service the market needs stopped answering; try again in a few seconds"


def last_seq_key(entity: int) -> str:
    return f"visitor-last-seq:{entity}"


class Outbox:
    """What the gateway has for one socket, written out by the socket's own task.

    Events queue up in order; of interest frames only the newest waits, because a newer
    frame supersedes an older one. A socket that cannot keep up loses frames (counted in
    `dropped`), never anyone else's time. A `held` outbox keeps frames back until
    `release`, the newest only: a visitor's, until its welcome (always its first
    message) is out.
    """

    def __init__(
        self, send: Callable[[dict[str, Any]], Awaitable[None]], *, held: bool = False
    ) -> None:
        self._send = send  # the consumer's raw ASGI send: one dict per websocket message
        # Frames go straight to the socket where the server allows it (zones/sockets.py).
        self._direct = direct_binary_writer(send)
        self._frame: bytes | None = None
        self._events: deque[str] = deque()
        self._wake = asyncio.Event()
        self._busy = False  # the task is sending: what comes now waits, to keep the order
        self._held = held  # frames wait for `release` (a visitor's: the welcome)
        self.dropped = 0
        self.direct = 0  # frames written straight to the socket

    def frame(self, data: bytes | memoryview) -> None:
        direct = self._direct
        queued = self._held or self._busy or self._events or self._frame is not None
        if direct is not None and not queued and direct(data):
            self.direct += 1
            return
        if self._frame is not None:
            self.dropped += 1
        self._frame = bytes(data)  # not a view that would keep a whole tick's frames
        self._wake.set()

    def release(self) -> None:
        """The welcome is out: frames may follow (the newest held goes first)."""
        self._held = False
        self._wake.set()

    def event(self, text: str) -> None:
        self._events.append(text)
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._busy = True
            try:
                while self._events:
                    await self._send({"type": "websocket.send", "text": self._events.popleft()})
                while self._frame is not None and not self._held:
                    frame, self._frame = self._frame, None
                    await self._send({"type": "websocket.send", "bytes": frame})
            except Exception:  # the socket is closing: its disconnect will tidy up
                return
            finally:
                self._busy = False


class TokenBucket:
    """`rate` messages a second on average, `burst` at once."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.at = burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class BadField(ValueError):
    """A field of a client message that is missing or of the wrong shape."""


def _vector(message: dict[str, Any], key: str) -> tuple[float, float, float]:
    value = message.get(key)
    if (
        not isinstance(value, list)
        or len(value) != 3
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        or not all(math.isfinite(v) and abs(v) < 1e6 for v in value)
    ):
        raise BadField(f"{key!r} must be a list of 3 finite numbers")
    return (float(value[0]), float(value[1]), float(value[2]))


def _seq(message: dict[str, Any]) -> int:
    value = message.get("seq")
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**32:
        raise BadField("'seq' must be an integer from 1 to 2^32 - 1")
    return value


class VisitorConsumer(AsyncWebsocketConsumer):
    """One visitor's socket."""

    entity: int | None = None
    gateway: Gateway | None = None
    feed: EventFeed | None = None
    presence: BoothPresence | None = None  # keeps booth:<id>#visitor up to date
    superseded = False
    transfer: asyncio.Task[None] | None = None  # the transfer through a portal under way
    identity = "anon"
    character: dict[str, Any] = {}  # the name and colour it goes by, and what it carries
    entered_unsent = False
    booth = -1  # the booth the visitor stands in, as its events have said
    zone = -1  # the zone holding its entity, as its events have said
    zone_health = "ok"  # that zone's health, as the visitor was last told
    # The gateway feeds a visitor's socket directly, never over the channel layer. An alias
    # that names no layer gives the socket none: no channel of its own, and no receive
    # pending on Redis per visitor that every close then cancels.
    channel_layer_alias = "no layer: the gateway feeds visitor sockets"

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels closes stale database connections before every handler, a thread hop
        # each time (5 % of a loaded web process's CPU). A visitor's inputs touch no
        # database; connecting and disconnecting keep Channels' care.
        if message["type"] == "websocket.receive":
            await self.websocket_receive(message)
        else:
            await super().dispatch(message)

    async def connect(self) -> None:
        # Accept first, so that every refusal can say why before its close code.
        await self.accept()
        self.outbox = Outbox(self.base_send, held=True)
        self.writer = asyncio.create_task(self.outbox.run())
        self.bucket = TokenBucket(INPUTS_PER_S, BURST)
        self.drops: list[float] = []
        self.errors = 0
        self.last_rate_error = 0.0
        market_id = int(self.scope["url_route"]["kwargs"]["market_id"])
        live = live_market()
        if live is None or live.market_id != market_id:
            await self.refuse(
                "market_not_live", "this market has no zones running here", CLOSE_NOT_LIVE
            )
            return
        query_string = self.scope.get("query_string", b"")
        try:
            after = position_from_query(query_string)
        except PositionError as exc:
            await self.refuse(exc.code, exc.message, CLOSE_PROTOCOL)
            return
        state = readiness_cached() or await sync_to_async(readiness)()
        if not state.ready:  # the ticket's memory, the zones and the events are out of reach
            await self.refuse("service_unavailable", state.reason(), CLOSE_JOIN_REFUSED)
            return
        query = parse_qs(query_string.decode("latin-1"))
        token = (query.get("ticket") or [""])[0]
        try:
            claims = await aticket_redeem(token, market_id)
        except TicketError as exc:
            await self.refuse(exc.code, exc.message, exc.close_code)
            return
        self.gateway = gateway_for(live)
        last_seq = int(await cache.aget(last_seq_key(claims.entity), 0))
        try:
            welcome = await self.gateway.join(
                self, claims.entity, booth=claims.booth, at=claims.at, last_seq=last_seq
            )
        except JoinRefused as exc:
            await self.refuse(exc.code, exc.message, CLOSE_JOIN_REFUSED)
            return
        self.entity, self.identity = claims.entity, claims.identity
        self.character = claims.character or {}
        name, colour = live.booths[welcome.booth]  # the zone may be a spare serving part of it
        self.booth = welcome.booth
        self.presence = BoothPresence(market_id, claims.entity)
        self.presence.enter(welcome.booth, hurry=True)
        # the welcome, like a booth_entered, waits for the booth it names to be written as
        # this visitor's, so that the visitor may fetch its manifest as soon as it reads it
        written = asyncio.ensure_future(self.presence_written())
        events = await self.events_open(market_id, claims.entity, after, welcome.zone)
        await written
        await self.send_json(
            {
                "type": "welcome",
                "protocol": PROTOCOL_VERSION,
                "entity": claims.entity,
                "zone": welcome.zone,
                "booth": {"zone": welcome.booth, "name": name, "colour": colour},
                "tick_ms": welcome.tick_ms,
                "hlc": welcome.hlc,
                "resumed": welcome.resumed,
                "character": self.character,
                "last_seq": welcome.last_seq,
                "resume": resume_token(claims.entity),
                "resume_expires_in": RESUME_TTL_S,
                "events": events,
                "assets": self.asset_token(market_id, claims.entity),
                "layout": live.layout(),
                "limits": {
                    "max_frame_bytes": MAX_FRAME_BYTES,
                    "inputs_per_s": INPUTS_PER_S,
                    "burst": BURST,
                    "radius_m": INTEREST_RADIUS_M,
                    "far_radius_m": FAR_RADIUS_M,
                    "v_max": V_MAX_M_PER_S,
                },
            }
        )
        self.outbox.release()
        assert self.feed is not None
        self.feed.start()
        self.asset_token_refresher = asyncio.create_task(
            self.asset_token_refresh(market_id, claims.entity)
        )
        self.resume_refresher = asyncio.create_task(self.resume_refresh(claims.entity))
        if claims.transfer is not None:
            self.transfer = asyncio.create_task(self.arrived(market_id, claims.transfer))
        log.info(
            "visitor %d joined zone %d (resumed %s)", claims.entity, welcome.zone, welcome.resumed
        )

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        """Joins with a service going down on the way are refused with the reason, not
        dropped (the socket was accepted first, so it can still say why)."""
        try:
            await super().websocket_connect(message)
        except (RedisError, OSError, StreamLost) as exc:
            _service_errors.warning("join", "a visitor's join failed on a service: %r", exc)
            await self.refuse("service_unavailable", SERVICE_DOWN, CLOSE_JOIN_REFUSED)

    async def events_open(
        self, market_id: int, entity: int, after: Position | None, zone: int
    ) -> dict[str, Any]:
        """Follow the visitor's own events, its booth's asset changes and its zone's health;
        what the welcome says of them. The welcome is the visitor's snapshot (its zone and
        booth)."""
        self.zone = zone
        self.feed = EventFeed(
            event_hub(market_id),
            [
                visitor_subjects(market_id, entity),
                assets_subjects(market_id),
                ops_health_subject(market_id),
            ],
            send=self.send_event_text,
            on_slow=self.slow,
            render=self.event_for_visitor,
        )
        booth = self.booth
        resumed, refused = await self.feed.open(after, lambda: {"zone": zone, "booth": booth})
        if refused is not None:
            await self.error(refused.code, refused.message)
        return position_message(resumed)

    def event_for_visitor(self, item: Delivered) -> dict[str, Any] | None:
        """The visitor's own events, asset changes of the booth it stands in, and changes of
        the health of the zone holding it (a worker restarting or quarantined stops its
        frames: docs/protocol.md says what a client does meanwhile)."""
        event = item.envelope.event
        if isinstance(event, BoothEntered):
            self.booth = event.zone
            if self.presence is not None:
                self.presence.enter(event.zone)
                self.entered_unsent = True  # the feed sends it next (send_event_text)
        elif isinstance(event, AssetChanged) and event.zone != self.booth:
            return None
        elif isinstance(event, ZoneChanged):
            self.zone, self.zone_health = event.to_zone, "ok"  # a zone that just took it runs
        elif isinstance(event, ZoneHealthChanged):
            # Only its own zone's, and only a change: a quarantine is reported every second.
            if self.zone not in event.zones or event.health == self.zone_health:
                return None
            self.zone_health = event.health
        return event_message(item)

    async def resume_refresh(self, entity: int) -> None:
        """A fresh resume token every RESUME_REFRESH_S: a socket may drop at any time, and
        its visitor must still hold a token good for resuming then."""
        while True:
            await asyncio.sleep(RESUME_REFRESH_S)
            message = {"type": "resume", "resume": resume_token(entity), "expires_in": RESUME_TTL_S}
            try:
                await self.send_json(message)
            except Exception:  # the socket is closing: its disconnect will tidy up
                return

    @staticmethod
    def asset_token(market_id: int, entity: int) -> dict[str, Any]:
        """A fresh asset token for the chunk API (market/asset_tokens.py), as sent."""
        return {"token": asset_token_issue(market_id, entity), "expires_in": ASSET_TOKEN_TTL_S}

    async def asset_token_refresh(self, market_id: int, entity: int) -> None:
        """A fresh asset token every ASSET_TOKEN_REFRESH_S, so an open socket's visitor
        never holds an expired one."""
        while True:
            await asyncio.sleep(ASSET_TOKEN_REFRESH_S)
            message = {"type": "asset_token", **self.asset_token(market_id, entity)}
            try:
                await self.send_json(message)
            except Exception:  # the socket is closing: its disconnect will tidy up
                return

    async def disconnect(self, code: int) -> None:
        for name in ("writer", "resume_refresher", "asset_token_refresher", "transfer"):
            if (task := getattr(self, name, None)) is not None:
                task.cancel()
        if self.feed is not None:
            await self.feed.close()
        if self.gateway is not None and self.entity is not None:
            last = self.gateway.detach(self.entity, self)
            if last is not None:
                await cache.aset(last_seq_key(self.entity), last, LAST_SEQ_MEMORY_S)
        if self.presence is not None and not self.superseded:
            # Written with the process's next batch; a newer socket of the visitor keeps
            # its booth. Not awaited: a socket closing at shutdown has nothing to wait for.
            self.presence.depart()

    # --- what the visitor sends ------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        size = len(bytes_data) if bytes_data is not None else len((text_data or "").encode())
        if size > MAX_FRAME_BYTES:
            await self.refuse(
                "too_big",
                f"frames are limited to {MAX_FRAME_BYTES} bytes; this one had {size}",
                CLOSE_TOO_BIG,
            )
            return
        if self.entity is None or self.gateway is None:
            return  # refused or still joining: nothing the visitor sends can act yet
        if not self.bucket.take():
            await self.dropped()
            return
        if bytes_data is not None:
            await self.receive_binary(bytes_data)
            return
        try:
            message = json.loads(text_data or "")
        except (json.JSONDecodeError, RecursionError):
            await self.error("bad_json", "a text frame must be one JSON object")
            return
        if not isinstance(message, dict):
            await self.error("bad_json", "a text frame must be one JSON object")
            return
        kind = message.get("type")
        handler = self.HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            await self.error(
                "unknown_type", f"unknown message type {str(kind)[:40]!r}; see docs/protocol.md"
            )
            return
        try:
            await handler(self, message)
        except BadField as exc:
            await self.error("bad_field", str(exc))

    async def receive_binary(self, data: bytes) -> None:
        if len(data) != INPUT_DTYPE.itemsize:
            await self.error(
                "bad_binary", f"a binary input is {INPUT_DTYPE.itemsize} bytes, not {len(data)}"
            )
            return
        record = np.frombuffer(data, INPUT_DTYPE)[0]
        seq, vel = int(record["seq"]), [float(v) for v in record["vel"]]
        if seq == 0 or not all(math.isfinite(v) and abs(v) < 1e6 for v in vel):
            await self.error("bad_binary", "a binary input needs seq ≥ 1 and a finite velocity")
            return
        self.walk(CommandKind.VELOCITY, (vel[0], vel[1], vel[2]), seq)

    async def on_input(self, message: dict[str, Any]) -> None:
        self.walk(CommandKind.VELOCITY, _vector(message, "vel"), _seq(message))

    async def on_move(self, message: dict[str, Any]) -> None:
        self.walk(CommandKind.MOVE, _vector(message, "to"), _seq(message))

    async def on_ping(self, message: dict[str, Any]) -> None:
        ping_id, sent = message.get("id"), message.get("t")
        if not isinstance(ping_id, int) or isinstance(ping_id, bool):
            raise BadField("'id' must be an integer")
        if not isinstance(sent, int | float) or isinstance(sent, bool):
            raise BadField("'t' must be a number")
        await self.send_json(
            {"type": "pong", "id": ping_id, "t": sent, "server_ms": time.time_ns() // 1_000_000}
        )

    async def on_leave(self, message: dict[str, Any]) -> None:
        assert self.gateway is not None and self.entity is not None
        self.gateway.leave(self.entity)
        self.entity = None
        await self.close(CLOSE_LEAVE)

    async def on_claim(self, message: dict[str, Any]) -> None:
        """Claim an item of the giveaway of the booth the visitor stands in."""
        assert self.entity is not None
        try:
            answer = await asyncio.to_thread(
                giveaway_claim_request,
                market_id=self.scope_market(),
                entity=self.entity,
                booth=self.booth,
                giveaway=message.get("giveaway"),
                claim=message.get("claim"),
            )
        except HostCallRefused as refused:
            await self.error(
                refused.code,
                refused.detail,
                giveaway=message.get("giveaway"),
                claim=message.get("claim"),
            )
            return
        await self.send_json(answer)

    HANDLERS = {
        "input": on_input,
        "move": on_move,
        "ping": on_ping,
        "leave": on_leave,
        "claim": on_claim,
    }

    def walk(self, kind: int, vec: tuple[float, float, float], seq: int) -> None:
        assert self.gateway is not None and self.entity is not None
        self.gateway.command(self.entity, kind, vec, seq)

    # --- refusals --------------------------------------------------------------------------

    async def error(self, code: str, message: str, **extra: Any) -> None:
        """An error frame; too many of them end the socket."""
        self.errors += 1
        await self.send_json({"type": "error", "code": code, "message": message, **extra})
        if self.errors >= MAX_PROTOCOL_ERRORS:
            await self.refuse(
                "too_many_errors", f"{self.errors} protocol errors on one socket", CLOSE_PROTOCOL
            )

    async def dropped(self) -> None:
        now = time.monotonic()
        self.drops = [t for t in self.drops if now - t < FLOOD_WINDOW_S] + [now]
        if len(self.drops) >= FLOOD_DROPS:
            await self.refuse("flood", "inputs kept coming far above the limit", CLOSE_FLOOD)
        elif now - self.last_rate_error >= 1.0:
            self.last_rate_error = now
            await self.send_json(
                {
                    "type": "error",
                    "code": "rate_limited",
                    "message": f"more than {INPUTS_PER_S:g} messages a second; extra ones dropped",
                }
            )

    async def refuse(self, code: str, message: str, close_code: int, **extra: Any) -> None:
        """Say why, then close with `close_code`."""
        log.info("visitor socket refused: %s (%d)", code, close_code)
        await self.send_json({"type": "error", "code": code, "message": message, **extra})
        if self.gateway is not None and self.entity is not None:
            self.gateway.detach(self.entity, self)
            self.entity = None
        await self.close(close_code)

    # --- what the gateway sends ------------------------------------------------------------

    async def send_json(self, content: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(content))

    async def send_text(self, text: str) -> None:
        await self.send(text_data=text)

    async def send_event_text(self, text: str) -> None:
        """A market event; a `booth_entered` once the booth it names is written as this
        visitor's (up to PRESENCE_WAIT_S), so that the visitor told it may fetch that
        booth's assets straight away. No other event waits for the database."""
        if self.presence is not None and self.entered_unsent:
            self.entered_unsent = False
            await self.presence_written()
        await self.send_text(text)

    async def presence_written(self) -> None:
        """Wait (up to PRESENCE_WAIT_S) until the booth presence has reached the database."""
        if self.presence is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.presence.settled()), PRESENCE_WAIT_S)

    async def slow(self, position: Position) -> None:
        await self.refuse(
            "slow_consumer",
            "this socket fell too far behind its events; reconnect with `resume`",
            CLOSE_SLOW,
            resume=position.to_json(),
        )

    def send_frame(self, frame: bytes | memoryview) -> None:
        self.outbox.frame(frame)

    def send_event(self, event: dict[str, Any]) -> None:
        self.outbox.event(json.dumps(event))

    def portal_entered(self, portal: PortalRegion) -> None:
        if self.transfer is None or self.transfer.done():
            self.transfer = asyncio.create_task(self.transfer_through(portal))

    async def transfer_through(self, portal: PortalRegion) -> None:
        """Ask the host to take this visitor through `portal`, and hand the client its token.

        The visitor stays here, authoritative, until the destination has it: the host asks
        this market to release it (`transferred`) only once the destination accepted.
        """
        assert self.entity is not None
        try:
            message = await asyncio.to_thread(
                transfer_request,
                market_id=self.scope_market(),
                entity=self.entity,
                identity=self.identity,
                portal=portal,
                character=self.character,
            )
        except HostCallRefused as refused:
            message = self.transfer_refused(portal, refused.code, refused.detail)
        except Exception:  # an answer not of the protocol: said, logged, never fatal
            log.exception("visitor %s: the transfer through %s failed", self.entity, portal.id)
            message = self.transfer_refused(
                portal, "host_error", "the host's answer was not usable"
            )
        self.send_event(message)

    @staticmethod
    def transfer_refused(portal: PortalRegion, code: str, detail: str) -> dict[str, Any]:
        return {
            "type": "transfer_refused",
            "portal": portal.id,
            "market": portal.target,
            "code": code,
            "message": detail,
        }

    async def arrived(self, market_id: int, transfer_id: str) -> None:
        """The visitor came through a portal and is live here: complete its transfer."""
        try:
            await asyncio.to_thread(transfer_complete, market_id=market_id, transfer_id=transfer_id)
        except HostCallRefused as error:
            log.warning("transfer %s could not be completed: %s", transfer_id, error.detail)
        except Exception:  # the book completes it at its expiry
            log.exception("transfer %s could not be completed", transfer_id)

    async def transferred(self) -> None:
        """The host released this visitor to another market: close, leaving its entity to go."""
        self.entity = None  # gone from the market already: nothing to detach
        await self.send_json(
            {"type": "transferred", "message": "you went through a portal to another market"}
        )
        await self.close(CLOSE_TRANSFERRED)

    def scope_market(self) -> int:
        return int(self.scope["url_route"]["kwargs"]["market_id"])

    async def supersede(self) -> None:
        self.entity = None
        self.superseded = True
        await self.send_json(
            {"type": "error", "code": "superseded", "message": "a newer socket of yours took over"}
        )
        await self.close(CLOSE_SUPERSEDED)
