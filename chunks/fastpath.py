"""Anonymous downloads of world-readable chunks, answered before Django's request cycle.

Under ASGI, Django runs every synchronous middleware hook in a worker thread and
gives each request a new thread of its own: for a 64 KiB chunk that costs many
times more than reading and sending the chunk (bench/bench_chunks.py measures
it). Most chunk traffic is visitors fetching world-readable booth assets, so
`ChunkFastPath` answers those itself when all of this holds:

- the request is a GET or HEAD of `/chunks/<well-formed hash>`;
- it carries no credentials (no Authorization header, no session cookie), so
  the principal is the world, `user:*`;
- the Django view has found, within the last CHUNK_PUBLIC_CACHE_SECONDS, that
  the world may read this chunk (`public_chunks.remember`).

Everything else goes to Django unchanged: a first request, a private chunk, a
signed-in user, a malformed path, a missing file, an unsatisfiable range. The
answers are the chunk view's (same status, body, ETag, caching and range
headers, and nosniff); only the headers Django's middleware adds for HTML pages
(frame, referrer and opener policies, Vary: Cookie) are left out. The Host header
is not checked against ALLOWED_HOSTS here: nothing in these answers depends on it.

Deleting a relation tuple clears the memory of public chunks in this process once
the deletion commits (chunks/permissions.py), so a revoked public grant stops being
served here from then on; other
processes forget it within CHUNK_PUBLIC_CACHE_SECONDS, which is why that is 0 when
several may run (REDIS_URL). Copies that browsers and proxies already hold under
`Cache-Control: public, immutable` outlive it anyway.
"""

import os
from collections.abc import Callable
from typing import Any

from django.conf import settings

from chunks.errors import ChunkError
from chunks.hashes import chunk_hash_is_valid
from chunks.permissions import public_chunks
from chunks.ranges import answer_headers, chunk_etag, chunk_plan
from chunks.views import INLINE_BYTES, file_blocks, read_exactly

PREFIX = "/chunks/"


class ChunkFastPath:
    """ASGI middleware in front of the HTTP application; see the module docstring."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        asked = self._public_chunk_asked_for(scope)
        if asked is None or not await self._answer(scope, send, *asked):
            await self.app(scope, receive, send)

    @staticmethod
    def _public_chunk_asked_for(scope: dict[str, Any]) -> tuple[str, int] | None:
        """Hash and size of the world-readable chunk an anonymous GET or HEAD asks for."""
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            return None
        path = scope["path"].removeprefix(scope.get("root_path", ""))
        if not path.startswith(PREFIX):
            return None
        chunk_hash = path[len(PREFIX) :]
        size = public_chunks.size_of(chunk_hash) if chunk_hash_is_valid(chunk_hash) else None
        if size is None:
            return None
        session_cookie = f"{settings.SESSION_COOKIE_NAME}=".encode()
        for name, value in scope["headers"]:
            if name == b"authorization" or (name == b"cookie" and session_cookie in value):
                return None
        return chunk_hash, size

    async def _answer(self, scope: dict[str, Any], send: Any, chunk_hash: str, size: int) -> bool:
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
        # A plain string, not chunk_store().path_for: pathlib costs more than the read here.
        path = os.path.join(settings.CHUNK_STORE_DIR, chunk_hash[:2], chunk_hash[2:4], chunk_hash)
        body = b""
        if get and plan.status != 304 and plan.length <= INLINE_BYTES:
            try:
                # In the event loop: a small read from the page cache costs less than a
                # trip to a worker thread. Larger bodies are read off the loop.
                body = read_exactly(path, plan.start, plan.length)
            except OSError:
                public_chunks.forget(chunk_hash)  # collected meanwhile: let Django say so
                return False
        elif not os.path.isfile(path):
            public_chunks.forget(chunk_hash)
            return False
        headers = [
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in answer_headers(chunk_hash, size, plan, public=True)
        ]
        await send({"type": "http.response.start", "status": plan.status, "headers": headers})
        if get and plan.status != 304 and plan.length > INLINE_BYTES:
            async for block in file_blocks(path, plan.start, plan.length):
                await send({"type": "http.response.body", "body": block, "more_body": True})
            await send({"type": "http.response.body"})
        else:
            await send({"type": "http.response.body", "body": body})
        return True


def _request_headers(scope: dict[str, Any]) -> dict[str, str]:
    """The request's headers by lower-case name (repeated ones joined with commas)."""
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        found[key] = f"{found[key]},{text}" if key in found else text
    return found
