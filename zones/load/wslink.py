"""Client websockets on plain sockets, read for a whole fleet by one epoll set.

The harness's visitors each get about 20 frames a second, one per read, and the harness
shares the machine with the market it measures. An event loop's stream transport pays per
read for its callbacks and buffers, and a websocket library per frame for a frame object;
here every socket of a fleet sits in one `select.epoll` set whose descriptor is the only
thing the event loop watches (`Poller`): one wake-up reads every socket that is ready with
`recv_into` into one buffer, cuts the frames out (RFC 6455 §5.2: server frames are not
masked) and hands each to its socket's listener: a whole binary message as the read's bytes
with its bounds (no copy) and the wake-up's clock reading as its arrival, anything else as
(opcode, fin, payload).

`open_link` opens one: TCP, the HTTP/1.1 upgrade (its `Sec-WebSocket-Accept` checked),
then the socket joins the poller. `Link` sends: frames masked with a random key per frame,
written straight to the socket, what the socket does not take at once queued and written
when it drains. Pings are answered; a close frame is echoed and the socket shut; a socket
that ends without one reports 1006.

Plain `ws://` only: the harness talks to a market's own port. (TLS would put a record layer
between the reads and the frames.)
"""

import asyncio
import base64
import contextlib
import hashlib
import os
import select
import socket
import struct
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlsplit

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CLOSED_NO_STATUS = 1005  # a close frame without a code
CLOSED_ABNORMALLY = 1006  # the connection ended without a close frame
PROTOCOL_ERROR = 1002
MESSAGE_TOO_BIG = 1009
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
READ_BUFFER = 1 << 18  # one recv_into per ready socket and wake-up, at most this much
EVENTS_PER_POLL = 4096
MAX_RESPONSE_HEAD = 16384  # the upgrade response's status line and headers
U16 = struct.Struct("!H")
U64 = struct.Struct("!Q")


class Listener(Protocol):
    """What a link tells the one that reads it."""

    def on_binary(self, data: bytes, start: int, stop: int, received_ms: float) -> None:
        """A whole binary message: data[start:stop], read at `received_ms`."""

    def on_frame(self, opcode: int, fin: bool, payload: bytes) -> None:
        """Any other frame: text, a fragment, a continuation."""

    def on_closed(self, code: int, reason: str) -> None:
        """The link is over: the close frame's code, or 1006 without one."""


class HandshakeRefused(Exception):
    """The server answered the upgrade with another HTTP status."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def client_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """One masked client frame (RFC 6455 §5.3: a client masks every frame it sends)."""
    size = len(payload)
    head = (0x80 if fin else 0) | opcode
    if size < 126:
        header = bytes((head, 0x80 | size))
    elif size < 1 << 16:
        header = bytes((head, 0x80 | 126)) + U16.pack(size)
    else:
        header = bytes((head, 0x80 | 127)) + U64.pack(size)
    key = os.urandom(4)
    if not size:
        return header + key
    mask = int.from_bytes((key * (size // 4 + 1))[:size], "big")
    masked = (int.from_bytes(payload, "big") ^ mask).to_bytes(size, "big")
    return header + key + masked


class Link:
    """One open client websocket: sends go straight to the socket; the poller reads it."""

    __slots__ = ("sock", "fd", "listener", "poller", "pending", "out", "close_sent", "closed")

    def __init__(self, sock: socket.socket, listener: Listener, poller: "Poller") -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.listener = listener
        self.poller = poller
        self.pending = b""  # a frame's first bytes, waiting for the rest
        self.out = bytearray()  # what the socket has not taken yet
        self.close_sent = False
        self.closed = False

    @property
    def is_close_frame_sent(self) -> bool:
        return self.close_sent

    def send(self, opcode: int, payload: bytes) -> None:
        """A whole message of one frame; nothing once the socket has closed."""
        if not self.closed:
            self._write(client_frame(opcode, payload))

    def send_close(self, code: int = 1000, reason: bytes = b"") -> None:
        """The close frame (once); the server's answer, or its hanging up, ends the link."""
        if self.closed or self.close_sent:
            return
        self.close_sent = True
        self._write(client_frame(CLOSE, U16.pack(code) + reason[:123]))

    def disconnect(self, graceful: bool = True) -> None:
        """Hang up (after what is queued, if `graceful`); the listener hears 1006."""
        if graceful:
            self.flush()
        self.poller.lost(self, CLOSED_ABNORMALLY, "")

    def flush(self, timeout: float = 1.0) -> None:
        """Write what the socket has not taken yet, waiting at most `timeout`."""
        if self.out and not self.closed:
            with contextlib.suppress(OSError):
                self.sock.settimeout(timeout)
                self.sock.sendall(self.out)
            self.out.clear()
            self.poller.loop.remove_writer(self.fd)

    def _write(self, data: bytes) -> None:
        if self.out:
            self.out += data
            return
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self.poller.lost(self, CLOSED_ABNORMALLY, "")
            return
        if sent < len(data):
            self.out += data[sent:]
            self.poller.loop.add_writer(self.fd, self._drain)

    def _drain(self) -> None:
        try:
            sent = self.sock.send(self.out)
        except BlockingIOError:
            return
        except OSError:
            self.poller.lost(self, CLOSED_ABNORMALLY, "")
            return
        del self.out[:sent]
        if not self.out:
            self.poller.loop.remove_writer(self.fd)


class Poller:
    """Every link of a fleet in one epoll set, read on the event loop when any is ready."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, max_message: int, now_ms: Callable[[], float]
    ) -> None:
        self.loop = loop
        self.max_message = max_message
        self.now_ms = now_ms  # read once per wake-up: every frame of it arrived then
        self.links: dict[int, Link] = {}
        self.buffer = bytearray(READ_BUFFER)
        self.view = memoryview(self.buffer)
        self.wake_ups = 0  # times the loop found links ready (for the bench)
        self._epoll: select.epoll | None = None

    def add(self, link: Link, first: bytes) -> None:
        """Read `link` from now on; `first`: bytes already read past the upgrade response."""
        if self._epoll is None:
            self._epoll = select.epoll()
            self.loop.add_reader(self._epoll.fileno(), self._ready)
        self.links[link.fd] = link
        self._epoll.register(link.fd, select.EPOLLIN | select.EPOLLRDHUP)
        if first:
            self._frames(link, first, self.now_ms())

    def lost(self, link: Link, code: int, reason: str) -> None:
        """The link is over: out of the set, socket closed, listener told (once)."""
        if link.closed:
            return
        link.closed = True
        if self.links.pop(link.fd, None) is not None and self._epoll is not None:
            with contextlib.suppress(OSError, ValueError):
                self._epoll.unregister(link.fd)
        if link.out:
            self.loop.remove_writer(link.fd)
            link.out.clear()
        link.sock.close()
        link.listener.on_closed(code, reason)

    def close(self) -> None:
        """Every link hung up, the epoll set gone."""
        for link in list(self.links.values()):
            self.lost(link, CLOSED_ABNORMALLY, "")
        if self._epoll is not None:
            self.loop.remove_reader(self._epoll.fileno())
            self._epoll.close()
            self._epoll = None

    def _ready(self) -> None:
        epoll = self._epoll
        if epoll is None:
            return
        self.wake_ups += 1
        links, buffer, view = self.links, self.buffer, self.view
        received_ms = self.now_ms()
        for fd, _ in epoll.poll(0, EVENTS_PER_POLL):
            link = links.get(fd)
            if link is None:
                continue
            try:
                size = link.sock.recv_into(buffer)
            except BlockingIOError:
                continue
            except OSError:
                self.lost(link, CLOSED_ABNORMALLY, "")
                continue
            if not size:
                self.lost(link, CLOSED_ABNORMALLY, "")
                continue
            self._frames(link, view[:size].tobytes(), received_ms)

    def _frames(self, link: Link, data: bytes, received_ms: float) -> None:
        """Cut the frames out of what was read; keep a partial one for the next read."""
        if link.pending:
            data = link.pending + data
        end = len(data)
        at = 0
        listener = link.listener
        while end - at >= 2 and not link.closed:
            first, second = data[at], data[at + 1]
            size = second & 0x7F
            start = at + 2
            if size == 126:
                start += 2
                if start > end:
                    break
                size = (data[at + 2] << 8) | data[at + 3]
            elif size == 127:
                start += 8
                if start > end:
                    break
                (size,) = U64.unpack_from(data, at + 2)
            if second & 0x80 or first & 0x70:  # a masked server frame, or reserved bits set
                self._refuse(link, PROTOCOL_ERROR, b"not a server frame")
                return
            if size > self.max_message:
                self._refuse(link, MESSAGE_TOO_BIG, b"message too big")
                return
            stop = start + size
            if stop > end:
                break
            opcode = first & 0x0F
            at = stop
            if first == 0x80 | BINARY:
                listener.on_binary(data, start, stop, received_ms)
            elif opcode in (TEXT, CONTINUATION, BINARY):
                listener.on_frame(opcode, bool(first & 0x80), data[start:stop])
            elif opcode == PING:
                link.send(PONG, data[start:stop])
            elif opcode == CLOSE:
                self._closing(link, data[start:stop])
                return
            elif opcode != PONG:
                self._refuse(link, PROTOCOL_ERROR, b"unknown opcode")
                return
        link.pending = data[at:] if at < end else b""

    def _closing(self, link: Link, payload: bytes) -> None:
        """The server's close frame: echo its code (once), hang up, tell the listener."""
        code = U16.unpack_from(payload)[0] if len(payload) >= 2 else CLOSED_NO_STATUS
        reason = payload[2:].decode(errors="replace")
        if not link.close_sent:
            link.send_close(code if code != CLOSED_NO_STATUS else 1000, payload[2:])
        link.flush()
        self.lost(link, code, reason)

    def _refuse(self, link: Link, code: int, reason: bytes) -> None:
        link.send_close(code, reason)
        self.lost(link, code, reason.decode())


def _upgrade_request(host: str, port: int, path: str, key: bytes) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Key: {key.decode()}\r\n\r\n"
    ).encode()


async def open_link(
    url: str, listener: Listener, poller: Poller, connected: Callable[[Link], None]
) -> Link:
    """Connect to `url` (ws://), upgrade, and hand the socket to `poller`.

    `connected` gets the link before any frame the server sent with its answer is read.
    HandshakeRefused for another status than 101, ConnectionError for a broken answer.
    """
    parts = urlsplit(url)
    if parts.scheme != "ws" or not parts.hostname:
        raise ValueError(f"a lean link speaks ws://host[:port]/path only, not {url!r}")
    host, port = parts.hostname, parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    loop = poller.loop
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await loop.sock_connect(sock, address)
        key = base64.b64encode(os.urandom(16))
        await loop.sock_sendall(sock, _upgrade_request(host, port, path, key))
        answer = b""
        while b"\r\n\r\n" not in answer:
            if len(answer) > MAX_RESPONSE_HEAD:
                raise ConnectionError("the upgrade answer's headers never end")
            chunk = await loop.sock_recv(sock, 4096)
            if not chunk:
                raise ConnectionError("the server closed the connection during the upgrade")
            answer += chunk
        head, first = answer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status_line = lines[0].split(" ", 2)
        if len(status_line) < 2 or not status_line[1].isdigit():
            raise ConnectionError(f"the upgrade answer is not HTTP: {lines[0][:80]!r}")
        status = int(status_line[1])
        if status != 101:
            raise HandshakeRefused(status)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        expected = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()
        if headers.get("sec-websocket-accept") != expected:
            raise ConnectionError("the upgrade answer's Sec-WebSocket-Accept does not match")
    except BaseException:
        sock.close()
        raise
    link = Link(sock, listener, poller)
    connected(link)
    poller.add(link, first)
    return link
