"""Django's ASGI handler, taught to let chosen views read the request body as it arrives.

What stock Django does (5.2, django/core/handlers/asgi.py): before it calls any
view, `ASGIHandler.read_body` copies every `http.request` message into a
`SpooledTemporaryFile` that stays in memory up to FILE_UPLOAD_MAX_MEMORY_SIZE
(2.5 MiB by default) and then rolls over to an anonymous file in
FILE_UPLOAD_TEMP_DIR. The view only runs once the whole body has arrived. For a
64 MiB chunk that would mean: the upload is received in full even when it is
refused (too large, no permission), its bytes go to disk twice (Django's spool,
then the store's own temporary file), and a client that sent
`Expect: 100-continue` never learns of the refusal before sending everything.

For a view marked with `streams_request_body`, this handler skips that step.
The request's stream is a `RequestBodyStream` that takes the next message from
the server only when the view asks for it, so the view decides on the headers
alone, and copies the body to its destination block by block, with no spool at
all. Every other request is handled exactly as Django does it (spooled as above).
"""

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.urls import Resolver404, resolve

STREAMS_BODY_ATTRIBUTE = "streams_request_body"
BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# How long a streamed body may pause between two messages, as Django's own ASGIRequest.
BODY_RECEIVE_TIMEOUT_SECONDS = 60.0
# Responses go to the server in messages this large (Django's default is 64 KiB).
RESPONSE_MESSAGE_BYTES = 1 << 20


def streams_request_body(view: Callable[..., Any]) -> Callable[..., Any]:
    """Mark an async view as reading its request body through `RequestBodyStream.blocks()`."""
    setattr(view, STREAMS_BODY_ATTRIBUTE, True)
    return view


class BodyIncomplete(RequestAborted):
    """The client went away, or stopped sending, before the body was complete."""


class RequestBodyStream:
    """A request body still on the wire, read asynchronously in the order it arrives.

    Installed as the request's stream in place of Django's spooled file; the sync
    file API is refused, so nothing can fall back to reading it all into memory.
    """

    def __init__(self, receive: Callable[[], Any]) -> None:
        self.receive = receive
        self.received_bytes = 0
        self._complete = asyncio.Event()
        self._started = False

    async def blocks(self) -> AsyncIterator[bytes]:
        """Each non-empty piece of the body, until the client says it has sent it all.

        Raises BodyIncomplete when the client disconnects or pauses longer than
        BODY_RECEIVE_TIMEOUT_SECONDS. Can be iterated once.
        """
        if self._started:
            raise RuntimeError("The request body can only be read once.")
        self._started = True
        while True:
            try:
                async with asyncio.timeout(BODY_RECEIVE_TIMEOUT_SECONDS):
                    message = await self.receive()
            except TimeoutError as error:
                raise BodyIncomplete("the client stopped sending the body") from error
            if message["type"] == "http.disconnect":
                raise BodyIncomplete("the client disconnected before the body was complete")
            piece = message.get("body", b"")
            if piece:
                self.received_bytes += len(piece)
                yield piece
            if not message.get("more_body", False):
                self._complete.set()
                return

    async def wait_until_complete(self) -> None:
        """Return once the view has read the whole body (never, if it does not)."""
        await self._complete.wait()

    def read(self, *args: Any, **kwargs: Any) -> bytes:
        raise RuntimeError(
            "This request's body is streamed: read it with `async for piece in "
            "request_body_stream.blocks()`, not request.body or request.read()."
        )

    readline = read

    def close(self) -> None:
        """Nothing to release: unread body messages stay with the server."""


class StreamingUploadASGIHandler(ASGIHandler):
    """Django's ASGIHandler, with streamed bodies for views marked `streams_request_body`."""

    chunk_size = RESPONSE_MESSAGE_BYTES

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self._view_streams_body(scope):
            receive = RequestBodyStream(receive)
        await super().handle(scope, receive, send)

    async def read_body(self, receive: Any) -> Any:
        if isinstance(receive, RequestBodyStream):
            return receive  # becomes request._stream, unread
        return await super().read_body(receive)

    async def listen_for_disconnect(self, receive: Any) -> None:
        # Django listens for a disconnect while the view runs; with a streamed body the
        # view owns `receive` until it has read the body, so listening waits until then.
        if isinstance(receive, RequestBodyStream):
            await receive.wait_until_complete()
            receive = receive.receive
        await super().listen_for_disconnect(receive)

    @staticmethod
    def _view_streams_body(scope: dict[str, Any]) -> bool:
        if scope["type"] != "http" or scope["method"] in BODYLESS_METHODS:
            return False
        path_info = scope["path"].removeprefix(get_script_prefix(scope))
        try:
            match = resolve(path_info)
        except Resolver404:
            return False
        return getattr(match.func, STREAMS_BODY_ATTRIBUTE, False)


def request_body_stream(request: Any) -> RequestBodyStream | None:
    """The streamed body of a request to a `streams_request_body` view, if it has one.

    None when the request came another way (WSGI, Django's test client): its body
    is then a file-like object to read with `request.read(n)`.
    """
    stream = getattr(request, "_stream", None)
    return stream if isinstance(stream, RequestBodyStream) else None
