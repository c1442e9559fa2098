"""What a web process holds open, and for how long: its connection limits in one place.

A connection that never finishes its request, one address opening a thousand
sockets, or one websocket message of 16 MiB must not take the process's file
descriptors or memory from the market. So every web process (the main job, the
helpers of `runmarket --web-processes`, and `uvicorn fabric_site.asgi:application`
started by hand with `uvicorn_flags()`) runs with:

* a **header deadline**: a request's headers must be whole within HEADER_TIMEOUT_S
  of the connection opening, or of the request's first byte on a kept-alive one;
  otherwise 408 and close (a silent or half-sent connection held its descriptor for
  ever);
* a **body idle limit**: a request body that stops arriving for BODY_IDLE_TIMEOUT_S
  ends the connection (the application sees the client disconnect);
* uvicorn's **keep-alive** limit between requests, KEEP_ALIVE_S;
* a **connection cap per process** (`max_connections`): a connection beyond it is
  answered 503 with the reason and closed at once, before it can read anything, so
  the descriptors left stay with the zones' snapshots, the database and Redis;
* a **connection cap per address** (`max_connections_per_address`), counted by the
  ASGI middleware `ConnectionsPerAddress` per request or socket, never per frame:
  429 for HTTP, or the socket accepted, told `too_many_connections` and closed 4429;
* **websocket messages** of at most WS_MAX_MESSAGE_BYTES, refused by the protocol
  layer from the frame's length field (close 1009) before the payload is read.

Standard library and uvicorn only: uvicorn's command line imports this module (for
`--http`) before Django is set up.
"""

import asyncio
import json
import logging
import os
import resource
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from zones.logthrottle import LogThrottle

log = logging.getLogger(__name__)
refusals = LogThrottle(log)

HEADER_TIMEOUT_S = 10.0
BODY_IDLE_TIMEOUT_S = 30.0
KEEP_ALIVE_S = 5
# A visitor's largest message (docs/protocol.md `max_frame_bytes`); the other sockets
# (landing page, dashboard) send less.
WS_MAX_MESSAGE_BYTES = 4096
WS_PING_INTERVAL_S = 20.0  # a websocket peer that stops answering pings is closed
WS_PING_TIMEOUT_S = 20.0
# Descriptors kept for everything that is not a client connection: the database, Redis,
# the zones' snapshots and logs in an embedded market, chunk files being served.
DESCRIPTORS_RESERVED = 256
ADDRESS_SHARE = 4  # one address may hold at most a quarter of a process's connections

MAX_CONNECTIONS_VARIABLE = "FABRIC_MAX_CONNECTIONS"
MAX_PER_ADDRESS_VARIABLE = "FABRIC_MAX_CONNECTIONS_PER_ADDRESS"

HTTP_PROTOCOL = "zones.web_limits:GuardedHttpToolsProtocol"
CLOSE_TOO_MANY_CONNECTIONS = 4429


def _positive(variable: str, default: int) -> int:
    """An integer limit from the environment; a clear error for anything else."""
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(
            f"{variable} must be a whole number of connections, 1 or more, not {raw!r}"
        )
    return value


@dataclass(frozen=True)
class WebLimits:
    """The connection limits of one web process."""

    max_connections: int
    max_connections_per_address: int
    header_timeout_s: float = HEADER_TIMEOUT_S
    body_idle_timeout_s: float = BODY_IDLE_TIMEOUT_S

    @classmethod
    def from_environment(cls) -> "WebLimits":
        """The caps from FABRIC_MAX_CONNECTIONS(_PER_ADDRESS), else from the descriptor limit.

        By default a process takes connections up to its open-file limit less
        DESCRIPTORS_RESERVED, and one address a quarter of that: with the common
        limit of 1,024 that is 768 and 192.
        """
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        files = soft if soft != resource.RLIM_INFINITY else 65536
        derived = max(16, files - DESCRIPTORS_RESERVED)
        total = _positive(MAX_CONNECTIONS_VARIABLE, derived)
        per_address = _positive(MAX_PER_ADDRESS_VARIABLE, max(1, total // ADDRESS_SHARE))
        return cls(max_connections=total, max_connections_per_address=per_address)


LIMITS = WebLimits.from_environment()


def uvicorn_options() -> dict[str, Any]:
    """The keyword arguments of uvicorn.Config that apply these limits."""
    return {
        "http": GuardedHttpToolsProtocol,
        "timeout_keep_alive": KEEP_ALIVE_S,
        "ws_max_size": WS_MAX_MESSAGE_BYTES,
        "ws_ping_interval": WS_PING_INTERVAL_S,
        "ws_ping_timeout": WS_PING_TIMEOUT_S,
    }


def uvicorn_flags() -> list[str]:
    """The same limits as uvicorn command-line flags, for web processes started by hand."""
    return [
        "--http",
        HTTP_PROTOCOL,
        "--timeout-keep-alive",
        str(KEEP_ALIVE_S),
        "--ws-max-size",
        str(WS_MAX_MESSAGE_BYTES),
        "--ws-ping-interval",
        f"{WS_PING_INTERVAL_S:g}",
        "--ws-ping-timeout",
        f"{WS_PING_TIMEOUT_S:g}",
    ]


def daphne_flags() -> list[str]:
    """What daphne offers of the same limits: websocket message and frame size, pings.

    Daphne has no header deadline or per-process cap of its own (its websocket handshake
    has its own 5 s limit); the per-address cap is the application's
    (ConnectionsPerAddress) and applies under any server.
    """
    return [
        "--websocket-max-message-size",
        str(WS_MAX_MESSAGE_BYTES),
        "--websocket-max-frame-size",
        str(WS_MAX_MESSAGE_BYTES),
        "--ping-interval",
        f"{WS_PING_INTERVAL_S:g}",
        "--ping-timeout",
        f"{WS_PING_TIMEOUT_S:g}",
    ]


def _plain_response(status: bytes, message: str, *extra: bytes) -> bytes:
    body = message.encode()
    head = [
        b"HTTP/1.1 " + status,
        b"content-type: text/plain; charset=utf-8",
        b"content-length: " + str(len(body)).encode(),
        b"connection: close",
        *extra,
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def _cancel(timer: asyncio.TimerHandle | None) -> None:
    if timer is not None:
        timer.cancel()


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol with a header deadline, a body idle limit and the process cap."""

    limits = LIMITS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._body_watch: asyncio.TimerHandle | None = None
        self._last_read = 0.0

    # --- the process cap --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._last_read = self.loop.time()
        cap = self.limits.max_connections
        if len(self.connections) > cap:
            refusals.warning(
                "process cap",
                "refused a connection from %s: this process holds its limit of %d",
                self.client[0] if self.client else "an unknown address",
                cap,
            )
            transport.write(
                _plain_response(
                    b"503 Service Unavailable",
                    f"This server holds its limit of {cap} connections; try again shortly.\n",
                    b"retry-after: 1",
                )
            )
            transport.close()
            return
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        self._cancel_body_watch()
        super().connection_lost(exc)

    # --- the header deadline ----------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._last_read = self.loop.time()
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_deadline is None:  # a kept-alive connection's next request
            self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        self._cancel_header_deadline()
        super().on_headers_complete()
        upgrading = self.parser.should_upgrade() and self._should_upgrade()
        if not upgrading and self.cycle is not None and self.cycle.more_body:
            self._watch_body()

    def on_message_complete(self) -> None:
        self._cancel_body_watch()
        super().on_message_complete()

    def _arm_header_deadline(self) -> None:
        self._cancel_header_deadline()
        self._header_deadline = self.loop.call_later(
            self.limits.header_timeout_s, self._headers_late
        )

    def _cancel_header_deadline(self) -> None:
        _cancel(self._header_deadline)
        self._header_deadline = None

    def _headers_late(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:  # nothing else is being written
            self.transport.write(
                _plain_response(
                    b"408 Request Timeout",
                    f"The request's headers did not arrive within "
                    f"{self.limits.header_timeout_s:g} s.\n",
                )
            )
        self.transport.close()

    # --- the body idle limit ----------------------------------------------------------------

    def _watch_body(self, delay: float | None = None) -> None:
        self._cancel_body_watch()
        wait = self.limits.body_idle_timeout_s if delay is None else delay
        self._body_watch = self.loop.call_later(wait, self._body_check)

    def _cancel_body_watch(self) -> None:
        _cancel(self._body_watch)
        self._body_watch = None

    def _body_check(self) -> None:
        """One timer per request body, not per read: it looks at when bytes last came."""
        self._body_watch = None
        cycle = self.cycle
        if self.transport.is_closing() or cycle is None or not cycle.more_body:
            return
        idle = self.loop.time() - self._last_read
        limit = self.limits.body_idle_timeout_s
        if self.flow.read_paused or idle < limit:  # paused by us, or bytes came lately
            self._watch_body(limit if self.flow.read_paused else limit - idle)
            return
        refusals.warning(
            "body idle",
            "closed a connection from %s: its request body stopped arriving for %g s",
            self.client[0] if self.client else "an unknown address",
            limit,
        )
        self.transport.close()


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ConnectionsPerAddress:
    """ASGI middleware: at most `limit` requests and sockets open at once per client address.

    It counts when a request or socket starts and ends and passes `receive` and `send`
    through untouched, so a websocket's frames cost it nothing. Behind a load balancer
    the address is the balancer's unless the server is told to trust its forwarded
    headers (uvicorn `--forwarded-allow-ips`).
    """

    def __init__(self, app: ASGIApp, limit: int | None = None) -> None:
        self.app = app
        self.limit = LIMITS.max_connections_per_address if limit is None else limit
        self.open: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] not in ("http", "websocket") or not client:
            await self.app(scope, receive, send)
            return
        address = str(client[0])
        held = self.open.get(address, 0)
        if held >= self.limit:
            refusals.warning(
                "address cap", "refused %s: it holds its limit of %d connections", address, held
            )
            await self._refuse(scope, receive, send)
            return
        self.open[address] = held + 1
        try:
            await self.app(scope, receive, send)
        finally:
            left = self.open[address] - 1
            if left:
                self.open[address] = left
            else:
                del self.open[address]

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = (
            f"Your address holds {self.limit} open connections to this server, its limit; "
            "close some and try again."
        )
        if scope["type"] == "http":
            body = json.dumps({"error": "too_many_connections", "detail": message}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 429,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"retry-after", b"1"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        # Like every refusal of the visitor protocol: accepted, told why, then closed.
        if (await receive())["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        error = {"type": "error", "code": "too_many_connections", "message": message}
        await send({"type": "websocket.send", "text": json.dumps(error)})
        await send({"type": "websocket.close", "code": CLOSE_TOO_MANY_CONNECTIONS})
