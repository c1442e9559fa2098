"""The host's control API: a small JSON-over-HTTP app, on loopback only, behind a secret.

Pure ASGI with no Django, served by uvicorn on 127.0.0.1:<FABRIC_HOST_CONTROL_PORT>.
Every request is refused unless it comes from a loopback address (127.0.0.0/8, ::1)
and carries the host's shared secret in the `X-Fabric-Host-Secret` header: the market
processes and the operator's curl are on this machine, and nothing else may steer the
markets. A refusal is JSON `{"error": <sentence>, "reason": <code>}` with a status.

Routes live in a table that other modules extend with one call each:

    app.route_add("POST", "/markets/{market_id}/start", market_start)

A handler takes a `ControlRequest` and returns a JSON-serialisable dict (status 200),
or raises `ControlRefusal` for any other answer.
"""

import hmac
import ipaddress
import json
import re
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn

SECRET_HEADER = "X-Fabric-Host-Secret"
BODY_LIMIT_BYTES = 64 * 1024
SECRET_MIN_CHARS = 32

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class ControlRefusal(Exception):
    """An answer other than 200: its status, a sentence, a reason code and any details."""

    def __init__(self, status: int, error: str, reason: str, **details: Any) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.reason = reason
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "reason": self.reason, **self.details}


@dataclass(frozen=True)
class ControlRequest:
    """One authenticated request: its method, path, the path's named parts and JSON body."""

    method: str
    path: str
    params: dict[str, str]
    body: Any = None  # the parsed JSON body, None when there was none


Handler = Callable[[ControlRequest], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    handler: Handler


def body_whole(body: Any, name: str) -> int:
    """The whole number >= 0 a JSON body holds under `name`, or 400 bad_request saying so."""
    value = body.get(name) if isinstance(body, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ControlRefusal(400, f"{name} must be a whole number >= 0", "bad_request")
    return value


def route_pattern(template: str) -> re.Pattern[str]:
    """The regex of a path template: `{name}` matches one path segment."""
    parts = re.split(r"\{(\w+)\}", template)
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts)
    )
    return re.compile(f"^{regex}$")


def address_is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address (127.0.0.0/8, ::1, or IPv4-mapped 127.x)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


@dataclass
class ControlApp:
    """The control API's ASGI app: checks, then the route table."""

    secret: str
    routes: list[Route] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.secret) < SECRET_MIN_CHARS:
            raise ValueError(f"the control API's secret needs at least {SECRET_MIN_CHARS} chars")

    def route_add(self, method: str, template: str, handler: Handler) -> None:
        """Answer `method` requests to paths matching `template` with `handler`."""
        if any(r.method == method.upper() and r.template == template for r in self.routes):
            raise ValueError(f"{method.upper()} {template} has a handler already")
        self.routes.append(Route(method.upper(), template, route_pattern(template), handler))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan is off; a websocket is closed unanswered
        try:
            answer = await self._answer(scope, receive)
            status = 200
        except ControlRefusal as refusal:
            status, answer = refusal.status, refusal.body()
        await _json_send(send, status, answer)

    async def _answer(self, scope: Scope, receive: Receive) -> dict[str, Any]:
        client = scope.get("client")
        if not client or not address_is_loopback(str(client[0])):
            raise ControlRefusal(403, "the control API answers loopback only", "not_loopback")
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        given = headers.get(SECRET_HEADER.lower(), b"")
        if not hmac.compare_digest(given, self.secret.encode()):
            raise ControlRefusal(403, f"missing or wrong {SECRET_HEADER} header", "bad_secret")
        route, params = self._route(scope["method"], scope["path"])
        body = await _body_read(receive, headers.get("content-length"))
        return await route.handler(ControlRequest(scope["method"], scope["path"], params, body))

    def _route(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        matching = [(r, m) for r in self.routes if (m := r.pattern.match(path))]
        if not matching:
            raise ControlRefusal(404, f"no such path: {path}", "not_found")
        for route, match in matching:
            if route.method == method:
                return route, match.groupdict()
        allowed = sorted({r.method for r, _ in matching})
        raise ControlRefusal(
            405, f"{path} takes {', '.join(allowed)}, not {method}", "method_not_allowed"
        )


async def _body_read(receive: Receive, declared: bytes | None) -> Any:
    """The request's JSON body (None when empty), refusing more than BODY_LIMIT_BYTES."""
    too_big = ControlRefusal(
        413, f"the body is larger than {BODY_LIMIT_BYTES} bytes", "body_too_large"
    )
    if declared is not None and declared.isdigit() and int(declared) > BODY_LIMIT_BYTES:
        raise too_big
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > BODY_LIMIT_BYTES:
            raise too_big
        chunks.append(chunk)
        more = message.get("more_body", False)
    raw = b"".join(chunks)
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ControlRefusal(400, f"the body is not JSON: {error}", "bad_json") from None


async def _json_send(send: Send, status: int, answer: dict[str, Any]) -> None:
    body = json.dumps(answer).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def control_server(app: ControlApp, *, host: str, port: int) -> uvicorn.Server:
    """A uvicorn server of `app` on `host`:`port`; a non-loopback `host` is refused."""
    if not address_is_loopback(host):
        raise ValueError(f"the control API listens on loopback only (127.0.0.1 or ::1), not {host}")
    config = uvicorn.Config(
        app, host=host, port=port, lifespan="off", log_level="warning", access_log=False
    )
    return ControlServer(config)


class ControlServer(uvicorn.Server):
    """A uvicorn server that leaves the signals to whoever runs it (runhost stops it)."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
