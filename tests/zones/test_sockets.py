"""Frames written straight to a uvicorn websockets-sansio socket are valid websocket
messages, in order with the events that go through ASGI, and only while the socket can
take them."""

import asyncio
import os

import pytest
import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from zones.consumers import Outbox
from zones.sockets import binary_message, direct_binary_writer


class Transport(asyncio.Transport):
    """A transport that keeps what is written and can be paused like a full socket."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closing = False

    def write(self, data) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)


async def accepted_socket():
    """A sansio protocol that has accepted a websocket, and the ASGI send it handed the app."""
    handed = asyncio.get_running_loop().create_future()

    async def app(scope, receive, send):
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        handed.set_result(send)
        await asyncio.sleep(3600)

    config = uvicorn.Config(app, ws="websockets-sansio", ws_per_message_deflate=False)
    config.load()
    protocol = WebSocketsSansIOProtocol(config, ServerState(), {})
    transport = Transport()
    protocol.connection_made(transport)
    client = ClientProtocol(parse_uri("ws://127.0.0.1:8000/ws/"))
    request = client.connect()
    client.send_request(request)
    protocol.data_received(b"".join(client.data_to_send()))
    send = await asyncio.wait_for(handed, 5)
    client.receive_data(bytes(transport.written))
    transport.written.clear()
    (response,) = client.events_received()
    assert isinstance(response, Response) and response.status_code == 101
    return protocol, transport, send, client


def received(client: ClientProtocol, transport: Transport) -> list[Frame]:
    client.receive_data(bytes(transport.written))
    transport.written.clear()
    return list(client.events_received())


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 200_000])
def test_a_binary_message_is_one_final_unmasked_frame(size):
    client = ClientProtocol(parse_uri("ws://127.0.0.1/"), max_size=None, state=State.OPEN)
    data = os.urandom(size)
    client.receive_data(binary_message(data))
    (frame,) = client.events_received()
    assert frame.opcode == Opcode.BINARY and frame.fin and frame.data == data


async def test_frames_go_straight_to_an_open_socket_and_events_keep_their_place():
    protocol, transport, send, client = await accepted_socket()
    outbox = Outbox(send)
    writer = asyncio.create_task(outbox.run())
    try:
        outbox.frame(b"frame 1")
        assert outbox.direct == 1  # written at once, no task in between
        outbox.event('{"type": "booth_entered"}')
        outbox.frame(b"frame 2")  # an event waits: the frame waits behind it
        assert outbox.direct == 1
        await asyncio.sleep(0.05)
        outbox.frame(b"frame 3")
        assert outbox.direct == 2
        frames = received(client, transport)
        assert [(f.opcode, f.data) for f in frames] == [
            (Opcode.BINARY, b"frame 1"),
            (Opcode.TEXT, b'{"type": "booth_entered"}'),
            (Opcode.BINARY, b"frame 2"),
            (Opcode.BINARY, b"frame 3"),
        ]
    finally:
        writer.cancel()


async def test_a_paused_socket_gets_its_newest_frame_once_it_drains():
    protocol, transport, send, client = await accepted_socket()
    outbox = Outbox(send)
    writer = asyncio.create_task(outbox.run())
    try:
        protocol.pause_writing()  # the kernel's buffer is full
        outbox.frame(b"old")
        outbox.frame(b"new")
        await asyncio.sleep(0.05)
        assert outbox.direct == 0 and outbox.dropped == 1 and transport.written == b""
        protocol.resume_writing()
        await asyncio.sleep(0.05)
        assert [f.data for f in received(client, transport)] == [b"new"]
    finally:
        writer.cancel()


async def test_no_frame_goes_before_the_welcome_and_the_newest_follows_it():
    protocol, transport, send, client = await accepted_socket()
    outbox = Outbox(send, held=True)
    writer = asyncio.create_task(outbox.run())
    try:
        outbox.frame(b"old")
        outbox.frame(b"new")
        await asyncio.sleep(0.05)
        assert transport.written == b"" and outbox.direct == 0 and outbox.dropped == 1
        await send({"type": "websocket.send", "text": '{"type": "welcome"}'})
        outbox.release()
        await asyncio.sleep(0.05)
        outbox.frame(b"next")
        assert outbox.direct == 1
        frames = received(client, transport)
        assert [(f.opcode, f.data) for f in frames] == [
            (Opcode.TEXT, b'{"type": "welcome"}'),
            (Opcode.BINARY, b"new"),
            (Opcode.BINARY, b"next"),
        ]
    finally:
        writer.cancel()


async def test_nothing_is_written_straight_after_a_close():
    protocol, transport, send, client = await accepted_socket()
    write = direct_binary_writer(send)
    assert write is not None
    await send({"type": "websocket.close", "code": 4408})
    assert write(b"late") is False
    frames = received(client, transport)
    assert [f.opcode for f in frames] == [Opcode.CLOSE]


async def test_a_closing_transport_takes_nothing_straight():
    protocol, transport, send, client = await accepted_socket()
    write = direct_binary_writer(send)
    transport.closing = True
    assert write(b"late") is False and transport.written == b""


async def test_a_wrapped_send_or_another_server_has_no_direct_writer():
    protocol, transport, send, client = await accepted_socket()

    async def wrapped(message):
        await send(message)

    assert direct_binary_writer(wrapped) is None
    assert direct_binary_writer(print) is None
    protocol.conn.extensions = [object()]  # a negotiated extension would transform frames
    assert direct_binary_writer(send) is None
