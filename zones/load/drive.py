"""Walking a joined visitor along its plan (scenarios.VisitorPlan), cycle after cycle.

Each leg leaves at its planned moment after the common start signal, so visitors
planned to move together do so without any coordination; a leg that is late (the
walk before it took longer than planned) leaves at once. A leg is walked as the SDK's
`walk_to` walks (zones/client/burst.py), steering by the positions the market reports:
every CHECK_S it stops the visitor once past the leg's end, and sends it walking again
if the market does not show it moving along the heading. Here the checks are timer
callbacks on plain floats and the inputs 16-byte binary ones, so that a thousand walking
visitors cost the harness little.
"""

import asyncio
import time

import numpy as np

from zones.client.burst import CHECK_S
from zones.client.visitor import VisitorClosed

from .lean import LeanVisitor
from .scenarios import LEG_SLACK_S, VisitorPlan

ARRIVED_M = 0.05  # a leg shorter than this is not walked
MOVING_M_S = 0.1  # slower than this along the heading is not moving (as walk_to)
CM = 100.0


async def follow(visitor: LeanVisitor, plan: VisitorPlan, go: float) -> None:
    """Walk `plan`'s legs forever from `go` (a time.monotonic() instant); cancel to stop.

    Ends quietly when the server closes the socket: the runner counts the disconnect.
    """
    cycle = 0
    try:
        while True:
            for leg in plan.legs:
                wait = go + cycle * plan.cycle_s + leg.depart_s - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                here = visitor.position if visitor.position is not None else plan.start
                offset = leg.end - here
                offset[1] = 0.0
                distance = float(np.linalg.norm(offset))
                if distance < ARRIVED_M:
                    continue
                heading = offset / distance
                timeout = distance / leg.speed + LEG_SLACK_S * 3
                await walk_leg(visitor, leg.end, heading, timeout, leg.speed)
            cycle += 1
    except VisitorClosed:
        return


def walk_leg(
    visitor: LeanVisitor,
    end: np.ndarray,
    heading: np.ndarray,
    timeout_s: float,
    speed: float,
) -> "asyncio.Future[None]":
    """Walk along `heading` at `speed` m/s until past `end`, then stop: burst.walk_to's steps.

    Done when the visitor has been stopped (at the end, or after `timeout_s`); fails with
    VisitorClosed at the first check after the socket has closed. Cancelling it stops the
    checks.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    ex, ey, ez = (float(v) for v in end)
    hx, hy, hz = (float(v) for v in heading)
    walking = [float(v) for v in heading * speed]
    deadline = time.monotonic() + timeout_s
    handle: asyncio.TimerHandle | None = None

    def check() -> None:
        nonlocal handle
        if done.done():
            return
        try:
            visitor.ensure_open()  # a closed socket ends the walk at once (walk_to walks on)
            motion = visitor.motion
            if motion is not None:
                px, py, pz, vx, vy, vz, _, _ = motion
                if (ex - px / CM) * hx + (ey - py / CM) * hy + (ez - pz / CM) * hz <= 0.0:
                    visitor.walk_binary((0.0, 0.0, 0.0))
                    done.set_result(None)
                    return
                if (vx / CM) * hx + (vy / CM) * hy + (vz / CM) * hz <= MOVING_M_S:
                    visitor.walk_binary(walking)
            if time.monotonic() < deadline:
                handle = loop.call_later(CHECK_S, check)
            else:
                visitor.walk_binary((0.0, 0.0, 0.0))
                done.set_result(None)
        except Exception as error:  # VisitorClosed above all: the caller decides
            done.set_exception(error)

    def stop(_: "asyncio.Future[None]") -> None:
        if handle is not None:
            handle.cancel()

    done.add_done_callback(stop)
    handle = loop.call_later(CHECK_S, check)
    return done
