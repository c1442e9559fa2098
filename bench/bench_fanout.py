"""Fan-out: 100 visitors on one web process, tick to client latency, daphne beside uvicorn.

    python bench/bench_fanout.py                 100 visitors spread over booth 0
    python bench/bench_fanout.py --crowd         all 100 within a 4 m circle (everyone sees everyone)
    python bench/bench_fanout.py --repeats 5 --seconds 30 --json /tmp/fanout.json

Target (docs/performance.md, fan-out): with 100 visitors on loopback, a frame's age when it
reaches its client (received - the frame's tick_ms) has p99 <= 10 ms.

Setup, once per run: a temporary FABRIC_DATA_DIR (`manage.py migrate`, then the
demo market with its 3 booths from `market_demo_ensure`), the Redis at REDIS_URL
(default redis://127.0.0.1:6379/0) under a channel prefix of this run's own, and
one zone worker process hosting all three zones (`manage.py zoneworker --market 1
--zones 0,1,2 --walkers 0`: no demo walkers, the visitors are the only load).

Then, for each repeat, daphne and uvicorn in turn (the order alternates from one
repeat to the next, so drifting noise on the shared machine hits both): the web
server is started on its own (`python -m daphne ...` or `python -m uvicorn ...`
with FABRIC_MARKET_ID=1, see zones/serve.py `live_market_from_environment`), and
this process, on one uvloop event loop, connects 100 visitors through the SDK
(zones/client), all in booth 0: at random floor points of zone 0, or with
--crowd at random points of a 2 m radius disc inside zone 0. Every visitor walks
at 0.5 m/s and picks a new heading every 2 s (with --crowd, towards a random
point of the disc, so the crowd stays together), so rows change every tick and
the zone takes a few inputs a tick. After a warm-up (--warmup, 3 s) everything
is measured for --seconds (15 s):

  * latency: every interest frame's received_ms - tick_ms (the SDK's
    `stats.latencies_ms`), p50, p99 and max over all visitors' frames;
  * frames/s and bytes/s per visitor, and the rows and bodies per frame;
  * CPU seconds per wall second of the web server, of the zone worker, of this
    client process (100 sockets in one loop: a saturated client would inflate
    the latency it measures) and of the probe below, from /proc/<pid>/stat;
  * where the time goes, from outside the servers. tick_ms is the START of the
    zone's 50 ms wall-clock slot, so a frame's age includes the worker's whole
    tick (three zone steps one after another, a snapshot write, publishing).
    A probe process subscribes to the zones' rows on the bus like a second gateway
    and records when each zone's rows reach it; the zone worker's own step
    times come from its market summaries (twice a second). The client records,
    per tick, when the first, the median and the last of the 100 frames of that
    tick arrived. The p50 breakdown printed is then: rows of the last zone at a
    subscriber | gateway merge and the first frame on its way | the spread of
    the other 99 frames (the gateway sends them one after another, and this one
    client loop reads them one after another). --no-probe leaves the probe out
    (it adds one more subscriber to each zone's rows channel).

Medians over the repeats are printed per server, with the uvicorn/daphne ratio of
each figure measured in this same run, and whether p99 <= 10 ms was met. --json
writes every repeat's raw figures. The machine may be shared: the load average
is printed at the top and at the end.
"""

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.machine import load_average, machine_info  # noqa: E402
from bench.processes import LOG_TAIL_LINES, BenchError, free_port, manage  # noqa: E402
from zones.bus import RedisBus  # noqa: E402
from zones.core.constants import MARKET_SIZE_M  # noqa: E402
from zones.core.crowd import floor_points  # noqa: E402
from zones.core.hilbert import encode_positions  # noqa: E402
from zones.core.ranges import floor_ranges  # noqa: E402
from zones.core.wire import rows_unpack  # noqa: E402

MARKET_ID = 1
ZONES = 3
BOOTH = 0
TARGET_P99_MS = 10.0
WALK_SPEED_M_S = 0.5
STEER_EVERY_S = 2.0
CROWD_RADIUS_M = 2.0  # a 4 m circle: no two visitors more than 4 m apart, inside the 5 m radius
JOIN_CONCURRENCY = 10
STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
SERVERS = ("daphne", "uvicorn")
# Variables that would move the bench's processes off their own database and store.
SERVICE_VARIABLES = ("DATABASE_URL", "DJANGO_SETTINGS_MODULE", "CHUNK_STORE_DIR")
LO = np.zeros(3, np.float32)
HI = np.array(MARKET_SIZE_M, np.float32)


# --- processes ---------------------------------------------------------------------------


@dataclass
class Child:
    """A subprocess this bench started, with the file its output goes to."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        kept = text.rstrip().splitlines()[-lines:]
        return "\n".join(f"    {line}" for line in kept) or "    (empty)"

    def failed(self, what: str) -> BenchError:
        code = self.process.poll()
        state = f"exited with {code}" if code is not None else "still running"
        return BenchError(f"{self.name} {what} ({state}); last lines of {self.log}:\n{self.tail()}")


class Children:
    """Every subprocess of the run; `stop_all` ends whichever are still running."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir, self.env = workdir, env
        self.running: list[Child] = []

    def start(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> Child:
        log = self.workdir / f"{name}.log"
        with open(log, "ab") as out:
            process = subprocess.Popen(
                list(argv),
                cwd=REPO_ROOT,
                env=env or self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        child = Child(name, process, log)
        self.running.append(child)
        return child

    def stop(self, child: Child, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; the exit code."""
        if child.process.poll() is None:
            child.process.terminate()
            try:
                child.process.wait(timeout)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        if child in self.running:
            self.running.remove(child)
        return child.process.returncode

    def stop_all(self) -> None:
        for child in reversed(list(self.running)):
            with contextlib.suppress(Exception):
                self.stop(child, timeout=5.0)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process so far, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        text = stat.read()
    rest = text[text.rindex(")") + 2 :].split()  # rest[0] is field 3 (state)
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def redis_client(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def redis_check(url: str) -> str:
    """The Redis server's version; BenchError if nothing answers at `url`."""
    try:
        client = redis_client(url)
        client.ping()
        return str(client.info("server").get("redis_version", "?"))
    except Exception as exc:
        raise BenchError(
            f"Redis at {url} does not answer ({exc}).\n"
            "This benchmark needs a real Redis: start one (e.g. `redis-server --daemonize yes`) "
            "or point REDIS_URL at one."
        ) from None


def redis_forget_prefix(url: str, prefix: str) -> int:
    """Delete every Redis key of this run's channel prefix."""
    client = redis_client(url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    return int(client.delete(*keys)) if keys else 0


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def wait_until_healthy(child: Child, url: str) -> float:
    """Seconds until `url` answered 200; BenchError with the log's tail otherwise."""
    started = time.monotonic()
    while time.monotonic() - started < STARTUP_TIMEOUT_S:
        if child.process.poll() is not None:
            raise child.failed(f"stopped before {url} answered")
        if http_ok(url):
            return time.monotonic() - started
        time.sleep(0.1)
    raise child.failed(f"did not answer {url} within {STARTUP_TIMEOUT_S:g} s")


def wait_for_line(child: Child, text: str, timeout: float = STARTUP_TIMEOUT_S) -> None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if child.process.poll() is not None:
            raise child.failed(f"stopped before it said {text!r}")
        with contextlib.suppress(OSError):
            if text in child.log.read_text(encoding="utf-8", errors="replace"):
                return
        time.sleep(0.1)
    raise child.failed(f"did not say {text!r} within {timeout:g} s")


def server_argv(server: str, port: int) -> list[str]:
    if server == "daphne":
        return [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "-v",
            "0",
            "fabric_site.asgi:application",
        ]
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "fabric_site.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--no-access-log",
        "--log-level",
        "warning",
    ]


# --- the probe: a second subscriber of the zones' rows ------------------------------------


def probe_main(out: Path) -> None:
    """`--probe OUT`: record when each zone's rows and summaries arrive, until SIGTERM."""
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_probe(out))


async def _probe(out: Path) -> None:
    from market.events.backends import Retention
    from market.events.backends.redis_streams import RedisStreamsBackend
    from market.events.hub import Delivered, EventHub
    from market.events.subjects import ops_summary_subject, stream_name

    backend = RedisStreamsBackend(
        os.environ["REDIS_URL"], Retention(), prefix=os.environ["FABRIC_CHANNEL_PREFIX"]
    )
    hub = EventHub(backend.log(stream_name(MARKET_ID)))
    subscription, _ = await hub.subscribe([ops_summary_subject(MARKET_ID)])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    zone, tick, received, sizes = array("q"), array("q"), array("d"), array("q")
    summaries: list[dict[str, Any]] = []

    def rows_arrived(packet: bytes) -> None:
        now = time.time_ns() / 1e6
        z, _, tick_ms, rows = rows_unpack(packet)
        zone.append(z)
        tick.append(tick_ms)
        received.append(now)
        sizes.append(rows.nbytes)

    rows_subscription = await RedisBus(
        os.environ["REDIS_URL"], os.environ["FABRIC_CHANNEL_PREFIX"]
    ).subscribe(MARKET_ID, range(ZONES), rows_arrived)

    async def receive() -> None:
        """The zones' summaries, from the market's ops events."""
        while True:
            for item in await subscription.get():
                if not isinstance(item, Delivered):
                    continue
                now = time.time_ns() / 1e6
                summary = item.envelope.event.payload()
                summaries.append(
                    {
                        "received_ms": now,
                        "overruns": summary.get("overruns", 0),
                        "zones": {
                            str(z["zone"]): [z["tick_ms"], z["tick_p99_ms"], z["entities"]]
                            for z in summary.get("zones", [])
                        },
                    }
                )

    out.with_suffix(".ready").write_text("ready")
    task = asyncio.create_task(receive())
    await stop.wait()
    task.cancel()
    await rows_subscription.close()
    record = {
        "zone": list(zone),
        "tick_ms": list(tick),
        "received_ms": list(received),
        "bytes": list(sizes),
        "summaries": summaries,
    }
    temporary = out.with_suffix(".tmp")
    temporary.write_text(json.dumps(record))
    os.replace(temporary, out)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await asyncio.wait_for(task, 1.0)
    await hub.stop()
    await backend.close()


# --- the visitors ------------------------------------------------------------------------


def spread_points(rng: np.random.Generator, count: int) -> np.ndarray:
    """`count` random floor points of booth 0."""
    return floor_points(floor_ranges(ZONES), BOOTH, rng, count, LO, HI)


def disc_points(rng: np.random.Generator, centre: np.ndarray, count: int) -> np.ndarray:
    """`count` points uniform in the CROWD_RADIUS_M disc around `centre`, on its floor."""
    angle = rng.uniform(0, 2 * np.pi, count)
    radius = CROWD_RADIUS_M * np.sqrt(rng.uniform(0, 1, count))
    points = np.repeat(centre[None, :].astype(np.float32), count, axis=0)
    points[:, 0] += (radius * np.cos(angle)).astype(np.float32)
    points[:, 2] += (radius * np.sin(angle)).astype(np.float32)
    return points


def crowd_centre(rng: np.random.Generator) -> np.ndarray:
    """A floor point of booth 0 whose disc, with a 2 m margin, lies wholly inside booth 0."""
    ranges = floor_ranges(ZONES)
    ring = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    for candidate in floor_points(ranges, BOOTH, rng, 2000, LO, HI):
        edge = np.repeat(candidate[None, :], ring.size * 2, axis=0)
        reach = np.concatenate([np.full(ring.size, CROWD_RADIUS_M + 2.0), np.full(ring.size, 1.0)])
        edge[:, 0] += (reach * np.cos(np.tile(ring, 2))).astype(np.float32)
        edge[:, 2] += (reach * np.sin(np.tile(ring, 2))).astype(np.float32)
        if (edge < LO).any() or (edge > HI).any():
            continue
        if (ranges.assign(encode_positions(edge.astype(np.float32), LO, HI)) == BOOTH).all():
            return candidate
    raise BenchError(f"no {CROWD_RADIUS_M * 2:g} m circle fits inside booth {BOOTH}")


class TickRecorder:
    """Per frame, while on: its tick, arrival, rows and bodies. A few appends, nothing else."""

    def __init__(self) -> None:
        self.on = False
        self.tick_ms = array("d")
        self.received_ms = array("d")
        self.rows = array("q")
        self.bodies = array("q")
        self.again = array("b")  # 1: this visitor already had a frame of this tick (or newer)
        self._last: dict[int, float] = {}

    def frame(
        self, visitor: Any, header: Any, rows: np.ndarray, bodies: np.ndarray, received_ms: float
    ) -> None:
        tick = visitor.tick_ms
        last = self._last.get(id(visitor), 0)
        self._last[id(visitor)] = max(last, tick)
        if self.on:
            self.tick_ms.append(tick)
            self.received_ms.append(received_ms)
            self.rows.append(rows.size)
            self.bodies.append(bodies.size)
            self.again.append(tick <= last)


@dataclass
class Window:
    """What one measured window of one server saw (raw; summarised by `figures`)."""

    server: str
    repeat: int
    visitors: int
    seconds: float
    start_ms: float
    end_ms: float
    latencies: np.ndarray
    frames: int
    bytes: int
    far_frames: int
    bad_frames: int
    closed: int
    errors: int
    cpu: dict[str, float]  # CPU seconds per wall second, by process
    ticks: TickRecorder
    join_s: float
    probe: dict[str, Any] | None = None


async def visitors_join(
    base_url: str, points: np.ndarray, recorder: TickRecorder
) -> tuple[list[Any], float]:
    from zones.client.burst import connect_retrying

    gate = asyncio.Semaphore(JOIN_CONCURRENCY)
    started = time.monotonic()

    async def one(at: np.ndarray) -> Any:
        async with gate:
            visitor = await connect_retrying(base_url, MARKET_ID, retry_s=20.0, at=at.tolist())
            visitor.on_frame = recorder.frame
            return visitor

    results = await asyncio.gather(*(one(p) for p in points), return_exceptions=True)
    visitors = [v for v in results if not isinstance(v, BaseException)]
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        await visitors_leave(visitors)
        raise BenchError(
            f"{len(failures)} of {len(points)} visitors could not join {base_url}: {failures[0]!r}"
        )
    return visitors, time.monotonic() - started


async def visitors_leave(visitors: list[Any]) -> None:
    async def one(visitor: Any) -> None:
        try:
            await visitor.leave(timeout=5.0)
        except Exception:
            with contextlib.suppress(Exception):
                await visitor.close()

    await asyncio.gather(*(one(v) for v in visitors))


async def steer(
    visitors: list[Any],
    rng: np.random.Generator,
    centre: np.ndarray | None,
) -> None:
    """Give each visitor a new heading every STEER_EVERY_S, staggered across the visitors."""
    pause = STEER_EVERY_S / max(1, len(visitors))
    while True:
        for visitor in visitors:
            if centre is None:
                angle = rng.uniform(0, 2 * np.pi)
                heading = np.array([np.cos(angle), 0.0, np.sin(angle)])
            else:
                here = visitor.position if visitor.position is not None else centre
                target = disc_points(rng, centre, 1)[0]
                heading = (target - here).astype(np.float64)
                heading[1] = 0.0
                norm = float(np.linalg.norm(heading))
                heading = heading / norm if norm > 1e-6 else np.array([1.0, 0.0, 0.0])
            with contextlib.suppress(Exception):  # a closed socket is counted at the end
                await visitor.walk_binary(heading * WALK_SPEED_M_S)
            await asyncio.sleep(pause)


async def wait_for_file(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise BenchError(f"the probe did not get ready within {timeout:g} s ({path})")
        await asyncio.sleep(0.05)


async def measure(
    *,
    server: str,
    repeat: int,
    base_url: str,
    points: np.ndarray,
    centre: np.ndarray | None,
    args: argparse.Namespace,
    pids: dict[str, int],
    probe_ready: Path | None,
) -> Window:
    """Join, warm up, measure one window, leave."""
    recorder = TickRecorder()
    visitors, join_s = await visitors_join(base_url, points, recorder)
    steering = asyncio.create_task(
        steer(visitors, np.random.default_rng(args.seed + repeat), centre)
    )
    try:
        if probe_ready is not None:
            await wait_for_file(probe_ready, 20.0)
        await asyncio.sleep(args.warmup)
        marks = [(len(v.stats.latencies_ms), v.stats) for v in visitors]
        counts = [(s.frames, s.bytes, s.far_frames, s.bad_frames) for _, s in marks]
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        own_before = own_cpu_seconds()
        wall_before = time.monotonic()
        start_ms = time.time_ns() / 1e6
        recorder.on = True
        await asyncio.sleep(args.seconds)
        recorder.on = False
        end_ms = time.time_ns() / 1e6
        wall = time.monotonic() - wall_before
        own = own_cpu_seconds() - own_before
        cpu = {name: (cpu_seconds(pid) - cpu_before[name]) / wall for name, pid in pids.items()}
        cpu["client"] = own / wall
        latencies = np.concatenate(
            [np.frombuffer(s.latencies_ms, np.float64)[n:].copy() for n, s in marks]
        )
        totals = [
            (s.frames - f, s.bytes - b, s.far_frames - ff, s.bad_frames - bf)
            for (_, s), (f, b, ff, bf) in zip(marks, counts, strict=True)
        ]
    finally:
        steering.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await steering
    closed = sum(v.closed for v in visitors)
    errors = sum(len(v.errors) for v in visitors)
    await visitors_leave(visitors)
    return Window(
        server=server,
        repeat=repeat,
        visitors=len(visitors),
        seconds=wall,
        start_ms=start_ms,
        end_ms=end_ms,
        latencies=latencies,
        frames=sum(t[0] for t in totals),
        bytes=sum(t[1] for t in totals),
        far_frames=sum(t[2] for t in totals),
        bad_frames=sum(t[3] for t in totals),
        closed=closed,
        errors=errors,
        cpu=cpu,
        ticks=recorder,
        join_s=join_s,
    )


# --- figures -----------------------------------------------------------------------------


@dataclass
class Figure:
    key: str
    label: str
    unit: str
    better: str  # "lower" or "higher": which way the uvicorn/daphne ratio is good
    digits: int = 2


FIGURES = (
    Figure("p50_ms", "latency p50", "ms", "lower"),
    Figure("p99_ms", "latency p99", "ms", "lower"),
    Figure("max_ms", "latency max", "ms", "lower"),
    Figure("frames_per_s", "frames/s per visitor", "1/s", "higher"),
    Figure("kbytes_per_s", "KB/s per visitor", "KB/s", "higher", 1),
    Figure("kbit_per_s", "kbit/s per visitor", "kbit/s", "higher", 0),
    Figure("again_pct", "frames repeating a tick already sent", "%", "lower", 1),
    Figure("ticks_again_pct", "ticks sent twice (to anyone)", "%", "lower", 1),
    Figure("p50_first_ms", "latency p50, first delivery of a tick only", "ms", "lower"),
    Figure("p99_first_ms", "latency p99, first delivery of a tick only", "ms", "lower"),
    Figure("rows_per_frame", "rows per frame (median)", "", "higher", 0),
    Figure("bodies_per_frame", "bodies per frame (mean)", "", "higher", 1),
    Figure("cpu_web", "CPU web server", "s/s", "lower", 3),
    Figure("cpu_worker", "CPU zone worker", "s/s", "lower", 3),
    Figure("cpu_client", "CPU bench client", "s/s", "lower", 3),
    Figure("cpu_probe", "CPU probe", "s/s", "lower", 3),
)

BREAKDOWN = (
    Figure("step_ms", "zone steps, worker's own (3 zones, sum)", "ms", "lower"),
    Figure("rows_zone0_ms", "rows of zone 0 at the probe", "ms", "lower"),
    Figure("rows_zone1_ms", "rows of zone 1 at the probe", "ms", "lower"),
    Figure("rows_zone2_ms", "rows of zone 2 at the probe", "ms", "lower"),
    Figure("rows_last_ms", "rows of the last zone at the probe", "ms", "lower"),
    Figure("rows_last_p99_ms", "  its p99", "ms", "lower"),
    Figure("first_frame_ms", "first of the tick's frames at a client", "ms", "lower"),
    Figure("median_frame_ms", "median of the tick's frames", "ms", "lower"),
    Figure("last_frame_ms", "last of the tick's frames", "ms", "lower"),
    Figure("last_frame_p99_ms", "  its p99", "ms", "lower"),
    Figure("gateway_ms", "  = gateway: last rows -> first frame (*)", "ms", "lower"),
    Figure("spread_ms", "  = fan-out: first -> median frame", "ms", "lower"),
    Figure("tail_ms", "  = fan-out: median -> last frame", "ms", "lower"),
    Figure("after_rows_p50_ms", "frame after its tick's last rows, p50", "ms", "lower"),
    Figure("after_rows_p99_ms", "frame after its tick's last rows, p99", "ms", "lower"),
    Figure("early_flush_pct", "(*) ticks sent before the last zone's rows", "%", "lower", 1),
    Figure("frames_per_tick", "frames per tick (median)", "", "higher", 0),
    Figure("overruns", "worker tick overruns in the window", "", "lower", 0),
)


def per_tick(recorder: TickRecorder, start_ms: float, end_ms: float) -> dict[str, float]:
    """Medians over ticks of the first, median and last frame's age, and frames per tick."""
    ticks = np.frombuffer(recorder.tick_ms, np.float64)
    received = np.frombuffer(recorder.received_ms, np.float64)
    again = np.frombuffer(recorder.again, np.int8).astype(bool)
    if not ticks.size:
        return {}
    first_age = (received - ticks)[~again]
    repeats = {
        "again_pct": 100.0 * float(again.mean()),
        "ticks_again_pct": 100.0 * np.unique(ticks[again]).size / np.unique(ticks).size,
        "p50_first_ms": float(np.percentile(first_age, 50)) if first_age.size else math.nan,
        "p99_first_ms": float(np.percentile(first_age, 99)) if first_age.size else math.nan,
    }
    # every frame of these ticks is in the window; a repeated tick counts once
    whole = (ticks >= start_ms) & (ticks <= end_ms - 500.0) & ~again
    ticks, received = ticks[whole], received[whole]
    if not ticks.size:
        return repeats
    order = np.lexsort((received, ticks))
    ticks, age = ticks[order], received[order] - ticks[order]
    starts = np.flatnonzero(np.r_[True, ticks[1:] != ticks[:-1]])
    ends = np.r_[starts[1:], ticks.size]
    first = age[starts]
    last = age[ends - 1]
    middle = age[(starts + ends - 1) // 2]
    return {
        "first_frame_ms": float(np.median(first)),
        "median_frame_ms": float(np.median(middle)),
        "last_frame_ms": float(np.median(last)),
        "last_frame_p99_ms": float(np.percentile(last, 99)),
        "frames_per_tick": float(np.median(ends - starts)),
        "ticks": int(starts.size),
        **repeats,
    }


def probe_figures(probe: dict[str, Any], start_ms: float, end_ms: float) -> dict[str, float]:
    zone = np.array(probe["zone"], np.int64)
    tick = np.array(probe["tick_ms"], np.float64)
    age = np.array(probe["received_ms"], np.float64) - tick
    inside = (tick >= start_ms) & (tick <= end_ms)
    zone, tick, age = zone[inside], tick[inside], age[inside]
    out: dict[str, float] = {}
    if tick.size:
        for z in range(ZONES):
            mine = age[zone == z]
            if mine.size:
                out[f"rows_zone{z}_ms"] = float(np.median(mine))
                out[f"rows_zone{z}_p99_ms"] = float(np.percentile(mine, 99))
        order = np.lexsort((age, tick))
        tick, age = tick[order], age[order]
        ends = np.r_[np.flatnonzero(tick[1:] != tick[:-1]), tick.size - 1]
        out["rows_last_ms"] = float(np.median(age[ends]))
        out["rows_last_p99_ms"] = float(np.percentile(age[ends], 99))
        out["rows_bytes_zone0"] = float(
            np.median(np.array(probe["bytes"], np.int64)[np.array(probe["zone"]) == 0])
        )
    summaries = [s for s in probe["summaries"] if start_ms <= s["received_ms"] <= end_ms]
    if summaries:
        steps = [sum(v[0] for v in s["zones"].values()) for s in summaries]
        out["step_ms"] = float(np.median(steps))
        for z in range(ZONES):
            values = [s["zones"][str(z)][0] for s in summaries if str(z) in s["zones"]]
            if values:
                out[f"step_zone{z}_ms"] = float(np.median(values))
        out["overruns"] = float(summaries[-1]["overruns"] - summaries[0]["overruns"])
        out["entities_zone0"] = float(summaries[-1]["zones"].get("0", [0, 0, 0])[2])
    return out


def after_rows(recorder: TickRecorder, probe: dict[str, Any]) -> dict[str, float]:
    """p50 and p99 of a frame's arrival after the last zone's rows of its tick reached the probe.

    What the web process adds (merge, cut, send) plus the client's read: the latency a
    frame would have if tick_ms were stamped when the zones had published.
    """
    tick = np.array(probe["tick_ms"], np.float64)
    received = np.array(probe["received_ms"], np.float64)
    if not tick.size or not recorder.tick_ms:
        return {}
    order = np.lexsort((received, tick))
    tick, received = tick[order], received[order]
    ends = np.r_[np.flatnonzero(tick[1:] != tick[:-1]), tick.size - 1]
    ticks, last = tick[ends], received[ends]
    frame_tick = np.frombuffer(recorder.tick_ms, np.float64)
    frame_at = np.frombuffer(recorder.received_ms, np.float64)
    first = ~np.frombuffer(recorder.again, np.int8).astype(bool)
    index = np.minimum(np.searchsorted(ticks, frame_tick), ticks.size - 1)
    known = (ticks[index] == frame_tick) & first
    delay = frame_at[known] - last[index[known]]
    if not delay.size:
        return {}
    # ticks whose first frame reached a client before the last zone's rows reached the
    # probe: the gateway stopped waiting (FLUSH_WAIT_S) and sent the tick without them
    early = np.unique(frame_tick[known][delay < 0]).size / np.unique(frame_tick[known]).size
    return {
        "after_rows_p50_ms": float(np.percentile(delay, 50)),
        "after_rows_p99_ms": float(np.percentile(delay, 99)),
        "early_flush_pct": 100.0 * early,
    }


def figures(window: Window) -> dict[str, float]:
    lat = window.latencies
    per_visitor_s = window.visitors * window.seconds
    rows = np.frombuffer(window.ticks.rows, np.int64) if window.ticks.rows else np.zeros(1)
    bodies = np.frombuffer(window.ticks.bodies, np.int64) if window.ticks.bodies else np.zeros(1)
    out: dict[str, float] = {
        "p50_ms": float(np.percentile(lat, 50)) if lat.size else math.nan,
        "p99_ms": float(np.percentile(lat, 99)) if lat.size else math.nan,
        "max_ms": float(lat.max()) if lat.size else math.nan,
        "frames_per_s": window.frames / per_visitor_s,
        "kbytes_per_s": window.bytes / per_visitor_s / 1e3,
        "kbit_per_s": window.bytes * 8 / per_visitor_s / 1e3,
        "rows_per_frame": float(np.median(rows)),
        "bodies_per_frame": float(np.mean(bodies)),  # bodies come every 2nd tick: a mean
        "frames": float(window.frames),
        "visitors": float(window.visitors),
        "closed": float(window.closed),
        "errors": float(window.errors),
        "bad_frames": float(window.bad_frames),
        "join_s": window.join_s,
    }
    for name, value in window.cpu.items():
        out[f"cpu_{name}"] = value
    out.update(per_tick(window.ticks, window.start_ms, window.end_ms))
    if window.probe is not None:
        out.update(probe_figures(window.probe, window.start_ms, window.end_ms))
    if "rows_last_ms" in out and "first_frame_ms" in out:
        out["gateway_ms"] = out["first_frame_ms"] - out["rows_last_ms"]
    if window.probe is not None:
        out.update(after_rows(window.ticks, window.probe))
    if "first_frame_ms" in out:
        out["spread_ms"] = out["median_frame_ms"] - out["first_frame_ms"]
        out["tail_ms"] = out["last_frame_ms"] - out["median_frame_ms"]
    return out


def median_of(runs: list[dict[str, float]], key: str) -> float:
    values = [r[key] for r in runs if key in r and not math.isnan(r[key])]
    return statistics.median(values) if values else math.nan


def spread_of(runs: list[dict[str, float]], key: str) -> tuple[float, float]:
    values = [r[key] for r in runs if key in r and not math.isnan(r[key])]
    return (min(values), max(values)) if values else (math.nan, math.nan)


def number(value: float, digits: int) -> str:
    return "-" if math.isnan(value) else f"{value:,.{digits}f}"


def table(title: str, rows: Sequence[Figure], results: dict[str, list[dict[str, float]]]) -> None:
    width = 44
    print(title)
    head = f"  {'':<{width}}"
    for server in SERVERS:
        head += f" {server + ' median [min-max]':>30}"
    print(head + f" {'uvicorn/daphne':>15}")
    for fig in rows:
        if not any(fig.key in r for runs in results.values() for r in runs):
            continue
        line = f"  {fig.label + (f' ({fig.unit})' if fig.unit else ''):<{width}}"
        medians = {}
        for server in SERVERS:
            runs = results[server]
            medians[server] = median_of(runs, fig.key)
            lo, hi = spread_of(runs, fig.key)
            cell = f"{number(medians[server], fig.digits)} [{number(lo, fig.digits)}-{number(hi, fig.digits)}]"
            line += f" {cell:>30}"
        a, b = medians["daphne"], medians["uvicorn"]
        ratio = b / a if a > 0 and b >= 0 else math.nan  # NaN compares False: no ratio
        line += f" {'-' if math.isnan(ratio) else number(ratio, 2) + 'x':>15}"
        print(line)
    print()


def report(results: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> None:
    mode = "crowd (4 m circle)" if args.crowd else "spread over booth 0"
    print(
        f"\n{args.visitors} visitors, {mode}; {args.repeats} repeats of {args.seconds:g} s "
        f"per server; medians over repeats, [min-max] over repeats\n"
    )
    table("Per visitor, all frames of the window", FIGURES, results)
    if any("first_frame_ms" in r for runs in results.values() for r in runs):
        table(
            "Where a frame's age goes (ms after tick_ms, the START of the zone's 50 ms slot; "
            "medians over ticks)",
            BREAKDOWN,
            results,
        )
    for server in SERVERS:
        runs = results[server]
        p99 = median_of(runs, "p99_ms")
        worst = max((r["p99_ms"] for r in runs), default=math.nan)
        verdict = "met" if p99 <= TARGET_P99_MS else "NOT met"
        troubles = sum(r["closed"] + r["bad_frames"] for r in runs)
        note = f"; {troubles:g} sockets closed or bad frames" if troubles else ""
        print(
            f"{server:<8} p99 {p99:6.2f} ms (worst repeat {worst:.2f} ms): target p99 <= "
            f"{TARGET_P99_MS:g} ms {verdict}{note}"
        )
    print(f"\nload at the end: {load_average()} (1, 5, 15 min)")


# --- the run -----------------------------------------------------------------------------


def code_version() -> str:
    """The commit the servers run, and whether the working tree differs from it."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "log", "-1", "--format=%h %s"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            # this script itself does not count: it is not what is measured
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"]
            + ["--", ".", ":!bench"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    head = head if len(head) <= 72 else head[:69] + "..."
    return f"{head}{' (+ uncommitted changes)' if dirty else ''}" if head else "unknown"


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in (
        "daphne",
        "twisted",
        "autobahn",
        "uvicorn",
        "uvloop",
        "websockets",
        "channels_redis",
    ):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def bench_environment(workdir: Path, redis_url: str, prefix: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    env.update(
        {
            "FABRIC_DATA_DIR": str(workdir / "data"),
            "REDIS_URL": redis_url,
            "FABRIC_CHANNEL_PREFIX": prefix,
            "FABRIC_MARKET_ID": str(MARKET_ID),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def run(args: argparse.Namespace, workdir: Path, children: Children) -> dict[str, Any]:
    manage(children.env, "migrate", "--noinput")
    manage(
        children.env,
        "shell",
        "-c",
        "from market.services import market_demo_ensure; market_demo_ensure()",
    )
    worker = children.start(
        "zoneworker",
        [
            sys.executable,
            str(REPO_ROOT / "manage.py"),
            "zoneworker",
            "--market",
            str(MARKET_ID),
            "--zones",
            ",".join(str(z) for z in range(ZONES)),
            "--walkers",
            "0",
        ],
    )
    wait_for_line(worker, "zone worker for")
    rng = np.random.default_rng(args.seed)
    centre = crowd_centre(rng) if args.crowd else None
    if centre is not None:
        points = disc_points(rng, centre, args.visitors)
        print(f"crowd centre ({centre[0]:.1f}, {centre[2]:.1f}) m, radius {CROWD_RADIUS_M:g} m")
    else:
        points = spread_points(rng, args.visitors)
    results: dict[str, list[dict[str, float]]] = {s: [] for s in SERVERS}
    import uvloop

    for repeat in range(args.repeats):
        order = SERVERS if repeat % 2 == 0 else tuple(reversed(SERVERS))
        for server in order:
            port = free_port()
            web = children.start(f"{server}-{repeat}", server_argv(server, port))
            probe = None
            probe_out = workdir / f"probe-{server}-{repeat}.json"
            try:
                started_s = wait_until_healthy(web, f"http://127.0.0.1:{port}/healthz")
                pids = {"web": web.pid, "worker": worker.pid}
                if not args.no_probe:
                    probe = children.start(
                        f"probe-{server}-{repeat}",
                        [sys.executable, str(Path(__file__).resolve()), "--probe", str(probe_out)],
                    )
                    pids["probe"] = probe.pid
                with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                    window = runner.run(
                        measure(
                            server=server,
                            repeat=repeat,
                            base_url=f"http://127.0.0.1:{port}",
                            points=points,
                            centre=centre,
                            args=args,
                            pids=pids,
                            probe_ready=probe_out.with_suffix(".ready") if probe else None,
                        )
                    )
                if probe is not None:
                    children.stop(probe)
                    if not probe_out.exists():
                        raise probe.failed("wrote no record")
                    window.probe = json.loads(probe_out.read_text())
                if worker.process.poll() is not None:
                    raise worker.failed("stopped during the run")
            except BenchError:
                raise
            except Exception as exc:
                raise web.failed(f"run failed: {exc!r}") from exc
            finally:
                if probe is not None:
                    children.stop(probe)
                children.stop(web)
            result = figures(window)
            result["startup_s"] = started_s
            results[server].append(result)
            print(
                f"{server:<8} repeat {repeat + 1}/{args.repeats}: "
                f"p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:6.2f} ms  "
                f"max {result['max_ms']:7.2f} ms  {result['frames_per_s']:5.2f} frames/s  "
                f"{result['kbit_per_s']:7.1f} kbit/s per visitor  CPU web "
                f"{result['cpu_web']:.2f} worker {result['cpu_worker']:.2f} client "
                f"{result['cpu_client']:.2f} s/s  (joined in {result['join_s']:.1f} s)",
                flush=True,
            )
            time.sleep(0.5)  # the zone despawns the visitors that left
    report(results, args)
    return {"runs": results}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--probe":
        probe_main(Path(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--visitors", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=15.0, help="measured window per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds after the joins")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each server")
    parser.add_argument("--crowd", action="store_true", help="all visitors within a 4 m circle")
    parser.add_argument("--no-probe", action="store_true", help="no second rows subscriber")
    parser.add_argument("--seed", type=int, default=20260)
    parser.add_argument("--json", metavar="PATH", help="write the raw figures here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary dir (logs)")
    args = parser.parse_args()
    if args.visitors < 1 or args.seconds <= 0 or args.warmup < 0 or args.repeats < 1:
        parser.error("--visitors, --seconds and --repeats must be positive, --warmup >= 0")

    redis_url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    found = versions()
    try:
        redis_version = redis_check(redis_url)
    except BenchError as exc:
        raise SystemExit(str(exc)) from None
    machine_info(
        code=code_version(),
        servers=f"daphne {found['daphne']} (twisted {found['twisted']}, autobahn "
        f"{found['autobahn']}); uvicorn {found['uvicorn']} (--loop uvloop, websockets "
        f"{found['websockets']})",
        client=f"this process, uvloop {found['uvloop']}, SDK zones.client (websockets)",
        redis=f"{redis_url} (server {redis_version}), channels_redis {found['channels_redis']}",
    )
    prefix = f"bench-fanout-{os.getpid()}-{secrets.token_hex(4)}"
    workdir = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    children = Children(workdir, bench_environment(workdir, redis_url, prefix))

    def terminated(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminated)
    outcome: dict[str, Any] = {}
    try:
        outcome = run(args, workdir, children)
    except KeyboardInterrupt:
        print("\ninterrupted; stopping every process this bench started", file=sys.stderr)
        raise SystemExit(130) from None
    except BenchError as exc:
        raise SystemExit(f"bench_fanout: {exc}") from None
    finally:
        children.stop_all()
        with contextlib.suppress(Exception):
            redis_forget_prefix(redis_url, prefix)
        if args.keep:
            print(f"logs kept in {workdir}")
        else:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    if args.json and outcome:
        record = {
            "args": vars(args),
            "versions": found,
            "redis": redis_version,
            "load_average_end": load_average(),
            **outcome,
        }
        Path(args.json).write_text(json.dumps(record, indent=2, default=float))
        print(f"raw figures written to {args.json}")


if __name__ == "__main__":
    main()
