"""Walk one visitor across a booth border and print what the market says on the way.

Run it against a live market (the site serving the join endpoint and the socket):

    python -m zones.client.example --url http://127.0.0.1:8000 --market 1
    python -m zones.client.example --url http://127.0.0.1:8000 --market 1 --key "$AUTH_KEY"
    python -m zones.client.example --assets ~/.cache/fabric-visitor   # and load booth assets

It joins (as the visitor of `--key`, or a disposable one), prints the welcome,
walks toward the nearest floor point of a neighbouring booth, prints
`booth_entered` and `zone_changed` as they arrive and the round trip of a ping,
then leaves once authority has moved to the other zone (or after `--seconds`).
With `--assets DIR` it also loads the assets of each booth it enters, as that
booth's visitor, into DIR (chunk cache in DIR/cache, assets in DIR/zone-<n>), and
prints what it loaded.

Exit status: 0 after a zone change, 1 if the time ran out first, 2 if the market
refused the visitor.
"""

import argparse
import asyncio
import contextlib
import sys
from typing import Any

import numpy as np

from .assets import BoothAssets
from .visitor import JoinRefused, Visitor, VisitorClosed

WALK_SPEED_M_S = 4.0  # a brisk walk: the nearest border can be 50 m away in a large booth
OVERSHOOT_M = 1.0
"""Stop this far past the border point, so the visitor stays in the new booth
through the handoff's hysteresis instead of pacing on the line."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m zones.client.example", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="base URL of the site")
    parser.add_argument("--market", type=int, default=1, help="market id")
    parser.add_argument("--key", help="authKey (16-256 chars); omit for a disposable visitor")
    parser.add_argument("--seconds", type=float, default=60.0, help="give up after this long")
    parser.add_argument(
        "--speed", type=float, default=WALK_SPEED_M_S, help="walking speed in m/s (max v_max)"
    )
    parser.add_argument(
        "--assets", help="folder to load the assets of the booths entered into (kept between runs)"
    )
    return parser.parse_args(argv)


def describe_welcome(welcome: dict[str, Any]) -> str:
    booth = welcome["booth"]
    resumed = " (resumed)" if welcome.get("resumed") else ""
    return (
        f"welcome: entity {welcome['entity']}{resumed}, booth {booth['zone']} "
        f"{booth['name']!r} {booth['colour']}, zone {welcome['zone']}"
    )


async def cross_border(visitor: Visitor, seconds: float, speed: float = WALK_SPEED_M_S) -> bool:
    """Walk into the nearest neighbouring booth; True once authority moved there."""
    assert visitor.layout is not None
    await visitor.wait_for(lambda v: v.position is not None, timeout=5)
    start = visitor.position
    found = visitor.layout.nearest_in_other_zone(start, zone=visitor.zone)
    if found is None:
        print("the market is one booth: there is no border to cross")
        return False
    border, target_zone = found
    direction = (border - start) / max(float(np.linalg.norm(border - start)), 1e-6)
    stop_at = border + OVERSHOOT_M * direction
    print(f"walking to booth {target_zone} at {np.round(border, 2).tolist()}")
    await visitor.walk(direction * speed)
    shown = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    walking = True
    while loop.time() < deadline:
        for event in visitor.events[shown:]:
            print(f"{event['type']}: {format_event(event)}")
        shown = len(visitor.events)
        if any(e["type"] == "zone_changed" for e in visitor.events):
            return True
        if walking and np.dot(stop_at - visitor.position, direction) <= 0:
            await visitor.walk([0.0, 0.0, 0.0])
            walking = False
        with contextlib.suppress(TimeoutError):
            await visitor.wait_for(
                lambda v, seen=shown: len(v.events) > seen,
                timeout=min(0.1, deadline - loop.time()),
            )
    return False


def format_event(event: dict[str, Any]) -> str:
    fields = {k: v for k, v in event.items() if k not in ("type", "received_ms")}
    return ", ".join(f"{k}={v}" for k, v in fields.items())


def describe_loads(assets: BoothAssets) -> list[str]:
    """One line per background load: what came from the network, what from the cache."""
    lines = []
    for load in assets.loads:
        if load.report is None:
            lines.append(f"booth {load.zone} ({load.reason}): not loaded: {load.error}")
            continue
        report = load.report
        names = ", ".join(path.name for path in report.assets) or "no assets"
        lines.append(
            f"booth {load.zone} ({load.reason}): {names} in {assets.folder(load.zone)}; "
            f"{report.chunks_downloaded} chunks downloaded ({report.bytes_downloaded:,} bytes), "
            f"{report.chunks_cached} from the cache"
        )
    return lines


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    assets = None
    if args.assets:
        assets = BoothAssets(args.url, f"{args.assets}/cache", args.assets)
    try:
        visitor = await Visitor.connect(args.url, args.market, key=args.key, assets=assets)
    except JoinRefused as refused:
        print(f"join refused: {refused.status} {refused.code}: {refused.detail}", file=sys.stderr)
        return 2
    except VisitorClosed as closed:
        print(f"socket refused: {closed}", file=sys.stderr)
        return 2
    except OSError as unreachable:  # connection refused, unknown host, timeout
        print(f"cannot reach the market at {args.url}: {unreachable}", file=sys.stderr)
        return 2
    print(describe_welcome(visitor.welcome))
    try:
        crossed = await cross_border(visitor, args.seconds, args.speed)
        print(f"ping: {await visitor.ping():.1f} ms round trip")
        frames = visitor.stats
        print(
            f"{frames.frames} frames, {frames.bytes} bytes, "
            f"median age {frames.latency_percentile(50):.1f} ms"
        )
        if assets is not None:
            await assets.idle()
            for line in describe_loads(assets):
                print(line)
        print(f"left with close code {await visitor.leave()}")
    except VisitorClosed as closed:
        print(f"the market closed the socket: {closed}", file=sys.stderr)
        return 2
    finally:
        await visitor.close()
    return 0 if crossed else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
