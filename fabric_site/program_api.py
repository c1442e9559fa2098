"""The JSON endpoints programs call on every join and transfer, answered beside Django's
middleware instead of through it.

A visitor's join (`POST /api/markets/<id>/join/`) and the orchestrator's release of a
visitor leaving through a portal (`POST /api/markets/<id>/host/release/`) are asked by
programs: no cookies, no session, no CSRF token, no signed-in user, no messages. Through
Django's handler each still went through every middleware of the site, and under ASGI
each sync middleware's request and response steps are a hop to a thread and back: about
a dozen hops a request, each waiting for the event loop and a thread. On a busy market
they were the larger part of a transfer's wait (docs/performance.md).

`ProgramApi` answers those paths itself: it reads the body (at most MAX_BODY_BYTES),
builds Django's own request object, checks the Host header as Django would, and calls
the view, a sync one in one hop to a thread of its own pool (its database connections
opened and closed there as a request's would be). The views are the same functions the
URLconf names (market/urls.py), so Django's test client and this path answer alike.
Everything else goes to the application behind it.
"""

import asyncio
import io
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse, JsonResponse

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024  # a join or a release is a few hundred bytes
THREADS = 32  # sync views waiting on the orchestrator at once, before the next waits

View = Callable[..., HttpResponse] | Callable[..., Awaitable[HttpResponse]]
Route = tuple[str, View]  # a regular expression over the path, its named groups as ints

_pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="program-api")


class ProgramApi:
    """ASGI in front of the HTTP application; see the module docstring."""

    def __init__(self, app: Callable[..., Any], routes: Sequence[Route]) -> None:
        self.app = app
        self.routes = [(re.compile(pattern), view) for pattern, view in routes]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for pattern, view in self.routes:
                match = pattern.fullmatch(scope["path"])
                if match is not None:
                    kwargs = {name: int(value) for name, value in match.groupdict().items()}
                    try:
                        body = await _body_read(receive)
                    except _ClientGone:
                        return  # nobody to answer
                    await _send(send, await _answer(scope, body, view, kwargs))
                    return
        await self.app(scope, receive, send)


async def _answer(
    scope: dict[str, Any], body: bytes | None, view: View, kwargs: dict[str, int]
) -> HttpResponse:
    if body is None:
        return _refusal(413, "too_large", f"A request body is at most {MAX_BODY_BYTES} bytes.")
    request = ASGIRequest(scope, io.BytesIO(body))
    try:
        request.get_host()
    except DisallowedHost as error:
        return _refusal(400, "bad_host", str(error))
    try:
        if asyncio.iscoroutinefunction(view):
            return await view(request, **kwargs)
        return await sync_to_async(_in_request, thread_sensitive=False, executor=_pool)(
            view, request, kwargs
        )
    except Exception:
        log.exception("%s %s failed", scope.get("method"), scope.get("path"))
        return _refusal(500, "internal_error", "The server failed to answer; ask again later.")


def _in_request(view: View, request: HttpRequest, kwargs: dict[str, int]) -> HttpResponse:
    """Run a sync view as Django runs a request: stale connections closed before and after."""
    close_old_connections()
    try:
        return view(request, **kwargs)  # type: ignore[return-value]
    finally:
        close_old_connections()


class _ClientGone(Exception):
    """The client disconnected before its request's body was whole."""


async def _body_read(receive: Any) -> bytes | None:
    """The whole request body, or None once it passes MAX_BODY_BYTES."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


def _refusal(status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse({"error": code, "detail": detail}, status=status)


async def _send(send: Any, response: HttpResponse) -> None:
    content = response.content
    headers = [
        (name.encode("latin-1"), value.encode("latin-1")) for name, value in response.items()
    ]
    headers.append((b"content-length", str(len(content)).encode()))
    headers.append((b"x-content-type-options", b"nosniff"))
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": content})
