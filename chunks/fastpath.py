"""Downloads of readable chunks by anonymous visitors and visitors with an asset token,
answered before Django's request cycle.

Under ASGI, Django runs every synchronous middleware hook in a worker thread and
gives each request a new thread of its own: for a 64 KiB chunk that costs many
times more than reading and sending the chunk (bench/bench_chunks.py measures
it). Most chunk traffic is visitors fetching booth assets, so `ChunkFastPath`
answers those itself when all of this holds:

- the request is a GET or HEAD of `/chunks/<well-formed hash>`;
- it carries no session cookie, and either no Authorization header (the principal
  is the world, `user:*`) or `Bearer <asset token>` with a valid token (the principal
  is the visitor it names, chunks/visitor_auth.py);
- that principal may read the chunk: either this process found so within the last
  CHUNK_READ_CACHE_SECONDS (`readable_chunks`), or it asks the relation engine now,
  in a worker thread (one query for the chunk's namespaces, the checks from the
  process's tuple index), and remembers a yes.

Everything else goes to Django unchanged: a refusal, a signed-in user, a bad token,
a malformed path, a missing file, an unsatisfiable range. The answers are the chunk
view's (same status, body, ETag, caching and range headers, and nosniff); only the
headers Django's middleware adds for HTML pages (frame, referrer and opener policies,
Vary: Cookie) are left out. The Host header is not checked against ALLOWED_HOSTS
here: nothing in these answers depends on it.

A revoke (or a visitor leaving the booth whose visitors may read) stops every process
serving the chunk within CHUNK_READ_CACHE_SECONDS + REBAC_INDEX_POLL_SECONDS of its
commit: no remembered yes is older than that counted from when its check began, and
that check saw every change committed that long before. The process that deleted the
tuple forgets at once, and a decision asked while the deletion committed is not
remembered (chunks/permissions.py). Copies that browsers and proxies already hold under
`Cache-Control: public, immutable` outlive it anyway.

The decision runs in a worker thread the way Django runs a request: connections that
went stale (a restarted database, one past CONN_MAX_AGE) are closed before and after, so
the next query opens a fresh one. If the decision fails all the same, the request goes
to Django, which answers as it would have, and a line is logged (at most one every few
seconds while the failure lasts); a front's question is answered 503.

`GET /chunk-reads/<hash>` answers the same question for a front server (chunks/front.py):
200 with `X-Chunk-Cache-Control` when the request's principal may read the chunk, 403
otherwise (also for a session or a password: the front sends those to Django). It always
asks the relation engine afresh, so the front's own memory is the only one in between.
"""

import logging
import os
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from chunks.errors import ChunkError
from chunks.hashes import chunk_hash_is_valid
from chunks.permissions import WORLD, readable_chunks
from chunks.ranges import IMMUTABLE_FOR, answer_headers, chunk_etag, chunk_plan
from chunks.selectors import ChunkReadable, chunk_read_decision
from chunks.views import INLINE_BYTES, file_blocks, read_exactly
from market.asset_tokens import AssetTokenError, asset_token_verify
from zones.logthrottle import LogThrottle

PREFIX = "/chunks/"
DECISION_PREFIX = "/chunk-reads/"
CACHE_CONTROL_HEADER = b"x-chunk-cache-control"
DECISION_FAILED = "chunk read decision"
UNAVAILABLE = b"Chunk read decisions are unavailable for now (the database did not answer).\n"

logger = logging.getLogger(__name__)
log_throttle = LogThrottle(logger)


class ChunkFastPath:
    """ASGI middleware in front of the HTTP application; see the module docstring."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        asked = _chunk_asked_for(scope)
        if asked is not None:
            prefix, chunk_hash, principal = asked
            if prefix == DECISION_PREFIX:
                await _answer_decision(send, chunk_hash, principal)
                return
            if principal is not None:
                found = readable_chunks.lookup(principal, chunk_hash)
                if found is None:
                    try:
                        found = await _decide(principal, chunk_hash)
                    except Exception as error:  # noqa: BLE001 - Django answers instead
                        _decision_failed(error)
                        found = None
                if found is not None and await self._answer(
                    scope, send, chunk_hash, principal, *found
                ):
                    return
        await self.app(scope, receive, send)

    async def _answer(
        self,
        scope: dict[str, Any],
        send: Any,
        chunk_hash: str,
        principal: str,
        size: int,
        public: bool,
    ) -> bool:
        """Send the chunk; False (nothing sent) when Django should answer instead."""
        headers = _request_headers(scope)
        get = scope["method"] == "GET"
        try:
            plan = chunk_plan(
                size=size,
                etag=chunk_etag(chunk_hash),
                range_header=headers.get("range") if get else None,
                if_range=headers.get("if-range"),
                if_none_match=headers.get("if-none-match"),
            )
        except ChunkError:
            return False  # unsatisfiable range: Django words the refusal
        path = chunk_path(chunk_hash)
        body = b""
        if get and plan.status != 304 and plan.length <= INLINE_BYTES:
            try:
                # In the event loop: a small read from the page cache costs less than a
                # trip to a worker thread. Larger bodies are read off the loop.
                body = read_exactly(path, plan.start, plan.length)
            except OSError:
                readable_chunks.forget(principal, chunk_hash)  # collected: let Django say so
                return False
        elif not os.path.isfile(path):
            readable_chunks.forget(principal, chunk_hash)
            return False
        headers = [
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in answer_headers(chunk_hash, size, plan, public=public)
        ]
        await send({"type": "http.response.start", "status": plan.status, "headers": headers})
        if get and plan.status != 304 and plan.length > INLINE_BYTES:
            async for block in file_blocks(path, plan.start, plan.length):
                await send({"type": "http.response.body", "body": block, "more_body": True})
            await send({"type": "http.response.body"})
        else:
            await send({"type": "http.response.body", "body": body})
        return True


def chunk_path(chunk_hash: str) -> str:
    """Where the store keeps a chunk: a plain string, as chunk_store().path_for makes it
    (pathlib costs more than the read here)."""
    return os.path.join(settings.CHUNK_STORE_DIR, chunk_hash[:2], chunk_hash[2:4], chunk_hash)


def _chunk_asked_for(scope: dict[str, Any]) -> tuple[str, str, str | None] | None:
    """(prefix, hash, principal) of a GET or HEAD of a chunk or of a read decision.

    The principal is None when the request is Django's to judge: a session cookie,
    another Authorization scheme, a bad token.
    """
    if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
        return None
    path = scope["path"].removeprefix(scope.get("root_path", ""))
    for prefix in (PREFIX, DECISION_PREFIX):
        if path.startswith(prefix):
            chunk_hash = path[len(prefix) :]
            if not chunk_hash_is_valid(chunk_hash):
                return None
            return prefix, chunk_hash, _principal(scope)
    return None


def _principal(scope: dict[str, Any]) -> str | None:
    """`user:*`, the visitor an asset token proves, or None (Django decides)."""
    session_cookie = f"{settings.SESSION_COOKIE_NAME}=".encode()
    principal: str | None = WORLD
    for name, value in scope["headers"]:
        if name == b"cookie" and session_cookie in value:
            return None
        if name == b"authorization":
            if principal != WORLD:
                return None  # two Authorization headers
            principal = _visitor_of(value)
            if principal is None:
                return None
    return principal


def _visitor_of(authorization: bytes) -> str | None:
    """The visitor subject of `Bearer <valid asset token>`, else None."""
    scheme, _, token = authorization.partition(b" ")
    if scheme.lower() != b"bearer":
        return None
    try:
        return asset_token_verify(token.strip().decode("ascii")).subject
    except (AssetTokenError, UnicodeDecodeError):
        return None


async def _decide(principal: str, chunk_hash: str) -> tuple[int, bool] | None:
    """(size, public) if `principal` may read the chunk, asked now and remembered."""
    asked = readable_chunks.asking(principal)
    readable = await _decision(principal, chunk_hash)
    if readable is None:
        return None
    readable_chunks.remember(principal, chunk_hash, readable.size, readable.public, asked)
    return readable.size, readable.public


async def _decision(principal: str, chunk_hash: str) -> ChunkReadable | None:
    readable = await sync_to_async(_decision_in_thread)(chunk_hash, principal)
    if log_throttle.failing(DECISION_FAILED):
        log_throttle.clear(DECISION_FAILED, "Chunk read decisions work again")
    return readable


def _decision_in_thread(chunk_hash: str, principal: str) -> ChunkReadable | None:
    """The decision, between the connection upkeep Django does around each request."""
    close_old_connections()
    try:
        return chunk_read_decision(chunk_hash=chunk_hash, principal=principal)
    finally:
        close_old_connections()


def _decision_failed(error: Exception) -> None:
    log_throttle.error(
        DECISION_FAILED,
        "A chunk read decision failed (%s: %s); Django answers chunk reads meanwhile",
        type(error).__name__,
        error,
    )


async def _answer_decision(send: Any, chunk_hash: str, principal: str | None) -> None:
    """A front server's question: 200 and the chunk's Cache-Control, 403, or 503 when the
    decision could not be taken."""
    try:
        readable = None if principal is None else await _decision(principal, chunk_hash)
    except Exception as error:  # noqa: BLE001 - answered 503
        _decision_failed(error)
        headers = [
            (b"content-length", str(len(UNAVAILABLE)).encode("ascii")),
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"cache-control", b"no-store"),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": UNAVAILABLE})
        return
    headers = [(b"content-length", b"0"), (b"cache-control", b"no-store")]
    if readable is not None:
        visibility = "public" if readable.public else "private"
        headers.append((CACHE_CONTROL_HEADER, f"{visibility}, {IMMUTABLE_FOR}".encode("latin-1")))
    status = 200 if readable is not None else 403
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


def _request_headers(scope: dict[str, Any]) -> dict[str, str]:
    """The request's headers by lower-case name (repeated ones joined with commas)."""
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        found[key] = f"{found[key]},{text}" if key in found else text
    return found
