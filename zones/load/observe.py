"""What the harness watches besides its own visitors: the market summary and CPU.

`SummaryWatcher` follows the market's ops events (`/ws/markets/<id>/summary/`), where
each zone worker publishes its zones twice a second (docs/events.md); it keeps the newest state of
every zone and what must not be lost between two samples: entity peaks, degraded
windows, overruns and the migration figures of every window. `overruns` in a summary
is cumulative per worker process, so it is tracked per worker (the set of zones a
summary covers) from the first value seen, and a restarted worker's count adds on.

CPU comes from /proc: a process tree's utime + stime (the server and its zone
workers), this process's own, the whole machine's busy time, and Redis's own
counters (INFO cpu) when the market runs on Redis.
"""

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException
from websockets.typing import Origin

log = logging.getLogger(__name__)

SUMMARY_PATH = "/ws/markets/{market_id}/summary/"
RECONNECT_S = 1.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
LAG_PROBE_S = 0.02
ZONE_WORKER_COMMAND = b"zoneworker"  # the argument that names a zone worker process
TREE_RESCAN_S = 5.0  # between two scans of /proc for a server's processes


def summary_url(base_url: str, market_id: int) -> tuple[str, str]:
    """(socket URL, Origin header) of the market's summary socket at `base_url`."""
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    origin = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    path = SUMMARY_PATH.format(market_id=market_id)
    return urlunsplit((scheme, parts.netloc, path, "", "")), origin


@dataclass
class ZoneTrack:
    """One zone over the run: its newest summary and what happened between samples."""

    latest: dict[str, Any] = field(default_factory=dict)
    peak_entities: int = 0  # since the last sample
    peak_in_flight: int = 0
    degraded_windows: int = 0  # summaries that said "degraded", over the run
    windows: int = 0
    health: Counter[str] = field(default_factory=Counter)  # summaries per health state


@dataclass
class MigrationWindow:
    """One zone's migration figures of one summary window (the fields may be absent)."""

    received_s: float  # time.monotonic()
    zone: int
    per_s: float
    count: int | None
    p50_ms: float | None
    p99_ms: float | None


class SummaryWatcher:
    """The market's ops events (summaries, health), merged per zone (newest wins).

    A dropped socket resumes from the last event's position, so no summary is missed.
    """

    def __init__(self, base_url: str, market_id: int) -> None:
        self.url, self.origin = summary_url(base_url, market_id)
        self.position: tuple[int, str] | None = None
        self.zones: dict[int, ZoneTrack] = {}
        self.migrations: list[MigrationWindow] = []
        self.repartitions: list[tuple[float, dict[str, Any]]] = []  # (received_s, event)
        self.messages = 0
        self.connects = 0
        self.last_error = ""
        self._overruns_first: dict[tuple[int, ...], int] = {}
        self._overruns_last: dict[tuple[int, ...], int] = {}
        self._overruns_carried = 0  # counts of worker processes that restarted since

    async def run(self) -> None:
        """Listen until cancelled, reconnecting after a second whenever the socket drops."""
        while True:
            try:
                url = self.url
                if self.position is not None:
                    url += f"?offset={self.position[0]}&epoch={self.position[1]}"
                async with connect(url, origin=Origin(self.origin), open_timeout=5) as socket:
                    self.connects += 1
                    async for message in socket:
                        self.receive(json.loads(message), time.monotonic())
            except (OSError, WebSocketException, ValueError, TimeoutError) as error:
                self.last_error = f"{type(error).__name__}: {error}"
            await asyncio.sleep(RECONNECT_S)

    def receive(self, frame: dict[str, Any], now: float) -> None:
        """File one message of the socket (docs/events.md): a snapshot sets the position,
        a `market_summary` event is filed, a `zone_health` event counts as health only, a
        `zones_repartitioned` event (a split or merge) is kept with when it came."""
        kind = frame.get("type")
        if kind in ("snapshot", "events_reset"):
            self.position = (int(frame["offset"]), str(frame["epoch"]))
            return
        if kind not in ("market_summary", "zone_health", "zones_repartitioned"):
            return
        if self.position is not None:
            self.position = (int(frame["offset"]), self.position[1])
        if kind == "zones_repartitioned":
            self.repartitions.append((now, frame))
            return
        if kind == "zone_health":
            for zone in frame.get("zones", []):
                self._zone_seen({"zone": zone, "health": frame.get("health", "")}, now)
            return
        summary = frame
        zones = [z for z in summary.get("zones", []) if isinstance(z, dict) and "zone" in z]
        self.messages += 1
        worker = tuple(sorted(int(z["zone"]) for z in zones))
        if worker and "overruns" in summary:
            self._overruns_seen(worker, int(summary["overruns"]))
        for zone in zones:
            self._zone_seen(zone, now)

    def _overruns_seen(self, worker: tuple[int, ...], count: int) -> None:
        self._overruns_first.setdefault(worker, count)
        last = self._overruns_last.get(worker, count)
        if count < last:  # the worker restarted: its new count starts from zero
            self._overruns_carried += last - self._overruns_first[worker]
            self._overruns_first[worker] = 0
        self._overruns_last[worker] = count

    def _zone_seen(self, zone: dict[str, Any], now: float) -> None:
        index = int(zone["zone"])
        track = self.zones.setdefault(index, ZoneTrack())
        track.latest = dict(zone, received_s=now)
        track.windows += 1
        track.peak_entities = max(track.peak_entities, int(zone.get("entities") or 0))
        track.peak_in_flight = max(track.peak_in_flight, int(zone.get("in_flight") or 0))
        health = str(zone.get("health", ""))
        track.health[health] += 1
        if health == "degraded":
            track.degraded_windows += 1
        if "migrations_per_s" in zone or "migrations" in zone:
            self.migrations.append(
                MigrationWindow(
                    received_s=now,
                    zone=index,
                    per_s=float(zone.get("migrations_per_s") or 0.0),
                    count=_optional_int(zone.get("migrations")),
                    p50_ms=_optional_float(zone.get("migration_ms_p50")),
                    p99_ms=_optional_float(zone.get("migration_ms_p99")),
                )
            )

    @property
    def overruns(self) -> int:
        """Tick overruns of every worker since the watcher first heard from it."""
        counted = sum(self._overruns_last[w] - self._overruns_first[w] for w in self._overruns_last)
        return self._overruns_carried + counted

    def take_peaks(self) -> dict[int, tuple[int, int]]:
        """Zone → (peak entities, peak in flight) since the last call; then start afresh."""
        peaks = {}
        for index, track in self.zones.items():
            peaks[index] = (track.peak_entities, track.peak_in_flight)
            track.peak_entities = int(track.latest.get("entities") or 0)
            track.peak_in_flight = int(track.latest.get("in_flight") or 0)
        return peaks


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


# --- CPU -----------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat from field 3 (state) on; the name may hold spaces."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def process_cpu_s(pid: int) -> float:
    """utime + stime of one process so far, seconds."""
    rest = _stat_fields(pid)
    return (int(rest[11]) + int(rest[12])) / CLOCK_TICKS


def own_cpu_s() -> tuple[float, float]:
    """This process's CPU seconds, every thread included: in all, and of them in the kernel
    (system time, for the harness mostly its sockets' receiving and sending)."""
    times = os.times()
    return times.user + times.system, times.system


def process_tree(root: int) -> set[int]:
    """`root` and every process descended from it that is running now."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                parents[int(entry.name)] = int(_stat_fields(int(entry.name))[1])
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        tree.update(children)
        frontier.extend(children)
    return tree


class ProcessTreeCpu:
    """CPU seconds of a process and every descendant it has had while watched.

    A descendant that ends keeps the last figure read for it, so a restarted zone
    worker's time is not lost. Finding the descendants reads the stat of every process
    of the machine, so it is done every `rescan_s` only; in between, the processes found
    are read (a process started since is found at the next scan, with all its CPU so far).
    """

    def __init__(self, root: int, rescan_s: float = TREE_RESCAN_S) -> None:
        self.root = root
        self.rescan_s = rescan_s
        self.seen: dict[int, float] = {}
        self.kinds: dict[int, str] = {}  # "web" or "workers", read once per process
        self.members: set[int] = set()  # the tree as last scanned, less those gone since
        self.scans = 0
        self._next_scan = 0.0

    def seconds(self) -> dict[str, float]:
        """CPU seconds so far: "server" (the whole tree), "workers" (the zone workers) and
        "web" (the rest: the main job and its web processes)."""
        now = time.monotonic()
        if now >= self._next_scan:
            self.members = process_tree(self.root)
            self.scans += 1
            self._next_scan = now + self.rescan_s
        for pid in list(self.members):
            try:
                self.seen[pid] = process_cpu_s(pid)
                if pid not in self.kinds:
                    self.kinds[pid] = "workers" if self._is_zone_worker(pid) else "web"
            except (OSError, ValueError, IndexError):
                self.members.discard(pid)  # gone: its last figure stays in `seen`
        total = sum(self.seen.values())
        workers = sum(s for pid, s in self.seen.items() if self.kinds.get(pid) == "workers")
        return {"server": total, "web": total - workers, "workers": workers}

    @staticmethod
    def _is_zone_worker(pid: int) -> bool:
        """Zone workers name their command; every other process of the tree serves the web."""
        return ZONE_WORKER_COMMAND in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")

    def alive(self) -> bool:
        return Path(f"/proc/{self.root}").exists()


def machine_busy_s() -> float:
    """CPU seconds every core of the machine has spent busy since boot (not idle, not iowait)."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()
    ticks = [int(v) for v in first[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return (sum(ticks[:8]) - idle) / CLOCK_TICKS


class RedisCpu:
    """Redis's own CPU seconds (INFO cpu), or None when it cannot be asked."""

    def __init__(self, url: str) -> None:
        import redis  # only a market on Redis needs it

        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    def seconds(self) -> float | None:
        try:
            info = self.client.info("cpu")
        except Exception:
            return None
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


class LoopLag:
    """How late this event loop wakes up: the harness's own saturation, in ms."""

    def __init__(self) -> None:
        self.worst_ms = 0.0  # since the last take()

    async def run(self) -> None:
        while True:
            planned = time.monotonic() + LAG_PROBE_S
            await asyncio.sleep(LAG_PROBE_S)
            self.worst_ms = max(self.worst_ms, (time.monotonic() - planned) * 1000)

    def take(self) -> float:
        worst, self.worst_ms = self.worst_ms, 0.0
        return worst
