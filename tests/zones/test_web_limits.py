"""The web process's limits, each against a uvicorn server in this process (zones/web_limits.py).

A small ASGI app stands in for the site, so that each limit is seen on its own: the
header deadline (silent, trickling and kept-alive connections), the body idle limit,
the process's connection cap, the per-address cap of the middleware, and the limits'
settings in the environment.
"""

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from zones.web_limits import (
    CLOSE_TOO_MANY_CONNECTIONS,
    ConnectionsPerAddress,
    GuardedHttpToolsProtocol,
    WebLimits,
    uvicorn_options,
)

WAIT_S = 10.0  # generous: how long a test waits for what must happen


class QuietServer(uvicorn.Server):
    """A uvicorn server that leaves this process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[override]
        yield


def protocol_with(**limits: Any) -> type[GuardedHttpToolsProtocol]:
    """The guarded protocol with these limits instead of the process's."""
    chosen = WebLimits(
        max_connections=limits.pop("max_connections", 1000),
        max_connections_per_address=1000,
        **limits,
    )
    return type("TestProtocol", (GuardedHttpToolsProtocol,), {"limits": chosen})


bodies_seen: list[dict[str, Any]] = []


async def app(scope, receive, send):
    """Answers every request with what it read of the body, and how that ended."""
    if scope["type"] != "http":
        return
    body, ended = b"", "complete"
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            ended = "disconnected"
            break
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    bodies_seen.append({"path": scope["path"], "body": body, "ended": ended})
    if ended == "disconnected":
        return
    answer = json.dumps({"read": len(body)}).encode()
    length = [(b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": length})
    await send({"type": "http.response.body", "body": answer})


@contextlib.asynccontextmanager
async def serving(protocol: type, asgi=app) -> AsyncIterator[int]:
    """A uvicorn server with the market's options and `protocol`; yields its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    options = {**uvicorn_options(), "http": protocol}
    config = uvicorn.Config(asgi, lifespan="off", log_level="warning", **options)
    server = QuietServer(config)
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        while not server.started:
            assert not task.done(), task.exception()
            await asyncio.sleep(0.01)
        yield listener.getsockname()[1]
    finally:
        server.should_exit = True
        server.force_exit = True
        await asyncio.wait_for(task, WAIT_S)
        listener.close()


async def read_all(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    return await asyncio.wait_for(reader.read(), WAIT_S)


async def test_a_silent_connection_is_answered_408_and_closed():
    async with serving(protocol_with(header_timeout_s=0.5)) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)

        answer = await read_all(reader)

        assert answer.startswith(b"HTTP/1.1 408 ")
        assert b"did not arrive within 0.5 s" in answer
        writer.close()


async def test_headers_trickling_in_byte_by_byte_are_cut_at_the_deadline():
    async with serving(protocol_with(header_timeout_s=0.5)) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000

        async def trickle() -> None:
            with contextlib.suppress(ConnectionError):
                for byte in request:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0.05)

        sender = asyncio.create_task(trickle())
        answer = await read_all(reader)
        sender.cancel()

        assert answer.startswith(b"HTTP/1.1 408 ")
        writer.close()


async def test_a_kept_alive_connection_that_starts_a_request_and_stops_is_cut():
    async with serving(protocol_with(header_timeout_s=0.5)) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
        first = await asyncio.wait_for(reader.readuntil(b'{"read": 0}'), WAIT_S)
        assert first.startswith(b"HTTP/1.1 200 ")

        writer.write(b"GET /second HTTP/1.1\r\nHost: x\r\n")  # never finished
        answer = await read_all(reader)

        assert answer.startswith(b"HTTP/1.1 408 ")
        writer.close()


async def test_whole_requests_within_the_deadline_are_served():
    async with serving(protocol_with(header_timeout_s=2.0)) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(3):
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = await asyncio.wait_for(reader.readuntil(b'{"read": 0}'), WAIT_S)
            assert answer.startswith(b"HTTP/1.1 200 ")
            # 2.4 s in all: the deadline is per request (room for a loaded machine's delays)
            await asyncio.sleep(0.8)
        writer.close()


async def test_a_body_that_stops_arriving_ends_the_connection():
    bodies_seen.clear()
    async with serving(protocol_with(body_idle_timeout_s=0.5)) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /stalled HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")

        answer = await read_all(reader)

        assert answer == b""  # closed without an answer
        assert bodies_seen == [{"path": "/stalled", "body": b"0123456789", "ended": "disconnected"}]
        writer.close()


async def test_a_slow_body_that_keeps_arriving_is_served():
    bodies_seen.clear()
    async with serving(protocol_with(body_idle_timeout_s=0.5)) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
        for byte in b"0123456789":  # 1.5 s in all, never 0.5 s without a byte
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.15)

        answer = await asyncio.wait_for(reader.readuntil(b'{"read": 10}'), WAIT_S)

        assert answer.startswith(b"HTTP/1.1 200 ")
        assert bodies_seen == [{"path": "/slow", "body": b"0123456789", "ended": "complete"}]
        writer.close()


async def test_a_connection_beyond_the_process_cap_is_refused_503_at_once():
    async with serving(protocol_with(max_connections=3, header_timeout_s=30)) as port:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        await asyncio.sleep(0.2)  # the server has taken all three

        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        refused = await read_all(reader)

        assert refused.startswith(b"HTTP/1.1 503 ")
        assert b"retry-after: 1" in refused
        assert b"holds its limit of 3 connections" in refused
        writer.close()

        # One of the three goes: there is room again.
        held[0][1].close()
        await asyncio.sleep(0.2)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        served = await read_all(reader)
        assert served.startswith(b"HTTP/1.1 200 ")
        for _, other in held[1:]:
            other.close()


# --- the per-address cap --------------------------------------------------------------------


class Held:
    """An inner app that keeps every request and socket open until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = 0

    async def __call__(self, scope, receive, send):
        self.entered += 1
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
        await self.release.wait()
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})


class Client:
    """One ASGI call in flight, with what the app sent."""

    def __init__(self, middleware, kind: str, address: str) -> None:
        self.sent: list[dict[str, Any]] = []
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        connect = {"type": "websocket.connect"} if kind == "websocket" else {"type": "http.request"}
        self.inbox.put_nowait(connect)
        scope = {"type": kind, "client": (address, 5000), "path": "/", "headers": []}
        self.task = asyncio.create_task(middleware(scope, self.inbox.get, self._send))

    async def _send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_an_address_over_its_cap_gets_429_and_others_are_unaffected():
    inner = Held()
    middleware = ConnectionsPerAddress(inner, limit=2)
    first, second = Client(middleware, "http", "10.0.0.1"), Client(middleware, "http", "10.0.0.1")
    await settle()

    third = Client(middleware, "http", "10.0.0.1")
    await asyncio.wait_for(third.task, WAIT_S)
    elsewhere = Client(middleware, "http", "10.0.0.2")
    await settle()

    assert third.sent[0]["status"] == 429
    assert (b"retry-after", b"1") in third.sent[0]["headers"]
    refusal = json.loads(third.sent[1]["body"])
    assert refusal["error"] == "too_many_connections"
    assert "holds 2 open connections" in refusal["detail"]
    assert inner.entered == 3  # the first two and the other address's, never the third
    inner.release.set()
    await asyncio.wait_for(asyncio.gather(first.task, second.task, elsewhere.task), WAIT_S)
    assert middleware.open == {}  # every count is returned when its connection ends


async def test_a_socket_over_the_cap_is_told_why_then_closed_4429():
    inner = Held()
    middleware = ConnectionsPerAddress(inner, limit=1)
    held = Client(middleware, "websocket", "10.0.0.1")
    await settle()

    refused = Client(middleware, "websocket", "10.0.0.1")
    await asyncio.wait_for(refused.task, WAIT_S)

    assert [m["type"] for m in refused.sent] == [
        "websocket.accept",
        "websocket.send",
        "websocket.close",
    ]
    assert json.loads(refused.sent[1]["text"])["code"] == "too_many_connections"
    assert refused.sent[2]["code"] == CLOSE_TOO_MANY_CONNECTIONS == 4429
    inner.release.set()
    await asyncio.wait_for(held.task, WAIT_S)


async def test_a_connection_that_fails_still_returns_its_count():
    async def failing(scope, receive, send):
        raise RuntimeError("the app broke")

    middleware = ConnectionsPerAddress(failing, limit=1)
    for _ in range(3):
        call = Client(middleware, "http", "10.0.0.1")
        with pytest.raises(RuntimeError):
            await asyncio.wait_for(call.task, WAIT_S)
    assert middleware.open == {}


async def test_the_site_counts_connections_per_address():
    from fabric_site.asgi import application

    assert isinstance(application, ConnectionsPerAddress)


# --- the limits' settings ---------------------------------------------------------------------


def test_the_caps_default_to_the_descriptor_limit(monkeypatch):
    import resource

    monkeypatch.delenv("FABRIC_MAX_CONNECTIONS", raising=False)
    monkeypatch.delenv("FABRIC_MAX_CONNECTIONS_PER_ADDRESS", raising=False)
    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, 4096))

    limits = WebLimits.from_environment()

    assert (limits.max_connections, limits.max_connections_per_address) == (768, 192)


def test_the_caps_follow_the_environment(monkeypatch):
    monkeypatch.setenv("FABRIC_MAX_CONNECTIONS", "500")
    monkeypatch.setenv("FABRIC_MAX_CONNECTIONS_PER_ADDRESS", "20")

    limits = WebLimits.from_environment()

    assert (limits.max_connections, limits.max_connections_per_address) == (500, 20)


@pytest.mark.parametrize("value", ["many", "0", "-5", "1.5"])
@pytest.mark.parametrize(
    "variable", ["FABRIC_MAX_CONNECTIONS", "FABRIC_MAX_CONNECTIONS_PER_ADDRESS"]
)
def test_a_cap_that_is_not_a_positive_whole_number_is_refused(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)

    with pytest.raises(ValueError, match=f"{variable} must be a whole number"):
        WebLimits.from_environment()
