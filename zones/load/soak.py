"""A soak: a market under steady churn for a long time, its resources read every sample.

Visitors arrive at an even pace over the whole run, each a newcomer (a disposable
visitor: a new entity id, no database row) except every eleventh arrival, a regular
coming back with a visitor key of a small pool (one identity row each, made once). Each
stays `stay_s` ± 50 % pacing back and forth across a border (scenarios.plan_crossings),
so its entity is handed from booth to booth, then leaves. Meanwhile a creator (creator.py) uploads and
re-points an asset, and grants and revokes a reader, at fixed intervals. The load is
the same from the end of the warm-up on, so whatever keeps growing after it is held on
to by the market: every `sample_s` the run reads each market process's resident memory
and open descriptors, Redis's memory and keys, and the rows of every database table
(resources.py), and hands the sample to `on_sample` (the command writes the report
then, so a run cut short still leaves its figures).
"""

import asyncio
import contextlib
import datetime
import os
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zones.client.burst import connect_retrying
from zones.client.visitor import JoinRefused, VisitorClosed

from .creator import Creator, CreatorError
from .drive import Pacer, follow
from .lean import LeanFleet, LeanVisitor
from .resources import market_processes, process_reading, redis_pid, redis_reading, table_rows
from .scenarios import VisitorPlan, plan_crossings

LEAVE_TIMEOUT_S = 5.0
REGULAR_EVERY = 11  # one arrival in this many is a regular coming back
PLAN_POOL = 240  # crossing plans the visitors take in turn
TICKET_CONNECTIONS = 8
CLOSE_LEAVE = 1000


class SoakError(Exception):
    """The soak could not start; the message says why."""


@dataclass(frozen=True)
class SoakSettings:
    """What to run against which market, and what to read while it runs."""

    url: str
    market_id: int
    duration_s: float
    visitors: int  # distinct newcomers over the run
    stay_s: float
    regulars: int  # visitor keys that come back
    sample_s: float
    warm_up_s: float
    upload_every_s: float
    grant_every_s: float
    seed: int = 1
    server_pid: int | None = None
    redis_url: str | None = None
    redis_pid: int | None = None  # None: asked of Redis, which must run on this machine
    database: Path | None = None
    creator: tuple[str, str, int, int] | None = None  # username, password, booth id, namespace id

    def describe(self) -> dict[str, Any]:
        shown = asdict(self)
        shown["database"] = str(self.database) if self.database else None
        shown["creator"] = (
            {"username": self.creator[0], "booth": self.creator[2], "namespace": self.creator[3]}
            if self.creator
            else None
        )
        return shown


def arrival_schedule(visitors: int, regulars: int, duration_s: float) -> list[tuple[float, bool]]:
    """(seconds into the run, whether a regular) of every arrival, evenly spaced.

    `visitors` newcomers, and with regulars one regular visit in every REGULAR_EVERY
    arrivals besides them.
    """
    returns = visitors // (REGULAR_EVERY - 1) if regulars else 0
    total = visitors + returns
    spacing = duration_s / max(1, total)
    return [
        (i * spacing, returns > 0 and (i * returns) // total != ((i + 1) * returns) // total)
        for i in range(total)
    ]


@dataclass
class LoadCounts:
    """What the load did so far (cumulative)."""

    joins: int = 0
    newcomers: int = 0
    regular_visits: int = 0
    regulars_busy: int = 0  # regular visits skipped: every key was in the market already
    join_failures: Counter[str] = field(default_factory=Counter)
    left: int = 0
    dropped: Counter[str] = field(default_factory=Counter)  # closed by the market, by code
    zone_changes: int = 0
    connected: int = 0
    peak_connected: int = 0
    uploads: int = 0
    grants: int = 0
    revokes: int = 0
    creator_failures: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        shown = asdict(self)
        for name in ("join_failures", "dropped", "creator_failures"):
            shown[name] = dict(getattr(self, name))
        return shown


class SoakRun:
    """One soak against a live market at `settings.url`."""

    def __init__(
        self,
        settings: SoakSettings,
        say: Callable[[str], None],
        on_sample: Callable[[dict[str, Any]], None],
    ) -> None:
        self.settings = settings
        self.say = say
        self.on_sample = on_sample
        self.counts = LoadCounts()
        self.samples: list[dict[str, Any]] = []
        self.started_at = ""
        self.started = 0.0
        self.redis_client: Any = None
        self.redis_pid: int | None = None
        self._visits: set[asyncio.Task[None]] = set()
        self._free_keys: deque[str] = deque(
            f"soak-regular-{settings.seed}-{i:04d}" for i in range(settings.regulars)
        )

    async def run(self) -> None:
        """Churn, creator and sampling for duration_s; every visitor leaves at the end."""
        s = self.settings
        if s.redis_url:
            import redis

            self.redis_client = redis.Redis.from_url(s.redis_url, socket_timeout=5)
            self.redis_pid = s.redis_pid or redis_pid(self.redis_client)
        plans = await self._plans()
        self.started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        self.started = time.monotonic()
        fleet = LeanFleet(s.url, s.market_id, connections=TICKET_CONNECTIONS)
        pacer = Pacer()
        await self._sample()  # the figures before any load
        tasks = [
            asyncio.create_task(self._arrivals(fleet, pacer, plans), name="soak-arrivals"),
            asyncio.create_task(self._creator(), name="soak-creator"),
        ]
        try:
            end = self.started + s.duration_s
            while (left := end - time.monotonic()) > 0:
                await asyncio.sleep(
                    min(left, s.sample_s - (time.monotonic() - self.started) % s.sample_s)
                )
                await self._sample()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            visits = list(self._visits)
            for visit in visits:
                visit.cancel()
            await asyncio.gather(*visits, return_exceptions=True)
            pacer.close()
            await fleet.aclose()

    async def _plans(self) -> list[VisitorPlan]:
        """Crossings of the market's borders, from its layout read by one visitor that joins
        and leaves."""
        s = self.settings
        try:
            probe = await connect_retrying(s.url, s.market_id, retry_s=30.0)
        except (JoinRefused, VisitorClosed, OSError) as error:
            raise SoakError(
                f"no visitor could join market {s.market_id} at {s.url}: {error}"
            ) from None
        await probe.leave(LEAVE_TIMEOUT_S)
        assert probe.layout is not None
        if probe.layout.zones < 2:
            raise SoakError("a soak walks visitors across booths: the market needs 2 or more")
        return plan_crossings(probe.layout, PLAN_POOL, np.random.default_rng(s.seed))

    # --- the load ------------------------------------------------------------------------

    async def _arrivals(self, fleet: LeanFleet, pacer: Pacer, plans: list[VisitorPlan]) -> None:
        s = self.settings
        rng = np.random.default_rng(s.seed + 1)
        for i, (at_s, regular) in enumerate(arrival_schedule(s.visitors, s.regulars, s.duration_s)):
            await asyncio.sleep(max(0.0, self.started + at_s - time.monotonic()))
            key = None
            if regular:
                if not self._free_keys:
                    self.counts.regulars_busy += 1
                    continue
                key = self._free_keys.popleft()
            stay = s.stay_s * float(rng.uniform(0.5, 1.5))
            task = asyncio.create_task(self._visit(fleet, pacer, plans[i % len(plans)], key, stay))
            self._visits.add(task)
            task.add_done_callback(self._visits.discard)

    async def _visit(
        self, fleet: LeanFleet, pacer: Pacer, plan: VisitorPlan, key: str | None, stay: float
    ) -> None:
        """Join, walk the plan for `stay` seconds, leave; every outcome is counted."""
        c = self.counts
        try:
            visitor = await fleet.connect(key=key, at=plan.start.tolist())
        except (JoinRefused, VisitorClosed, OSError) as error:
            c.join_failures[_failure(error)] += 1
            if key is not None:
                self._free_keys.append(key)
            return
        c.joins += 1
        if key is None:
            c.newcomers += 1
        else:
            c.regular_visits += 1
        c.connected += 1
        c.peak_connected = max(c.peak_connected, c.connected)
        walking = asyncio.create_task(follow(visitor, plan, time.monotonic(), pacer))
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(visitor.wait_closed(), stay)
        finally:
            walking.cancel()
            await asyncio.gather(walking, return_exceptions=True)
            await self._leave(visitor)
            c.connected -= 1
            c.zone_changes += sum(e.get("type") == "zone_changed" for e in visitor.events)
            if key is not None:
                self._free_keys.append(key)

    async def _leave(self, visitor: LeanVisitor) -> None:
        c = self.counts
        if visitor.closed:  # the market closed it before its stay was over
            c.dropped[str(visitor.close_code)] += 1
            return
        try:
            code = await visitor.leave(LEAVE_TIMEOUT_S)
        except Exception as error:  # a figure of the run: the leave went unanswered
            c.dropped[f"leave {type(error).__name__}"] += 1
            with contextlib.suppress(Exception):
                await visitor.close()
            return
        if code == CLOSE_LEAVE:
            c.left += 1
        else:
            c.dropped[str(code)] += 1

    async def _creator(self) -> None:
        """Uploads and grant toggles at their intervals, each blocking call in a thread."""
        s = self.settings
        if s.creator is None:
            return
        username, password, booth, namespace = s.creator
        creator = Creator(s.url, username, password, booth, namespace, seed=s.seed)
        next_upload = next_grant = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= next_upload:
                next_upload += s.upload_every_s
                await self._creator_call(creator.upload, "upload")
            if now >= next_grant:
                next_grant += s.grant_every_s
                await self._creator_call(creator.toggle_grant, "grant")
            await asyncio.sleep(max(0.0, min(next_upload, next_grant) - time.monotonic()))

    async def _creator_call(self, call: Callable[[], Any], what: str) -> None:
        c = self.counts
        try:
            done = await asyncio.to_thread(call)
        except CreatorError as error:
            c.creator_failures[f"{what} {error.kind}"] += 1
            return
        if what == "upload":
            c.uploads += 1
        elif done == "grant":
            c.grants += 1
        else:
            c.revokes += 1

    # --- sampling ------------------------------------------------------------------------

    async def _sample(self) -> None:
        """Read every resource (in a thread: /proc, SQLite and Redis calls block), file it."""
        t_s = round(time.monotonic() - self.started, 1)
        sample = await asyncio.to_thread(self._read)
        sample = {"t_s": t_s, **sample, "load": self.counts.as_dict()}
        self.samples.append(sample)
        self.on_sample(sample)
        c = self.counts
        rss = sum(p["rss_kib"] for p in sample["processes"].values()) / 1024
        self.say(
            f"[{t_s:6.0f} s] visitors in {c.connected}, joined {c.joins}, left {c.left},"
            f" dropped {sum(c.dropped.values())}, failed joins {sum(c.join_failures.values())}"
            f" | uploads {c.uploads}, grants {c.grants + c.revokes}"
            f" | market RSS {rss:.0f} MiB, rows {sum(sample['rows'].values())}"
        )

    def _read(self) -> dict[str, Any]:
        s = self.settings
        processes = {}
        if s.server_pid:
            processes = {role: asdict(r) for role, r in market_processes(s.server_pid).items()}
        if self.redis_pid:
            reading = process_reading(self.redis_pid)
            if reading is not None:
                processes["redis-server"] = asdict(reading)
        own = process_reading(os.getpid())
        return {
            "processes": processes,
            "harness": asdict(own) if own else None,
            "redis": redis_reading(self.redis_client) if self.redis_client else None,
            "rows": table_rows(s.database) if s.database else {},
        }


def _failure(error: Exception) -> str:
    """A short name for a failed join, to count failures by kind."""
    if isinstance(error, JoinRefused):
        return f"refused {error.status} {error.code}"
    if isinstance(error, VisitorClosed):
        return f"closed {error.close_code}"
    return type(error).__name__
