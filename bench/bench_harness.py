"""The load harness's cost per received frame: the SDK's visitor, the lean ones, the floor.

    python bench/bench_harness.py                      300 visitors, 20 frames/s each, 3 repeats
    python bench/bench_harness.py --visitors 1000 --seconds 10 --json /tmp/harness.json
    python bench/bench_harness.py --group 2     frames trickle out, 2 sockets at a time

`manage.py loadtest` runs on the machine it measures, so its CPU per frame decides how much
of a small machine the market keeps. This bench takes the market out of the picture: a
synthetic frame source in a subprocess of its own (loopback only) answers join-ticket
POSTs and visitor sockets as docs/protocol.md says, welcomes each visitor, then sends every
socket `--rate` interest frames a second, valid to the header and the row count, carrying
the visitor's own row (so the own-row search happens as in a real run): a near frame of
NEAR_ROWS rows, every FAR_EVERY-th a far frame of FAR_ROWS rows (flag FRAME_FAR_ROWS).
A tick's frames go out all at once (one client wake-up reads many), or with --group N in
groups of N sockets spread over half the tick, as a busy market server trickles them (a
wake-up reads about N): what a frame costs a client depends much on that.

For each repeat, each client in turn (the order alternates from one repeat to the next, so
drifting load on the shared machine hits both), in a fresh process on one uvloop loop:

  * sdk:  zones.client.visitor.Visitor.connect(..., decode="header"), the harness's
          visitors until 2026-12 (websockets, one reader task per socket);
  * lean: zones.load.lean.LeanFleet.connect, the harness's visitors from 2026-12-03 to
          2026-12-06 (picows, header-only, one clock read per loop wake-up; `loadtest
          --reader picows`);
  * compiled: LeanFleet(compiled=True), the harness's visitors since: the same visitors,
          their sockets read by one compiled thread (zones/load/reader.py: paced wake-ups,
          edge-triggered epoll, frames dated by the kernel's receive timestamps); its
          "clock reads" are the reader's wake-ups;
  * floor: the least a client woken by whatever came can do: the same sockets (joined
          with the lean fleet's tickets, upgraded by hand) read by a bare level-triggered
          epoll loop that only counts the frames' headers: no event loop, no timestamps,
          no payload looked at. Its system time is the kernel's cost of receiving a frame
          over loopback TCP at that many wake-ups; the compiled client goes below it by
          waking less often (at most every 5 ms) and polling edge-triggered.

The client joins `--visitors` visitors, lets --warmup seconds pass, then measures its own
user + system CPU (os.times) and the frames its visitors counted over --seconds. Printed
per client: µs of CPU per received frame (median over the repeats) and frames/s received
against the rate sent; then the sdk/lean ratio. The frame source's own CPU is printed too:
a source that cannot keep up would show as frames/s below the rate. Every process is
bounded in time (SOURCE_LIFETIME_S, the client's timeout) and listens on 127.0.0.1 only.
"""

import argparse
import asyncio
import base64
import gc
import hashlib
import json
import math
import os
import re
import select
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

if __package__ in (None, ""):  # run as a script: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import uvloop

from bench.machine import machine_info
from bench.processes import BenchError, free_port
from zones.core.constants import MARKET_SIZE_M
from zones.core.ranges import floor_ranges
from zones.core.wire import FRAME_ROW_DTYPE, frame_encode

NEAR_ROWS = 43  # rows of a crowd visitor's near frame in a 300-visitor loadtest run
FAR_ROWS = 96  # a far frame's rows (docs/protocol.md, level of detail)
FAR_EVERY = 4
ENTITY_BASE = 1 << 41
TICK_MS_AT = 8  # tick_ms in the interest frame header
SOURCE_LIFETIME_S = 600.0  # a frame source left behind ends itself after this
CLIENT_TIMEOUT_S = 300.0
JOIN_CONCURRENCY = 32
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CLIENTS = ("sdk", "lean", "compiled", "floor")


# --- the frame source (a subprocess) --------------------------------------------------------


def ws_header(opcode: int, size: int) -> bytes:
    """An unmasked server frame header for a payload of `size` bytes."""
    if size < 126:
        return bytes((0x80 | opcode, size))
    if size < 1 << 16:
        return bytes((0x80 | opcode, 126)) + struct.pack("!H", size)
    return bytes((0x80 | opcode, 127)) + struct.pack("!Q", size)


def frame_templates(entity: int, rng: np.random.Generator) -> list[bytearray]:
    """The socket frames (websocket header + interest frame) one visitor receives, in turn."""
    templates = []
    for index in range(FAR_EVERY):
        far = index == 0
        rows = np.zeros(FAR_ROWS if far else NEAR_ROWS, FRAME_ROW_DTYPE)
        rows["id"] = rng.integers(1, 1 << 40, rows.size)
        rows["id"][rng.integers(rows.size)] = entity
        rows["pos"] = rng.integers(100, 12_000, (rows.size, 3))
        rows["flags"] = 0x101
        payload = frame_encode(rows, np.zeros(0), ack_seq=0, tick_ms=0, far=far)
        templates.append(bytearray(ws_header(0x2, len(payload)) + payload))
    return templates


class FrameSource:
    """Join tickets over keep-alive HTTP and visitor sockets on one loopback port."""

    def __init__(self, rate: float, group: int) -> None:
        self.rate, self.group = rate, group
        self.sockets: dict[int, tuple[asyncio.StreamWriter, list[bytearray]]] = {}
        self.next_entity = ENTITY_BASE
        self.rng = np.random.default_rng(7)
        ranges = floor_ranges(1)
        self.booth = {"zone": 0, "name": "Bench", "colour": "#808080"}
        self.layout: dict[str, Any] = {
            "version": 1,
            "bounds": [[0.0, 0.0, 0.0], [float(v) for v in MARKET_SIZE_M]],
            "starts": [int(s) for s in ranges.starts],
            "booths": [self.booth],
        }

    async def serve(self, port: int) -> None:
        server = await asyncio.start_server(self.connection, "127.0.0.1", port)
        ticker = asyncio.create_task(self.tick())
        print("ready", flush=True)
        async with server:
            await asyncio.sleep(SOURCE_LIFETIME_S)
        ticker.cancel()

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if head.startswith(b"POST "):
                    await self.join(head, reader, writer)
                    continue
                await self.visit(head, reader, writer)
                return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def join(
        self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        length = re.search(rb"(?i)content-length:\s*(\d+)", head)
        await reader.readexactly(int(length[1]) if length else 0)
        self.next_entity += 1
        ticket = f"bench{self.next_entity}"
        body = json.dumps(
            {"ticket": ticket, "expires_in": 10, "entity": self.next_entity, "ws": "/ws/1/"}
        ).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()

    async def visit(
        self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        key = re.search(rb"(?i)sec-websocket-key:\s*(\S+)", head)
        ticket = re.search(rb"ticket=bench(\d+)", head)
        if key is None or ticket is None:
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return
        accept = base64.b64encode(hashlib.sha1(key[1] + WS_GUID).digest())
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        entity = int(ticket[1])
        welcome = json.dumps(
            {
                "type": "welcome",
                "protocol": 1,
                "entity": entity,
                "zone": 0,
                "booth": self.booth,
                "tick_ms": time.time_ns() // 1_000_000,
                "resumed": False,
                "last_seq": 0,
                "resume": "r",
                "layout": self.layout,
                "limits": {"max_frame_bytes": 4096},
            }
        ).encode()
        writer.write(ws_header(0x1, len(welcome)) + welcome)
        self.sockets[entity] = (writer, frame_templates(entity, self.rng))
        try:
            await self.read_client(reader, writer)
        finally:
            self.sockets.pop(entity, None)

    async def read_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Client frames (masked): inputs are dropped; a close is answered and ends the visit."""
        while True:
            first, second = await reader.readexactly(2)
            size = second & 0x7F
            if size == 126:
                (size,) = struct.unpack("!H", await reader.readexactly(2))
            elif size == 127:
                (size,) = struct.unpack("!Q", await reader.readexactly(8))
            mask = await reader.readexactly(4) if second & 0x80 else b"\0\0\0\0"
            payload = await reader.readexactly(size)
            if first & 0x0F == 0x8:
                code = bytes(b ^ mask[i % 4] for i, b in enumerate(payload[:2]))
                writer.write(ws_header(0x8, len(code)) + code)
                await writer.drain()
                return

    async def tick(self) -> None:
        period, count = 1.0 / self.rate, 0
        start = time.monotonic()
        while True:
            count += 1
            await asyncio.sleep(max(0.0, start + count * period - time.monotonic()))
            tick_ms = time.time_ns() // 1_000_000
            sockets = list(self.sockets.values())
            group = self.group or len(sockets) or 1
            pause = period / 2 / max(1, math.ceil(len(sockets) / group))
            for first in range(0, len(sockets), group):
                if first:  # shorter than a loop timer can wait: this process only sends
                    time.sleep(pause)
                for writer, templates in sockets[first : first + group]:
                    frame = templates[count % FAR_EVERY]
                    at = len(frame) - _payload_size(frame) + TICK_MS_AT
                    struct.pack_into("<Q", frame, at, tick_ms)
                    if not writer.is_closing():
                        writer.write(frame)


def _payload_size(frame: bytearray) -> int:
    size = frame[1] & 0x7F
    if size == 126:
        return int(struct.unpack_from("!H", frame, 2)[0])
    return size


# --- the clients (a subprocess each) --------------------------------------------------------


async def client(
    mode: str, url: str, visitors: int, warmup: float, seconds: float
) -> dict[str, Any]:
    """Join `visitors` of one kind, measure this process's CPU per frame received."""
    from zones.client.visitor import Visitor
    from zones.load.lean import LeanFleet

    if mode == "floor":
        return await floor_client(url, visitors, warmup, seconds)

    gate = asyncio.Semaphore(JOIN_CONCURRENCY)
    fleet = LeanFleet(url, 1, connections=JOIN_CONCURRENCY, compiled=mode == "compiled")

    async def join() -> Any:
        async with gate:
            if mode == "sdk":
                return await Visitor.connect(url, 1, decode="header")
            return await fleet.connect()

    def clock_reads() -> int:
        if mode == "compiled":
            return int(fleet._raw.reader.wakes)
        return fleet.clock.reads

    joined = await asyncio.gather(*(join() for _ in range(visitors)))
    gc.freeze()  # as the harness does once its visitors have joined
    await asyncio.sleep(warmup)
    reads0 = clock_reads()
    frames0 = sum(v.stats.frames for v in joined)
    ages0 = [len(v.stats.latencies_ms) for v in joined]
    cpu0, wall0 = os.times(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu1, wall1 = os.times(), time.monotonic()
    frames = sum(v.stats.frames for v in joined) - frames0
    reads = clock_reads() - reads0 if mode != "sdk" else frames  # the SDK reads per frame
    ages = np.concatenate(
        [np.asarray(v.stats.latencies_ms[a:]) for v, a in zip(joined, ages0, strict=True)]
    )
    bad = sum(v.stats.bad_frames for v in joined)
    await asyncio.gather(*(v.close() for v in joined), return_exceptions=True)
    await fleet.aclose()
    return {
        **cpu_figures(mode, frames, cpu0, cpu1, wall1 - wall0),
        "age_p50_ms": float(np.percentile(ages, 50)) if ages.size else None,
        "bad_frames": bad,
        "clock_reads_per_frame": reads / frames if frames else None,
    }


def cpu_figures(
    mode: str, frames: int, cpu0: os.times_result, cpu1: os.times_result, wall_s: float
) -> dict[str, Any]:
    """A client's CPU over its measured window, in all and per frame received."""
    user, system = cpu1.user - cpu0.user, cpu1.system - cpu0.system
    return {
        "mode": mode,
        "frames": frames,
        "wall_s": wall_s,
        "user_s": user,
        "system_s": system,
        "us_per_frame": (user + system) / frames * 1e6 if frames else None,
        "frames_per_s": frames / wall_s,
        "cores": (user + system) / wall_s,
    }


async def floor_client(url: str, visitors: int, warmup: float, seconds: float) -> dict[str, Any]:
    """The floor: sockets upgraded by hand, then read by a bare epoll loop counting headers."""
    from zones.client.visitor import visit_url
    from zones.load.lean import TicketPool

    pool = TicketPool(url, 1, JOIN_CONCURRENCY)
    gate = asyncio.Semaphore(JOIN_CONCURRENCY)

    async def join() -> tuple[socket.socket, bytes]:
        async with gate:
            ticket = await pool.ticket()
            return await asyncio.to_thread(upgrade, visit_url(url, 1, ticket))

    joined = await asyncio.gather(*(join() for _ in range(visitors)))
    await pool.aclose()
    gc.freeze()
    reader = FloorReader(joined)
    reader.run(warmup)
    cpu0, wall0, frames0 = os.times(), time.monotonic(), reader.frames
    reader.run(seconds)
    cpu1, wall1 = os.times(), time.monotonic()
    frames = reader.frames - frames0
    for sock, _early in joined:
        sock.close()
    return {
        **cpu_figures("floor", frames, cpu0, cpu1, wall1 - wall0),
        "age_p50_ms": None,  # the floor takes no timestamps
        "bad_frames": 0,
        "clock_reads_per_frame": None,
    }


def upgrade(ws_url: str) -> tuple[socket.socket, bytes]:
    """A blocking websocket upgrade of `ws_url`: the socket, non-blocking, once the welcome
    is read, and the bytes read past the welcome (the first frames, or part of one)."""
    parts = urlsplit(ws_url)
    sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Key: {key}\r\n\r\n".encode()
    )
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise BenchError("the frame source closed a socket during its upgrade")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 101"):
        raise BenchError(f"upgrade refused: {head.splitlines()[0]!r}")
    while len(rest) < 2 or len(rest) < _frame_end(rest):  # the welcome, whole
        chunk = sock.recv(4096)
        if not chunk:
            raise BenchError("the frame source closed a socket before its welcome")
        rest += chunk
    sock.setblocking(False)
    return sock, rest[_frame_end(rest) :]


def _frame_end(data: bytes) -> int:
    """Where the unmasked server frame at the start of `data` ends (its header read)."""
    size, start = data[1] & 0x7F, 2
    if size == 126:
        size, start = int.from_bytes(data[2:4], "big"), 4
    elif size == 127:
        size, start = int.from_bytes(data[2:10], "big"), 10
    return start + size


class FloorReader:
    """epoll over every socket; each read's frames counted by walking their headers."""

    def __init__(self, joined: list[tuple[socket.socket, bytes]]) -> None:
        self.poll = select.epoll()
        self.sockets = {sock.fileno(): sock for sock, _early in joined}
        self.skip = dict.fromkeys(self.sockets, 0)  # payload bytes still to come, per socket
        # bytes not walked yet, per socket: a header cut by a read, or what came with the welcome
        self.carry = {sock.fileno(): early for sock, early in joined}
        for fd in self.sockets:
            self.poll.register(fd, select.EPOLLIN)
        self.buffer = bytearray(1 << 16)
        self.frames = 0

    def run(self, seconds: float) -> None:
        """Read every socket as its frames come, for `seconds`."""
        deadline = time.monotonic() + seconds
        view = memoryview(self.buffer)
        while time.monotonic() < deadline:
            for fd, _events in self.poll.poll(0.1):
                size = self.sockets[fd].recv_into(self.buffer)
                if size == 0:
                    raise BenchError("the frame source closed a socket")
                self.walk(fd, view[:size])

    def walk(self, fd: int, data: bytes | memoryview) -> None:
        """Count the frames whose headers start in `data`, the next bytes read from `fd`."""
        if self.carry[fd]:
            data, self.carry[fd] = self.carry[fd] + bytes(data), b""
        at, size = self.skip[fd], len(data)
        while at + 2 <= size:
            second = data[at + 1] & 0x7F
            if second < 126:
                end = at + 2 + second
            elif at + 4 <= size:  # the source sends no frame of 64 KiB or more
                end = at + 4 + (data[at + 2] << 8 | data[at + 3])
            else:
                break
            self.frames += 1
            at = end
        if at >= size:
            self.skip[fd] = at - size
        else:  # a header cut short: keep it for the next read
            self.carry[fd], self.skip[fd] = bytes(data[at:]), 0


# --- the bench --------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_run(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    """A fresh frame source and one client process of `mode`; the client's figures."""
    port = free_port()
    script = str(Path(__file__).resolve())
    source = subprocess.Popen(
        [sys.executable, script, "--source", str(port), "--rate", str(args.rate)]
        + ["--group", str(args.group)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert source.stdout is not None
        if source.stdout.readline().strip() != "ready":
            raise BenchError(f"the frame source did not start (exit {source.poll()})")
        source_cpu0 = cpu_seconds(source.pid)
        run = subprocess.run(
            [sys.executable, script, "--client", mode, f"http://127.0.0.1:{port}"]
            + ["--visitors", str(args.visitors), "--warmup", str(args.warmup)]
            + ["--seconds", str(args.seconds)],
            capture_output=True,
            text=True,
            timeout=CLIENT_TIMEOUT_S,
        )
        if run.returncode != 0:
            raise BenchError(f"the {mode} client failed:\n{run.stderr[-3000:]}")
        figures = json.loads(run.stdout.strip().splitlines()[-1])
        figures["source_cores"] = (cpu_seconds(source.pid) - source_cpu0) / (
            args.warmup + args.seconds
        )
        return figures
    finally:
        source.send_signal(signal.SIGTERM)
        try:
            source.wait(10)
        except subprocess.TimeoutExpired:
            source.kill()
            source.wait()


def bench(args: argparse.Namespace) -> None:
    machine_info(
        visitors=str(args.visitors),
        rate=f"{args.rate:g} frames/s a visitor ({args.visitors * args.rate:,.0f} frames/s)",
        window=f"{args.warmup:g} s warm-up, {args.seconds:g} s measured, {args.repeats} repeats",
        sending=f"in groups of {args.group} sockets over half a tick" if args.group else "at once",
    )
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in CLIENTS}
    for repeat in range(args.repeats):
        order = CLIENTS if repeat % 2 == 0 else CLIENTS[::-1]
        for mode in order:
            figures = one_run(mode, args)
            runs[mode].append(figures)
            age, reads = figures["age_p50_ms"], figures["clock_reads_per_frame"]
            print(
                f"repeat {repeat + 1} {mode:<5}  {figures['us_per_frame']:6.2f} µs/frame"
                f"  ({figures['user_s']:.2f} s user + {figures['system_s']:.2f} s system)"
                f"  {figures['cores']:.3f} cores  {figures['frames_per_s']:8,.0f} frames/s"
                + (f"  age p50 {age:.2f} ms" if age is not None else "")
                + f"  bad {figures['bad_frames']}"
                + (f"  clock reads/frame {reads:.2f}" if reads is not None else "")
                + f"  | source {figures['source_cores']:.2f} cores",
                flush=True,
            )
    print()
    medians = {}
    for mode in CLIENTS:
        us = statistics.median(r["us_per_frame"] for r in runs[mode])
        user = statistics.median(r["user_s"] / r["frames"] * 1e6 for r in runs[mode])
        system = statistics.median(r["system_s"] / r["frames"] * 1e6 for r in runs[mode])
        cores = statistics.median(r["cores"] for r in runs[mode])
        fps = statistics.median(r["frames_per_s"] for r in runs[mode])
        medians[mode] = us
        print(
            f"{mode:<5}  median {us:6.2f} µs/frame ({user:.2f} user, {system:.2f} system)"
            f"  {cores:.3f} cores at {fps:,.0f} frames/s"
            f"  → {us * 20_000 / 1e6:.3f} cores at 20,000 frames/s"
        )
    print(f"sdk / lean: {medians['sdk'] / medians['lean']:.2f}×")
    print(f"lean / floor: {medians['lean'] / medians['floor']:.2f}×")
    print(f"compiled / lean: {medians['compiled'] / medians['lean']:.2f}×")
    print(f"compiled / floor: {medians['compiled'] / medians['floor']:.2f}×")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "runs": runs}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--visitors", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20.0, help="frames/s sent to each visitor")
    parser.add_argument(
        "--group",
        type=int,
        default=0,
        help="send each tick's frames in groups of this many sockets spread over half the"
        " tick, as a busy server trickles them (default 0: all at once)",
    )
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write every run's figures here")
    parser.add_argument("--source", type=int, help=argparse.SUPPRESS)  # the frame source's port
    parser.add_argument("--client", nargs=2, help=argparse.SUPPRESS)  # mode, URL
    args = parser.parse_args()
    if args.visitors < 1 or args.rate <= 0 or args.seconds <= 0 or args.repeats < 1:
        parser.error("--visitors, --rate, --seconds and --repeats must be above 0")
    if args.source is not None:
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # nothing to flush or tidy
        uvloop.run(FrameSource(args.rate, args.group).serve(args.source))
    elif args.client is not None:
        mode, url = args.client
        if mode not in CLIENTS:
            parser.error(f"client must be one of {CLIENTS}")
        figures = uvloop.run(client(mode, url, args.visitors, args.warmup, args.seconds))
        print(json.dumps(figures))
    else:
        try:
            bench(args)
        except BenchError as error:
            sys.exit(f"bench_harness: {error}")


if __name__ == "__main__":
    main()
