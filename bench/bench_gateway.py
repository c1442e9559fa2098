"""Cost of the gateway's per-tick cut: every visitor's frame from the merged view.

    python bench/bench_gateway.py [--visitors 100,1000] [--repeats 15]

Each tick the gateway (zones/gateway.py, with zones/core/views.py) cuts every
visitor's frame out of the merged rows with one distance matrix for everyone, the
level of detail (the 32 nearest rows, the 96 nearest far rows every 4th tick, the
4 nearest bodies every 4th tick) and centimetre rows. The baseline is the straightforward cut: for each
visitor on its own, the distances to every row, every row within 5 m (20 m every
4th tick) as the zones' 48-byte rows and every body within 5 m every 2nd tick.
Both are timed in this process on the same market: a third of the visitors packed
at an entrance, a third in a choke point, a third spread over the floor. Frames go
to sinks that keep nothing; four ticks are timed per repeat (every phase), and the
median per tick is reported with the mean frame size and bandwidth per visitor.
"""

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fabric_site.settings")
os.environ.pop("REDIS_URL", None)  # the in-process bus: nothing is sent anywhere

import django  # noqa: E402

django.setup()

from bench.machine import machine_info  # noqa: E402
from bench.markets import BOOTHS, market_view  # noqa: E402
from market.live import LiveMarket  # noqa: E402
from zones.core.constants import INTEREST_RADIUS_M, SIM_TICK_HZ  # noqa: E402
from zones.core.ranges import floor_ranges  # noqa: E402
from zones.core.skeleton import bodies as body_blocks  # noqa: E402
from zones.core.views import FAR_RADIUS_M  # noqa: E402
from zones.core.wire import RowFlag, frame_encode  # noqa: E402
from zones.gateway import Gateway, Link  # noqa: E402

TICKS = 4  # one of every phase of the far rows and the bodies


class Counted:
    """A socket that counts what it would have sent."""

    def __init__(self) -> None:
        self.bytes = 0
        self.frames = 0

    def send_frame(self, frame: bytes) -> None:
        self.frames += 1
        self.bytes += len(frame)

    def send_event(self, event: dict) -> None:
        pass

    async def supersede(self) -> None:
        pass

    def portal_entered(self, portal: object) -> None:
        pass

    async def transferred(self) -> None:
        pass


def gateway_with(view: np.ndarray) -> tuple[Gateway, list[Link], list[Counted]]:
    starts = tuple(int(s) for s in floor_ranges(BOOTHS).starts.tolist())
    booths = tuple((f"booth {z}", "#888888") for z in range(BOOTHS))
    gateway = Gateway(LiveMarket(market_id=1, booths=booths, starts=starts))
    sinks = [Counted() for _ in range(view.size)]
    links = [
        Link(entity=int(e), sink=sink, stagger=i, seq_taken=0, zone=0, booth=0)
        for i, (e, sink) in enumerate(zip(view["id"].tolist(), sinks, strict=True))
    ]
    gateway.links = {link.entity: link for link in links}
    return gateway, links, sinks


def straightforward(view: np.ndarray, links: list[Link], tick: int) -> None:
    """The baseline: each visitor's cut on its own, the zones' rows as they are."""
    roots = (view["flags"] & RowFlag.VISITOR_ROOT) != 0
    ids = view["id"]
    for link in links:
        centre = view["pos"][int(np.searchsorted(ids, link.entity))]
        d = np.linalg.norm(view["pos"] - centre, axis=1)
        phase = tick + link.stagger
        far = phase % 4 == 0
        near = d <= INTEREST_RADIUS_M
        rows = view[d <= FAR_RADIUS_M] if far else view[near]
        bodies = body_blocks(view[near & roots]) if phase % 2 == 0 else np.zeros(0)
        link.sink.send_frame(frame_encode(rows, bodies, ack_seq=0, tick_ms=tick, far=far))


def timed(run, repeats: int) -> float:
    times = []
    for r in range(repeats):
        started = time.perf_counter()
        for tick in range(TICKS):
            run(r * TICKS + tick)
        times.append((time.perf_counter() - started) / TICKS)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", default="100,1000")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    machine_info()
    print(
        f"{'visitors':>8} | {'ours ms/tick':>12} | {'baseline':>9} | {'ratio':>6} | "
        f"{'bytes/frame ours':>16} | {'baseline':>9} | {'kbit/s ours':>11} | {'baseline':>9}"
    )
    loop = asyncio.new_event_loop()
    for visitors in (int(v) for v in args.visitors.split(",")):
        view = market_view(visitors, np.random.default_rng(visitors))
        gateway, links, sinks = gateway_with(view)

        def ours(
            tick: int, gateway: Gateway = gateway, links: list[Link] = links, view=view
        ) -> None:
            gateway.frames = tick
            loop.run_until_complete(gateway._send_frames(links, view, tick))

        ours_ms = timed(ours, args.repeats)
        ours_bytes = sum(s.bytes for s in sinks) / sum(s.frames for s in sinks)
        _, base_links, base_sinks = gateway_with(view)
        base_ms = timed(
            lambda tick, links=base_links, view=view: straightforward(view, links, tick), 3
        )
        base_bytes = sum(s.bytes for s in base_sinks) / sum(s.frames for s in base_sinks)

        def kbit(size: float) -> float:
            return size * 8 * SIM_TICK_HZ / 1000

        print(
            f"{visitors:>8} | {ours_ms:>12.2f} | {base_ms:>9.2f} | {base_ms / ours_ms:>5.1f}× | "
            f"{ours_bytes:>16,.0f} | {base_bytes:>9,.0f} | {kbit(ours_bytes):>11,.0f} | "
            f"{kbit(base_bytes):>9,.0f}"
        )
    loop.close()


if __name__ == "__main__":
    main()
