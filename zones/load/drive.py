"""Walking a joined visitor along its plan (scenarios.VisitorPlan), cycle after cycle.

Each leg leaves at its planned moment after the common start signal, so visitors
planned to move together do so without any coordination; a leg that is late (the
walk before it took longer than planned) leaves at once. A leg is walked as the SDK's
`walk_to` walks (zones/client/burst.py), steering by the positions the market reports:
every CHECK_S it stops the visitor once past the leg's end, and sends it walking again
if the market does not show it moving along the heading. Here one `Pacer` makes every
walking visitor's checks, on a grid of PACE_S: the legs due together are checked together,
as a few numpy passes over their own rows, and the inputs go out as 16-byte binary ones.
A thousand walking visitors cost the harness a timer callback every PACE_S, not ten
thousand a second, and Python work only for the legs that must send something.
"""

import asyncio
import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from zones.client.burst import CHECK_S
from zones.client.visitor import VisitorClosed

from .lean import LeanVisitor, motions_of
from .scenarios import LEG_SLACK_S, VisitorPlan

ARRIVED_M = 0.05  # a leg shorter than this is not walked
MOVING_M_S = 0.1  # slower than this along the heading is not moving (as walk_to)
PACE_S = 0.02  # a check falls due at most this much later than walk_to would make it
# the event loop's timers keep milliseconds and may fire that much early: a slot that starts
# within this much is due now, not re-armed for the instant left (a loop around every slot)
TIMER_SLACK_S = 0.002
CM = 100.0
STOP = (0.0, 0.0, 0.0)


class _Walks:
    """Legs whose checks fall due together, as arrays: checked together, a group's legs are
    planned again together, so a group lives from check to check as new legs join it."""

    __slots__ = ("visitors", "done", "legs", "end", "heading", "walking", "deadline")

    def __init__(
        self,
        visitors: list[LeanVisitor],
        done: "list[asyncio.Future[None]]",
        legs: np.ndarray,
    ) -> None:
        self.visitors, self.done = visitors, done
        # a row a leg: end (m) ×3, heading ×3, the velocity sent (m/s) ×3, deadline
        # (time.monotonic())
        self.legs = legs
        self.end, self.heading = legs[:, 0:3], legs[:, 3:6]
        self.walking, self.deadline = legs[:, 6:9], legs[:, 9]

    def only(self, kept: list[int]) -> "_Walks":
        return _Walks(
            [self.visitors[i] for i in kept], [self.done[i] for i in kept], self.legs[kept]
        )

    @staticmethod
    def joined(groups: "list[_Walks]") -> "_Walks":
        if len(groups) == 1:
            return groups[0]
        return _Walks(
            [v for g in groups for v in g.visitors],
            [d for g in groups for d in g.done],
            np.concatenate([g.legs for g in groups]),
        )


@dataclass
class Pacer:
    """Every walking visitor's checks, from one timer on a grid of PACE_S.

    `motions` gives the own rows of a list of visitors as an (n, 8) float array, NaN where
    no row came yet (LeanFleet.motions reads a whole group's from the compiled reader at once).
    """

    motions: Callable[[list[LeanVisitor]], np.ndarray] = motions_of
    _due: defaultdict[int, list[_Walks]] = field(default_factory=lambda: defaultdict(list))
    _handle: asyncio.TimerHandle | None = None
    _timer_slot: int = 0  # the slot the timer is set for
    _slot: int = 0  # the last slot whose checks were made
    _ticking: bool = False
    checks: int = 0
    wakeups: int = 0  # timer callbacks: one a slot with checks due, not a loop around it

    def walk(
        self,
        visitor: LeanVisitor,
        end: Sequence[float],
        heading: Sequence[float],
        timeout_s: float,
        speed: float,
    ) -> "asyncio.Future[None]":
        """Walk along `heading` at `speed` m/s until past `end`, then stop: walk_to's steps.

        Done when the visitor has been stopped (at the end, or after `timeout_s`); fails
        with VisitorClosed at the first check after the socket has closed (walk_to would
        walk on until its deadline). Cancelling it drops the leg.
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        x, y, z = heading
        now = time.monotonic()
        leg = np.array(
            [[*end, x, y, z, x * speed, y * speed, z * speed, now + timeout_s]], np.float64
        )
        self._plan(_Walks([visitor], [done], leg), now + CHECK_S)
        return done

    def _plan(self, walks: _Walks, at: float) -> None:
        slot = max(math.ceil(at / PACE_S), self._slot + 1)
        self._due[slot].append(walks)
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
        self.wakeups += 1
        self._ticking = True
        try:
            now = time.monotonic()
            current = math.floor((now + TIMER_SLACK_S) / PACE_S)
            due = sorted(s for s in self._due if s <= current)
            if due:
                self._slot = due[-1]
                walks = _Walks.joined([w for slot in due for w in self._due.pop(slot)])
                self._check(walks, now)
            self._slot = max(self._slot, current)
        finally:
            self._ticking = False
            self._arm()

    def _check(self, walks: _Walks, now: float) -> None:
        """One of walk_to's loop iterations after its sleep, for a group of legs at once;
        plans the next one for the legs still walking."""
        visitors, done = walks.visitors, walks.done
        live = []
        for i, (visitor, future) in enumerate(zip(visitors, done, strict=True)):
            if future.done():
                continue  # cancelled
            try:
                visitor.ensure_open()
            except Exception as error:  # VisitorClosed above all: the caller decides
                future.set_exception(error)
                continue
            live.append(i)
        self.checks += len(live)
        if not live:
            return
        if len(live) < len(visitors):
            walks = walks.only(live)
            visitors, done = walks.visitors, walks.done
        motion = self.motions(visitors) / CM
        heading = walks.heading
        # NaN (no own row yet) compares False: neither arrived nor slow
        ahead = np.einsum("ij,ij->i", walks.end - motion[:, 0:3], heading)
        along = np.einsum("ij,ij->i", motion[:, 3:6], heading)
        arrived = ahead <= 0.0
        slow = ~arrived & (along <= MOVING_M_S)
        over = ~arrived & (walks.deadline <= now)
        act = arrived | slow | over
        if not act.any():
            self._plan(walks, now + CHECK_S)
            return
        ends = arrived | over
        for i in np.flatnonzero(act).tolist():
            try:
                if slow[i]:
                    visitors[i].walk_binary(walks.walking[i].tolist())
                if ends[i]:
                    visitors[i].walk_binary(STOP)
                    done[i].set_result(None)
            except Exception as error:
                done[i].set_exception(error)
                ends[i] = True
        going = np.flatnonzero(~ends).tolist()
        if going:
            self._plan(walks if len(going) == len(visitors) else walks.only(going), now + CHECK_S)

    def close(self) -> None:
        """Stop the timer and drop every leg still walking (their futures are cancelled)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        for groups in self._due.values():
            for walks in groups:
                for future in walks.done:
                    future.cancel()
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
                motion = visitor.motion  # along the floor from here: plain floats
                ex, ey, ez = leg.end.tolist()
                if motion is None:
                    dx, dz = ex - float(plan.start[0]), ez - float(plan.start[2])
                else:
                    dx, dz = ex - motion[0] / CM, ez - motion[2] / CM
                distance = math.hypot(dx, dz)
                if distance < ARRIVED_M:
                    continue
                heading = (dx / distance, 0.0, dz / distance)
                timeout = distance / leg.speed + LEG_SLACK_S * 3
                await pacer.walk(visitor, (ex, ey, ez), heading, timeout, leg.speed)
            cycle += 1
    except VisitorClosed:
        return
