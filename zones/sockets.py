"""A visitor's interest frames written straight to its socket, when the server allows it.

Every tick the gateway has one binary message for each of a thousand visitors. Through
ASGI, each one wakes the socket's writer task, builds a message dict, passes Channels
and uvicorn, and is framed by the websocket library: several microseconds of Python per
frame before the kernel's write. Under uvicorn's `websockets-sansio` protocol (the one the
market pins, zones/serve.py) a server-to-client binary message is a two-to-ten-byte
header and the bytes as they are (no mask, and no extension: the market turns
per-message deflate off), so `direct_binary_writer` writes it in one transport write,
from the gateway's own loop over the visitors.

It writes only while the socket is open, its handshake done, no close sent or received,
and the transport not paused by flow control; otherwise it declines and the caller
queues the frame for the socket's task, which waits for the socket as ASGI does. Under
any other server, or an extension, there is no direct writer and every frame takes the
ASGI path.
"""

import struct
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

OPEN = State.OPEN
OPCODE_BINARY_FIN = 0x82
SHORT = struct.Struct("!BBH")
LONG = struct.Struct("!BBQ")

BinaryWriter = Callable[
    [bytes | memoryview], bool
]  # True: written; False: declined, send it through ASGI


def binary_message(data: bytes | memoryview) -> bytes:
    """`data` as one unmasked, final binary websocket frame (RFC 6455 §5.2)."""
    size = len(data)
    if size < 126:
        return bytes((OPCODE_BINARY_FIN, size)) + data
    if size < 65536:
        return SHORT.pack(OPCODE_BINARY_FIN, 126, size) + data
    return LONG.pack(OPCODE_BINARY_FIN, 127, size) + data


def direct_binary_writer(send: Callable[..., Any]) -> BinaryWriter | None:
    """A writer of binary messages to the socket behind the ASGI `send`, or None.

    None unless `send` is uvicorn's websockets-sansio `send` itself (not wrapped by a
    middleware) on an accepted socket without extensions.
    """
    protocol = getattr(send, "__self__", None)
    if type(protocol) is not WebSocketsSansIOProtocol:
        return None
    if getattr(send, "__func__", None) is not WebSocketsSansIOProtocol.send:
        return None
    if not protocol.handshake_complete or protocol.conn.extensions:
        return None
    transport, writable, conn = protocol.transport, protocol.writable, protocol.conn

    def write(data: bytes | memoryview) -> bool:
        if (
            conn.state is not OPEN
            or protocol.close_sent
            or protocol.disconnected
            or not writable.is_set()
            or transport.is_closing()
        ):
            return False
        transport.write(binary_message(data))
        return True

    return write
