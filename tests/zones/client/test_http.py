"""The SDK's JSON POST on the event loop (zones/client/http.py), against hand-written servers."""

import asyncio
import json

import pytest

from zones.client.http import HttpError, post_json
from zones.client.visitor import JoinRefused, join_ticket


async def _serving(answer: bytes, *, delay: float = 0.0, asked: list | None = None):
    """A server that reads one request (head and Content-Length body) and writes `answer`."""

    async def handle(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        body = await reader.readexactly(int(headers.get("Content-Length", "0")))
        if asked is not None:
            asked.append((lines[0], headers, body))
        await asyncio.sleep(delay)
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/api/markets/1/join/?x=1"


def _run(answer: bytes, body=None, timeout: float = 5.0, **kwargs):
    async def go():
        server, url = await _serving(answer, **kwargs)
        async with server:
            return await post_json(url, body if body is not None else {"key": "k"}, timeout)

    return asyncio.run(go())


def test_the_request_is_a_json_post_with_its_length_and_the_answer_read_by_content_length():
    asked = []
    status, raw = _run(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n"
        b'{"ok": true}extra',
        body={"transfer": "t0k"},
        asked=asked,
    )
    assert (status, raw) == (200, b'{"ok": true')  # exactly Content-Length bytes
    [(request_line, headers, body)] = asked
    assert request_line == "POST /api/markets/1/join/?x=1 HTTP/1.1"
    assert headers["Content-Type"] == "application/json"
    assert headers["Connection"] == "close"
    assert headers["Host"].startswith("127.0.0.1:")
    assert json.loads(body) == {"transfer": "t0k"}


def test_a_chunked_answer_is_put_together():
    status, raw = _run(
        b"HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5\r\n{"err\r\n7;ext=1\r\nor": 1}\r\n0\r\nX-Trailer: y\r\n\r\n'
    )
    assert (status, raw) == (409, b'{"error": 1}')


def test_an_answer_without_a_length_is_read_to_the_end():
    assert _run(b"HTTP/1.0 503 Busy\r\n\r\nlater") == (503, b"later")


@pytest.mark.parametrize(
    "answer",
    [
        b"SMTP 220 hello\r\n\r\n",
        b"HTTP/1.1 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\n",
    ],
)
def test_what_is_not_http_is_an_http_error(answer):
    with pytest.raises(HttpError, match="not HTTP/1.x"):
        _run(answer)


def test_a_server_too_slow_is_an_http_error_naming_the_timeout():
    with pytest.raises(HttpError, match="did not answer within 0.2 s"):
        _run(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", delay=2.0, timeout=0.2)


def test_nobody_listening_is_an_os_error():
    async def go():
        server, url = await _serving(b"")
        server.close()
        await server.wait_closed()
        return await post_json(url, {}, 2.0)

    with pytest.raises(OSError):
        asyncio.run(go())


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "127.0.0.1:8000/x", "http:///x"])
def test_a_url_that_is_not_http_is_refused_before_connecting(url):
    with pytest.raises(HttpError, match="is not an http"):
        asyncio.run(post_json(url, {}, 1.0))


@pytest.mark.parametrize(
    ("answer", "status", "code"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nnot json!", 200, "bad_answer"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]", 200, "bad_answer"),
        (
            b'HTTP/1.1 429 Too Many\r\nContent-Length: 37\r\n\r\n{"error": "slow_down", "detail": "x"}',
            429,
            "slow_down",
        ),
        (b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 4\r\n\r\noops", 502, "http_error"),
    ],
)
def test_a_join_answered_otherwise_than_with_a_ticket_is_a_join_refused(answer, status, code):
    async def go():
        server, url = await _serving(answer)
        async with server:
            base = url.split("/api/")[0]
            return await join_ticket(base, 1, key="k" * 32, timeout=5.0)

    with pytest.raises(JoinRefused) as refused:
        asyncio.run(go())
    assert (refused.value.status, refused.value.code) == (status, code)
