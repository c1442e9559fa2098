"""The load harness's cost per received frame: the SDK's header-only visitor beside the lean one.

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
  * lean: zones.load.lean.LeanFleet.connect, the harness's visitors since (picows,
          header-only, one clock read per loop wake-up).

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
import signal
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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
CLIENTS = ("sdk", "lean")


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

    gate = asyncio.Semaphore(JOIN_CONCURRENCY)
    fleet = LeanFleet(url, 1, connections=JOIN_CONCURRENCY)

    async def join() -> Any:
        async with gate:
            if mode == "sdk":
                return await Visitor.connect(url, 1, decode="header")
            return await fleet.connect()

    joined = await asyncio.gather(*(join() for _ in range(visitors)))
    gc.freeze()  # as the harness does once its visitors have joined
    await asyncio.sleep(warmup)
    reads0 = fleet.clock.reads
    frames0 = sum(v.stats.frames for v in joined)
    ages0 = [len(v.stats.latencies_ms) for v in joined]
    cpu0, wall0 = os.times(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu1, wall1 = os.times(), time.monotonic()
    frames = sum(v.stats.frames for v in joined) - frames0
    reads = fleet.clock.reads - reads0 if mode == "lean" else frames  # the SDK reads per frame
    ages = np.concatenate(
        [np.asarray(v.stats.latencies_ms[a:]) for v, a in zip(joined, ages0, strict=True)]
    )
    bad = sum(v.stats.bad_frames for v in joined)
    await asyncio.gather(*(v.close() for v in joined), return_exceptions=True)
    user, system = cpu1.user - cpu0.user, cpu1.system - cpu0.system
    return {
        "mode": mode,
        "frames": frames,
        "wall_s": wall1 - wall0,
        "user_s": user,
        "system_s": system,
        "us_per_frame": (user + system) / frames * 1e6 if frames else None,
        "frames_per_s": frames / (wall1 - wall0),
        "cores": (user + system) / (wall1 - wall0),
        "age_p50_ms": float(np.percentile(ages, 50)) if ages.size else None,
        "bad_frames": bad,
        "clock_reads_per_frame": reads / frames if frames else None,
    }


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
            print(
                f"repeat {repeat + 1} {mode:<4}  {figures['us_per_frame']:6.2f} µs/frame"
                f"  ({figures['user_s']:.2f} s user + {figures['system_s']:.2f} s system)"
                f"  {figures['cores']:.3f} cores  {figures['frames_per_s']:8,.0f} frames/s"
                f"  age p50 {figures['age_p50_ms']:.2f} ms  bad {figures['bad_frames']}"
                f"  clock reads/frame {figures['clock_reads_per_frame']:.2f}"
                f"  | source {figures['source_cores']:.2f} cores",
                flush=True,
            )
    print()
    medians = {}
    for mode in CLIENTS:
        us = statistics.median(r["us_per_frame"] for r in runs[mode])
        cores = statistics.median(r["cores"] for r in runs[mode])
        fps = statistics.median(r["frames_per_s"] for r in runs[mode])
        medians[mode] = us
        print(
            f"{mode:<4}  median {us:6.2f} µs/frame  {cores:.3f} cores at {fps:,.0f} frames/s"
            f"  → {us * 20_000 / 1e6:.3f} cores at 20,000 frames/s"
        )
    print(f"sdk / lean: {medians['sdk'] / medians['lean']:.2f}×")
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
