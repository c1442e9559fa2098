"""Calling the site's ASGI application directly, with hand-made http.request events.

This is how the tests send what no well-behaved HTTP client sends: a body cut
off mid-upload, a body longer than its Content-Length, a path with `..` in it.
"""

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from fabric_site.asgi import application

HOST = b"127.0.0.1"


@dataclass
class Answer:
    """What the application sent back."""

    status: int
    headers: dict[str, str]
    body: bytes
    raw_headers: list[tuple[bytes, bytes]] = field(repr=False)
    unread_events: int = 0  # body events the application never asked for

    def json(self) -> dict:
        return json.loads(self.body)


def basic_auth(username: str, password: str) -> tuple[bytes, bytes]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return (b"authorization", f"Basic {token}".encode())


async def asgi_call(
    method: str,
    path: str,
    *,
    query: str = "",
    headers: Sequence[tuple[bytes, bytes]] = (),
    pieces: Iterable[bytes] = (),
    content_length: int | None = -1,
    cut_off: bool = False,
    timeout: float = 30,
    host: bytes = HOST,
    app: Callable[..., Awaitable[None]] = application,
) -> Answer:
    """Send one request as `pieces` of body, then wait for the whole answer.

    `content_length` -1 declares the pieces' total (give a sequence then), None declares
    nothing. `cut_off` makes the client disconnect after the pieces instead of ending
    the body. Pieces are taken from `pieces` only as the application asks for them.
    `app` is the site's application unless another is given.
    """
    if content_length == -1:
        pieces = list(pieces)
        declared: int | None = sum(len(piece) for piece in pieces)
    else:
        declared = content_length
    all_headers = [(b"host", host), *headers]
    if declared is not None:
        all_headers.append((b"content-length", str(declared).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": all_headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    last = {"type": "http.disconnect"} if cut_off else {"type": "http.request", "body": b""}
    events = iter(
        [*({"type": "http.request", "body": p, "more_body": True} for p in pieces), last]
        if isinstance(pieces, Sequence)
        else _lazy_events(pieces, last)
    )
    done = asyncio.Event()
    sent: list[dict] = []

    async def receive() -> dict:
        event = next(events, None)
        if event is not None:
            return event
        if not cut_off:
            await done.wait()  # a server reports the disconnect once the answer is out
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            done.set()

    async with asyncio.timeout(timeout):
        await app(scope, receive, send)
    unread = sum(1 for _ in events)
    start = next(m for m in sent if m["type"] == "http.response.start")
    raw = [(bytes(k), bytes(v)) for k, v in start["headers"]]
    return Answer(
        status=start["status"],
        headers={k.decode().lower(): v.decode() for k, v in raw},
        body=b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"),
        raw_headers=raw,
        unread_events=unread,
    )


def _lazy_events(pieces: Iterable[bytes], last: dict) -> Iterable[dict]:
    for piece in pieces:
        yield {"type": "http.request", "body": piece, "more_body": True}
    yield last
