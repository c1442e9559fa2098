"""Several markets on one host: transfers through portals, and recovery after a kill.

    python bench/bench_host.py                      the defaults below
    python bench/bench_host.py --visitors 4 --transfers 40 --kills 2 --recover 100,1000

1. Transfer latency. A real host (`manage.py runhost`, embedded data directory, two
   generated markets linked by portals, `--walkers 0` unless told otherwise) and VISITORS
   keyed visitors, half starting in each market beside its portal, each walking through the
   portal and back until TRANSFERS transfers are done in all. Per transfer: what the visitor
   waited, `welcome_ms - received_ms` of its entry in `visitor.transfers` (the transfer
   message to the destination's welcome), and the time from the frame of the step into
   the portal (PortalWatch) to that welcome. Baseline, in the same run and by the same
   clock: before each walk the visitor's task makes a plain join (ticket, socket, welcome)
   of a fresh key to the market it is about to walk to, beside that market's portal where
   the transfer will bring it, and leaves.
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
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.host_book import recover_report, store_recover_timed  # noqa: E402
from bench.host_process import Host, host_running, kills_measure, kills_report  # noqa: E402
from bench.machine import load_average, machine_info  # noqa: E402
from bench.processes import BenchError  # noqa: E402
from zones.client.portal_example import near, portal_to, walk_through  # noqa: E402
from zones.client.visitor import JoinRefused, Visitor, VisitorClosed  # noqa: E402

TARGET_P99_MS = 250.0
WALK_SECONDS = 60.0  # a walk into a portal that has no result by then is a failure
FRAME_RESOLUTION_M = 0.01  # frames carry positions in whole centimetres
MOST_BOOTHS = 32  # what market_generate makes


# -- options ----------------------------------------------------------------------------


def count_option(*, least: int, most: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number in least..most, or an error naming what it got."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
        if most is not None and value > most:
            raise argparse.ArgumentTypeError(f"must be at most {most}, got {value}")
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
    counts = [
        ("--visitors", count_option(least=1), 20, "visitors walking (20)"),
        ("--transfers", count_option(least=1), 200, "transfers in all (200)"),
        ("--walkers", count_option(least=0), 0, "simulated visitors per market (0)"),
        ("--booths", count_option(least=1, most=MOST_BOOTHS), 2, "booths per market (2)"),
        ("--kills", count_option(least=0), 3, "market processes killed (3)"),
    ]
    for name, parse, default, said in counts:
        parser.add_argument(name, type=parse, default=default, help=said)
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
        """Watch a walk into `portal` (None: no walk), forgetting the frames seen."""
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
    from_step_ms: list[float] = field(default_factory=list)  # step frame -> welcome
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
    """Print the spreads, the ratio to the baseline, the verdict and every failure."""
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


# -- the run ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the bench; 0 when every transfer completed, 1 otherwise or on a bench error."""
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
