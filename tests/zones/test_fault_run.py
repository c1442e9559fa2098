"""A fault run: a zone worker, a web process and Redis killed while visitors keep walking.

A distributed market (`runmarket --web-processes 2`: the main job and one more web
process accepting from its socket, zone workers under its supervisor) on a Redis of this
test's own. Nine keyed SDK visitors, three per booth, walk squares of 10 cm `move`s, one
move at a time: the next goes once a frame shows the last one done. Every frame is
checked: the entity stands where the latest move shown or a later one put it, never where
an earlier move did (the market taking back what it had shown) nor anywhere no move asked
for. While they walk, in turn:

1. a zone worker is killed (SIGKILL): the supervisor restarts it from its snapshot and input
   log; the operators' feed says `restarting`, then `ok`, and so do `zone_health` events to
   the visitors that zone holds, and to no one else; they stay connected and walk on;
2. the web process holding some of the visitors' sockets is killed (SIGKILL): their sockets
   close at once (1006: a killed process sends no close frame), they come back as the same
   entities (`resumed: true`) with every event they missed (`recovered: true`), and the main
   job starts the web process again;
3. Redis is killed (SIGKILL) and started again on its port, empty (as the runbook runs it,
   without persistence): while it is down a newcomer's join is refused `503
   service_unavailable`; once it is back the market's events start a new epoch and every
   visitor hears of it (`events_reset`, or a welcome saying `recovered: false` if its socket
   was opened again), and the market takes new visitors again without a hand on it.

A move taken but not shown done within RESEND_AFTER_S is sent again, as a client would. And
nothing acknowledged is lost: every frame whose `ack_seq` counts a move shows the entity
where that move or a later one put it (a frame acknowledges what the zones took, so a move
the web process passed on and a killed worker never took is not acknowledged).
"""

import asyncio
import contextlib
import os
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tests.live import live_market, stopped
from tests.own_redis import own_redis  # noqa: F401  (fixture)
from zones.client.burst import connect_retrying
from zones.client.visitor import JoinRefused, Visitor, VisitorClosed, join_ticket
from zones.core.constants import MARKET_SIZE_M
from zones.load.observe import SummaryWatcher
from zones.load.resources import market_processes

MARKET = 1
BOOTHS = 3
PER_BOOTH = 3
STEP_M = 0.1
LEG_STEPS = 20  # moves along each side of a visitor's square (2 m)
SQUARE = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
RESEND_AFTER_S = 15.0  # a move not shown applied by then is sent again (and counted)
APPLIED_M = 0.02  # a frame's position is quantised to the centimetre
RECOVER_TIMEOUT_S = 90.0
REDIS_DOWN_S = 3.0
CLOSED_ABNORMALLY = 1006


@dataclass(eq=False)
class Stepper:
    """One visitor walking a square of moves, and what it was told on the way.

    Each move goes LEG_STEPS × STEP_M along a side of a square that lies towards the middle
    of the market, so that no two corners of a lap coincide: every position the market shows
    names the move that put the entity there, and a position of an earlier move shown after
    a later one is the market taking back what it had shown (a rollback).
    """

    home: np.ndarray
    visitor: Visitor | None = None
    entity: int = 0
    targets: list[np.ndarray] = field(default_factory=list)  # sent, in order; home first
    seqs: list[int] = field(default_factory=lambda: [0])  # each target's input seq; -1 unsent
    acks: list[tuple[int, int]] = field(default_factory=list)  # (ack_seq, shown) per frame
    shown: int = 0  # the latest of `targets` a frame showed the entity at
    rollbacks: list[str] = field(default_factory=list)
    strays: list[str] = field(default_factory=list)  # positions no move asked for
    steps: int = 0  # moves shown applied
    unapplied: int = 0  # moves acknowledged, not applied within RESEND_AFTER_S, sent again
    refusals: int = 0  # moves refused with `too_fast` (each said so, and sent again)
    closes: list[int | None] = field(default_factory=list)
    welcomes: list[dict[str, Any]] = field(default_factory=list)  # after each reconnect
    epochs: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.targets.append(self.home)
        middle = np.array([MARKET_SIZE_M[0], 0.0, MARKET_SIZE_M[2]]) / 2
        self.inward = np.sign(middle - self.home) * np.array([1.0, 0.0, 1.0])

    def corner_of(self, step: int) -> np.ndarray:
        """Where move `step` (from 1) takes the entity: round the square, lap after lap."""
        side, along = divmod(step % (4 * LEG_STEPS), LEG_STEPS)
        corners = LEG_STEPS * STEP_M * SQUARE * self.inward
        start, end = corners[side], corners[(side + 1) % 4]
        return self.home + start + (end - start) * along / LEG_STEPS

    def frame(self, visitor: Visitor, header, rows, bodies, received_ms) -> None:
        """Every frame: the entity stands where the latest move shown or a later one put it."""
        own = rows[rows["id"] == visitor.entity]
        if not own.size:
            return
        here = np.asarray(own["pos"][0], np.float64)
        for i in reversed(range(self.shown, len(self.targets))):  # a move sent again: the later
            if near(here, self.targets[i]):
                self.shown = i
                self.acks.append((int(header["ack_seq"]), i))
                return
        earlier = [i for i in range(self.shown) if near(here, self.targets[i])]
        if earlier:
            self.rollbacks.append(f"at move {earlier[-1]} after move {self.shown} was shown")
        else:
            self.strays.append(f"{here.round(2).tolist()} after move {self.shown}")

    async def run(self, stop: asyncio.Event) -> None:
        v = self.visitor
        assert v is not None
        while not stop.is_set():
            if v.closed:
                await self.come_back(stop)
                continue
            target = self.corner_of(self.steps + 1)
            self.targets.append(target)
            self.seqs.append(-1)
            index = len(self.targets) - 1
            try:
                seq = self.seqs[index] = await v.move(target)
                await v.wait_for(
                    lambda v, i=index, seq=seq: v.closed or self.shown >= i or refused(v, seq),
                    RESEND_AFTER_S,
                )
            except VisitorClosed:
                continue
            except TimeoutError:  # taken, perhaps, but not acted on: the same move again
                self.unapplied += 1
                continue
            if refused(v, seq):  # told so: the entity did not move; the move is sent again
                self.refusals += 1
            elif self.shown >= index:
                self.steps += 1
            self.note_epoch()

    def local_port(self) -> int:
        """This visitor's end of its socket (to find the web process at the other)."""
        assert self.visitor is not None and self.visitor._ws is not None
        return int(self.visitor._ws.local_address[1])

    def epoch(self) -> str | None:
        """The epoch of the market's events this visitor follows now."""
        assert self.visitor is not None
        after = self.visitor.events_after
        return after[1] if after is not None else None

    def note_epoch(self) -> None:
        if (epoch := self.epoch()) is not None:
            self.epochs.add(epoch)

    async def come_back(self, stop: asyncio.Event) -> None:
        """Reconnect with the key until the market takes it (a web process or Redis is down)."""
        assert self.visitor is not None
        self.closes.append(self.visitor.close_code)
        while not stop.is_set():
            try:
                await self.visitor.reconnect(timeout=10)
            except (JoinRefused, VisitorClosed, OSError, TimeoutError):
                await asyncio.sleep(0.5)
                continue
            self.welcomes.append(dict(self.visitor.welcome))
            self.note_epoch()
            return


def told_of_zone(stepper: Stepper, zone: int) -> list[str]:
    """The `health` of every zone_health event naming `zone` the visitor was sent, in order."""
    assert stepper.visitor is not None
    return [
        str(e["health"])
        for e in stepper.visitor.events
        if e.get("type") == "zone_health" and zone in e.get("zones", [])
    ]


async def join_refused(url: str) -> tuple[int, str]:
    """(status, code) of the first join refused once a service is down (readiness notices
    within a second or so: a join before that may still be answered)."""
    deadline = time.monotonic() + RECOVER_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            await join_ticket(url, MARKET, timeout=5)
        except JoinRefused as refused:
            return refused.status, refused.code
        except OSError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"joins were still answered {RECOVER_TIMEOUT_S:g} s into the outage")


def near(here: np.ndarray, there: np.ndarray) -> bool:
    return bool(np.linalg.norm((here - there)[[0, 2]]) <= APPLIED_M)


def refused(visitor: Visitor, seq: int) -> bool:
    """Whether the market refused move `seq` (docs/protocol.md §4: the entity did not move)."""
    return any(e.get("code") == "too_fast" and e.get("seq") == seq for e in visitor.errors)


def socket_owner(local_port: int, server_port: int, pids: list[int]) -> int | None:
    """Which of `pids` holds the server end of the TCP connection from `local_port`."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                here, there = fields[1].rsplit(":", 1)[1], fields[2].rsplit(":", 1)[1]
                if int(here, 16) == server_port and int(there, 16) == local_port:
                    inodes.add(fields[9])
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    link = os.readlink(fd)
                    if link.startswith("socket:[") and link[8:-1] in inodes:
                        return pid
    return None


async def until(predicate, timeout: float, what: str, detail=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout:g} s {detail()}")
        await asyncio.sleep(0.2)


def acknowledged_not_shown(stepper: Stepper) -> list[str]:
    """Frames whose ack_seq counted a move their position did not show done.

    A frame acknowledges the inputs the zones took (docs/protocol.md): a move it counts
    and the market did not refuse has put the entity at its target, in that frame already,
    and no fault may take it back. (Moves chain, one at a time, so the latest move counted
    is the one the position must show, or a later one.)
    """
    assert stepper.visitor is not None
    seqs = np.array(stepper.seqs, np.int64)
    taken = seqs > 0
    for i in np.flatnonzero(taken):
        taken[i] = not refused(stepper.visitor, int(seqs[i]))
    indices = np.flatnonzero(taken)
    wrong = []
    for ack, shown in stepper.acks:
        counted = indices[seqs[indices] <= ack]
        if counted.size and counted[-1] > shown:
            wrong.append(f"ack_seq {ack} counts move {counted[-1]}; the frame shows move {shown}")
    return wrong


def assert_sound(steppers: list[Stepper], what: str) -> None:
    """Nothing the market showed was taken back, and it showed no position no move asked for."""
    for s in steppers:
        assert not s.rollbacks, f"visitor {s.entity}, {what}: rolled back {s.rollbacks[:3]}"
        assert not s.strays, f"visitor {s.entity}, {what}: stood at {s.strays[:3]}"


async def progress(steppers: list[Stepper], what: str) -> None:
    """Every visitor steps at least twice more: the market serves them all again."""
    marks = [s.steps for s in steppers]
    await until(
        lambda: all(s.steps >= m + 2 for s, m in zip(steppers, marks, strict=True)),
        RECOVER_TIMEOUT_S,
        f"every visitor stepping again after {what}",
        lambda: [(s.entity, s.steps, s.unapplied, s.refusals, s.closes) for s in steppers],
    )
    assert_sound(steppers, what)


async def join(url: str, i: int) -> Stepper:
    visitor = await connect_retrying(
        url, MARKET, key=f"fault-{i}-{uuid.uuid4().hex}", booth=i % BOOTHS
    )
    await visitor.wait_for(lambda v: v.position is not None, 10)
    stepper = Stepper(np.array(visitor.position, np.float64), visitor, visitor.entity)
    visitor.on_frame = stepper.frame
    stepper.note_epoch()
    return stepper


async def fault_run(server, redis) -> None:
    root = server.process.pid
    port = int(server.address.rsplit(":", 1)[1])
    watcher = SummaryWatcher(server.url, MARKET)
    watching = asyncio.create_task(watcher.run())
    await until(
        lambda: "webprocess" in market_processes(root), RECOVER_TIMEOUT_S, "a second web process"
    )
    # The kernel gives a connection to whichever web process accepts first: one visitor in
    # each booth joins while the main job is stopped, so that the second one holds its socket.
    steppers = [await join(server.url, i) for i in range(BOOTHS * PER_BOOTH - BOOTHS)]
    with stopped(root):
        steppers += [await join(server.url, i) for i in range(BOOTHS)]
    stop = asyncio.Event()
    stepping = [asyncio.create_task(s.run(stop)) for s in steppers]
    try:
        await progress(steppers, "joining")
        roles = set(market_processes(root))
        assert {"runmarket", "webprocess", "zoneworker 1"} <= roles, roles

        # 1. a zone worker
        worker = market_processes(root)["zoneworker 1"].pid
        in_zone = [s for s in steppers if s.visitor.zone == 1]
        assert in_zone, "no visitor stands in zone 1"
        os.kill(worker, signal.SIGKILL)
        await until(
            lambda: watcher.zones.get(1) is not None and watcher.zones[1].health["restarting"],
            RECOVER_TIMEOUT_S,
            "the operators' feed saying zone 1 is restarting",
        )
        await until(
            lambda: (
                watcher.zones[1].latest.get("health") == "ok"
                and market_processes(root).get("zoneworker 1") is not None
            ),
            RECOVER_TIMEOUT_S,
            "zone 1 back, ok",
        )
        assert market_processes(root)["zoneworker 1"].pid != worker
        await until(
            lambda: all(told_of_zone(s, 1) == ["restarting", "ok"] for s in in_zone),
            RECOVER_TIMEOUT_S,
            "zone 1's visitors told it stopped, then runs again",
            lambda: [(s.entity, told_of_zone(s, 1)) for s in in_zone],
        )
        assert all(not told_of_zone(s, 1) for s in steppers if s not in in_zone)
        await progress(steppers, "a zone worker was killed")
        assert all(not s.closes for s in steppers), "a zone restart dropped a visitor's socket"

        # 2. the web process holding some of the sockets (the main job restarts it)
        web = market_processes(root)["webprocess"].pid
        held = [s for s in steppers if socket_owner(s.local_port(), port, [web, root]) == web]
        assert held, "no visitor landed on the second web process"
        os.kill(web, signal.SIGKILL)
        await until(
            lambda: all(s.welcomes for s in held),
            RECOVER_TIMEOUT_S,
            "the killed web process's visitors back",
        )
        for s in held:
            assert s.closes[0] == CLOSED_ABNORMALLY
            welcome = s.welcomes[0]
            assert welcome["resumed"] is True and welcome["entity"] == s.entity
            assert welcome["events"]["recovered"] is True
        assert all(not s.closes for s in steppers if s not in held)
        await until(
            lambda: (p := market_processes(root).get("webprocess")) is not None and p.pid != web,
            RECOVER_TIMEOUT_S,
            "the web process started again",
        )
        await progress(steppers, "a web process was killed")

        # 3. Redis, started again empty on its port
        before = [set(s.epochs) for s in steppers]
        redis.kill()
        assert await join_refused(server.url) == (503, "service_unavailable")
        await asyncio.sleep(REDIS_DOWN_S)
        redis.start()
        await until(
            lambda: all(
                s.epoch() not in b and s.visitor.events_recovered is False
                for s, b in zip(steppers, before, strict=True)
            ),
            RECOVER_TIMEOUT_S,
            "every visitor told that the market's events start over",
        )
        await progress(steppers, "Redis was killed")
        newcomer = await connect_retrying(server.url, MARKET, retry_s=RECOVER_TIMEOUT_S)
        await newcomer.leave()
        assert set(market_processes(root)) == roles
    finally:
        stop.set()
        await asyncio.gather(*stepping, return_exceptions=True)
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
    assert_sound(steppers, "at the end")
    for s in steppers:
        assert s.acks, f"visitor {s.entity}: no frame showed a move"
        wrong = acknowledged_not_shown(s)
        assert not wrong, f"visitor {s.entity}: {len(wrong)} frames, {wrong[:3]}"
    for s in steppers:
        assert s.visitor.entity == s.entity
        with contextlib.suppress(Exception):
            await s.visitor.leave()


def test_killed_zone_worker_web_process_and_redis_lose_nothing_acknowledged(
    tmp_path,
    own_redis,  # noqa: F811
):
    with live_market(
        tmp_path / "market",
        args=["--walkers", "0", "--web-processes", "2"],
        REDIS_URL=own_redis.url,
        FABRIC_CHANNEL_PREFIX=f"fault{uuid.uuid4().hex[:8]}",
    ) as server:
        asyncio.run(fault_run(server, own_redis))
        assert server.process.poll() is None, "the main job did not survive"
