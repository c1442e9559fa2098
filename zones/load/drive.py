"""Walking a joined visitor along its plan (scenarios.VisitorPlan), cycle after cycle.

Each leg leaves at its planned moment after the common start signal, so visitors
planned to move together do so without any coordination; a leg that is late (the
walk before it took longer than planned) leaves at once. Legs are walked with the
SDK's `walk_to`, which steers by the positions the market reports.
"""

import asyncio
import time

import numpy as np

from zones.client.burst import walk_to
from zones.client.visitor import Visitor, VisitorClosed

from .scenarios import LEG_SLACK_S, VisitorPlan

ARRIVED_M = 0.05  # a leg shorter than this is not walked


async def follow(visitor: Visitor, plan: VisitorPlan, go: float) -> None:
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
                await walk_to(visitor, leg.end, heading, timeout, speed=leg.speed)
            cycle += 1
    except VisitorClosed:
        return
