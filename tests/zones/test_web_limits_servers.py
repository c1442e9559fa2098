"""The web limits in the servers that run the site: the main job, and uvicorn and daphne
started by hand with the flags docs/runbook.md gives (zones/web_limits.py).

Each server serves the landing page's summary socket, which stays open, from the same
embedded database. A websocket message whose frame header announces more than the
visitor limit closes the socket with 1009 while most of it was never sent: the server
refused it from the length field instead of reading it whole. A connection that sends
nothing is answered 408 and closed; one address beyond its cap is told
`too_many_connections` and closed with 4429 while another address is served.
"""

import asyncio
import base64
import os
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.live import free_port, live_market
from tests.subprocesses import REPO_ROOT, embedded_environment
from zones.web_limits import HEADER_TIMEOUT_S, daphne_flags, uvicorn_flags

WAIT_S = 20.0  # generous: how long a test waits for what must happen
PER_ADDRESS = 3
SUMMARY_PATH = "/ws/markets/1/summary/"


@dataclass
class Server:
    name: str
    port: int


def wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    async def probe() -> None:
        for _ in range(300):
            assert process.poll() is None, log.read_text()
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            writer.close()
            return
        raise AssertionError(f"nothing listens on {port}:\n{log.read_text()}")

    asyncio.run(probe())


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    data_dir = tmp_path_factory.mktemp("web-limits")
    overrides = {"FABRIC_MAX_CONNECTIONS_PER_ADDRESS": str(PER_ADDRESS)}
    with live_market(data_dir, **overrides) as market:
        env = embedded_environment(data_dir, **overrides)
        started = []
        by_hand = {
            "uvicorn": lambda port: [
                sys.executable,
                "-m",
                "uvicorn",
                "fabric_site.asgi:application",
                "--port",
                str(port),
                *uvicorn_flags(),
            ],
            "daphne": lambda port: [
                sys.executable,
                "-m",
                "daphne",
                "-p",
                str(port),
                *daphne_flags(),
                "fabric_site.asgi:application",
            ],
        }
        found = {"main job": Server("main job", int(market.address.rsplit(":", 1)[1]))}
        try:
            for name, argv in by_hand.items():
                port = free_port()
                log = data_dir / f"{name}.log"
                with log.open("ab") as out:
                    process = subprocess.Popen(
                        argv(port), cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
                    )
                started.append(process)
                wait_listening(port, process, log)
                found[name] = Server(name, port)
            yield found
        finally:
            for process in started:
                process.terminate()
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


# --- a websocket client that can lie about a message's length -------------------------------


@dataclass
class Socket:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


async def ws_open(port: int, source: str = "127.0.0.1") -> Socket:
    """An accepted websocket on the summary socket, from `source`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET {SUMMARY_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Origin: http://127.0.0.1:{port}\r\n\r\n".encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
    assert head.startswith(b"HTTP/1.1 101 "), head
    return Socket(reader, writer)


async def ws_frame(sock: Socket) -> tuple[int, bytes]:
    """(opcode, payload) of the server's next frame."""
    first, second = await asyncio.wait_for(sock.reader.readexactly(2), WAIT_S)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await sock.reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await sock.reader.readexactly(8))
    return first & 0x0F, await asyncio.wait_for(sock.reader.readexactly(length), WAIT_S)


async def ws_close_code(sock: Socket) -> tuple[int, list[bytes]]:
    """The close code the server sends, and the text frames before it."""
    texts = []
    while True:
        opcode, payload = await ws_frame(sock)
        if opcode == 0x8:
            return struct.unpack("!H", payload[:2])[0], texts
        if opcode == 0x1:
            texts.append(payload)


def frame_header(length: int) -> bytes:
    """A masked, final, binary frame header announcing `length` bytes of payload."""
    return b"\x82\xff" + struct.pack("!Q", length) + os.urandom(4)


# --- the tests ---------------------------------------------------------------------------


# Daphne (autobahn) drops the connection after its close frame without waiting, and the
# bytes the client had sent meanwhile make the kernel reset it: either way it was cut off.
@pytest.mark.parametrize(
    ("name", "ends"), [("main job", {1009}), ("uvicorn", {1009}), ("daphne", {1009, "reset"})]
)
def test_an_oversized_message_closes_the_socket_before_it_is_read(servers, name, ends):
    announced, sent = 64 * 1024, 8 * 1024  # above the 4 KiB limit, below every default

    async def scenario() -> int | str:
        sock = await ws_open(servers[name].port)
        sock.writer.write(frame_header(announced) + os.urandom(sent))
        await sock.writer.drain()
        try:
            code, _ = await ws_close_code(sock)  # the rest of the message is never sent
        except ConnectionResetError:
            return "reset"
        finally:
            sock.writer.close()
        return code

    assert asyncio.run(scenario()) in ends


@pytest.mark.parametrize("name", ["main job", "uvicorn"])
def test_a_connection_that_sends_nothing_is_closed(servers, name):
    async def scenario() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", servers[name].port)
        answer = await asyncio.wait_for(reader.read(), HEADER_TIMEOUT_S + WAIT_S)
        writer.close()
        return answer

    assert asyncio.run(scenario()).startswith(b"HTTP/1.1 408 ")


def test_an_address_beyond_its_cap_is_told_and_closed_while_another_is_served(servers):
    port = servers["main job"].port

    async def scenario() -> None:
        held = [await ws_open(port) for _ in range(PER_ADDRESS)]
        for sock in held:
            opcode, _ = await ws_frame(sock)  # the summary's snapshot: the socket is live
            assert opcode == 0x1

        refused = await ws_open(port)
        code, texts = await ws_close_code(refused)
        assert code == 4429
        assert b'"too_many_connections"' in texts[-1]

        other = await ws_open(port, source="127.0.0.2")
        opcode, _ = await ws_frame(other)
        assert opcode == 0x1  # another address is served

        held[0].writer.close()  # one goes: there is room again, once the server has seen it
        deadline = time.monotonic() + 15.0
        while True:
            again = await ws_open(port)
            opcode, payload = await ws_frame(again)
            served = opcode == 0x1 and b'"too_many_connections"' not in payload
            if served or time.monotonic() > deadline:
                break
            again.writer.close()
            await asyncio.sleep(0.2)
        assert served, payload
        for sock in [*held[1:], other, again]:
            sock.writer.close()

    asyncio.run(scenario())


def test_the_runbook_starts_hand_made_web_processes_with_the_limits():
    runbook = (REPO_ROOT / "docs" / "runbook.md").read_text()
    commands = [line for line in runbook.splitlines() if "fabric_site.asgi:application" in line]
    uvicorn_lines = [line for line in commands if line.lstrip().startswith(".venv/bin/uvicorn")]
    daphne_lines = [line for line in commands if line.lstrip().startswith(".venv/bin/daphne")]

    assert uvicorn_lines and daphne_lines
    for line in uvicorn_lines:
        assert " ".join(uvicorn_flags()) in line
    for line in daphne_lines:
        assert " ".join(daphne_flags()) in line
