"""The raw chunk endpoint, `/chunks/<hash>`: PUT to upload, GET and HEAD to fetch.

These are plain async Django views, not DRF views: DRF's views are synchronous
(each would hold a worker thread for a whole transfer) and its parsers read the
whole request body. The upload instead reads its body as it arrives, through
`StreamingUploadASGIHandler` (chunks/asgi.py), and the download streams the file
in blocks. Authentication and error bodies are DRF's and chunks.http's, as for
the JSON endpoints.
"""

import asyncio
import os
from collections.abc import AsyncIterator
from functools import wraps
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseNotAllowed,
    JsonResponse,
    StreamingHttpResponse,
)
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from chunks.asgi import streams_request_body
from chunks.errors import ChunkError, ChunkErrorKind
from chunks.hashes import chunk_hash_validate
from chunks.http import chunk_error_response, request_body_pieces, request_user
from chunks.permissions import WORLD, principal_of, readable_chunks
from chunks.ranges import ChunkPlan, answer_headers, chunk_etag, chunk_plan
from chunks.selectors import ChunkReadable, chunk_readable
from chunks.services import chunk_upload

# Bodies up to this size are read in one go with the permission check; larger ones stream.
INLINE_BYTES = 1 << 20
STREAM_BLOCK_BYTES = 1 << 20


def answers_chunk_errors(view: Any) -> Any:
    """Turn a ChunkError raised by `view` into its response (chunks.http)."""

    @wraps(view)
    async def answer(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            return await view(request, *args, **kwargs)
        except ChunkError as error:
            return chunk_error_response(error, request)

    return answer


@streams_request_body
@csrf_exempt  # DRF's session authentication checks CSRF itself, as in DRF views
@answers_chunk_errors
async def chunk_endpoint(request: HttpRequest, chunk_hash: str) -> HttpResponseBase:
    """PUT, GET or HEAD one chunk."""
    chunk_hash_validate(chunk_hash)
    if request.method in ("GET", "HEAD"):
        return await chunk_fetch(request, chunk_hash)
    if request.method == "PUT":
        return await chunk_put(request, chunk_hash)
    return HttpResponseNotAllowed(["GET", "HEAD", "PUT"])


async def chunk_put(request: HttpRequest, chunk_hash: str) -> HttpResponseBase:
    """Upload: 201 for a new chunk, 200 for one the store already had."""
    user = await sync_to_async(request_user)(request)
    upload = await chunk_upload(
        user=user,
        chunk_hash=chunk_hash,
        namespace_reference=request.GET.get("namespace"),
        content_length=declared_length(request),
        body=request_body_pieces(request),
    )
    return JsonResponse(
        {
            "hash": upload.hash,
            "size": upload.size,
            "namespace": {"id": upload.namespace.pk, "slug": upload.namespace.slug},
            "created": upload.created,
            "linked": upload.linked,
            "url": request.build_absolute_uri(reverse("chunks:chunk", args=[upload.hash])),
        },
        status=201 if upload.created else 200,
    )


def declared_length(request: HttpRequest) -> int | None:
    """The body's Content-Length; None when absent or when the body is sent chunked."""
    if "HTTP_TRANSFER_ENCODING" in request.META:
        return None  # RFC 9112 §6.3: Transfer-Encoding overrides any Content-Length
    value = request.META.get("CONTENT_LENGTH", "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise ChunkError(ChunkErrorKind.INVALID, f"Content-Length {value[:40]!r} is not a number.")
    return int(value)


async def chunk_fetch(request: HttpRequest, chunk_hash: str) -> HttpResponseBase:
    """Download: 200, 206 for a range, 304 when the client has it, 403 when it may not."""
    asked = readable_chunks.asking(WORLD)
    readable, plan, inline = await sync_to_async(chunk_fetch_prepare)(request, chunk_hash)
    if readable.public:
        # for chunks.fastpath
        readable_chunks.remember(WORLD, readable.hash, readable.size, True, asked)
    if plan.status == 304:
        # Streamed (and empty) so that no middleware adds a Content-Length of 0 to it.
        response: HttpResponseBase = StreamingHttpResponse(no_body(), status=304)
        del response["Content-Type"]
    elif request.method == "HEAD" or inline is not None:
        response = HttpResponse(inline or b"", status=plan.status)
    else:
        response = StreamingHttpResponse(
            file_blocks(readable.path, plan.start, plan.length), status=plan.status
        )
    for name, value in answer_headers(readable.hash, readable.size, plan, public=readable.public):
        response[name] = value
    return response


def chunk_fetch_prepare(
    request: HttpRequest, chunk_hash: str
) -> tuple[ChunkReadable, ChunkPlan, bytes | None]:
    """Who asks, whether they may read, what to send; small bodies are read here too.

    One trip to a worker thread does all the blocking work of a small GET.
    """
    principal = principal_of(request_user(request))
    readable = chunk_readable(chunk_hash=chunk_hash, principal=principal)
    plan = chunk_plan(
        size=readable.size,
        etag=chunk_etag(chunk_hash),
        # Range is defined for GET only (RFC 9110 §14.2); HEAD describes the whole chunk.
        range_header=request.headers.get("Range") if request.method == "GET" else None,
        if_range=request.headers.get("If-Range"),
        if_none_match=request.headers.get("If-None-Match"),
    )
    inline = None
    if request.method == "GET" and plan.status != 304 and plan.length <= INLINE_BYTES:
        inline = read_exactly(readable.path, plan.start, plan.length)
    return readable, plan, inline


def read_exactly(path: str | Path, start: int, length: int) -> bytes:
    """Bytes [start, start + length) of a chunk file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.pread(fd, length, start) if length else b""
    finally:
        os.close(fd)
    if len(data) != length:
        raise OSError(f"{path} is shorter than its recorded size")
    return data


async def file_blocks(path: str | Path, start: int, length: int) -> AsyncIterator[bytes]:
    """Bytes [start, start + length) of a chunk file, read in blocks off the event loop."""
    file = await asyncio.to_thread(open, path, "rb", buffering=0)
    try:
        fd = file.fileno()
        position, end = start, start + length
        while position < end:
            block = await asyncio.to_thread(
                os.pread, fd, min(STREAM_BLOCK_BYTES, end - position), position
            )
            if not block:
                raise OSError(f"{path} is shorter than its recorded size")
            position += len(block)
            yield block
    finally:
        file.close()


async def no_body() -> AsyncIterator[bytes]:
    """An empty body, as an async iterator."""
    for piece in ():
        yield piece
