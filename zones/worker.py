"""A zone worker: one or more zones ticking at 20 Hz on the channel layer.

Each hosted zone receives on its own channel (zones/channels.py): migration
intents, acks, nacks and gossip from other zones, one batch of visitor inputs
per gateway per tick, spawn and despawn requests. Every tick the worker steps
each zone with the pure core (`zones.core.step`), then

  1. appends the tick's StepInputs, exactly as stepped, to the zone's input log
     (zones/inputlog.py) before anything of the tick leaves, and every
     SNAPSHOT_EVERY_TICKS writes a snapshot and starts a new log segment
     (write-ahead: a restarted zone replays its log from its newest snapshot
     through the pure step and resumes at the last tick it logged, so it never
     forgets an answer it gave, an input it took, or motion it made);
  2. hands messages to zones it hosts itself directly, and sends the rest over
     the layer, one message per link;
  3. publishes the zone's interest rows once on the rows bus (zones/bus.py) for
     the gateways. Zones take nothing from each other's rows: a step needs only
     its own entities and the messages it receives.

Ticks are aligned to wall-clock 50 ms slots, so zones in different processes
tick together and a row's `tick_ms` names the same instant everywhere. A tick
that ends after its slot is over counts as an overrun; the slots it missed
are skipped, never run in a burst.

In the embedded default one worker hosts every zone inside the web process on
the in-memory layer; with REDIS_URL the supervisor runs one worker process per
zone (or per group of zones) on the Redis layer.
"""

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# numpy imports numpy.ma lazily, inside np.unique; loaded now, a zone can still step in a
# process that has no file descriptor left to import it with.
import numpy.ma  # noqa: F401

from market.events.publish import event_publish_or_count
from market.events.types import (
    Event,
    MarketSummary,
    MarketSummaryReported,
    ZoneHealthChanged,
    ZoneSummary,
)
from zones import npcbus
from zones.bus import map_packet, rows_bus
from zones.channels import (
    bundled,
    cancel_and_wait,
    layer_required,
    receive_many_forever,
    unbundled,
    zone_channel,
)
from zones.core.constants import MAX_ZONES, SIM_TICK_HZ, TICK_MS, ZONE_CAPACITY
from zones.core.crowd import floor_points, headings
from zones.core.inputlog import LogRecord, replay, rng_restore, rng_state
from zones.core.items import Items, booth_items, items_from_layout
from zones.core.messages import Message, MessageError, message_from_wire, message_to_wire
from zones.core.npcview import NPC_STATUS_DTYPE, npc_status, npc_status_encode
from zones.core.observe import observations
from zones.core.ranges import RangeMap, floor_ranges
from zones.core.relay_messages import (
    TO_ZONE_TYPES,
    Despawn,
    Inputs,
    Load,
    Rejected,
    Spawn,
    Spawned,
    relay_to_wire,
    to_zone_from_wire,
)
from zones.core.state import Status, ZoneParams, ZoneState
from zones.core.step import StepInputs, StepOutput, step
from zones.core.wire import (
    ANSWER_DTYPE,
    COMMAND_DTYPE,
    REASON_NAMES,
    SPAWN_DTYPE,
    AnswerReason,
    RowFlag,
    empty,
    rows_packet,
)
from zones.inputlog import InputLog
from zones.logthrottle import LogThrottle
from zones.repartitions import Repartitioner, Stepped, booth_of_range
from zones.snapshots import SnapshotStore
from zones.zone_faults import ZoneFaults

log = logging.getLogger(__name__)
_repeated = LogThrottle(log)  # a Redis outage fails every tick's sends

SUMMARY_EVERY_TICKS = SIM_TICK_HZ // 2  # twice a second
NPC_STATUS_EVERY_TICKS = round(npcbus.STATUS_EVERY_S * SIM_TICK_HZ)
# A snapshot serialises every slot (about a millisecond); between snapshots each tick
# costs one small log record. Every 5 s keeps snapshots to 1 tick in 100 while a
# restart replays at most 5 s of ticks (a fraction of a second of CPU).
SNAPSHOT_EVERY_TICKS = 5 * SIM_TICK_HZ
SNAPSHOT_RETRY_TICKS = SIM_TICK_HZ  # after a failed snapshot write, the next try


def snapshot_turn(zone: int, zones: int) -> int:
    """How many ticks sooner than a full period a zone's first periodic snapshot comes:
    the market's zones spread evenly over SNAPSHOT_EVERY_TICKS."""
    return zone * SNAPSHOT_EVERY_TICKS // zones


# While a zone cannot tick or log its ticks (zones/zone_faults.py), what arrives for it waits,
# at most this many of each kind (a minute of one batch a tick); older ones are dropped
# as lost messages, which the fabric tolerates (intents are retried, inputs resent).
MAX_WAITING = 60 * SIM_TICK_HZ
VISITOR_LEASE_TICKS = 30 * SIM_TICK_HZ  # a visitor no gateway vouches for leaves after 30 s
LEASE_CHECK_EVERY_TICKS = SIM_TICK_HZ
HANDED_TO_KEPT = 4096  # NPCs handed on whose late answers a zone forwards
NPC_ID_STRIDE = 1 << 32  # zone z numbers its demo walkers from (z + 1) << 32
TICK_WINDOW = 60 * SIM_TICK_HZ  # tick times kept for the p99: the last minute


MIGRATION_MEMORY_S = 60.0  # a handoff not acked within this long is not timed


def _percentile(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values.size else None


def zone_walkers(total: int, zone: int, zones: int) -> int:
    """This zone's share of the demo walkers."""
    return total // zones + (1 if zone < total % zones else 0)


@dataclass
class HostedZone:
    """One zone inside a worker: its state and what arrived for its next tick."""

    params: ZoneParams
    state: ZoneState
    store: SnapshotStore | None
    rng: np.random.Generator
    log: InputLog | None = None  # beside the snapshots, under the same lock
    inbox: list[Message] = field(default_factory=list)
    commands: list[np.ndarray] = field(default_factory=list)
    spawns: list[tuple[str, np.ndarray]] = field(default_factory=list)  # (reply channel, rows)
    despawns: list[np.ndarray] = field(default_factory=list)
    # despawns held back while the entity was staging out: id → the zone it is going to
    despawn_follows: dict[int, int] = field(default_factory=dict)
    alive: dict[int, int] = field(default_factory=dict)  # visitor id → last tick vouched for
    gateway_of: dict[int, str] = field(default_factory=dict)  # visitor id → gateway channel
    tick_times: deque[float] = field(default_factory=lambda: deque(maxlen=TICK_WINDOW))
    migrations: int = 0
    migration_started: dict[int, float] = field(default_factory=dict)  # id → first intent
    migration_ms: list[float] = field(default_factory=list)  # intent → ack, this window
    gateways: set[str] = field(default_factory=set)  # gateways heard from, this window
    overruns_window: int = 0
    overruns: int = 0
    bad_messages: int = 0
    last_snapshot_tick: int = 0
    snapshot_retry_tick: int = 0  # after a failed snapshot, none is tried before this tick
    answers: list[np.ndarray] = field(default_factory=list)  # NPC decisions for the next tick
    delegate_until_ms: int = 0  # contributors are connected until then (zones/npcbus.py)
    handed_to: dict[int, int] = field(default_factory=dict)  # NPC id → zone it went to
    last_answers: np.ndarray = field(default_factory=lambda: empty(ANSWER_DTYPE))  # last tick's
    silent: bool = False  # a spare serving nothing, holding nothing, that has said so once
    faults: ZoneFaults = field(init=False)

    def __post_init__(self) -> None:
        self.faults = ZoneFaults(self.params.zone)

    @property
    def zone(self) -> int:
        return self.params.zone


class ZoneWorker:
    """Runs `zones` of a market of `len(booths)` booths until stopped."""

    def __init__(
        self,
        *,
        market_id: int,
        zones: Sequence[int],
        booths: Sequence[tuple[str, str]],
        data_dir: Path | None,
        walkers: int = 0,
        seed: int = 2026,
        layout: dict[str, Any] | None = None,
        spares: int = 0,
    ) -> None:
        self.market_id = market_id
        self.booths = tuple(booths)
        self.ranges: RangeMap = floor_ranges(len(self.booths))  # the booths' own layout
        self.zone_count = len(self.booths) + spares  # spare zones come after the booths'
        if spares < 0 or self.zone_count > MAX_ZONES:
            raise ValueError(
                f"{len(self.booths)} booths and {spares} spare zones: the market's zones are"
                f" at most MAX_ZONES={MAX_ZONES}, and spares are not negative"
            )
        self.layer = layer_required()
        self.walkers = walkers
        self.layout = layout  # a generated market's layout: its items are the booths' items
        self.overruns = 0
        self.ticks = 0
        self.hosted: dict[int, HostedZone] = {}
        self.bus = rows_bus()
        self.failed_sends = 0
        self.resumed: set[int] = set()  # zones that resumed from a snapshot: they say so
        zones = list(zones)
        # splits and merges (zones/repartitions.py): only a market with spare zones has any
        self.repartition = (
            Repartitioner(booths=len(self.booths), zones=self.zone_count, hosted=zones)
            if spares
            else None
        )
        for z in zones:
            if not 0 <= z < self.zone_count:
                raise ValueError(
                    f"zone {z} is not a zone of this market (0..{self.zone_count - 1}:"
                    f" {len(self.booths)} booths, {spares} spare zones)"
                )
            store = SnapshotStore(data_dir, z) if data_dir is not None else None
            hz = HostedZone(
                params=self._params(z),
                state=ZoneState.empty(z, self.ranges),
                store=store,
                rng=np.random.default_rng(seed + z),
            )
            self._resume(hz)
            hz.silent = z not in hz.state.ranges.zones  # a spare starts with nothing to say
            self.hosted[z] = hz
            if hz.state.tick == 0 and walkers:
                self._spawn_walkers(hz)

    def _resume(self, hz: HostedZone) -> None:
        """Newest snapshot plus the log after it, replayed; then a fresh snapshot and segment.

        The fresh segment matters: appending after a torn record would bury it in
        the middle of the log, where reading must treat it as corruption.
        """
        if hz.store is None:
            return
        hz.log = InputLog(hz.store.dir, hz.zone)
        state = hz.store.latest()
        # a map adopted by gossip (version > 0) is this market's, split or merged
        if state is not None and state.ranges != self.ranges and state.ranges.version == 0:
            log.warning("zone %d: snapshot is for another booth layout; starting empty", hz.zone)
            state = None
        if state is None:
            hz.store.discard()  # a log without its snapshot, or for another layout, replays wrong
            hz.log.discard()
        else:
            self.resumed.add(hz.zone)
            recovered = hz.log.recover(state.tick)
            hz.state = replay(state, recovered.records, hz.params)
            if recovered.rng:
                rng_restore(hz.rng, recovered.rng)
            log.info(
                "zone %d: resumed from snapshot at tick %d and %d logged ticks, at tick %d",
                hz.zone,
                state.tick,
                len(recovered.records),
                hz.state.tick,
            )
        self._snapshot(hz)
        # The zones take turns: were they all due in one tick, that tick would serialise
        # every slot of every zone of the worker, and all of them would publish late.
        hz.last_snapshot_tick -= snapshot_turn(hz.zone, self.zone_count)

    def _params(self, zone: int) -> ZoneParams:
        """A zone's configuration: the items of a generated market's layout that stand in
        it, or, for a market not generated, default items laid out on its floor. A spare
        zone may come to serve any booth, and its configuration must not change while it
        runs (its log replays through it): it has the items of every booth."""
        lo, hi = ZoneParams(zone=zone).lo, ZoneParams(zone=zone).hi
        if zone >= len(self.booths):
            items = Items.joined([self._params(booth).items for booth in range(len(self.booths))])
        elif self.layout is not None:
            items = items_from_layout(self.layout, self.ranges, zone, lo, hi)
        else:
            items = booth_items(self.ranges, zone, lo, hi)
        return ZoneParams(zone=zone, items=items)

    def _spawn_walkers(self, hz: HostedZone) -> None:
        if hz.zone >= len(self.booths):
            return  # a spare zone has no floor of its own
        count = zone_walkers(self.walkers, hz.zone, len(self.booths))
        if not count:
            return
        rows = np.zeros(count, SPAWN_DTYPE)
        rows["id"] = np.arange(count, dtype=np.uint64) + np.uint64((hz.zone + 1) * NPC_ID_STRIDE)
        rows["pos"] = floor_points(self.ranges, hz.zone, hz.rng, count, hz.params.lo, hz.params.hi)
        rows["vel"] = headings(hz.rng, count, (0.5, 2.0))
        rows["kind"] = RowFlag.NPC
        hz.spawns.append(("", rows))

    # --- receiving -------------------------------------------------------------------------

    async def _receive(self) -> None:
        """Every hosted zone's messages, filed for its next tick."""
        zones = list(self.hosted)

        def file(index: int, message: dict[str, Any]) -> None:
            hz = self.hosted[zones[index]]
            try:
                for one in unbundled(message):
                    self.accept(hz, one)
            except (MessageError, ValueError, KeyError, TypeError) as exc:
                hz.bad_messages += 1
                log.warning(
                    "zone %d: dropped a malformed %r message: %s", hz.zone, message.get("type"), exc
                )

        channels = [zone_channel(self.market_id, zone) for zone in zones]
        await receive_many_forever(self.layer, channels, file)

    def accept(self, hz: HostedZone, message: dict[str, Any]) -> None:
        """File one received message for the zone's next tick."""
        if message.get("type") in npcbus.TYPES:
            if message["type"] == npcbus.PRESENT:
                hz.delegate_until_ms = max(hz.delegate_until_ms, int(message["until_ms"]))
            else:
                hz.answers.append(npcbus.answers_from(message))
            return
        if message.get("type") not in TO_ZONE_TYPES:
            hz.inbox.append(message_from_wire(message))
            return
        match to_zone_from_wire(message):
            case Inputs(gateway=gateway, commands=commands, alive=alive):
                hz.gateways.add(gateway)
                if commands.size:
                    hz.commands.append(commands)
                for ident in alive.tolist():
                    hz.alive[ident] = hz.state.tick
                    hz.gateway_of[ident] = gateway
            case Spawn(gateway=gateway, rows=rows):
                hz.spawns.append((gateway, rows))
            case Despawn(ids=ids):
                hz.despawns.append(ids.astype(np.uint64))
            case Load() as load:
                if self.repartition is None:
                    raise ValueError(f"a load from zone {load.zone}, but this market never splits")
                self.repartition.heard(load, hz.state.tick)

    # --- ticking ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Tick every hosted zone each 50 ms slot until `stop` is set."""
        receivers = [asyncio.create_task(self._receive())]
        period_ms = TICK_MS
        slot = math.ceil(time.time() * 1000 / period_ms)
        try:
            while not stop.is_set():
                delay = slot * period_ms / 1000 - time.time()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=delay)
                    if stop.is_set():
                        break
                await self.tick(slot * period_ms)
                now_slot = math.floor(time.time() * 1000 / period_ms)
                if now_slot > slot:  # the tick ran into the next slot
                    missed = now_slot - slot
                    self.overruns += missed
                    for hz in self.hosted.values():
                        hz.overruns_window += missed
                        hz.overruns += missed
                    slot = now_slot + 1
                else:
                    slot += 1
        finally:
            await cancel_and_wait(receivers)
            for hz in self.hosted.values():
                if hz.store is not None:
                    self._snapshot(hz)
                    if hz.log is not None:
                        hz.log.close()
                    hz.store.close()

    async def tick(self, tick_ms: int) -> None:
        """Step every hosted zone once for the slot starting at `tick_ms`.

        Every zone steps first and writes its snapshot; then everything the tick sends
        leaves at once, so the last zone's rows are not held up behind the first's.
        """
        self.ticks += 1
        stepped = []
        for hz in self.hosted.values():
            started = time.perf_counter()
            result = self._step(hz, tick_ms)
            hz.tick_times.append((time.perf_counter() - started) * 1000)
            if result is None:
                continue  # its tick did not happen (zones/zone_faults.py): nothing of it leaves
            out, spawn_requests = result
            due = hz.state.tick - hz.last_snapshot_tick >= SNAPSHOT_EVERY_TICKS
            if due and hz.state.tick >= hz.snapshot_retry_tick:
                self._snapshot(hz)
            stepped.append((hz, out, spawn_requests))
        sends = []
        remote: dict[int, list[dict[str, Any]]] = {}  # zone messages for other processes

        def route(messages: Sequence[Message]) -> None:
            for message in messages:
                target = self.hosted.get(message.dst)
                if target is not None:
                    target.inbox.append(message)  # arrives with the next tick, like any other
                else:
                    remote.setdefault(message.dst, []).append(message_to_wire(message))

        if stepped:  # every zone's rows in one go: one round trip on Redis
            sends.append(self._publish(stepped, tick_ms))
        if self.repartition is not None and stepped:
            sends.extend(self._repartition(stepped, route))
        for hz, out, spawn_requests in stepped:
            sends.extend(self._npc_sends(hz, out, tick_ms))
            sends.extend(self._answer_spawns(hz, out, spawn_requests))
            if out.rejected_commands.size:
                sends.extend(self._refer_back(hz, out.rejected_commands))
            for zone, ids in self._despawns_handed_over(hz, out).items():
                despawn = Despawn(ids=np.array(ids, np.uint64))
                target = self.hosted.get(zone)
                if target is not None:
                    target.despawns.append(despawn.ids)
                else:
                    sends.append(
                        self.layer.send(zone_channel(self.market_id, zone), relay_to_wire(despawn))
                    )
            route(out.messages)
        for zone, wires in remote.items():  # one channel message per remote zone and tick
            sends.append(self.layer.send(zone_channel(self.market_id, zone), bundled(wires)))
        if self.ticks == 1 and self.resumed:
            sends.append(self._running_publish())
        if self.ticks % SUMMARY_EVERY_TICKS == 0:
            sends.append(self._summary_publish())
        if self.ticks % NPC_STATUS_EVERY_TICKS == 0:
            sends.append(self._npc_status_send(tick_ms))
        failed = [r for r in await asyncio.gather(*sends, return_exceptions=True) if r is not None]
        if failed:
            # A full channel (a gateway that stopped reading) or Redis going away loses
            # this tick's message to that one peer; the fabric tolerates lost messages
            # (intents are retried, rows replaced next tick), so the zone ticks on.
            self.failed_sends += len(failed)
            _repeated.warning(
                "sends",
                "tick %d: %d sends failed, first: %r (%d so far)",
                self.ticks,
                len(failed),
                failed[0],
                self.failed_sends,
            )

    def _repartition(
        self,
        stepped: list[tuple[HostedZone, StepOutput, Any]],
        route: Callable[[Sequence[Message]], None],
    ) -> list[Coroutine[Any, Any, None]]:
        """Splits and merges (zones/repartitions.py): gossip routed as any zone message,
        loads to the planner, a plan into the planning zone's next tick, the events and
        the newest map out."""
        assert self.repartition is not None
        work, gives = self.repartition.tick(
            [Stepped(hz.state, out.gossip_adopted, hz.tick_times) for hz, out, _ in stepped]
        )
        for zone, gossip in gives.items():
            self.hosted[zone].inbox.append(gossip)
        route(work.messages)
        sends: list[Coroutine[Any, Any, None]] = [
            self.layer.send(zone_channel(self.market_id, planner), relay_to_wire(load))
            for planner, load in work.loads
        ]
        if work.events:
            sends.append(self._events_publish(work.events))
        if work.newest is not None:
            sends.append(self.bus.publish_map(self.market_id, map_packet(work.newest)))
        return sends

    def _step(
        self, hz: HostedZone, tick_ms: int
    ) -> tuple[StepOutput, list[tuple[str, np.ndarray]]] | None:
        """Step the zone once; None when the tick could not be logged, so did not happen."""
        inbox, hz.inbox = hz.inbox, []
        spawns, hz.spawns = hz.spawns, []
        received, hz.commands = hz.commands, []
        commands = list(received)
        answers, hz.answers = hz.answers, []
        taken_despawns, hz.despawns = hz.despawns, []
        despawns = list(taken_despawns)
        if hz.state.tick % LEASE_CHECK_EVERY_TICKS == 0:
            despawns.append(self._lapsed(hz))
        inputs = StepInputs(
            now_ms=tick_ms,
            messages=tuple(inbox),
            commands=np.concatenate(commands) if commands else empty(COMMAND_DTYPE),
            spawns=np.concatenate([rows for _, rows in spawns]) if spawns else empty(SPAWN_DTYPE),
            despawns=np.concatenate(despawns) if despawns else np.zeros(0, np.uint64),
            answers=np.concatenate(answers) if answers else empty(ANSWER_DTYPE),
            delegate=tick_ms < hz.delegate_until_ms,
        )
        try:
            state, out = step(hz.state, inputs, hz.params)
        except OSError as error:  # the process's resources (zones/zone_faults.py), not the zone
            hz.faults.failed("tick", error, "the zone waits, trying again every tick")
            state = None
        else:
            hz.faults.worked("tick")
        if state is None or not self._log(hz, state.tick, inputs):
            # The state before the step stays the zone's; what the tick took waits for the
            # next try (the walkers' steering and the lease check are made anew).
            hz.inbox = (inbox + hz.inbox)[-MAX_WAITING:]
            hz.spawns = (spawns + hz.spawns)[-MAX_WAITING:]
            hz.commands = (received + hz.commands)[-MAX_WAITING:]
            hz.despawns = taken_despawns + hz.despawns
            hz.answers = answers + hz.answers
            return None
        hz.state = state
        hz.last_answers = inputs.answers
        # The step keeps an entity in a handoff; asked again each tick, it goes as soon
        # as it is owned here (the target, once promoted) or is gone (the source, acked).
        if out.despawn_deferred.size:
            hz.despawns.append(out.despawn_deferred)
            self._follow_despawns(hz, out.despawn_deferred)
        self._time_migrations(hz, out)
        for ident in out.spawned.tolist():
            hz.alive[ident] = hz.state.tick
        for ident in out.despawned.tolist():
            hz.alive.pop(ident, None)
            hz.gateway_of.pop(ident, None)
            hz.despawn_follows.pop(ident, None)
        for ident in (ids for released in out.migration.released for ids in released.tolist()):
            hz.alive.pop(ident, None)
        return out, spawns

    def _npc_sends(
        self, hz: HostedZone, out: StepOutput, tick_ms: int
    ) -> list[Coroutine[Any, Any, None]]:
        """The tick's decision requests, with what became of the answers it was handed, to
        the market's dispatchers; answers for NPCs handed to another zone, on to it."""
        for ids, targets in zip(out.migration.started, out.migration.targets, strict=True):
            hz.handed_to.update(zip(ids.tolist(), targets.tolist(), strict=True))
        for ids in out.migration.promoted:
            for ident in ids.tolist():
                hz.handed_to.pop(ident, None)
        while len(hz.handed_to) > HANDED_TO_KEPT:
            hz.handed_to.pop(next(iter(hz.handed_to)))
        sends: list[Coroutine[Any, Any, None]] = []
        answers = hz.last_answers
        results = []
        if answers.size:
            reasons = out.npcs.reasons
            on: dict[int, list[int]] = {}
            for i, (ident, lease) in enumerate(
                zip(answers["id"].tolist(), answers["lease"].tolist(), strict=True)
            ):
                reason = int(reasons[i])
                zone = hz.handed_to.get(ident)
                if reason == AnswerReason.NOT_HELD and zone is not None:
                    on.setdefault(zone, []).append(i)
                    continue
                results.append([ident, lease, REASON_NAMES.get(reason, str(reason))])
            for zone, rows in on.items():
                hz.handed_to.pop(int(answers["id"][rows[0]]), None)
                target = self.hosted.get(zone)
                if target is not None:
                    target.answers.append(answers[rows])
                else:
                    message = npcbus.answers_message(answers[rows])
                    sends.append(self.layer.send(zone_channel(self.market_id, zone), message))
        requests = out.npcs.requests
        if requests.size or results:
            message = {
                "type": npcbus.REQUESTS,
                "zone": hz.zone,
                "issued_ms": tick_ms,
                "observations": observations(hz.state, hz.params, requests["id"]),
                "results": results,
            }
            sends.append(self.layer.send(npcbus.dispatch_channel(self.market_id), message))
        return sends

    def _follow_despawns(self, hz: HostedZone, deferred: np.ndarray) -> None:
        """Remember where each held-back despawn's entity is being handed to: if the target
        takes it (ack), the despawn goes there instead of waiting out its 30 s lease."""
        slots = hz.state.slots_of(deferred)
        for ident, slot in zip(deferred.tolist(), slots.tolist(), strict=True):
            if slot >= 0 and hz.state.status[slot] == Status.STAGING:
                hz.despawn_follows[ident] = int(hz.state.peer[slot])

    def _despawns_handed_over(self, hz: HostedZone, out: StepOutput) -> dict[int, list[int]]:
        """Target zone → ids released to it this tick whose despawn was held back here."""
        handed: dict[int, list[int]] = {}
        for ids in out.migration.released:
            for ident in ids.tolist():
                target = hz.despawn_follows.pop(ident, None)
                if target is not None:
                    handed.setdefault(target, []).append(ident)
        return handed

    def _time_migrations(self, hz: HostedZone, out: StepOutput) -> None:
        """Count handoffs and time each from its first intent to the target's ack."""
        now = time.monotonic()
        for ids in out.migration.started:
            for ident in ids.tolist():
                hz.migration_started[ident] = now
        for ids in out.migration.released:
            hz.migrations += ids.size
            for ident in ids.tolist():
                began = hz.migration_started.pop(ident, None)
                if began is not None:
                    hz.migration_ms.append((now - began) * 1000)

    def _lapsed(self, hz: HostedZone) -> np.ndarray:
        """Visitor roots this zone owns that no gateway has vouched for within the lease."""
        s = hz.state
        roots = np.flatnonzero((s.status == Status.OWNED) & ((s.kind & RowFlag.VISITOR_ROOT) != 0))
        lapsed = []
        for ident in s.id[roots].tolist():
            seen = hz.alive.setdefault(ident, s.tick)  # first seen here (arrived, or restarted)
            if s.tick - seen > VISITOR_LEASE_TICKS:
                lapsed.append(ident)
        if lapsed:
            log.info("zone %d: %d visitors left without a gateway; removing", hz.zone, len(lapsed))
        return np.array(lapsed, dtype=np.uint64)

    def _log(self, hz: HostedZone, tick: int, inputs: StepInputs) -> bool:
        """Write-ahead: the tick's inputs reach the log before anything of the tick leaves.

        Every tick is logged, idle or not: its wall time moves the zone's clock. The
        inputs are logged as stepped, so replay needs no rng, clock or lease table.
        False when the record could not be written: then the tick did not happen, and
        the zone tries it again next slot, for as long as the disk refuses (a stalled
        zone, reported degraded, but one whose log still holds everything it ever said).
        """
        if hz.log is None:
            return True
        if not hz.log.started and not self._snapshot(hz):
            return False  # no segment to append to (its first snapshot failed)
        # Logged only when the worker draws from it, so an idle zone's record stays small.
        rng = rng_state(hz.rng) if self.walkers else b""
        try:
            hz.log.append(LogRecord(tick=tick, inputs=inputs, rng=rng))
        except OSError as error:
            hz.faults.failed("input log write", error, "the zone waits, trying again every tick")
            return False
        hz.faults.worked("input log write")
        return True

    def _snapshot(self, hz: HostedZone) -> bool:
        """Snapshot the zone, start a new log segment, drop the segments no snapshot needs.

        The segment starts first: a crash before the snapshot lands leaves the older
        snapshot and the whole log after it, still a complete history. A write that
        fails leaves that history whole too (zones/inputlog.py, zones/snapshots.py):
        the zone goes on appending to its log and tries again SNAPSHOT_RETRY_TICKS on.
        """
        if hz.store is None or hz.log is None:
            return True
        try:
            hz.log.start(hz.state.tick, rng_state(hz.rng))
            hz.store.write(hz.state)
            kept = hz.store.revisions()
            if kept:
                hz.log.prune(int(kept[0].stem))
        except OSError as error:
            hz.snapshot_retry_tick = hz.state.tick + SNAPSHOT_RETRY_TICKS
            retry_s = SNAPSHOT_RETRY_TICKS / SIM_TICK_HZ
            hz.faults.failed(
                "snapshot write", error, f"the zone goes on; retrying in {retry_s:g} s"
            )
            return False
        hz.last_snapshot_tick = hz.state.tick
        hz.faults.worked("snapshot write")
        return True

    async def _publish(
        self, stepped: list[tuple[HostedZone, StepOutput, Any]], tick_ms: int
    ) -> None:
        # a spare zone serving nothing and holding nothing has nothing to say to gateways:
        # once it has published that it holds nothing (a merge just retired it), it is quiet
        packets = []
        for hz, out, _ in stepped:
            idle = not out.rows.size and hz.zone not in hz.state.ranges.zones
            if idle and hz.silent:
                continue
            hz.silent = idle
            packets.append((hz.zone, rows_packet(hz.zone, hz.state.tick, tick_ms, out.rows)))
        if packets:
            await self.bus.publish_many(self.market_id, packets)

    def _answer_spawns(
        self, hz: HostedZone, out: StepOutput, requests: list[tuple[str, np.ndarray]]
    ) -> list[Coroutine[Any, Any, None]]:
        """Tell each gateway which of its spawn requests the zone admitted."""
        spawned = set(out.spawned.tolist())
        answers = []
        for gateway, rows in requests:
            if not gateway:
                continue
            ids = rows["id"]
            ok = np.array([i in spawned for i in ids.tolist()], dtype=bool)
            answers.append(
                self.layer.send(
                    gateway,
                    relay_to_wire(
                        Spawned(
                            zone=hz.zone, spawned=ids[ok], refused=ids[~ok], reason="booth_full"
                        )
                    ),
                )
            )
        return answers

    def _refer_back(self, hz: HostedZone, rejected: np.ndarray) -> list[Coroutine[Any, Any, None]]:
        """Send refused commands back to the gateways they came from."""
        by_gateway: dict[str, list[int]] = {}
        for i, ident in enumerate(rejected["id"].tolist()):
            gateway = hz.gateway_of.get(ident)
            if gateway:
                by_gateway.setdefault(gateway, []).append(i)
        return [
            self.layer.send(
                gateway, relay_to_wire(Rejected(zone=hz.zone, commands=rejected[index]))
            )
            for gateway, index in by_gateway.items()
        ]

    # --- reporting -------------------------------------------------------------------------

    async def _running_publish(self) -> None:
        """Zones that resumed from their snapshots run again: what the visitors who stood in
        them were waiting for after a `restarting` or `quarantined` (zones/consumers.py)."""
        await event_publish_or_count(
            self.market_id,
            ZoneHealthChanged(
                zones=sorted(self.resumed), health="ok", reason="the zone worker is running"
            ),
        )

    async def _npc_status_send(self, tick_ms: int) -> None:
        """What this worker's NPCs do and need most, to the operators' dashboards."""
        parts = [npc_status(hz.state) for hz in self.hosted.values()]
        records = np.concatenate(parts) if parts else np.zeros(0, NPC_STATUS_DTYPE)
        frame = npc_status_encode(records, tick_ms)
        await self.layer.group_send(
            npcbus.status_group(self.market_id), npcbus.status_message(frame)
        )

    async def _events_publish(self, events: list[Event]) -> None:
        await event_publish_or_count(self.market_id, *events)

    async def _summary_publish(self) -> None:
        summary = self.summary()
        await event_publish_or_count(
            self.market_id,
            MarketSummaryReported(
                tick=summary["tick"],
                hlc=summary["hlc"],
                overruns=summary["overruns"],
                zones=[dict(zone) for zone in summary["zones"]],
            ),
        )

    @staticmethod
    def _health_reason(hz: HostedZone) -> str:
        """Why a zone is degraded, in a sentence for operators; empty when it is not."""
        reasons = [hz.faults.reason] if hz.faults.failing else []
        if hz.overruns_window:
            reasons.append(f"{hz.overruns_window} ticks ran past their {TICK_MS} ms slot")
        return "; ".join(reasons)

    def summary(self) -> MarketSummary:
        """This worker's zones, for the market summary; resets the per-window counters."""
        zones: list[ZoneSummary] = []
        for hz in self.hosted.values():
            s = hz.state
            serving = hz.zone in s.ranges.zones
            lo, hi = s.ranges.range_of(hz.zone) if serving else (0, 0)
            booth = booth_of_range(self.ranges, lo) if serving else -1
            name, colour = self.booths[booth] if serving else (f"spare zone {hz.zone}", "#8a8f98")
            seconds = SUMMARY_EVERY_TICKS / SIM_TICK_HZ
            times = np.fromiter(hz.tick_times, dtype=np.float64)
            handoffs = np.array(hz.migration_ms)
            zones.append(
                {
                    "zone": hz.zone,
                    "name": name,
                    "colour": colour,
                    "entities": s.live_count(),
                    "in_flight": int(np.count_nonzero(s.status >= Status.STAGING)),
                    "capacity": ZONE_CAPACITY,
                    "tick_ms": round(times[-1], 3) if times.size else 0.0,
                    "tick_p99_ms": round(float(np.percentile(times, 99)), 3) if times.size else 0.0,
                    "migrations_per_s": round(hz.migrations / seconds, 2),
                    "migrations": hz.migrations,
                    "migration_ms_p50": _percentile(handoffs, 50),
                    "migration_ms_p99": _percentile(handoffs, 99),
                    "visitors": int(
                        np.count_nonzero(
                            (s.status == Status.OWNED) & ((s.kind & RowFlag.VISITOR_ROOT) != 0)
                        )
                    ),
                    "subscribers": len(hz.gateways),
                    "overruns": hz.overruns,
                    "io_failures": hz.faults.failures,
                    "booth": booth,
                    "lo": lo,
                    "hi": hi,
                    "map_version": s.ranges.version,
                    "health": "degraded" if hz.overruns_window or hz.faults.failing else "ok",
                    "health_reason": self._health_reason(hz),
                }
            )
            hz.migrations = hz.overruns_window = 0
            hz.migration_ms, hz.gateways = [], set()
            stale = time.monotonic() - MIGRATION_MEMORY_S  # intents that were refused
            hz.migration_started = {i: t for i, t in hz.migration_started.items() if t >= stale}
        return {
            "tick": self.ticks,
            "hlc": int(max(hz.state.hlc for hz in self.hosted.values())),
            "overruns": self.overruns,
            "zones": zones,
        }
