"""ASGI servers side by side on the market's frame load: CPU per websocket frame delivered.

    python bench/bench_asgi_servers.py                          1,000 sockets, every server, 3 rounds
    python bench/bench_asgi_servers.py --connections 500 --seconds 20 --rounds 3
    python bench/bench_asgi_servers.py --servers uvicorn-sansio-uvloop,granian-uvloop
    python bench/bench_asgi_servers.py --json /tmp/asgi.json

Needs, besides requirements.txt: granian and wsproto (`pip install granian wsproto`);
picows for the client (as zones/load/lean.py). A server whose package is missing is
skipped with a note.

The question (the 1,000-visitor market on one 2-core machine): the web process must
deliver a frame for at most 30 us of CPU, and the ASGI server's websocket send path is
15-20 us of today's ~75. How much of that depends on the server?

The application (`app` below) is raw ASGI, no Django or Channels: it accepts every
websocket, and ONE broadcast task hands the same 800-byte binary frame to every socket
every 50 ms, as the market's gateway does, through zones/consumers.py's Outbox pattern:
the broadcast only stores the frame in each socket's outbox and sets its asyncio.Event;
each socket's own writer task awaits the server's ASGI `send` (a newer frame replaces
one not yet written, counted as dropped). So the server's cost per frame is the ASGI
`send` call, its framing and the write, plus one task wake-up, the same on every server.

Each server runs in its own process on loopback (1 worker, no access log):

  uvicorn-websockets-uvloop   uvicorn --ws websockets (websockets' legacy protocol)
  uvicorn-websockets-asyncio  the same on the stock asyncio loop
  uvicorn-sansio-uvloop       uvicorn --ws websockets-sansio: what `--ws auto` picks in
                              this uvicorn when websockets is installed, on uvloop, which
                              `--loop auto` picks: what zones/serve.py runs today (BASELINE)
  uvicorn-sansio-asyncio      the same on the stock asyncio loop
  uvicorn-wsproto-uvloop      uvicorn --ws wsproto
  daphne                      daphne (Twisted + autobahn, asyncio reactor)
  granian-uvloop              granian --interface asgi --workers 1 --loop uvloop (Rust I/O)
  floor-uvloop                no real server: this file's own hand-made upgrade, then each
                              `send` is one transport.write of header + payload, on uvloop:
                              the least any Python asyncio server could cost (a reference)

The client is another process: one uvloop event loop with picows sockets (framing in C)
that count frames and payload bytes and answer pings, nothing else. Per run: start the
server, connect --connections sockets (at most 100 handshakes at a time), wait --warmup
seconds, then measure for --seconds. Measured: frames the clients received per second;
CPU seconds (utime + stime from /proc/<pid>/stat, the server process and all its
descendants, all threads) of the server and of the client over the window; from those
the server's and the client's CPU microseconds per frame delivered. CPU, not wall time:
the 2 cores are shared and noisy. Each round runs every server once; the order rotates
from round to round so drifting noise is spread. Per server the table gives the median
and worst (largest) of the rounds, and the median of the per-round ratio of its us/frame
to the baseline's in the same round.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

FRAME = bytes(range(256)) * 3 + bytes(32)  # 800 bytes
TICK_S = 0.050
REPO_ROOT = Path(__file__).resolve().parents[1]
APP = "bench.bench_asgi_servers:app"
BASELINE = "uvicorn-sansio-uvloop"

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]
Receive = Callable[[], Awaitable[Message]]

# --- the application ---------------------------------------------------------------------


class Outbox:
    """One socket's newest frame, written out by the socket's own task (zones/consumers.py)."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._frame: bytes | None = None
        self._wake = asyncio.Event()
        self.dropped = 0

    def frame(self, data: bytes) -> None:
        if self._frame is not None:
            self.dropped += 1
        self._frame = data
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                if self._frame is not None:
                    frame, self._frame = self._frame, None
                    await self._send({"type": "websocket.send", "bytes": frame})
            except Exception:  # the socket is closing: its disconnect tidies up
                return


OUTBOXES: set[Outbox] = set()
BROADCAST: list[asyncio.Task[None]] = []


async def broadcast() -> None:
    """Every 50 ms, the same frame to every socket's outbox (drift-free schedule)."""
    loop = asyncio.get_running_loop()
    due = loop.time()
    while True:
        due += TICK_S
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            due = loop.time()  # overran: skip the missed ticks
        for outbox in OUTBOXES:
            outbox.frame(FRAME)


async def websocket(receive: Receive, send: Send) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    if not BROADCAST:
        BROADCAST.append(asyncio.get_running_loop().create_task(broadcast()))
    outbox = Outbox(send)
    writer = asyncio.get_running_loop().create_task(outbox.run())
    OUTBOXES.add(outbox)
    try:
        while (await receive())["type"] != "websocket.disconnect":
            pass
    finally:
        OUTBOXES.discard(outbox)
        writer.cancel()


async def app(scope: Message, receive: Receive, send: Send) -> None:
    """Raw ASGI: websockets get frames; lifespan is acknowledged; HTTP gets a 404."""
    if scope["type"] == "websocket":
        await websocket(receive, send)
    elif scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    elif scope["type"] == "http":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})


# --- the servers ---------------------------------------------------------------------------


def uvicorn_command(ws: str, loop: str) -> Callable[[int], list[str]]:
    return lambda port: [
        sys.executable,
        "-m",
        "uvicorn",
        APP,
        "--host=127.0.0.1",
        f"--port={port}",
        f"--ws={ws}",
        f"--loop={loop}",
        "--lifespan=on",
        "--no-access-log",
        "--log-level=warning",
    ]


def daphne_command(port: int) -> list[str]:
    return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "-v", "0", APP]


def granian_command(loop: str) -> Callable[[int], list[str]]:
    return lambda port: [
        sys.executable,
        "-m",
        "granian",
        "--interface=asgi",
        "--host=127.0.0.1",
        f"--port={port}",
        "--workers=1",
        f"--loop={loop}",
        "--no-access-log",
        "--log-level=warning",
        APP,
    ]


SERVERS: dict[str, tuple[str, Callable[[int], list[str]]]] = {
    # name: (module that must be importable, command for a port)
    "uvicorn-websockets-uvloop": ("websockets.legacy", uvicorn_command("websockets", "uvloop")),
    "uvicorn-websockets-asyncio": ("websockets.legacy", uvicorn_command("websockets", "asyncio")),
    "uvicorn-sansio-uvloop": ("websockets", uvicorn_command("websockets-sansio", "uvloop")),
    "uvicorn-sansio-asyncio": ("websockets", uvicorn_command("websockets-sansio", "asyncio")),
    "uvicorn-wsproto-uvloop": ("wsproto", uvicorn_command("wsproto", "uvloop")),
    "daphne": ("daphne", daphne_command),
    "granian-uvloop": ("granian", granian_command("uvloop")),
    "floor-uvloop": ("uvloop", lambda port: [sys.executable, __file__, "--floor", str(port)]),
}


def installed(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("uvicorn", "websockets", "wsproto", "uvloop", "httptools", "daphne"):
        with contextlib.suppress(PackageNotFoundError):
            found[package] = version(package)
    for package in ("twisted", "autobahn", "granian", "picows"):
        with contextlib.suppress(PackageNotFoundError):
            found[package] = version(package)
    return found


# --- the floor: no server to speak of ---------------------------------------------------------

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def floor_main(port: int) -> None:
    """The least a Python asyncio server can do: a hand-made upgrade, then `send` is one
    transport.write of a 4-byte header and the payload. The same app and Outbox run on
    it, so what the real servers cost above this is their websocket send path."""
    import base64
    import hashlib
    import struct

    import uvloop

    class Floor(asyncio.Protocol):
        def __init__(self) -> None:
            self.head = b""
            self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.upgraded = False

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: Any = transport  # uvloop's transports are no asyncio.Transport

        def data_received(self, data: bytes) -> None:
            if self.upgraded:
                return  # the client sends nothing the bench needs
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            self.upgraded = True
            key = b""
            for line in self.head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"sec-websocket-key":
                    key = value.strip()
            self.accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
            asyncio.get_running_loop().create_task(
                app({"type": "websocket"}, self.receive, self.send)
            )

        def connection_lost(self, exc: Exception | None) -> None:
            if not self.closed.done():
                self.closed.set_result(None)

        async def receive(self) -> Message:
            if not hasattr(self, "connected"):
                self.connected = True
                return {"type": "websocket.connect"}
            await self.closed
            return {"type": "websocket.disconnect", "code": 1006}

        async def send(self, message: Message) -> None:
            if message["type"] == "websocket.send":
                data = message["bytes"]
                size = len(data)
                if size < 126:
                    header = struct.pack("!BB", 0x82, size)
                else:
                    header = struct.pack("!BBH", 0x82, 126, size)
                self.transport.write(header + data)
            elif message["type"] == "websocket.accept":
                self.transport.write(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + self.accept + b"\r\n\r\n"
                )

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Floor, "127.0.0.1", port)
        await server.serve_forever()

    uvloop.run(main())


# --- CPU from /proc --------------------------------------------------------------------------

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float]:
    """(parent pid, utime + stime in seconds) of one process, all its threads."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS


def tree_cpu(root: int) -> float:
    """CPU seconds of `root` and every live descendant (granian runs its worker as a child)."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(entry)], cpu[int(entry)] = _stat(int(entry))
    tree = {root}
    grew = True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        grew = bool(more)
        tree |= more
    return sum(cpu.get(pid, 0.0) for pid in tree)


# --- the client --------------------------------------------------------------------------------


def client_main(port: int, connections: int, warmup: float, seconds: float) -> None:
    """Connect, then print `start` and `end` lines: wall, frames, bytes, own CPU, sockets."""
    import uvloop
    from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

    binary = WSMsgType.BINARY
    counts = [0, 0]  # frames, payload bytes
    open_sockets = [0]

    class Counter(WSListener):  # type: ignore[misc]  # picows ships no stubs for subclassing
        def on_ws_connected(self, transport: WSTransport) -> None:
            open_sockets[0] += 1

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type == binary:
                counts[0] += 1
                counts[1] += frame.payload_size

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            open_sockets[0] -= 1

    def line(tag: str) -> None:
        cpu = os.times()
        print(
            tag,
            time.monotonic(),
            counts[0],
            counts[1],
            cpu.user + cpu.system,
            open_sockets[0],
            flush=True,
        )

    async def main() -> None:
        url = f"ws://127.0.0.1:{port}/"
        gate = asyncio.Semaphore(100)

        async def one() -> Any:
            async with gate:
                return await ws_connect(Counter, url, websocket_handshake_timeout=20.0)

        results = await asyncio.gather(*(one() for _ in range(connections)), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            print("failed", len(failed), repr(failed[0])[:200], file=sys.stderr, flush=True)
        await asyncio.sleep(warmup)
        line("start")
        await asyncio.sleep(seconds)
        line("end")

    uvloop.run(main())
    os._exit(0)  # no orderly close of 1,000 sockets: the server is killed next


# --- the runs -------------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_listening(port: int, server: subprocess.Popen[bytes], timeout: float) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited with {server.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {timeout} s")


def stop(process: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """SIGTERM the process group it leads, SIGKILL after 5 s."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def read_line(stream: Any, deadline: float) -> str:
    import selectors

    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(max(0.0, deadline - time.monotonic())):
            raise TimeoutError("the client said nothing in time")
    text: str = stream.readline()
    if not text:
        raise RuntimeError("the client exited early")
    return text


def run_one(name: str, connections: int, warmup: float, seconds: float) -> dict[str, Any]:
    """One server, one client, one measured window."""
    port = free_port()
    command = SERVERS[name][1](port)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
    server = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL
    )
    client = None
    try:
        wait_listening(port, server, timeout=20)
        time.sleep(0.5)
        client = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--client",
                str(port),
                str(connections),
                str(warmup),
                str(seconds),
            ],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60 + warmup
        start = read_line(client.stdout, deadline).split()
        server_start = tree_cpu(server.pid)
        end = read_line(client.stdout, time.monotonic() + seconds + 15).split()
        server_end = tree_cpu(server.pid)
        if start[0] != "start" or end[0] != "end":
            raise RuntimeError(f"the client said {start} and {end}")
        wall = float(end[1]) - float(start[1])
        frames = int(end[2]) - int(start[2])
        payload = int(end[3]) - int(start[3])
        client_cpu = float(end[4]) - float(start[4])
        server_cpu = server_end - server_start
        return {
            "server": name,
            "connections": connections,
            "open": min(int(start[5]), int(end[5])),
            "wall_s": wall,
            "frames": frames,
            "frames_per_s": frames / wall,
            "asked_per_s": connections / TICK_S,
            "payload_ok": payload == frames * len(FRAME),
            "server_cpu_s": server_cpu,
            "server_cores": server_cpu / wall,
            "server_us_per_frame": 1e6 * server_cpu / frames if frames else float("nan"),
            "client_cpu_s": client_cpu,
            "client_us_per_frame": 1e6 * client_cpu / frames if frames else float("nan"),
        }
    finally:
        if client is not None:
            stop(client)
        stop(server)


def median_worst(values: list[float], digits: int = 1) -> str:
    """The median and, in brackets, the worst (largest) of the rounds."""
    return f"{statistics.median(values):.{digits}f} ({max(values):.{digits}f})"


def table(results: list[dict[str, Any]], names: list[str]) -> str:
    """Per server and socket count: medians, worst in brackets, ratio to the baseline."""
    rows = [
        "| server | sockets | frames/s delivered (asked) | server µs/frame | server cores "
        "| client µs/frame | ratio to baseline |",
        "|---|---|---|---|---|---|---|",
    ]
    for connections in sorted({r["connections"] for r in results}):
        mine = [r for r in results if r["connections"] == connections]
        baseline = {r["round"]: r["server_us_per_frame"] for r in mine if r["server"] == BASELINE}
        for name in names:
            runs = [r for r in mine if r["server"] == name]
            if not runs:
                continue
            ratios = [
                r["server_us_per_frame"] / baseline[r["round"]]
                for r in runs
                if r["round"] in baseline
            ]
            ratio = f"{statistics.median(ratios):.2f}" if ratios else "–"
            delivered = statistics.median(r["frames_per_s"] for r in runs)
            rows.append(
                f"| {name} | {connections} ({min(r['open'] for r in runs)} open) "
                f"| {delivered:,.0f} (min {min(r['frames_per_s'] for r in runs):,.0f}) "
                f"of {runs[0]['asked_per_s']:,.0f} "
                f"| {median_worst([r['server_us_per_frame'] for r in runs])} "
                f"| {median_worst([r['server_cores'] for r in runs], 2)} "
                f"| {median_worst([r['client_us_per_frame'] for r in runs])} "
                f"| {ratio} |"
            )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, nargs="+", default=[1000])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="after connecting, unmeasured")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated names")
    parser.add_argument("--json", type=Path, help="write every run's numbers here")
    parser.add_argument("--client", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--floor", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        port, connections, warmup, seconds = args.client
        client_main(int(port), int(connections), float(warmup), float(seconds))
        return
    if args.floor:
        floor_main(args.floor)
        return

    sys.path.insert(0, str(REPO_ROOT))
    from bench.machine import machine_info

    found = versions()
    machine_info(servers=", ".join(f"{k} {v}" for k, v in found.items()))
    names = []
    for name in args.servers.split(","):
        if name not in SERVERS:
            parser.error(f"no server {name!r}; there are {', '.join(SERVERS)}")
        if installed(SERVERS[name][0]):
            names.append(name)
        else:
            print(f"skipped {name}: {SERVERS[name][0]} is not installed")
    results: list[dict[str, Any]] = []
    for connections in args.connections:
        for round_ in range(args.rounds):
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                try:
                    result = run_one(name, connections, args.warmup, args.seconds)
                except (RuntimeError, TimeoutError, OSError) as error:
                    print(f"round {round_ + 1} {name} {connections}: FAILED {error}", flush=True)
                    continue
                result["round"] = round_
                results.append(result)
                print(
                    f"round {round_ + 1} {name:<27} {connections:>5} sockets "
                    f"({result['open']} open): {result['frames_per_s']:8,.0f} frames/s, "
                    f"server {result['server_us_per_frame']:5.1f} µs/frame "
                    f"({result['server_cores']:.2f} cores), "
                    f"client {result['client_us_per_frame']:4.1f} µs/frame",
                    flush=True,
                )
    print()
    print(f"median (worst) of {args.rounds} rounds; baseline {BASELINE} (what zones/serve.py runs)")
    print(table(results, names))
    if args.json:
        args.json.write_text(json.dumps({"versions": found, "runs": results}, indent=1))


if __name__ == "__main__":
    main()
