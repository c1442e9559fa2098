"""Several markets on one host: transfers through portals, and recovery after a kill.

    python bench/bench_host.py                      the defaults below
    python bench/bench_host.py --visitors 4 --transfers 40 --kills 2 --recover 100,1000

1. Transfer latency. A real host (`manage.py runhost`, embedded data directory, two
   generated markets linked by portals, `--walkers 0` unless told otherwise) and VISITORS
   keyed visitors, half starting in each market beside its portal, each walking through the
   portal and back until TRANSFERS transfers are done in all. Per transfer: what the visitor
   waited, `welcome_ms - received_ms` of its entry in `visitor.transfers` (the transfer
   message to the destination's welcome), and the time from the first frame whose own
   position is inside the portal to that welcome. Baseline, in the same run and by the same
   clock: before each walk the visitor's task makes a plain join (ticket, socket, welcome)
   of a fresh key to the market it is about to walk to, beside the same portal, and leaves.
   A transfer is such a join plus the orchestrator's acceptance and the source's release.
2. Recovery. (a) KILLS times a market process is SIGKILLed, markets 2 and 1 in turn, and
   timed until the orchestrator's /health shows a new process `ready` and the market's
   /healthz answers 200. (b) `transfer_recover` over a SQLite game store holding N
   completed transfers, for each N of RECOVER, written through `TransferBook` operations.
3. Generating a market: bench/bench_mapgen.py.

Every join limit is off in the host's environment: all visitors join from 127.0.0.1.
"""

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import load_average, machine_info  # noqa: E402
from bench.processes import LOG_TAIL_LINES, REPO_ROOT, BenchError, free_port, manage  # noqa: E402
from host.persistence import game_store_open  # noqa: E402
from host.tokens import visitor_key_hash  # noqa: E402
from host.transfers import TransferBook, transfer_recover  # noqa: E402
from market.rates import JOIN_LIMIT_DEFAULTS  # noqa: E402
from zones.client.portal_example import near, portal_to, walk_through  # noqa: E402
from zones.client.visitor import JoinRefused, Visitor, VisitorClosed  # noqa: E402

TARGET_P99_MS = 250.0
STARTUP_S = 180.0  # two markets starting on a loaded 2-core machine
RECOVERY_TIMEOUT_S = 120.0
POLL_S = 0.05
BACKOFF_FIRST_S = 0.5  # the orchestrator's first restart delay, doubled each crash in a row
WALK_SECONDS = 60.0  # a walk into a portal that has no result by then is a failure
RECOVER_REPEATS = 3
FRAME_RESOLUTION_M = 0.01  # frames carry positions in whole centimetres
SECRET_VARIABLE = "FABRIC_HOST_SECRET"
# Settings from the caller's shell that would move the host off its embedded default (the
# game store included: the figures are for SQLite).
FOREIGN_VARIABLES = (
    "REDIS_URL",
    "DATABASE_URL",
    "DJANGO_SETTINGS_MODULE",
    "DJANGO_SECRET_KEY",
    "FABRIC_DEBUG",
    "ALLOWED_HOSTS",
    "CHUNK_STORE_DIR",
    "FABRIC_MARKET_ID",
    "FABRIC_CHANNEL_PREFIX",
    "FABRIC_HOST_DATABASE_URL",
    "FABRIC_HOST_CONTROL_URL",
    "FABRIC_HOST_MARKET_ID",
)
# Where the store is filled: a tmpfs makes each commit's fsync free, so 10,000 transfers
# (50,000 commits) are written in seconds; the filled file is then copied to disk.
FILL_DIR = Path("/dev/shm")


# -- options ----------------------------------------------------------------------------


def count_option(least: int) -> Any:
    """An argparse type: a whole number >= `least`, or an error naming what it got."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
        return value

    return parse


def sizes_option(text: str) -> list[int]:
    """An argparse type: comma-separated store sizes, each a whole number >= 1."""
    sizes = []
    for part in text.split(","):
        try:
            size = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be comma-separated whole numbers, got {part.strip()!r} in {text!r}"
            ) from None
        if size < 1:
            raise argparse.ArgumentTypeError(f"each size must be at least 1, got {size}")
        sizes.append(size)
    return sizes


def args_parse(*, argv: list[str] | None = None) -> argparse.Namespace:
    """The bench's options; exits with a message naming the option that is wrong."""
    parser = argparse.ArgumentParser(
        prog="bench/bench_host.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--visitors", type=count_option(1), default=20, help="(default 20)")
    parser.add_argument("--transfers", type=count_option(1), default=200, help="(default 200)")
    parser.add_argument("--walkers", type=count_option(0), default=0, help="per market (0)")
    parser.add_argument("--booths", type=count_option(1), default=2, help="per market (2)")
    parser.add_argument("--kills", type=count_option(0), default=3, help="market kills (3)")
    parser.add_argument(
        "--recover", type=sizes_option, default=[1000, 10000], help="store sizes (1000,10000)"
    )
    args = parser.parse_args(argv)
    if args.transfers < args.visitors:
        parser.error(
            f"--transfers ({args.transfers}) must be at least --visitors ({args.visitors}):"
            " every visitor walks through a portal at least once"
        )
    return args


# -- figures ----------------------------------------------------------------------------


def spread_describe(*, values: list[float]) -> str:
    """p50, p90, p99, max and count of `values` (ms), on one line."""
    if not values:
        return "no values"
    p50, p90, p99 = np.percentile(np.asarray(values, np.float64), [50, 90, 99])
    return (
        f"p50 {p50:7.1f}  p90 {p90:7.1f}  p99 {p99:7.1f}  max {max(values):7.1f} ms"
        f"  (count {len(values)})"
    )


def p99_verdict(*, values: list[float]) -> str:
    """Whether the p99 of `values` meets TARGET_P99_MS, and by how much it misses."""
    p99 = float(np.percentile(np.asarray(values, np.float64), 99))
    if p99 <= TARGET_P99_MS:
        return f"p99 {p99:.1f} ms meets the {TARGET_P99_MS:g} ms target"
    over = p99 - TARGET_P99_MS
    return f"p99 {p99:.1f} ms MISSES the {TARGET_P99_MS:g} ms target by {over:.1f} ms"


# -- the host ---------------------------------------------------------------------------


@dataclass
class Host:
    """A running `runhost` of markets 1 and 2, and how to reach it."""

    base_port: int
    control_port: int
    secret: str
    process: subprocess.Popen[bytes]
    log_path: Path
    started_s: float  # from the runhost process's start to both markets ready

    def market_url(self, market_id: int) -> str:
        return f"http://127.0.0.1:{self.base_port + market_id - 1}"

    def log_tail(self) -> str:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-LOG_TAIL_LINES:])


def host_environment(*, data_dir: Path, secret: str) -> dict[str, str]:
    """The environment of the host: embedded settings, its secret, no join limits."""
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_VARIABLES}
    env.update(FABRIC_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1", **{SECRET_VARIABLE: secret})
    env.update(dict.fromkeys(JOIN_LIMIT_DEFAULTS, "off"))
    return env


def control_get(*, host: Host, path: str) -> dict[str, Any]:
    """GET `path` of the host's control API, with its secret."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{host.control_port}{path}",
        headers={"X-Fabric-Host-Secret": host.secret},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return dict(json.loads(response.read()))


def markets_health(*, host: Host) -> dict[int, dict[str, Any]]:
    """Each market's report in the orchestrator's /health, by market id."""
    return {m["market_id"]: m for m in control_get(host=host, path="/health")["markets"]}


def healthz_answers(*, url: str) -> bool:
    """Whether the market at `url` answers /healthz with 200."""
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def markets_ready(*, host: Host) -> bool:
    """Whether the orchestrator reports both markets ready (False while it cannot answer)."""
    if host.process.poll() is not None:
        raise BenchError(f"runhost exited with {host.process.returncode}:\n{host.log_tail()}")
    try:
        return all(m["state"] == "ready" for m in markets_health(host=host).values())
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def host_running(*, workdir: Path, walkers: int, booths: int) -> Iterator[Host]:
    """Two generated markets linked by portals, served by runhost until the block ends."""
    secret = secrets.token_urlsafe(32)
    env = host_environment(data_dir=workdir / "data", secret=secret)
    manage(env, "migrate", "--noinput")
    for name, seed, portal in (("North", "1", "south:500:2"), ("South", "2", "north:500:1")):
        made = ("market_generate", name, "--booths", str(booths), "--seed", seed)
        manage(env, *made, "--portal", portal)
    base = ports_free(count=3)  # two markets and the control API
    ports = ["--base-port", str(base), "--control-port", str(base + 2)]
    argv = [sys.executable, str(REPO_ROOT / "manage.py"), "runhost", "--markets", "1,2"]
    log_path = workdir / "runhost.log"
    started = time.monotonic()
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [*argv, *ports, "--walkers", str(walkers)],
            cwd=REPO_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    host = Host(base, base + 2, secret, process, log_path, 0.0)
    try:
        until(lambda: markets_ready(host=host), what="both markets ready", seconds=STARTUP_S)
        host.started_s = time.monotonic() - started
        yield host
    except Exception:
        # whatever stopped the bench, the host's own account of it goes with the traceback
        print(f"runhost's last lines:\n{host.log_tail()}", file=sys.stderr)
        raise
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def ports_free(*, count: int) -> int:
    """The first of `count` consecutive loopback ports nothing listens on right now."""
    for _ in range(50):
        base = free_port()
        if base + count > 65_535:
            continue
        try:
            for port in range(base, base + count):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise BenchError(f"found no {count} consecutive free ports")


def until(condition: Any, *, what: str, seconds: float) -> float:
    """Poll `condition` every POLL_S until true; the monotonic time it was; BenchError after."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(POLL_S)
    raise BenchError(f"gave up after {seconds:g} s waiting for {what}")


# -- transfers --------------------------------------------------------------------------


@dataclass
class PortalWatch:
    """One visitor's walk into a portal: the frames of the walk, and where they showed it.

    Frames carry positions in whole centimetres while the market tests its own float32
    position, so a frame within a centimetre of the portal's edge may stand either side of
    it. The market tells the visitor of the portal right after it sent the frame of the
    tick it saw the step: the step is the first frame before the transfer message that
    shows the visitor clearly inside, failing that the last frame before the message.
    """

    rect: tuple[float, float, float, float] | None = None
    seen: list[tuple[float, bool]] = field(default_factory=list)  # (received_ms, inside)
    frames: int = 0  # frames since the watch was last armed

    def arm(self, *, portal: dict[str, Any] | None) -> None:
        self.rect = None if portal is None else tuple(portal["rect"])
        self.seen, self.frames = [], 0

    def frame_seen(
        self, visitor: Visitor, header: Any, rows: Any, bodies: Any, received_ms: float
    ) -> None:
        """The visitor's on_frame: note whether its own position is clearly inside."""
        self.frames += 1
        if self.rect is None or visitor.position is None:
            return
        x0, z0, x1, z1 = self.rect
        x, z = visitor.position[0], visitor.position[2]
        margin = FRAME_RESOLUTION_M
        inside = x0 + margin <= x < x1 - margin and z0 + margin <= z < z1 - margin
        self.seen.append((received_ms, bool(inside)))

    def step_ms(self, *, message_ms: float) -> tuple[float | None, bool]:
        """When the step into the portal was seen; True when no frame showed it inside."""
        before = [(at, inside) for at, inside in self.seen if at <= message_ms]
        inside = [at for at, is_inside in before if is_inside]
        if inside:
            return inside[0], False
        return (before[-1][0], True) if before else (None, False)


@dataclass
class TransferFigures:
    """What the visitors measured, in ms, and what went wrong."""

    waited_ms: list[float] = field(default_factory=list)  # welcome_ms - received_ms
    from_step_ms: list[float] = field(default_factory=list)  # inside frame -> welcome
    joins_ms: list[float] = field(default_factory=list)  # the baseline
    no_step_frame: int = 0  # no frame before the transfer message
    edge_steps: int = 0  # no frame showed the visitor clearly inside before the message
    failures: list[str] = field(default_factory=list)


async def portal_beside(*, host: Host, market_id: int) -> list[float]:
    """A place 3 m from the market's portal to the other market, from a look at its layout."""
    try:
        probe = await Visitor.connect(host.market_url(market_id), market_id)
    except (VisitorClosed, JoinRefused, OSError) as error:
        raise BenchError(f"a first visitor could not join market {market_id}: {error}") from None
    try:
        portal = portal_to(probe, 3 - market_id)
    finally:
        await probe.leave()
    if portal is None:
        raise BenchError(f"market {market_id} has no portal to market {3 - market_id}")
    return near(portal)


async def join_timed(*, url: str, market_id: int, at: list[float], key: str) -> float:
    """Milliseconds from asking for a ticket to the welcome, by the SDK's clock; then leave."""
    started = time.time_ns() / 1e6  # the clock of received_ms and welcome_ms
    joined = await Visitor.connect(url, market_id, key=key, at=at)
    took = time.time_ns() / 1e6 - started
    await joined.leave()
    return took


async def visitor_walks(
    *,
    host: Host,
    number: int,
    home: int,
    walks: int,
    beside: dict[int, list[float]],
    figures: TransferFigures,
) -> None:
    """One visitor: before each walk a timed plain join, then through the portal."""
    watch = PortalWatch()
    key = f"bench-host-visitor-{number:04d}"
    visitor = await Visitor.connect(
        host.market_url(home), home, key=key, at=beside[home], on_frame=watch.frame_seen
    )
    try:
        for walk in range(walks):
            here = visitor.market_id
            there = 3 - here
            portal = portal_to(visitor, there)
            if portal is None:
                raise BenchError(f"market {here} has no portal to market {there}")
            join_key = f"bench-host-join-{number:04d}-{walk:05d}"
            figures.joins_ms.append(
                await join_timed(
                    url=host.market_url(there), market_id=there, at=beside[there], key=join_key
                )
            )
            await visitor.wait_for(lambda _: watch.frames > 0, timeout=10)  # fresh position
            watch.arm(portal=portal)
            try:
                result = await walk_through(visitor, portal, WALK_SECONDS)
            except TimeoutError as error:
                figures.failures.append(f"visitor {number}: timeout: {error}")
                return
            if result["result"] != "completed":
                why = f"{result['result']}: {result.get('code')}: {result.get('detail')}"
                figures.failures.append(f"visitor {number}, market {here} to {there}: {why}")
                return  # refused leaves it inside the portal; failed leaves it no socket
            figures.waited_ms.append(result["welcome_ms"] - result["received_ms"])
            step_ms, edge = watch.step_ms(message_ms=result["received_ms"])
            if step_ms is None:
                figures.no_step_frame += 1
            else:
                figures.from_step_ms.append(result["welcome_ms"] - step_ms)
                figures.edge_steps += edge
            watch.arm(portal=None)
    finally:
        if not visitor.closed:
            await visitor.leave()


async def transfers_measure(*, host: Host, visitors: int, transfers: int) -> TransferFigures:
    """VISITORS visitors walking back and forth until TRANSFERS transfers are done."""
    figures = TransferFigures()
    beside = {m: await portal_beside(host=host, market_id=m) for m in (1, 2)}
    walks = [transfers // visitors + (i < transfers % visitors) for i in range(visitors)]
    tasks = [
        visitor_walks(
            host=host, number=i, home=1 + i % 2, walks=walks[i], beside=beside, figures=figures
        )
        for i in range(visitors)
    ]
    for outcome in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(outcome, BaseException):
            figures.failures.append(f"{type(outcome).__name__}: {outcome}")
    return figures


def transfers_report(*, figures: TransferFigures, asked: int) -> None:
    print(f"Transfers through portals ({asked} asked)")
    print(f"  transfer message -> welcome    {spread_describe(values=figures.waited_ms)}")
    print(f"  step frame -> welcome          {spread_describe(values=figures.from_step_ms)}")
    print(f"  baseline: plain join -> welcome {spread_describe(values=figures.joins_ms)}")
    if figures.waited_ms and figures.joins_ms:
        ratios = [
            float(np.percentile(figures.waited_ms, q) / np.percentile(figures.joins_ms, q))
            for q in (50, 99)
        ]
        print(f"  transfer/join ratio: p50 {ratios[0]:.2f}x, p99 {ratios[1]:.2f}x")
        print(f"  {p99_verdict(values=figures.waited_ms)}")
    if figures.edge_steps:
        print(f"  {figures.edge_steps} steps were the last frame before the message (PortalWatch)")
    if figures.no_step_frame:
        print(f"  {figures.no_step_frame} transfers had no frame before the transfer message")
    print(f"  failures: {len(figures.failures)}")
    for failure in figures.failures:
        print(f"    {failure}")
    print()


# -- recovery of a market ---------------------------------------------------------------


@dataclass
class KillFigures:
    market_id: int
    backoff_s: float  # the restart delay the orchestrator's policy gives this crash
    restarted_s: float  # kill -> /health names a new process
    ready_s: float  # kill -> /health says that process is ready
    healthz_s: float  # kill -> the market's /healthz answers 200


def market_kill_timed(*, host: Host, market_id: int, backoff_s: float) -> KillFigures:
    """SIGKILL the market's process; seconds until a new one is ready and answers."""
    old = markets_health(host=host)[market_id]["pid"]
    if old is None:
        raise BenchError(f"market {market_id} has no process to kill")

    def report() -> dict[str, Any]:
        try:
            return markets_health(host=host)[market_id]
        except (urllib.error.URLError, OSError):
            return {}

    killed = time.monotonic()
    os.kill(old, signal.SIGKILL)
    restarted = until(
        lambda: report().get("pid") not in (None, old), what="a new process", seconds=60
    )
    ready = until(
        lambda: (r := report()).get("state") == "ready" and r.get("pid") != old,
        what=f"market {market_id} ready again",
        seconds=RECOVERY_TIMEOUT_S,
    )
    answers = until(
        lambda: healthz_answers(url=host.market_url(market_id)),
        what=f"market {market_id}'s /healthz",
        seconds=RECOVERY_TIMEOUT_S,
    )
    return KillFigures(
        market_id, backoff_s, restarted - killed, ready - killed, max(ready, answers) - killed
    )


def kills_measure(*, host: Host, kills: int) -> list[KillFigures]:
    """Kill markets 2 and 1 in turn, each time once both are ready."""
    crashes = {1: 0, 2: 0}
    figures = []
    for k in range(kills):
        until(lambda: markets_ready(host=host), what="both markets ready", seconds=STARTUP_S)
        market_id = 2 - k % 2
        crashes[market_id] += 1
        backoff_s = BACKOFF_FIRST_S * 2 ** (crashes[market_id] - 1)
        figures.append(market_kill_timed(host=host, market_id=market_id, backoff_s=backoff_s))
    return figures


def kills_report(*, figures: list[KillFigures], started_s: float) -> None:
    print(
        f"Market process SIGKILLed, {len(figures)} times (the host's cold start: {started_s:.1f} s)"
    )
    for f in figures:
        print(
            f"  market {f.market_id}: new process {f.restarted_s:5.2f} s (backoff"
            f" {f.backoff_s:g} s), ready {f.ready_s:5.2f} s, /healthz 200 {f.healthz_s:5.2f} s"
        )
    if figures:
        both = [f.healthz_s for f in figures]
        less = [f.healthz_s - f.backoff_s for f in figures]
        print(
            f"  kill -> ready and /healthz 200: median {statistics.median(both):.2f} s,"
            f" worst {max(both):.2f} s; without the backoff: median"
            f" {statistics.median(less):.2f} s, worst {max(less):.2f} s"
        )
    print()


# -- recovery of the orchestrator's book ------------------------------------------------


def book_over(*, store: Any) -> TransferBook:
    return transfer_recover(
        commit_log=store,
        market_health=lambda market: "healthy",
        default_market=1,
        secret=b"bench-host-book-secret-0123456789",
        token_ttl_ms=10_000,
    )


def store_fill(*, data_dir: Path, transfers: int) -> list[str]:
    """`transfers` completed transfers in a new store under `data_dir`; their ids.

    Characters go back and forth between markets 1 and 2, as visitors walking do.
    """
    store = game_store_open(url=None, data_dir=data_dir)
    try:
        book = book_over(store=store)
        characters = min(transfers, 200)
        key_hash = visitor_key_hash(key="bench-host-book-visitor")
        ids = []
        for i in range(transfers):
            character, leg = i % characters, i // characters
            source = 1 + leg % 2
            now = 1_800_000_000_000 + i * 10
            transfer_id, token = book.transfer_request(
                character_id=character,
                key_hash=key_hash,
                source=source,
                destination=3 - source,
                instance_id=0,
                character_state={"entity": character, "identity": f"key:{character}"},
                now_ms=now,
            )
            book.transfer_accept(token=token, destination=3 - source, instance_id=0, now_ms=now + 1)
            book.transfer_release(transfer_id=transfer_id, source=source, now_ms=now + 2)
            book.transfer_complete(transfer_id=transfer_id, now_ms=now + 3)
            ids.append(transfer_id)
        return ids
    finally:
        store.close()


@dataclass
class RecoverFigures:
    transfers: int
    events: int
    recover_ms: list[float]  # each repeat
    read_ms: float  # reading the events alone, once


def store_recover_timed(*, transfers: int, workdir: Path) -> RecoverFigures:
    """Fill a store (on tmpfs when there is one), copy it to disk, time `transfer_recover`."""
    fill_root = FILL_DIR if FILL_DIR.is_dir() else workdir
    with tempfile.TemporaryDirectory(dir=fill_root) as filling:
        ids = store_fill(data_dir=Path(filling), transfers=transfers)
        data_dir = workdir / f"store-{transfers}"
        data_dir.mkdir()
        shutil.copy2(Path(filling) / "host.sqlite3", data_dir / "host.sqlite3")
    store = game_store_open(url=None, data_dir=data_dir)
    try:
        runs = []
        for _ in range(RECOVER_REPEATS):
            started = time.perf_counter()
            book = book_over(store=store)
            runs.append((time.perf_counter() - started) * 1e3)
        if any(book.transfer_get(transfer_id=t).state != "completed" for t in ids):
            raise BenchError("the recovered book has a transfer that is not completed")
        started = time.perf_counter()
        events = len(store.critical_events(kind="transfer"))
        read_ms = (time.perf_counter() - started) * 1e3
    finally:
        store.close()
    return RecoverFigures(transfers, events, runs, read_ms)


def recover_report(*, figures: list[RecoverFigures]) -> None:
    print(f"Orchestrator recovery: transfer_recover over a SQLite store ({RECOVER_REPEATS} runs)")
    for f in figures:
        median = statistics.median(f.recover_ms)
        print(
            f"  {f.transfers:>7,} completed transfers ({f.events:,} events): median {median:8.1f} ms"
            f" (first {f.recover_ms[0]:.1f}, worst {max(f.recover_ms):.1f})"
            f"  {median / f.transfers * 1e3:6.1f} us a transfer"
            f"  (reading the events alone {f.read_ms:.1f} ms)"
        )
    print()


# -- the run ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = args_parse(argv=argv)
    machine_info(
        options=f"--visitors {args.visitors} --transfers {args.transfers} --walkers"
        f" {args.walkers} --booths {args.booths} --kills {args.kills}"
        f" --recover {','.join(map(str, args.recover))}"
    )
    print("Generating a market: see bench/bench_mapgen.py and docs/performance.md\n")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-host-") as work:
            workdir = Path(work)
            recovered = [store_recover_timed(transfers=n, workdir=workdir) for n in args.recover]
            recover_report(figures=recovered)
            with host_running(workdir=workdir, walkers=args.walkers, booths=args.booths) as host:
                figures = asyncio.run(
                    transfers_measure(host=host, visitors=args.visitors, transfers=args.transfers)
                )
                transfers_report(figures=figures, asked=args.transfers)
                kills = kills_measure(host=host, kills=args.kills)
                kills_report(figures=kills, started_s=host.started_s)
    except BenchError as error:
        print(f"bench_host: {error}", file=sys.stderr)
        return 1
    print(f"load at the end: {load_average()} (1, 5, 15 min)")
    return 1 if figures.failures else 0


if __name__ == "__main__":
    sys.exit(main())
