"""Walking a joined visitor along its plan (scenarios.VisitorPlan), cycle after cycle.

Each leg leaves at its planned moment after the common start signal, so visitors
planned to move together do so without any coordination; a leg that is late (the
walk before it took longer than planned) leaves at once. A leg is walked as the SDK's
`walk_to` walks (zones/client/burst.py), steering by the positions the market reports:
every CHECK_S it stops the visitor once past the leg's end, and sends it walking again
if the market does not show it moving along the heading. Here one `Pacer` makes every
walking visitor's checks, on a grid of PACE_S, as plain-float arithmetic, and the inputs
go out as 16-byte binary ones: a thousand walking visitors cost the harness a timer
callback every PACE_S, not ten thousand a second.
"""

import asyncio
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from zones.client.burst import CHECK_S
from zones.client.visitor import VisitorClosed

from .lean import LeanVisitor
from .scenarios import LEG_SLACK_S, VisitorPlan

ARRIVED_M = 0.05  # a leg shorter than this is not walked
MOVING_M_S = 0.1  # slower than this along the heading is not moving (as walk_to)
PACE_S = 0.02  # a check falls due at most this much later than walk_to would make it
CM = 100.0
STOP = (0.0, 0.0, 0.0)


@dataclass(eq=False)
class _Leg:
    visitor: LeanVisitor
    end: tuple[float, float, float]
    heading: tuple[float, float, float]
    walking: list[float]  # the velocity sent, m/s
    deadline: float  # time.monotonic()
    done: "asyncio.Future[None]"


@dataclass
class Pacer:
    """Every walking visitor's checks, from one timer on a grid of PACE_S."""

    _due: defaultdict[int, list[_Leg]] = field(default_factory=lambda: defaultdict(list))
    _handle: asyncio.TimerHandle | None = None
    _timer_slot: int = 0  # the slot the timer is set for
    _slot: int = 0  # the last slot whose checks were made
    _ticking: bool = False
    checks: int = 0

    def walk(
        self,
        visitor: LeanVisitor,
        end: np.ndarray,
        heading: np.ndarray,
        timeout_s: float,
        speed: float,
    ) -> "asyncio.Future[None]":
        """Walk along `heading` at `speed` m/s until past `end`, then stop: walk_to's steps.

        Done when the visitor has been stopped (at the end, or after `timeout_s`); fails
        with VisitorClosed at the first check after the socket has closed (walk_to would
        walk on until its deadline). Cancelling it drops the leg.
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        x, y, z = (float(v) for v in heading)
        leg = _Leg(
            visitor,
            (float(end[0]), float(end[1]), float(end[2])),
            (x, y, z),
            [x * speed, y * speed, z * speed],
            time.monotonic() + timeout_s,
            done,
        )
        self._plan(leg, time.monotonic() + CHECK_S)
        return done

    def _plan(self, leg: _Leg, at: float) -> None:
        slot = max(math.ceil(at / PACE_S), self._slot + 1)
        self._due[slot].append(leg)
        if not self._ticking and (self._handle is None or slot < self._timer_slot):
            self._arm()

    def _arm(self) -> None:
        """The timer, for the earliest slot with checks due."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._due:
            self._timer_slot = min(self._due)
            delay = max(0.0, self._timer_slot * PACE_S - time.monotonic())
            self._handle = asyncio.get_running_loop().call_later(delay, self._tick)

    def _tick(self) -> None:
        self._handle = None
        self._ticking = True
        try:
            now = time.monotonic()
            current = math.floor(now / PACE_S)
            for slot in sorted(s for s in self._due if s <= current):
                legs = self._due.pop(slot)
                self._slot = slot
                for leg in legs:
                    if not leg.done.done():
                        self._check(leg, now)
            self._slot = max(self._slot, current)
        finally:
            self._ticking = False
            self._arm()

    def _check(self, leg: _Leg, now: float) -> None:
        """One of walk_to's loop iterations after its sleep; plans the next one."""
        self.checks += 1
        visitor, done = leg.visitor, leg.done
        try:
            visitor.ensure_open()
            motion = visitor.motion
            if motion is not None:
                px, py, pz, vx, vy, vz, _, _ = motion
                (ex, ey, ez), (hx, hy, hz) = leg.end, leg.heading
                if (ex - px / CM) * hx + (ey - py / CM) * hy + (ez - pz / CM) * hz <= 0.0:
                    visitor.walk_binary(STOP)
                    done.set_result(None)
                    return
                if (vx / CM) * hx + (vy / CM) * hy + (vz / CM) * hz <= MOVING_M_S:
                    visitor.walk_binary(leg.walking)
            if time.monotonic() < leg.deadline:
                self._plan(leg, now + CHECK_S)
            else:
                visitor.walk_binary(STOP)
                done.set_result(None)
        except Exception as error:  # VisitorClosed above all: the caller decides
            done.set_exception(error)

    def close(self) -> None:
        """Stop the timer and drop every leg still walking (their futures are cancelled)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        for legs in self._due.values():
            for leg in legs:
                leg.done.cancel()
        self._due.clear()


async def follow(visitor: LeanVisitor, plan: VisitorPlan, go: float, pacer: Pacer) -> None:
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
                here = visitor.position
                if here is None:
                    here = plan.start
                offset = leg.end - here
                offset[1] = 0.0
                distance = float(np.linalg.norm(offset))
                if distance < ARRIVED_M:
                    continue
                heading = offset / distance
                timeout = distance / leg.speed + LEG_SLACK_S * 3
                await pacer.walk(visitor, leg.end, heading, timeout, leg.speed)
            cycle += 1
    except VisitorClosed:
        return
