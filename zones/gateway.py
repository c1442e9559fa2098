"""The gateway: one per web process, between the zones and the visitors it serves.

It subscribes once to each zone of the market on the rows bus (zones/bus.py),
never once per visitor. Each tick it merges what the zones published into one view
(the authoritative row with the highest epoch wins, so an entity in the middle
of a handoff appears once), cuts every visitor's share out of it and sends each
visitor one binary frame, with the level of detail of zones/core/views.py: however
dense the crowd, a frame is at most 24 + 96 × 24 bytes of rows.

A tick's frames go out when every zone that is alive has delivered that tick,
or FLUSH_WAIT_S after the first one did. A gateway that fell behind skips to
the newest tick: only each zone's latest rows are kept, so stale ticks are
never sent. The same flush sends the zones the visitors' inputs (zones/inputs.py);
joins spawn their entity through zones/joins.py. What changes for a visitor (its
entity handed to another zone, a booth entered) is published as market events on the
visitor's subject (market/events, docs/events.md), which its socket follows.

Operators watching the dashboard get the whole market instead of a cut: every
OVERVIEW_EVERY-th tick one overview frame (zones/core/overview.py) is built from
the same rows, and the same bytes go to every operator's socket.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from market.events.publish import EventQueue
from market.events.types import BoothEntered, Event, ZoneChanged
from market.live import LiveMarket, PortalRegion
from zones.bus import Subscription, map_unpacked, packet_unpacked, rows_bus
from zones.channels import cancel_and_wait, layer_required, receive_forever, zone_channel
from zones.core.constants import MAX_ZONES, TICK_MS, V_MAX_M_PER_S
from zones.core.interest import resolve_authority
from zones.core.messages import MessageError
from zones.core.overview import overview_encode, overview_rows
from zones.core.ranges import RangeMap, adopt
from zones.core.relay_messages import (
    Despawn,
    Inputs,
    Rejected,
    Spawned,
    relay_to_wire,
    to_gateway_from_wire,
)
from zones.core.views import (
    EventKind,
    VisitorEvents,
    booths_under,
    detect_events,
    frames,
    own_rows,
)
from zones.core.wire import ROW_DTYPE, RowFlag
from zones.inputs import InputBatcher
from zones.joins import JoinRefused, Spawner
from zones.nearest import cut
from zones.portals import NO_PORTAL, portal_rects, portals_under

log = logging.getLogger(__name__)

FLUSH_WAIT_S = 0.008
ZONE_STALE_MS = 5 * TICK_MS  # a zone silent this long is down: left out of frames
FIRST_VIEW_TIMEOUT_S = 3.0
LEFT_WAIT_S = 3.0  # the longest a join waits for the entity that left to leave the view
OVERVIEW_EVERY = 2  # operators get the whole market every 2nd tick: 10 Hz


class VisitorSink(Protocol):
    """What the gateway needs from a visitor's socket."""

    def send_frame(self, frame: bytes | memoryview) -> None:
        """Queue the newest frame; must not wait for the socket (a slow one drops frames).

        A memoryview is a view of the whole tick's frames (views.frames): a frame kept
        past the call is kept as bytes."""

    def send_event(self, event: dict[str, Any]) -> None:
        """Queue an event; must not wait for the socket."""

    def supersede(self) -> Awaitable[None]: ...

    def portal_entered(self, portal: PortalRegion) -> None:
        """The visitor stepped into `portal`; must not wait (it starts the transfer)."""

    def transferred(self) -> Awaitable[None]:
        """The visitor went to another market: say so and close."""


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
    zone: int  # zone holding authority, as last reported to the visitor
    booth: int  # booth the visitor stands in, as last reported
    acked: int = 0  # the highest input seq the zones' rows have shown taken
    portal: int = NO_PORTAL  # the portal the visitor stands in, as last seen


@dataclass
class Welcome:
    """What a visitor's welcome reports about its entity."""

    zone: int
    booth: int  # the booth the visitor stands in
    resumed: bool
    tick_ms: int
    hlc: int
    last_seq: int = 0


class Gateway:
    """Relays one live market's zones to this process's visitors."""

    def __init__(self, live: LiveMarket) -> None:
        self.live = live
        self.market_id = live.market_id
        # the booths never move; the zones serving them do, when a market splits and merges
        # them (zones/repartitions.py): their map comes by the bus, newest first
        self.booth_ranges = RangeMap(starts=np.array(live.starts, dtype=np.int64), version=0)
        self.ranges = self.booth_ranges
        self.portals = portal_rects(live.portals)
        self.layer = layer_required()
        self.events = EventQueue(live.market_id)  # the visitors' events, in order, never awaited
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
        self._maps: Subscription | None = None
        self._spawner = Spawner(self.layer, self.market_id, live.booths, self.booth_ranges)
        self._inputs = InputBatcher()
        self._viewed = asyncio.Event()
        self._viewed_all = asyncio.Event()  # a view held the rows of every zone of the market
        self._flushed = asyncio.Event()  # set by the next flush (then replaced)
        self._leaving: set[int] = set()  # entities that left, still in the view
        self.joining: set[int] = set()  # entities whose socket is being attached
        self._tasks: list[asyncio.Task[None]] = []
        self._stagger = 0
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
            # every zone number a market may have: spare zones speak once they serve
            self._subscription = await self.bus.subscribe(
                self.market_id, range(MAX_ZONES), self.take_rows
            )
            self._maps = await self.bus.subscribe_maps(self.market_id, self.take_map)
            self._tasks = [
                asyncio.create_task(self._receive(), name="gateway-receive"),
                asyncio.create_task(self._relay(), name="gateway-relay"),
            ]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []
        await self.events.close()
        for subscription in (self._subscription, self._maps):
            if subscription is not None:
                await subscription.close()
        self._subscription = self._maps = None

    async def _receive(self) -> None:
        """Answers from the zones: spawns and refused commands, handled as they come."""

        def answer(wire: dict[str, Any]) -> None:
            try:
                message = to_gateway_from_wire(wire)
            except MessageError as exc:
                log.warning("gateway: dropped a message from a zone: %s", exc)
                return
            if isinstance(message, Spawned):
                self._spawner.answered(message)
            else:
                self._rejected(message)

        await receive_forever(self.layer, self.channel, answer)

    def take_rows(self, packet: bytes) -> None:
        """A zone's rows from the bus: keep them as that zone's latest, wake the relay."""
        unpacked = packet_unpacked(packet, "gateway")
        if unpacked is None:
            self.bad_packets += 1
            return
        zone, _, tick_ms, rows = unpacked
        if not 0 <= zone < MAX_ZONES:
            self.bad_packets += 1
            log.warning("gateway: dropped rows of zone %d, not a zone a market may have", zone)
            return
        self.latest[zone] = (tick_ms, rows)
        if tick_ms > self._newest[0]:
            self._newest = (tick_ms, time.monotonic())
        self._arrival.set()

    def take_map(self, packet: bytes) -> None:
        """A range map from the bus: adopted when newer; spawns go where it says."""
        ranges = map_unpacked(packet, "gateway")
        if ranges is None:
            self.bad_packets += 1
            return
        self.ranges = adopt(self.ranges, ranges)
        self._spawner.zones = self.ranges

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
        if self._leaving:
            self._leaving = {e for e in self._leaving if self.row_of(e) is not None}
        self._flushed.set()
        self._flushed = asyncio.Event()
        if set(self.ranges.zones.tolist()) <= alive:
            self._viewed_all.set()
        self.frames += 1
        links = list(self.links.values())
        if links and view.size:
            await self._send_frames(links, view, tick_ms)
        if self.watchers and self.frames % OVERVIEW_EVERY == 0:
            overview = overview_encode(overview_rows(raw, view), tick_ms)
            for watcher in list(self.watchers):  # one frame, shared by every operator
                watcher.send_frame(overview)
        await self._send_inputs()

    def row_of(self, entity: int) -> np.ndarray | None:
        """The merged view's row of `entity`, or None."""
        i = int(np.searchsorted(self.view["id"], entity))
        if i < self.view.size and int(self.view["id"][i]) == entity:
            return self.view[i]
        return None

    async def _send_frames(self, links: list[Link], view: np.ndarray, tick_ms: int) -> None:
        """Every visitor whose row is in the view gets its frame, then its events."""
        own = own_rows(view, np.array([link.entity for link in links], np.uint64))
        present = own >= 0
        served = [link for link, ok in zip(links, present.tolist(), strict=True) if ok]
        own = own[present]
        phases = self.frames + np.array([link.stagger for link in served], np.int64)
        visible = cut(view, own, phases)
        # what the zones took, not what this process passed on: a zone counts an input only
        # once its input log holds it, so an acknowledged input survives a killed worker.
        # Never lower than before: in a handoff the source counts a refused input the
        # target never hears of, and its rows give way to the target's.
        acks = []
        for link, seq in zip(served, view["seq"][own].tolist(), strict=True):
            link.acked = max(link.acked, seq)
            acks.append(link.acked)
        for link, frame in zip(served, frames(view, visible, acks, tick_ms), strict=True):
            # queued, never awaited: one slow socket must not hold up everyone's frames
            link.sink.send_frame(frame)
        mine = view[own]
        events = detect_events(
            mine,
            booths_under(mine["pos"], self.booth_ranges),
            np.array([link.zone for link in served], np.int64),
            np.array([link.booth for link in served], np.int64),
        )
        if events.entity.size:
            self._note(events)
            self._visitor_events(events, tick_ms)
        if len(self.portals):
            self._portals_entered(served, portals_under(mine["pos"], self.portals))

    def _portals_entered(self, served: list[Link], under: np.ndarray) -> None:
        """Tell each visitor's socket of a portal it has just stepped into, once."""
        before = np.fromiter((link.portal for link in served), np.int64, len(served))
        for i in np.flatnonzero(under != before).tolist():
            link, portal = served[i], int(under[i])
            link.portal = portal
            if portal != NO_PORTAL:
                link.sink.portal_entered(self.live.portals[portal])

    def _note(self, events: VisitorEvents) -> None:
        """Remember what the visitors were told, so each change is told once."""
        for entity, kind, after in zip(
            events.entity.tolist(), events.kind.tolist(), events.after.tolist(), strict=True
        ):
            link = self.links.get(entity)
            if link is None:
                continue
            if kind == EventKind.ZONE_CHANGED:
                link.zone = after
            else:
                link.booth = after

    def _visitor_events(self, events: VisitorEvents, tick_ms: int) -> None:
        """Publish what changed for each visitor on its subject; its socket follows it there
        (market/events), so a visitor that reconnects gets what it missed."""
        published: list[Event] = []
        for entity, kind, before, after in zip(
            events.entity.tolist(),
            events.kind.tolist(),
            events.before.tolist(),
            events.after.tolist(),
            strict=True,
        ):
            if kind == EventKind.ZONE_CHANGED:
                published.append(
                    ZoneChanged(entity=entity, from_zone=before, to_zone=after, tick_ms=tick_ms)
                )
            else:
                name, colour = self.live.booths[after]
                published.append(BoothEntered(entity=entity, zone=after, name=name, colour=colour))
        self.events.put(*published)

    async def _send_inputs(self) -> None:
        zone_of = {entity: link.zone for entity, link in self.links.items()}
        rows_of = {zone: rows for zone, (_, rows) in self.latest.items()}
        batch = self._inputs.batch(zone_of, rows_of, self.channel, self.frames)
        await self._send_to_zones(batch)

    async def _send_to_zones(self, batch: list[tuple[int, Inputs | Despawn]]) -> None:
        results = await asyncio.gather(
            *(
                self.layer.send(zone_channel(self.market_id, zone), relay_to_wire(message))
                for zone, message in batch
            ),
            return_exceptions=True,
        )
        for (zone, _), result in zip(batch, results, strict=True):
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
        self.joining.add(entity)
        try:
            if not await self.first_view(FIRST_VIEW_TIMEOUT_S):
                raise JoinRefused(
                    "zones_unavailable", "no zone of this market is running; try again shortly"
                )
            previous = self.links.pop(entity, None)
            if previous is not None:
                last_seq = max(last_seq, previous.seq_taken)
                # the old socket may be closing already, or too slow to say goodbye promptly
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(previous.sink.supersede(), 1.0)
            await self._left_view(entity)
            row = await self._row_before_spawning(entity)
            resumed = row is not None and bool(row["flags"] & RowFlag.AUTHORITATIVE)
            acked = int(row["seq"]) if row is not None else 0
            if row is not None:
                last_seq = max(last_seq, acked)
                zone = int(row["zone"])
                position = np.array(row["pos"], np.float32)
            else:
                zone, position = await self._spawner.spawn(entity, booth, at, self.channel)
            self._stagger += 1
            self.links[entity] = Link(
                entity=entity,
                sink=sink,
                stagger=self._stagger,
                seq_taken=last_seq,
                zone=zone,
                booth=int(booths_under(position[None, :], self.booth_ranges)[0]),
                acked=acked,
                # joining inside a portal is not entering it: the visitor must step in
                portal=int(portals_under(position[None, :], self.portals)[0]),
            )
            hlc = int(self.view["hlc"].max()) if self.view.size else 0
            return Welcome(
                zone=zone,
                booth=self.links[entity].booth,
                resumed=resumed,
                tick_ms=self.view_tick_ms,
                hlc=hlc,
                last_seq=last_seq,
            )
        finally:
            self.joining.discard(entity)

    async def first_view(self, timeout_s: float) -> bool:
        """Start, and wait until the zones' rows have been seen once; False on timeout."""
        await self.start()
        try:
            await asyncio.wait_for(self._viewed.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def unattached(self, low: int, high: int) -> list[int]:
        """Entities in the view with ids in [low, high) that no socket here holds or is
        attaching, and that are not leaving already (visitors whose socket is elsewhere,
        or gone)."""
        ids = self.view["id"]
        ids = ids[(ids >= low) & (ids < high)].tolist()
        busy = self.links.keys() | self.joining | self._leaving
        return [e for e in ids if e not in busy]

    async def _left_view(self, entity: int) -> None:
        """Wait, briefly, until an entity that left is gone from the view.

        Its row stays until its zone has taken the despawn; a join resuming that row would
        attach the socket to an entity about to vanish, and no frame would ever come.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LEFT_WAIT_S
        while entity in self._leaving and loop.time() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flushed.wait(), deadline - loop.time())
        # waited long enough: whatever row is left is the entity's now, and later joins of
        # it must not wait again
        self._leaving.discard(entity)

    async def _row_before_spawning(self, entity: int) -> np.ndarray | None:
        """The entity's row, looked for in a view of every zone before concluding it has none.

        A gateway that has just started may flush before every zone's rows came in; an
        entity alive in a zone missing from that view would otherwise be spawned again
        elsewhere, and stand in the market twice.
        """
        row = self.row_of(entity)
        if row is None and not self._viewed_all.is_set():
            with contextlib.suppress(TimeoutError):  # a zone that is down stays down
                await asyncio.wait_for(self._viewed_all.wait(), FIRST_VIEW_TIMEOUT_S)
            row = self.row_of(entity)
        return row

    def _rejected(self, message: Rejected) -> None:
        for command in message.commands:
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
        self._inputs.command(entity, kind, vec, seq)
        return True

    def detach(self, entity: int, sink: VisitorSink) -> int | None:
        """The socket closed: stop the entity and let its lease run out. The last seq taken."""
        link = self.links.get(entity)
        if link is None or link.sink is not sink:
            return None
        del self.links[entity]
        self._inputs.depart(entity, link.zone, link.seq_taken)
        return link.seq_taken

    def leave(self, entity: int) -> None:
        """Remove the visitor's entity from the market with this tick's batch.

        One despawn message per zone per tick, however many visitors leave at once: a
        send per visitor ran the Redis connection pool dry when a crowd left together.
        """
        link = self.links.pop(entity, None)
        row = self.row_of(entity)
        zone = int(row["zone"]) if row is not None else link.zone if link is not None else None
        self._inputs.leave(entity, zone)
        if row is not None:
            self._leaving.add(entity)


_gateways: dict[tuple[int, int], Gateway] = {}


def gateway_for(live: LiveMarket) -> Gateway:
    """This event loop's gateway for the live market, created on first use."""
    key = (id(asyncio.get_running_loop()), live.market_id)
    gateway = _gateways.get(key)
    if gateway is None or gateway.live != live:
        gateway = _gateways[key] = Gateway(live)
    return gateway
