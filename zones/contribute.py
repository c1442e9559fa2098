"""The contributor socket: `/ws/markets/<market_id>/contribute/?key=…` (docs/protocol.md §6).

A contributor runs NPC decisions on its own machine and answers the market's decision
requests over this socket. This module holds the consumer and, per market and web
process, a `DispatchHub`: the pure `zones.core.dispatch.Dispatcher` with its I/O. The
hub receives the zones' requests on the market's dispatch channel (zones/npcbus.py),
hands them to its contributors, passes checked answers to the zones and tells every
zone, once a second, that contributors are there (while nobody is, the zones decide
for their NPCs themselves).

With NPC_FALLBACK_URL set (an OpenAI-compatible chat endpoint, NPC_FALLBACK_MODEL its
model), the main job starts its market's hub at once with the server's own decider
(`fallback_start`): requests no contributor has room for, and requests a contributor
left unanswered, are asked of that endpoint; the zones' utility decision stays the last
resort, for requests nobody answers within 5 s.

Keys: a contributor names itself by a key; its SHA-256 is its identity (what a ban is
kept against). Which keys are let in is the database's (zones/contributor_keys.py): the
socket asks once, at connect, and the hub judges all its contributors' keys again every
KEYS_RECHECK_S, by the same rules, and cuts off those that no longer pass (revoked,
deleted, no longer listed, or let in while the market was open and it is closed now),
with the close code and reason a connect would get.
"""

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import numpy as np
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from market.events.publish import event_publish_or_count
from market.events.types import ContributorBanned, NpcDecisionsReported
from market.live import live_market
from zones import npcbus
from zones.channels import layer_required, zone_channel
from zones.client.contributor import OpenAIPolicy
from zones.contributor_keys import Verdict, identity_verdicts, key_identity, key_verdict
from zones.core.dispatch import (
    BAN_SECONDS,
    DEADLINE_S,
    HEARTBEAT_EVERY_S,
    Dispatcher,
    Refusal,
    Request,
    ms_at,
)
from zones.core.wire import ANSWER_DTYPE
from zones.web_limits import WS_MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
MAX_MESSAGE_CHARS = WS_MAX_MESSAGE_BYTES  # the server closes the socket (1009) on longer
PUMP_EVERY_S = 0.05
SERVER = "server"  # the server's own decider, as the dispatcher knows it
SERVER_CAPACITY = 16
REPORT_EVERY_S = 10.0
CLOSE_REFUSED = 4403
CLOSE_NOT_LIVE = 4404
CLOSE_BANNED = 4429
CLOSE_REVOKED = 4410
KEYS_RECHECK_S = 10.0
HANDLING_KEPT = 20_000
CLOSE_REASON_CHARS = 120  # a close frame's reason holds at most 123 bytes


class DispatchHub:
    """One market's dispatcher in this process, with the tasks that feed it."""

    def __init__(self, market_id: int, zones: int) -> None:
        self.market_id = market_id
        self.zones = zones
        self.layer = layer_required()
        self.dispatcher = Dispatcher(
            ban_seconds=float(getattr(settings, "NPC_BAN_SECONDS", BAN_SECONDS))
        )
        self.sockets: dict[str, ContributorConsumer] = {}
        self.server: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self.deciding: set[asyncio.Task[None]] = set()
        self.tasks: list[asyncio.Task[Any]] = []
        self.answers: dict[int, list[np.ndarray]] = {}
        # seconds from a decisions message's arrival to its answers handed to their zones,
        # once per decision in it
        self.handling: deque[float] = deque(maxlen=HANDLING_KEPT)

    def start(self) -> None:
        if not self.tasks:
            self.tasks = [
                asyncio.create_task(self._receive()),
                asyncio.create_task(self._pump()),
            ]

    def serve_fallback(self, decide: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """Decide, with `decide`, what no contributor has room for (see the module docstring)."""
        self.server = decide
        self.dispatcher.join_last_resort(SERVER, SERVER_CAPACITY, time.monotonic())
        self.start()

    async def _server_decide(self, requests: list[Request]) -> None:
        decide = self.server
        if decide is None:
            return
        observations = [r.observation for r in requests]
        decisions = await asyncio.to_thread(lambda: [decide(obs) for obs in observations])
        for obj in decisions:
            taken = self.dispatcher.answer(SERVER, obj, time.monotonic())
            if not isinstance(taken, Refusal):
                zone, row = taken
                self.answers.setdefault(zone, []).append(row)
        await self.flush()

    async def stop(self) -> None:
        for task in [*self.tasks, *self.deciding]:
            task.cancel()
        for task in self.deciding:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.deciding.clear()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.tasks = []

    async def _receive(self) -> None:
        channel = npcbus.dispatch_channel(self.market_id)
        while True:
            try:
                message = await self.layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the layer going away: try again shortly
                log.warning("npc dispatch receive failed: %r", exc)
                await asyncio.sleep(1.0)
                continue
            if message.get("type") != npcbus.REQUESTS:
                continue
            now = time.monotonic()
            try:
                age = max(0.0, time.time() - int(message["issued_ms"]) / 1000)
                self.dispatcher.offer(int(message["zone"]), message["observations"], now, age)
                for npc, lease, reason in message.get("results", ()):
                    name = self.dispatcher.result(int(npc), int(lease), str(reason))
                    socket = self.sockets.get(name) if name else None
                    if socket is not None:
                        await socket.result(int(npc), int(lease), str(reason))
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("npc dispatch: dropped a malformed request message: %r", exc)

    async def _pump(self) -> None:
        present_at = 0.0
        reported_at = checked_at = time.monotonic()
        had = False
        while True:
            now = time.monotonic()
            # While it has contributors or its own decider, and once more after the last
            # contributor went: the dashboard then shows none.
            if now - reported_at >= REPORT_EVERY_S and (self.sockets or self.server or had):
                reported_at = now
                had = bool(self.sockets)
                await self.report(now)
            if now - checked_at >= KEYS_RECHECK_S and self.sockets:
                checked_at = now
                await self.keys_recheck()
            if now - present_at >= npcbus.PRESENT_EVERY_S and (self.sockets or self.server):
                present_at = now
                until = int(time.time() * 1000) + npcbus.PRESENT_FOR_MS
                for zone in range(self.zones):
                    with contextlib.suppress(Exception):
                        await self.layer.send(
                            zone_channel(self.market_id, zone),
                            {"type": npcbus.PRESENT, "until_ms": until},
                        )
            before = set(self.dispatcher.contributors)
            assigned = self.dispatcher.assign(now)
            for name in before - set(self.dispatcher.contributors):  # silent too long
                socket = self.sockets.get(name)
                if socket is not None:
                    await socket.refuse("silent", "no heartbeat for 30 s", CLOSE_REFUSED)
            for name, requests in assigned.items():
                if name == SERVER:
                    task = asyncio.create_task(self._server_decide(requests))
                    self.deciding.add(task)
                    task.add_done_callback(self.deciding.discard)
                    continue
                socket = self.sockets.get(name)
                if socket is not None:
                    await socket.requests(requests)
            await self.flush()
            await asyncio.sleep(PUMP_EVERY_S)

    async def keys_recheck(self) -> None:
        """Judge every connected contributor's key again and close the sockets of those
        that no longer pass, as the connect would have refused them."""
        identities = {s.identity for s in self.sockets.values()}
        try:
            verdicts = await database_sync_to_async(identity_verdicts)(self.market_id, identities)
        except Exception as exc:  # the database away: keep them, ask again next time
            log.warning("npc dispatch: could not check contributor keys: %r", exc)
            return
        for socket in list(self.sockets.values()):
            verdict = verdicts.get(socket.identity)
            if verdict is not None and not verdict.allowed:
                await socket.refuse(verdict.code, verdict.detail, close_code_of(verdict))

    def server_figures(self) -> dict[str, float | None]:
        """The server's own time per decision, in ms: an answer's, from its message's
        arrival to the zone's channel (p50, p99), and a request's wait here, from the
        zone's message to its first send (p50, p99: the pump runs every 50 ms)."""
        answer = sorted(self.handling)
        queued = sorted(self.dispatcher.queued)
        return {
            "answer_ms_p50": ms_at(answer, 0.5, 2),
            "answer_ms_p99": ms_at(answer, 0.99, 2),
            "queue_ms_p50": ms_at(queued, 0.5, 2),
            "queue_ms_p99": ms_at(queued, 0.99, 2),
        }

    async def report(self, now: float) -> None:
        """The dispatcher's figures as a market event for operators."""
        stats = self.dispatcher.stats(now)
        event = NpcDecisionsReported(
            contributors=stats["contributors"],
            decided=stats["decided"],
            expired=stats["expired"],
            waiting=stats["waiting"],
            refused=stats["refused"],
            decisions_per_min=stats["decisions_per_min"],
            latency_avg_ms=stats["latency_avg_ms"],
            success_rate=stats["success_rate"],
            fallback_rate=stats["fallback_rate"],
            banned=stats["banned"],
        )
        await event_publish_or_count(self.market_id, event)

    async def ban(self, socket: "ContributorConsumer", reason: str) -> None:
        self.dispatcher.ban(socket.name, socket.identity, time.monotonic())
        self.sockets.pop(socket.name, None)
        event = ContributorBanned(socket.name, reason, self.dispatcher.ban_seconds)
        await event_publish_or_count(self.market_id, event)

    def join(self, socket: "ContributorConsumer", capacity: Any) -> Refusal | None:
        refusal = self.dispatcher.join(socket.name, socket.identity, capacity, time.monotonic())
        if refusal is None:
            self.sockets[socket.name] = socket
            self.start()
        return refusal

    def leave(self, socket: "ContributorConsumer") -> None:
        if self.sockets.get(socket.name) is socket:
            del self.sockets[socket.name]
            self.dispatcher.leave(socket.name)

    def answer(self, socket: "ContributorConsumer", obj: Any) -> Refusal | None:
        taken = self.dispatcher.answer(socket.name, obj, time.monotonic())
        if isinstance(taken, Refusal):
            return taken
        zone, row = taken
        self.answers.setdefault(zone, []).append(row)
        return None

    async def flush(self) -> None:
        """Hand the answers taken since the last flush to their zones, one message each."""
        answers, self.answers = self.answers, {}
        for zone, rows in answers.items():
            message = npcbus.answers_message(np.concatenate(rows).astype(ANSWER_DTYPE))
            with contextlib.suppress(Exception):
                await self.layer.send(zone_channel(self.market_id, zone), message)


def close_code_of(verdict: Verdict) -> int:
    """The close code of a socket whose key the verdict refuses."""
    return CLOSE_REVOKED if verdict.code == "revoked_key" else CLOSE_REFUSED


_hubs: dict[int, DispatchHub] = {}


def hub_for(market_id: int, zones: int) -> DispatchHub:
    hub = _hubs.get(market_id)
    if hub is None:
        hub = _hubs[market_id] = DispatchHub(market_id, zones)
    return hub


def fallback_start(market_id: int, zones: int) -> DispatchHub | None:
    """The market's hub with the server's own decider, when NPC_FALLBACK_URL names one."""
    url = getattr(settings, "NPC_FALLBACK_URL", "")
    if not url:
        return None
    model = getattr(settings, "NPC_FALLBACK_MODEL", "") or "local"
    hub = hub_for(market_id, zones)
    hub.serve_fallback(OpenAIPolicy(url, model))
    return hub


async def hubs_stop() -> None:
    """Stop every hub of this process (tests, shutdown)."""
    for hub in list(_hubs.values()):
        await hub.stop()
    _hubs.clear()


_names = iter(range(1, 1 << 62))


class ContributorConsumer(AsyncWebsocketConsumer):
    """One contributor's socket: hello, requests out, decisions and heartbeats in."""

    hub: DispatchHub | None = None
    name = ""
    identity = ""
    # The hub feeds contributor sockets directly: no channel of their own on the layer.
    channel_layer_alias = "no layer: the hub feeds contributor sockets"

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels closes stale database connections around every handler (a thread hop
        # each); this socket never touches the database.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"no handler for message type {message['type']!r}")
        await handler(message)

    async def connect(self) -> None:
        market_id = int(self.scope["url_route"]["kwargs"]["market_id"])
        query = parse_qs(self.scope.get("query_string", b"").decode())
        key = (query.get("key") or [""])[0]
        await self.accept()
        verdict = await database_sync_to_async(key_verdict)(market_id, key)
        if not verdict.allowed:
            await self.refuse(verdict.code, verdict.detail, close_code_of(verdict))
            return
        live = live_market()
        if live is None or live.market_id != market_id:
            await self.refuse("market_not_live", "no zone of that market runs here", CLOSE_NOT_LIVE)
            return
        self.identity = key_identity(key)
        self.name = f"c{next(_names)}-{self.identity[:8]}"
        self.hub = hub_for(market_id, live.zones)
        self.joined = False
        self.results_on = False

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        # As Channels' own, without closing database connections (none are used here).
        await self.disconnect(message["code"])
        raise StopConsumer()

    async def disconnect(self, code: int) -> None:
        if self.hub is not None:
            self.hub.leave(self)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.hub is None:
            return
        if text_data is None or len(text_data) > MAX_MESSAGE_CHARS:
            await self.error("malformed", "send JSON text messages of at most 4 KiB")
            return
        try:
            message = json.loads(text_data)
        except ValueError:
            await self.error("malformed", "not JSON")
            self._count_invalid("malformed")
            return
        if not isinstance(message, dict):
            await self.error("malformed", "a message is a JSON object")
            self._count_invalid("malformed")
            return
        kind = message.get("type")
        if not self.joined:
            if kind != "hello":
                await self.error("hello_first", "say hello with your capacity first")
                return
            refusal = self.hub.join(self, message.get("capacity"))
            if refusal is not None:
                code = CLOSE_BANNED if refusal.reason == "banned" else CLOSE_REFUSED
                await self.refuse(refusal.reason, refusal.detail, code)
                return
            self.joined = True
            self.results_on = bool(message.get("results", False))
            await self.send_json(
                {
                    "type": "welcome",
                    "version": PROTOCOL_VERSION,
                    "contributor": self.name,
                    "heartbeat_s": HEARTBEAT_EVERY_S,
                }
            )
            return
        started = time.perf_counter()
        if kind == "heartbeat":
            self.hub.dispatcher.heartbeat(
                self.name, time.monotonic(), message.get("queue", 0), message.get("decision_ms", 0)
            )
        elif kind == "decisions":
            decisions = message.get("decisions")
            if not isinstance(decisions, list):
                await self.error("malformed", "decisions must be a list")
                self._count_invalid("malformed")
                return
            for obj in decisions:
                refusal = self.hub.answer(self, obj)
                if refusal is not None:
                    await self.refused(obj, refusal)
            if self.hub.dispatcher.should_ban(self.name):
                await self.hub.ban(self, "too many invalid or unreasonable decisions")
                await self.refuse("banned", "too many invalid decisions", CLOSE_BANNED)
                return
            await self.hub.flush()
            self.hub.handling.extend([time.perf_counter() - started] * len(decisions))
        elif kind == "stats":
            stats = self.hub.dispatcher.stats(time.monotonic())
            await self.send_json({"type": "stats", **stats, "server": self.hub.server_figures()})
        else:
            await self.error("unknown_type", f"unknown message type {kind!r}")

    def _count_invalid(self, reason: str) -> None:
        if self.hub is not None and self.joined:
            self.hub.dispatcher.zone_refused(self.name, reason)

    async def requests(self, requests: list[Request]) -> None:
        now_ms = int(time.time() * 1000)
        with contextlib.suppress(Exception):
            await self.send_json(
                {
                    "type": "requests",
                    "requests": [
                        {
                            **r.observation,
                            "deadline_ms": now_ms
                            + int(1000 * (DEADLINE_S - (time.monotonic() - r.issued))),
                        }
                        for r in requests
                    ],
                }
            )

    async def result(self, npc: int, lease: int, reason: str) -> None:
        if self.results_on:
            with contextlib.suppress(Exception):
                await self.send_json(
                    {"type": "result", "npc": npc, "lease": lease, "result": reason}
                )

    async def refused(self, obj: Any, refusal: Refusal) -> None:
        npc = obj.get("npc") if isinstance(obj, dict) else None
        lease = obj.get("lease") if isinstance(obj, dict) else None
        await self.send_json(
            {
                "type": "refused",
                "npc": npc,
                "lease": lease,
                "reason": refusal.reason,
                "detail": refusal.detail,
            }
        )

    async def error(self, code: str, message: str) -> None:
        with contextlib.suppress(Exception):
            await self.send_json({"type": "error", "code": code, "message": message})

    async def refuse(self, code: str, message: str, close_code: int) -> None:
        await self.error(code, message)
        if self.hub is not None:
            self.hub.leave(self)
        with contextlib.suppress(Exception):
            await self.close(code=close_code, reason=f"{code}: {message}"[:CLOSE_REASON_CHARS])

    async def send_json(self, content: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(content, separators=(",", ":")))
