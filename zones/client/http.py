"""One JSON POST over HTTP/1.1 on the event loop, for the visitor SDK's joins.

A join used to be a blocking `urllib` call in a worker thread. A program driving many
visitors shares one small default thread pool (the CPU count plus four threads), so
joins and transfers queued for a thread behind one another's network waits. This asks
on the loop itself: one connection per request (`Connection: close`), the answer read
by its Content-Length, its chunks, or to the end of the stream. http and https.
"""

import asyncio
import json
import ssl
from typing import Any
from urllib.parse import urlsplit

MAX_HEAD_BYTES = 64 * 1024  # status line and headers
MAX_BODY_BYTES = 16 * 1024 * 1024  # no join answer comes near this


class HttpError(OSError):
    """The server could not be asked, or its answer was not HTTP/1.x as it should be."""


async def post_json(url: str, body: Any, timeout: float) -> tuple[int, bytes]:
    """POST `body` as JSON to `url`; (status, raw body) of the answer, whatever the status.

    HttpError (an OSError) when the server cannot be reached, answers malformed, or
    does not finish within `timeout` seconds.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HttpError(f"{url!r} is not an http:// or https:// url")
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    payload = json.dumps(body).encode()
    head = (
        f"POST {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        "Content-Type: application/json\r\nAccept: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode("latin-1")
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                parts.hostname,
                port,
                ssl=ssl.create_default_context() if secure else None,
                limit=MAX_HEAD_BYTES,
            )
            try:
                writer.write(head + payload)
                await writer.drain()
                return await _answer_read(reader)
            finally:
                writer.close()
    except TimeoutError:
        raise HttpError(f"{url} did not answer within {timeout:g} s") from None
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as error:
        raise HttpError(f"{url} answered with something that is not HTTP/1.x: {error}") from None


async def _answer_read(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head[:-4].decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
        raise ValueError(f"status line {status_line[:80]!r}")
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"header line {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return int(rest[:3]), await _chunks_read(reader)
    length = headers.get("content-length")
    if length is not None:
        size = int(length)
        if not 0 <= size <= MAX_BODY_BYTES:
            raise ValueError(f"Content-Length {size}")
        return int(rest[:3]), await reader.readexactly(size)
    return int(rest[:3]), await reader.read(MAX_BODY_BYTES)


async def _chunks_read(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers, then the end
                pass
            return bytes(body)
        if len(body) + size > MAX_BODY_BYTES:
            raise ValueError("a chunked body over the size limit")
        body += await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise ValueError("a chunk not followed by CRLF")
