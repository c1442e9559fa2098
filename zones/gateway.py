"""The gateway: one per web process, between the zones and the visitors it serves.

It subscribes once to each zone of the market on the rows bus (zones/bus.py),
never once per visitor. Each tick it merges what the zones published into one view
(the authoritative row with the highest epoch wins, so an entity in the middle
of a handoff appears once), cuts every visitor's share out of it with numpy,
and sends each visitor one binary frame:

  * the nearest NEAR_ROWS rows within INTEREST_RADIUS_M (5 m) every tick;
  * the nearest FAR_ROWS rows within FAR_RADIUS_M (20 m) every FAR_EVERY-th
    tick, staggered across visitors so the extra bytes spread evenly;
  * the bodies (55 bones) of the NEAR_BODIES nearest visitors within 5 m every
    BODIES_EVERY-th tick, on other ticks than the far rows.

That is the level of detail: however dense the crowd, a frame is at most
24 + 96 × 24 bytes, and a visitor's stream stays within 256 kbit/s (rows
quantised to the centimetre, 24 bytes each: zones.core.wire.FRAME_ROW_DTYPE).

A tick's frames go out when every zone that is alive has delivered that tick,
or FLUSH_WAIT_S after the first one did. A gateway that fell behind skips to
the newest tick: only each zone's latest rows are kept, so stale ticks are
never sent. Visitor inputs are batched the same way: one message per zone per
tick that has commands for it, and every LEASE_EVERY-th tick one carrying the
ids of the visitors this gateway still vouches for (their lease).

Operators watching the dashboard get the whole market instead of a cut: every
OVERVIEW_EVERY-th tick one overview frame (zones/core/overview.py) is built from
the same rows, and the same bytes go to every operator's socket.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from market.live import LiveMarket
from zones.bus import Subscription, packet_unpacked, rows_bus
from zones.channels import cancel_and_wait, layer_required, receive_forever, zone_channel
from zones.core.constants import INTEREST_RADIUS_M, MARKET_SIZE_M, TICK_MS, V_MAX_M_PER_S
from zones.core.crowd import floor_points
from zones.core.interest import resolve_authority
from zones.core.overview import overview_encode, overview_rows
from zones.core.ranges import RangeMap
from zones.core.skeleton import bodies as body_blocks
from zones.core.wire import (
    BODY_DTYPE,
    COMMAND_DTYPE,
    ROW_DTYPE,
    SPAWN_DTYPE,
    CommandKind,
    RowFlag,
    frame_encode,
    frame_rows,
    from_bytes,
)

log = logging.getLogger(__name__)

FAR_RADIUS_M = 20.0
FAR_EVERY = 4
BODIES_EVERY = 4
BODIES_PHASE = 2  # bodies go on the ticks halfway between two far ticks
NEAR_ROWS = 32
FAR_ROWS = 96
NEAR_BODIES = 4
FLUSH_WAIT_S = 0.008
ZONE_STALE_MS = 5 * TICK_MS  # a zone silent this long is down: left out of frames
# A loaded market answers a spawn late rather than never; the SDK waits 10 s for its welcome.
JOIN_TIMEOUT_S = 8.0
FIRST_VIEW_TIMEOUT_S = 3.0
LEASE_EVERY = 5  # vouch for this gateway's visitors 4 times a second (the lease is 30 s)
OVERVIEW_EVERY = 2  # operators get the whole market every 2nd tick: 10 Hz
LO = np.zeros(3, np.float32)
HI = np.array(MARKET_SIZE_M, np.float32)


class JoinRefused(Exception):
    """A join the market cannot take: `code` and a sentence for the visitor."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class VisitorSink(Protocol):
    """What the gateway needs from a visitor's socket."""

    def send_frame(self, frame: bytes) -> None:
        """Queue the newest frame; must not wait for the socket (a slow one drops frames)."""

    def send_event(self, event: dict[str, Any]) -> None:
        """Queue an event; must not wait for the socket."""

    def supersede(self) -> Awaitable[None]: ...


class FrameSink(Protocol):
    """What the gateway needs from an operator's socket: frames, never awaited."""

    def send_frame(self, frame: bytes) -> None: ...


@dataclass
class Link:
    """One connected visitor."""

    entity: int
    sink: VisitorSink
    stagger: int
    seq_taken: int
    zone: int  # zone holding authority, as last seen
    booth: int  # booth the visitor stands in, as last seen
    commands: list[tuple[int, tuple[float, float, float], int]] = field(default_factory=list)


@dataclass
class Welcome:
    """What a visitor's welcome reports about its entity."""

    zone: int
    resumed: bool
    tick_ms: int
    hlc: int
    last_seq: int = 0


class Gateway:
    """Relays one live market's zones to this process's visitors."""

    def __init__(self, live: LiveMarket) -> None:
        self.live = live
        self.market_id = live.market_id
        self.ranges = RangeMap(starts=np.array(live.starts, dtype=np.int64), version=0)
        self.zones = len(live.booths)
        self.layer = layer_required()
        self.bus = rows_bus()
        self.channel = ""
        self.links: dict[int, Link] = {}
        self.watchers: set[FrameSink] = set()  # operators' sockets: the overview frame
        self.latest: dict[int, tuple[int, np.ndarray]] = {}  # zone → (tick_ms, rows)
        self.view = np.zeros(0, ROW_DTYPE)  # merged rows of the last flush, sorted by id
        self.view_tick_ms = 0
        self.sent_tick_ms = 0  # the newest tick whose frames went out; later rows wait
        self.frames = 0
        self.skipped = 0  # ticks never sent because a newer one was complete first
        self.bad_packets = 0
        self._newest = (0, 0.0)  # newest tick_ms heard, and when its first packet came
        self._arrival = asyncio.Event()
        self._subscription: Subscription | None = None
        self._spawning: dict[int, asyncio.Future[tuple[bool, int, str]]] = {}
        self._viewed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stagger = 0
        self._departed: list[Link] = []  # detached this tick: one last command, no lease
        self._leaving: dict[int, list[int]] = {}  # zone → entities to remove with the next batch
        self._rng = np.random.default_rng()
        self._started = asyncio.Lock()

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to every zone's rows, once; later calls return at once."""
        async with self._started:
            if self._tasks:
                return
            # The default prefix, not our own: channels-redis pulls every process-local
            # channel from one shared key, and only channels named with its default
            # prefix live there.
            self.channel = await self.layer.new_channel()
            self._subscription = await self.bus.subscribe(
                self.market_id, range(self.zones), self.take_rows
            )
            self._tasks = [
                asyncio.create_task(self._receive(), name="gateway-receive"),
                asyncio.create_task(self._relay(), name="gateway-relay"),
            ]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None

    async def _receive(self) -> None:
        """Answers from the zones: spawns and refused commands, handled as they come."""

        def answer(message: dict[str, Any]) -> None:
            kind = message.get("type")
            if kind == "zone.spawned":
                self._spawn_answered(message)
            elif kind == "zone.rejected":
                self._rejected(message)

        await receive_forever(self.layer, self.channel, answer)

    def take_rows(self, packet: bytes) -> None:
        """A zone's rows from the bus: keep them as that zone's latest, wake the relay."""
        unpacked = packet_unpacked(packet, "gateway")
        if unpacked is None:
            self.bad_packets += 1
            return
        zone, _, tick_ms, rows = unpacked
        if not 0 <= zone < self.zones:
            self.bad_packets += 1
            log.warning("gateway: dropped rows of zone %d, not a booth of this market", zone)
            return
        self.latest[zone] = (tick_ms, rows)
        if tick_ms > self._newest[0]:
            self._newest = (tick_ms, time.monotonic())
        self._arrival.set()

    async def _relay(self) -> None:
        """Send the newest tick once every live zone has delivered it, or FLUSH_WAIT_S after
        its first packet; ticks that were overtaken while a flush ran are skipped."""
        while True:
            target, first_seen = self._newest
            if target <= self.sent_tick_ms:
                await self._arrival.wait()
                self._arrival.clear()
                continue
            alive = self._alive_zones(target)
            if any(self.latest[z][0] < target for z in alive):
                remaining = first_seen + FLUSH_WAIT_S - time.monotonic()
                if remaining > 0:
                    self._arrival.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._arrival.wait(), remaining)
                    continue
            if self.sent_tick_ms:
                self.skipped += max(0, (target - self.sent_tick_ms) // TICK_MS - 1)
            await self._flush_safely(target)

    def _alive_zones(self, tick_ms: int) -> set[int]:
        return {z for z, (t, _) in self.latest.items() if tick_ms - t <= ZONE_STALE_MS}

    async def _flush_safely(self, tick_ms: int) -> None:
        self.sent_tick_ms = tick_ms
        try:
            await self.flush(tick_ms)
        except Exception:  # one bad tick must not end the relay for everyone
            log.exception("gateway: flush of tick %d failed", tick_ms)

    # --- the tick's frames -----------------------------------------------------------------

    async def flush(self, tick_ms: int) -> None:
        """Send every visitor its frame for `tick_ms`, then the tick's inputs to the zones."""
        alive = self._alive_zones(tick_ms)
        parts = [rows for z, (_, rows) in self.latest.items() if z in alive]
        raw = np.concatenate(parts) if parts else np.zeros(0, ROW_DTYPE)
        view = resolve_authority(raw)
        self.view, self.view_tick_ms = view, tick_ms
        self._viewed.set()
        self.frames += 1
        links = list(self.links.values())
        if links and view.size:
            await self._send_frames(links, view, tick_ms)
        if self.watchers and self.frames % OVERVIEW_EVERY == 0:
            overview = overview_encode(overview_rows(raw, view), tick_ms)
            for watcher in list(self.watchers):  # one frame, shared by every operator
                watcher.send_frame(overview)
        await self._send_inputs(links)

    def row_of(self, entity: int) -> np.ndarray | None:
        """The merged view's row of `entity`, or None."""
        i = int(np.searchsorted(self.view["id"], entity))
        if i < self.view.size and int(self.view["id"][i]) == entity:
            return self.view[i]
        return None

    async def _send_frames(self, links: list[Link], view: np.ndarray, tick_ms: int) -> None:
        wanted = np.array([link.entity for link in links], dtype=np.uint64)
        found = np.minimum(np.searchsorted(view["id"], wanted), view.size - 1)
        present = view["id"][found] == wanted
        own = found[present]
        served = [link for link, ok in zip(links, present.tolist(), strict=True) if ok]
        pos = view["pos"]
        centres = pos[own]
        d2 = (
            np.einsum("ij,ij->i", centres, centres)[:, None]
            - 2.0 * centres @ pos.T
            + np.einsum("ij,ij->i", pos, pos)[None, :]
        )
        d2[np.arange(own.size), own] = -1.0  # your own root: always the nearest
        phases = self.frames + np.array([link.stagger for link in served], dtype=np.int64)
        with_far = phases % FAR_EVERY == 0
        with_bodies = phases % BODIES_EVERY == BODIES_PHASE
        near = nearest_within(d2, INTEREST_RADIUS_M**2, NEAR_ROWS)
        far = np.flatnonzero(with_far)
        if far.size:
            near[far] = nearest_within(d2[far], FAR_RADIUS_M**2, FAR_ROWS)
        roots = (view["flags"] & RowFlag.VISITOR_ROOT) != 0
        dressed = np.flatnonzero(with_bodies)
        body_of = np.zeros(d2.shape, bool)
        if dressed.size:
            close = np.where(roots[None, :], d2[dressed], np.inf)
            body_of[dressed] = nearest_within(close, INTEREST_RADIUS_M**2, NEAR_BODIES)
        body_rows = np.flatnonzero(body_of.any(axis=0))
        body_index = np.full(view.size, -1, np.int64)
        body_index[body_rows] = np.arange(body_rows.size)
        blocks = body_blocks(view[body_rows]) if body_rows.size else np.zeros(0, BODY_DTYPE)
        quantised = frame_rows(view)  # once for everyone, then cut per visitor
        booths = self.ranges.assign_positions(centres, LO, HI).tolist()
        flags = view["flags"][own]
        settled = ((flags & RowFlag.AUTHORITATIVE) != 0) & ((flags & RowFlag.STAGING) == 0)
        zones, settled_list = view["zone"][own].tolist(), settled.tolist()
        far_list = with_far.tolist()
        for i, link in enumerate(served):
            frame = frame_encode(
                quantised[near[i]],
                blocks[body_index[body_of[i]]],
                ack_seq=link.seq_taken,
                tick_ms=tick_ms,
                far=far_list[i],
            )
            # queued, never awaited: one slow socket must not hold up everyone's frames
            link.sink.send_frame(frame)
            self._events(link, zones[i], settled_list[i], booths[i], tick_ms)

    def _events(self, link: Link, zone: int, settled: bool, booth: int, tick_ms: int) -> None:
        """zone_changed once the visitor's own row settles in a new zone; booth_entered."""
        if settled and zone != link.zone:
            link.sink.send_event(
                {"type": "zone_changed", "from": link.zone, "to": zone, "tick_ms": tick_ms}
            )
            link.zone = zone
        if booth != link.booth:
            name, colour = self.live.booths[booth]
            link.sink.send_event(
                {"type": "booth_entered", "zone": booth, "name": name, "colour": colour}
            )
            link.booth = booth

    async def _send_inputs(self, links: list[Link]) -> None:
        by_zone: dict[int, tuple[list[np.ndarray], list[int]]] = {}
        departed, self._departed = self._departed, []
        for link in links + departed:
            commands, alive = by_zone.setdefault(link.zone, ([], []))
            if link.entity in self.links:
                alive.append(link.entity)
            if link.commands:
                rows = np.zeros(len(link.commands), COMMAND_DTYPE)
                rows["id"] = link.entity
                rows["kind"] = [kind for kind, _, _ in link.commands]
                rows["vec"] = [vec for _, vec, _ in link.commands]
                rows["seq"] = [seq for _, _, seq in link.commands]
                commands.append(rows)
                link.commands = []
        vouch = self.frames % LEASE_EVERY == 0
        zones, sends = [], []
        leaving, self._leaving = self._leaving, {}
        for zone, ids in leaving.items():
            zones.append(zone)
            sends.append(
                self.layer.send(
                    zone_channel(self.market_id, zone),
                    {"type": "zone.despawn", "ids": np.array(ids, "<u8").tobytes()},
                )
            )
        for zone, (commands, alive) in by_zone.items():
            if not commands and not vouch:
                continue
            zones.append(zone)
            batch = np.concatenate(commands) if commands else np.zeros(0, COMMAND_DTYPE)
            sends.append(
                self.layer.send(
                    zone_channel(self.market_id, zone),
                    {
                        "type": "zone.inputs",
                        "gateway": self.channel,
                        "commands": batch.tobytes(),
                        "alive": np.array(alive, dtype="<u8").tobytes(),
                    },
                )
            )
        results = await asyncio.gather(*sends, return_exceptions=True)
        for zone, result in zip(zones, results, strict=True):
            if isinstance(result, Exception):  # that zone misses one batch; the rest go
                log.warning("gateway: inputs for zone %d not sent: %r", zone, result)

    # --- operators -------------------------------------------------------------------------

    async def watch(self, sink: FrameSink) -> None:
        """Send `sink` the overview of the whole market, 10 times a second."""
        await self.start()
        self.watchers.add(sink)

    def unwatch(self, sink: FrameSink) -> None:
        self.watchers.discard(sink)

    # --- visitors --------------------------------------------------------------------------

    async def join(
        self,
        sink: VisitorSink,
        entity: int,
        *,
        booth: int | None,
        at: tuple[float, float, float] | None,
        last_seq: int,
    ) -> Welcome:
        """Attach a visitor's socket to its entity: resume it if it is alive, else spawn it."""
        await self.start()
        try:
            await asyncio.wait_for(self._viewed.wait(), FIRST_VIEW_TIMEOUT_S)
        except TimeoutError:
            raise JoinRefused(
                "zones_unavailable", "no zone of this market is running; try again shortly"
            ) from None
        previous = self.links.pop(entity, None)
        if previous is not None:
            last_seq = max(last_seq, previous.seq_taken)
            # the old socket may be closing already, or too slow to say goodbye promptly
            with contextlib.suppress(Exception):
                await asyncio.wait_for(previous.sink.supersede(), 1.0)
        row = self.row_of(entity)
        resumed = row is not None and bool(row["flags"] & RowFlag.AUTHORITATIVE)
        if row is not None:
            zone = int(row["zone"])
            position = np.array(row["pos"], np.float32)
        else:
            zone, position = await self._spawn(entity, booth, at)
        self._stagger += 1
        self.links[entity] = Link(
            entity=entity,
            sink=sink,
            stagger=self._stagger,
            seq_taken=last_seq,
            zone=zone,
            booth=int(self.ranges.assign_positions(position[None, :], LO, HI)[0]),
        )
        hlc = int(self.view["hlc"].max()) if self.view.size else 0
        return Welcome(
            zone=zone, resumed=resumed, tick_ms=self.view_tick_ms, hlc=hlc, last_seq=last_seq
        )

    async def _spawn(
        self, entity: int, booth: int | None, at: tuple[float, float, float] | None
    ) -> tuple[int, np.ndarray]:
        if at is not None:
            position = np.array(at, np.float32)
        else:
            zone = int(self._rng.integers(self.zones)) if booth is None else booth
            position = floor_points(self.ranges, zone, self._rng, 1, LO, HI)[0]
        zone = int(self.ranges.assign_positions(position[None, :], LO, HI)[0])
        row = np.zeros(1, SPAWN_DTYPE)
        row["id"], row["pos"], row["kind"] = entity, position, RowFlag.VISITOR_ROOT
        answer: asyncio.Future[tuple[bool, int, str]] = asyncio.get_running_loop().create_future()
        self._spawning[entity] = answer
        try:
            await self.layer.send(
                zone_channel(self.market_id, zone),
                {"type": "zone.spawn", "gateway": self.channel, "rows": row.tobytes()},
            )
            ok, zone, reason = await asyncio.wait_for(answer, JOIN_TIMEOUT_S)
        except TimeoutError:
            name = self.live.booths[zone][0]
            raise JoinRefused(
                "booth_unavailable", f"booth {name!r} did not answer within {JOIN_TIMEOUT_S:g} s"
            ) from None
        finally:
            self._spawning.pop(entity, None)
        if not ok:
            name = self.live.booths[zone][0]
            if reason == "quarantined":
                raise JoinRefused(
                    "booth_quarantined",
                    f"booth {name!r} is quarantined after repeated crashes; try another booth",
                )
            raise JoinRefused("booth_full", f"booth {name!r} is full; try another booth")
        return zone, position

    def _spawn_answered(self, message: dict[str, Any]) -> None:
        zone, reason = int(message["zone"]), str(message.get("reason", ""))
        for key, ok in (("spawned", True), ("refused", False)):
            for entity in np.frombuffer(message[key], dtype="<u8").tolist():
                answer = self._spawning.get(entity)
                if answer is not None and not answer.done():
                    answer.set_result((ok, zone, reason))

    def _rejected(self, message: dict[str, Any]) -> None:
        for command in from_bytes(message["commands"], COMMAND_DTYPE, "rejected"):
            link = self.links.get(int(command["id"]))
            if link is not None:
                link.sink.send_event(
                    {
                        "type": "error",
                        "code": "too_fast",
                        "message": f"that move is faster than {V_MAX_M_PER_S:g} m/s; "
                        "your entity did not move",
                        "seq": int(command["seq"]),
                    }
                )

    def command(self, entity: int, kind: int, vec: tuple[float, float, float], seq: int) -> bool:
        """Queue a movement for the tick's batch; False for a seq already taken (a resend)."""
        link = self.links.get(entity)
        if link is None or seq <= link.seq_taken:
            return False
        link.seq_taken = seq
        link.commands.append((kind, vec, seq))
        return True

    def detach(self, entity: int, sink: VisitorSink) -> int | None:
        """The socket closed: stop the entity and let its lease run out. The last seq taken."""
        link = self.links.get(entity)
        if link is None or link.sink is not sink:
            return None
        del self.links[entity]
        self._stop_walking(link)
        return link.seq_taken

    def _stop_walking(self, link: Link) -> None:
        link.commands = [(CommandKind.VELOCITY, (0.0, 0.0, 0.0), link.seq_taken)]
        self._departed.append(link)

    def leave(self, entity: int) -> None:
        """Remove the visitor's entity from the market with this tick's batch.

        One despawn message per zone per tick, however many visitors leave at once: a
        send per visitor ran the Redis connection pool dry when a crowd left together.
        """
        link = self.links.pop(entity, None)
        zone = link.zone if link is not None else None
        row = self.row_of(entity)
        if row is not None:
            zone = int(row["zone"])
        if zone is not None:
            self._leaving.setdefault(zone, []).append(entity)


def nearest_within(d2: np.ndarray, radius2: float, most: int) -> np.ndarray:
    """Per row of squared distances: a mask of the `most` nearest columns within the radius."""
    mask = d2 <= radius2
    crowded = np.flatnonzero(np.count_nonzero(mask, axis=1) > most)
    if crowded.size:
        nearest = np.argpartition(d2[crowded], most - 1, axis=1)[:, :most]
        mask[crowded] = False
        mask[crowded[:, None], nearest] = True
    return mask


_gateways: dict[tuple[int, int], Gateway] = {}


def gateway_for(live: LiveMarket) -> Gateway:
    """This event loop's gateway for the live market, created on first use."""
    key = (id(asyncio.get_running_loop()), live.market_id)
    gateway = _gateways.get(key)
    if gateway is None or gateway.live != live:
        gateway = _gateways[key] = Gateway(live)
    return gateway
