"""The harness's websocket links: frames cut from reads however the bytes are split, every
control frame handled, bad server frames refused, sends masked and never lost to a full
socket, and the upgrade checked."""

import asyncio
import base64
import hashlib
import re
import socket
import struct

import pytest

from zones.load.wslink import (
    BINARY,
    CLOSE,
    CLOSED_ABNORMALLY,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    HandshakeRefused,
    Link,
    Poller,
    client_frame,
    open_link,
)

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def server_frame(opcode: int, payload: bytes, fin: bool = True, masked: bool = False) -> bytes:
    head = (0x80 if fin else 0) | opcode
    mask = 0x80 if masked else 0
    if len(payload) < 126:
        header = bytes((head, mask | len(payload)))
    elif len(payload) < 1 << 16:
        header = bytes((head, mask | 126)) + struct.pack("!H", len(payload))
    else:
        header = bytes((head, mask | 127)) + struct.pack("!Q", len(payload))
    return header + (b"\0\0\0\0" if masked else b"") + payload


def unmask(frame: bytes) -> tuple[int, bool, bytes, int]:
    """(opcode, fin, payload, bytes used) of one masked client frame."""
    first, second = frame[0], frame[1]
    assert second & 0x80, "a client frame is masked"
    size, at = second & 0x7F, 2
    if size == 126:
        (size,), at = struct.unpack_from("!H", frame, 2), 4
    elif size == 127:
        (size,), at = struct.unpack_from("!Q", frame, 2), 10
    key = frame[at : at + 4]
    body = frame[at + 4 : at + 4 + size]
    return (
        first & 0x0F,
        bool(first & 0x80),
        bytes(b ^ key[i % 4] for i, b in enumerate(body)),
        (at + 4 + size),
    )


class Heard:
    """A listener that keeps what it was told."""

    def __init__(self) -> None:
        self.binary: list[tuple[bytes, float]] = []
        self.frames: list[tuple[int, bool, bytes]] = []
        self.closed: list[tuple[int, str]] = []

    def on_binary(self, data: bytes, start: int, stop: int, received_ms: float) -> None:
        self.binary.append((data[start:stop], received_ms))

    def on_frame(self, opcode: int, fin: bool, payload: bytes) -> None:
        self.frames.append((opcode, fin, payload))

    def on_closed(self, code: int, reason: str) -> None:
        self.closed.append((code, reason))


async def linked(max_message: int = 1 << 20) -> tuple[Link, socket.socket, Heard, Poller]:
    """A link on one end of a socket pair (the other end is the server's)."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    heard = Heard()
    poller = Poller(asyncio.get_running_loop(), max_message, lambda: 42.0)
    link = Link(ours, heard, poller)
    poller.add(link, b"")
    return link, theirs, heard, poller


async def settle(until, timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not until():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)


def received(theirs: socket.socket) -> bytes:
    theirs.setblocking(False)
    data = b""
    try:
        while chunk := theirs.recv(1 << 20):
            data += chunk
    except BlockingIOError:
        pass
    return data


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536, 70000])
def test_client_frames_are_masked_and_carry_the_payload(size):
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    frame = client_frame(BINARY, payload)
    opcode, fin, body, used = unmask(frame)
    assert (opcode, fin, body, used) == (BINARY, True, payload, len(frame))


async def test_frames_split_anywhere_across_reads_come_whole_and_in_order():
    messages = [
        server_frame(BINARY, b"a" * 10),
        server_frame(TEXT, b'{"type": "x"}'),
        server_frame(BINARY, bytes(300)),  # a 16-bit length
        server_frame(BINARY, b"b" * 70000),  # a 64-bit length
        server_frame(BINARY, b"part one ", fin=False),
        server_frame(CONTINUATION, b"and two"),
    ]
    stream = b"".join(messages)
    for cut in (1, 2, 3, 9, 127, 4096):
        link, theirs, heard, poller = await linked()
        for at in range(0, len(stream), cut):
            theirs.sendall(stream[at : at + cut])
            if at % (cut * 64) == 0:
                await asyncio.sleep(0)
        await settle(lambda heard=heard: len(heard.binary) == 3 and len(heard.frames) == 3)
        assert [b for b, _ in heard.binary] == [b"a" * 10, bytes(300), b"b" * 70000]
        assert {ms for _, ms in heard.binary} == {42.0}  # the poller's clock, once a wake-up
        assert heard.frames == [
            (TEXT, True, b'{"type": "x"}'),
            (BINARY, False, b"part one "),
            (CONTINUATION, True, b"and two"),
        ]
        assert not heard.closed and not link.closed
        poller.close()
        theirs.close()


async def test_a_ping_is_answered_with_its_payload_and_a_pong_is_ignored():
    link, theirs, heard, poller = await linked()
    theirs.sendall(server_frame(PING, b"are you there") + server_frame(PONG, b"x"))
    theirs.sendall(server_frame(BINARY, b"after"))
    await settle(lambda: heard.binary)
    opcode, fin, body, _ = unmask(received(theirs))
    assert (opcode, fin, body) == (PONG, True, b"are you there")
    assert not heard.frames and not heard.closed
    poller.close()
    theirs.close()


async def test_the_servers_close_is_echoed_once_and_its_code_kept():
    link, theirs, heard, poller = await linked()
    theirs.sendall(server_frame(CLOSE, struct.pack("!H", 4409) + b"a newer socket took over"))
    await settle(lambda: heard.closed)
    assert heard.closed == [(4409, "a newer socket took over")]
    opcode, _, body, _ = unmask(received(theirs))
    assert (opcode, body[:2]) == (CLOSE, struct.pack("!H", 4409))
    assert link.closed and link.is_close_frame_sent
    link.send(BINARY, b"too late")  # nothing, no error
    link.disconnect()  # nothing more to say
    assert heard.closed == [(4409, "a newer socket took over")]
    poller.close()
    theirs.close()


async def test_a_close_without_a_code_is_1005_and_a_hang_up_is_1006():
    link, theirs, heard, poller = await linked()
    theirs.sendall(server_frame(CLOSE, b""))
    await settle(lambda: heard.closed)
    assert heard.closed == [(1005, "")]
    link, theirs2, heard2, poller2 = await linked()
    theirs2.close()  # no close frame
    await settle(lambda: heard2.closed)
    assert heard2.closed == [(CLOSED_ABNORMALLY, "")]
    for p in (poller, poller2):
        p.close()
    theirs.close()


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (server_frame(BINARY, b"masked", masked=True), 1002),
        (bytes((0x80 | 0x40 | BINARY, 1)) + b"x", 1002),  # a reserved bit
        (server_frame(0x3, b"?"), 1002),  # an unknown opcode
        (server_frame(BINARY, b"z" * 2000), 1009),  # above max_message
    ],
    ids=["masked", "reserved-bit", "unknown-opcode", "too-big"],
)
async def test_a_frame_no_server_may_send_closes_the_link_with_the_reason(bad, code):
    link, theirs, heard, poller = await linked(max_message=1000)
    theirs.sendall(server_frame(BINARY, b"fine") + bad + server_frame(BINARY, b"never read"))
    await settle(lambda: heard.closed)
    assert [b for b, _ in heard.binary] == [b"fine"]
    assert heard.closed[0][0] == code and len(heard.closed) == 1
    opcode, _, body, _ = unmask(received(theirs))
    assert (opcode, struct.unpack("!H", body[:2])[0]) == (CLOSE, code)
    poller.close()
    theirs.close()


async def test_sends_a_full_socket_cannot_take_wait_and_go_in_order():
    link, theirs, heard, poller = await linked()
    link.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    payloads = [struct.pack("<I", i) * 256 for i in range(400)]  # 1 KiB each, 400 KiB
    for payload in payloads:
        link.send(BINARY, payload)
    assert link.out, "the socket took everything: the test did not fill it"
    data = b""
    theirs.setblocking(False)
    while len(data) < 400 * (1024 + 8):
        try:
            data += theirs.recv(65536)
        except BlockingIOError:
            await asyncio.sleep(0.001)
    got = []
    while data:
        _, _, body, used = unmask(data)
        got.append(body)
        data = data[used:]
    assert got == payloads and not link.out
    poller.close()
    theirs.close()


async def upgrade_server(answer):
    """A server that answers the upgrade request with answer(request head)."""

    async def serve(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        writer.write(answer(head))
        await writer.drain()
        await asyncio.sleep(0.5)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def accepting(head: bytes) -> bytes:
    key = re.search(rb"(?i)sec-websocket-key: *(\S+)", head)[1]
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n" + server_frame(TEXT, b"hello")
    )


async def test_the_upgrade_is_checked_and_a_frame_sent_with_it_is_read():
    loop = asyncio.get_running_loop()
    poller = Poller(loop, 1 << 20, lambda: 1.0)
    server, port = await upgrade_server(accepting)
    heard = Heard()
    links = []
    link = await open_link(f"ws://127.0.0.1:{port}/ws/1/?ticket=t", heard, poller, links.append)
    assert links == [link]
    await settle(lambda: heard.frames)
    assert heard.frames == [(TEXT, True, b"hello")]
    await settle(lambda: heard.closed)  # the server hangs up: 1006
    assert heard.closed == [(CLOSED_ABNORMALLY, "")]
    server.close()

    refused, port = await upgrade_server(lambda head: b"HTTP/1.1 403 Forbidden\r\n\r\n")
    with pytest.raises(HandshakeRefused, match="HTTP 403"):
        await open_link(f"ws://127.0.0.1:{port}/ws/1/", Heard(), poller, links.append)
    refused.close()

    def wrong_accept(head: bytes) -> bytes:
        return b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: nope\r\n\r\n"

    forged, port = await upgrade_server(wrong_accept)
    with pytest.raises(ConnectionError, match="Sec-WebSocket-Accept"):
        await open_link(f"ws://127.0.0.1:{port}/ws/1/", Heard(), poller, links.append)
    forged.close()

    garbled, port = await upgrade_server(lambda head: b"SSH-2.0-nope\r\n\r\n")
    with pytest.raises(ConnectionError, match="not HTTP"):
        await open_link(f"ws://127.0.0.1:{port}/ws/1/", Heard(), poller, links.append)
    garbled.close()
    with pytest.raises(ValueError, match=r"ws://host\[:port\]/path only"):
        await open_link("wss://127.0.0.1:1/ws/1/", Heard(), poller, links.append)
    assert len(links) == 1
    poller.close()
