"""Walk one visitor through a portal to another market of the host, and back.

Run it against a host's market (`manage.py runhost`, docs/host.md):

    python -m zones.client.portal_example --url http://127.0.0.1:8001 --market 1

It joins, picks the first portal of the market's layout that leads somewhere (or the one
to `--to`), walks into it, and follows the transfer the market sends: the visitor SDK
asks the destination for a ticket with the transfer token, and the host releases the
visitor from the first market only once the destination has accepted it. With `--back`
it then walks into the destination's portal that leads home and comes back the same way.

Exit status: 0 when every walk through a portal completed, 1 if one was refused or the
time ran out, 2 if the market refused the visitor.
"""

import argparse
import asyncio
import sys
import time
from typing import Any

import numpy as np

from .visitor import JoinRefused, Visitor, VisitorClosed

WALK_SPEED_M_S = 4.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m zones.client.portal_example", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--url", default="http://127.0.0.1:8001", help="base URL of the market")
    parser.add_argument("--market", type=int, default=1, help="market id")
    parser.add_argument("--key", help="authKey (16-256 chars); omit for a disposable visitor")
    parser.add_argument("--to", type=int, help="the market to go to (default: the first portal's)")
    parser.add_argument("--back", action="store_true", help="then come back the same way")
    parser.add_argument("--seconds", type=float, default=90.0, help="give up a walk after this")
    parser.add_argument("--near", action="store_true", help="join beside the portal")
    return parser.parse_args(argv)


def portal_to(visitor: Visitor, market: int | None) -> dict[str, Any] | None:
    """The layout's portal leading to `market` (any market when None)."""
    for portal in visitor.welcome["layout"].get("portals", []):
        if market is None or portal["target"] == market:
            return portal
    return None


def portal_centre(portal: dict[str, Any]) -> np.ndarray:
    x0, z0, x1, z1 = portal["rect"]
    return np.array([(x0 + x1) / 2, 0.0, (z0 + z1) / 2])


async def walk_through(visitor: Visitor, portal: dict[str, Any], seconds: float) -> dict[str, Any]:
    """Walk into `portal` until the transfer it starts has a result; that result."""
    await visitor.wait_for(lambda v: v.position is not None, timeout=10)
    taken = len(visitor.transfers)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while len(visitor.transfers) == taken:
        if loop.time() > deadline:
            raise TimeoutError(f"no transfer within {seconds:g} s of walking to {portal['id']}")
        if not visitor.moving and visitor.position is not None:  # steer toward the centre
            towards = portal_centre(portal) - visitor.position
            towards[1] = 0.0
            distance = float(np.linalg.norm(towards))
            speed = min(WALK_SPEED_M_S, distance * 4)
            await visitor.walk(towards / max(distance, 1e-6) * speed)
        await asyncio.sleep(0.1)
    if not visitor.closed:
        await visitor.walk([0.0, 0.0, 0.0])
    return visitor.transfers[-1]


def near(portal: dict[str, Any]) -> list[float]:
    """A place 3 m from the portal's centre, on the floor side."""
    centre = portal_centre(portal)
    step = {"north": (0, 3), "south": (0, -3), "west": (3, 0), "east": (-3, 0)}[portal["side"]]
    return [float(centre[0] + step[0]), 0.0, float(centre[2] + step[1])]


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        at = None
        if args.near:  # a look at the layout first, to join beside the portal: a shorter walk
            probe = await Visitor.connect(args.url, args.market)
            portal = portal_to(probe, args.to)
            at = near(portal) if portal is not None else None
            await probe.leave()
        visitor = await Visitor.connect(args.url, args.market, key=args.key, at=at)
    except JoinRefused as refused:
        print(f"join refused: {refused.status} {refused.code}: {refused.detail}", file=sys.stderr)
        return 2
    except (VisitorClosed, OSError) as error:
        print(f"cannot join market {args.market} at {args.url}: {error}", file=sys.stderr)
        return 2
    home = args.market
    print(f"welcome: entity {visitor.entity} in market {home}")
    legs = [args.to] + ([home] if args.back else [])
    status = 0
    for leg in legs:
        portal = portal_to(visitor, leg)
        if portal is None:
            print(f"market {visitor.market_id} has no portal to {leg or 'anywhere'}")
            status = 1
            break
        print(f"walking into {portal['id']} ({portal['side']}) toward market {portal['target']}")
        started = time.monotonic()
        try:
            result = await walk_through(visitor, portal, args.seconds)
        except TimeoutError as error:
            print(error)
            status = 1
            break
        took = (time.monotonic() - started) * 1000
        if result["result"] != "completed":
            print(f"transfer {result['result']}: {result.get('code')}: {result.get('detail')}")
            status = 1
            break
        print(
            f"transfer {result['transfer_id']} completed: now entity {visitor.entity} in market"
            f" {visitor.market_id} at {visitor.base_url} ({took:.0f} ms from the first step)"
        )
    print(f"left with close code {await visitor.leave()}")
    return status


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
