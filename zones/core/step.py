"""One zone tick: `step(state, inputs, params) -> (state, output)`.

A pure function: it copies the state, applies a fixed chain of stages and
returns the new state with everything the zone must send and report. No I/O,
no globals, no clock reads (the wall time comes in `inputs.now_ms`).

The chain, in order:
  1. clock        advance tick and HLC
  2. despawn      remove owned entities (others are returned as deferred)
  3. spawn        admit new entities up to the spawn cap
  4. messages     gossip, in-flight reports, acks, nacks, intents (stale rows dropped),
                  forwarded commands
  5. commands     visitor movement (V_MAX enforced); forwarded if in flight
  5b. npcs        needs, actions, checked decisions, due decisions (npc.py)
  6. motion       integrate velocities inside the market bounds
  7. codes        Hilbert code and owning zone of every entity
  8. hysteresis   consecutive ticks outside this zone's range; a newly adopted map's
                  moved ranges skip it (repartition.handoff_arm)
  9. promotion    incoming → owned at arrival; acks go out
 10. migration    retransmit overdue intents, then start new transfers (≤ 50)
 11. interest     rows to publish
 12. reports      once a second: forget the decisions no intent can need any more, and
                  tell every other zone which transfers are in flight to it
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from . import migration, npc, repartition
from .admission import spawn_quota
from .constants import (
    FORGET_EVERY_TICKS,
    IN_FLIGHT_EVERY_TICKS,
    MAX_MIGRATIONS_PER_TICK,
    TICK_MS,
)
from .hilbert import position_encoder
from .hlc import hlc_now, hlc_receive
from .interest import interest_rows
from .messages import Ack, Forward, Gossip, InFlight, Intent, Message, Nack
from .motion import apply_commands, clamp_speed, integrate, on_floor
from .ranges import adopt
from .state import Status, ZoneParams, ZoneState
from .wire import ANSWER_DTYPE, COMMAND_DTYPE, SPAWN_DTYPE, TRANSFER_DTYPE, empty

_NO_IDS = np.zeros(0, dtype=np.uint64)


@dataclass(frozen=True)
class StepInputs:
    """What arrives at a zone for one tick."""

    now_ms: int
    messages: tuple[Message, ...] = ()
    commands: np.ndarray = field(default_factory=lambda: empty(COMMAND_DTYPE))
    spawns: np.ndarray = field(default_factory=lambda: empty(SPAWN_DTYPE))
    despawns: np.ndarray = field(default_factory=lambda: _NO_IDS)
    answers: np.ndarray = field(default_factory=lambda: empty(ANSWER_DTYPE))  # NPC decisions
    delegate: bool = False  # due NPC decisions go out as requests instead of decided here


@dataclass(frozen=True)
class StepOutput:
    """What a zone sends and reports after one tick."""

    messages: list[Message]
    rows: np.ndarray
    migration: migration.MigrationEvents
    spawned: np.ndarray
    spawn_refused: np.ndarray
    despawned: np.ndarray
    despawn_deferred: np.ndarray
    rejected_commands: np.ndarray  # COMMAND_DTYPE rows refused (impossible moves, unknown kinds)
    unrouted_commands: np.ndarray  # COMMAND_DTYPE rows for entities this zone does not hold
    gossip_adopted: bool
    npcs: npc.NpcEvents  # decision requests issued, what became of each answer


def step(state: ZoneState, inputs: StepInputs, params: ZoneParams) -> tuple[ZoneState, StepOutput]:
    """Advance one zone by one tick."""
    s = state.copy()
    s.tick += 1
    s.hlc = hlc_now(s.hlc, inputs.now_ms)
    events = migration.MigrationEvents()
    outbox = migration.Outbox()

    despawned, deferred = _despawn(s, inputs.despawns)
    spawned, spawn_refused = _spawn(s, inputs.spawns, params)

    gossip_adopted = False
    forwarded: list[np.ndarray] = []
    ranges_before = s.ranges
    mine = [m for m in inputs.messages if m.dst == s.zone]
    if mine:
        gossip_adopted, forwarded = _receive(s, mine, inputs.now_ms, params, outbox, events)

    commands = np.concatenate([*forwarded, inputs.commands]) if forwarded else inputs.commands
    if len(commands):
        slots = s.slots_of(commands["id"])
        rejected = apply_commands(s, commands, slots)
        forwards = _forward_in_flight(s, commands, slots, rejected)
        rejected_commands, unrouted_commands = commands[rejected], commands[slots < 0]
    else:
        forwards = []
        rejected_commands, unrouted_commands = commands[:0].copy(), commands[:0].copy()

    npcs = npc.tick(s, params, inputs.answers, inputs.delegate)

    # Until the migration stages, no slot turns FREE or stops being FREE.
    live = np.flatnonzero(s.status)
    integrate(s, params.lo, params.hi, live=live)
    assigned = np.full(s.capacity, -1, dtype=np.int16)
    if live.size:
        s.code[live] = position_encoder(params.lo, params.hi)(s.pos.take(live, axis=0))
        assigned[live] = s.ranges.assign(s.code[live])
    migration.update_hysteresis(s, assigned, live)
    if gossip_adopted:
        repartition.handoff_arm(s, ranges_before, assigned, live)
    migration.promote_arrivals(s, outbox, events)

    budget = MAX_MIGRATIONS_PER_TICK
    budget -= migration.retransmit_due(s, budget, outbox, events)
    migration.start_migrations(s, assigned, budget, outbox, events)

    messages: list[Message] = [*outbox.messages(s.zone, s.hlc), *forwards]
    # A zone a merge retired still reports what it has in flight: its handoff may be under
    # way, so its reports are waited on, as the map's zones' are, before forgetting.
    known = set(s.ranges.zones.tolist()) | set(s.decisions.reporters()) | {s.zone}
    peers = sorted(known - {s.zone})
    if s.tick % FORGET_EVERY_TICKS == 0:
        events.forgotten += s.decisions.forget(peers)
    due = reports_due(s.zone, max(known) + 1, inputs.now_ms)
    messages.extend(in_flight_reports(s, [p for p in due if p in peers]))
    return s, StepOutput(
        messages=messages,
        rows=interest_rows(s),
        migration=events,
        spawned=spawned,
        spawn_refused=spawn_refused,
        despawned=despawned,
        despawn_deferred=deferred,
        rejected_commands=rejected_commands,
        unrouted_commands=unrouted_commands,
        gossip_adopted=gossip_adopted,
        npcs=npcs,
    )


def _receive(
    s: ZoneState,
    mine: list[Message],
    now_ms: int,
    params: ZoneParams,
    outbox: migration.Outbox,
    events: migration.MigrationEvents,
) -> tuple[bool, list[np.ndarray]]:
    """Apply this zone's messages; returns whether a gossiped map was adopted and
    the commands forwarded to it."""
    gossip_adopted = False
    for message in mine:
        s.hlc = hlc_receive(s.hlc, message.hlc, now_ms)
        if isinstance(message, Gossip):
            adopted = adopt(s.ranges, message.ranges)
            gossip_adopted |= adopted is not s.ranges
            s.ranges = adopted
        elif isinstance(message, InFlight):
            transfers = message.transfers
            s.decisions.heard(message.src, message.hlc, transfers["id"], transfers["epoch"])
    # Each kind is handled once for the whole tick, whatever the number of links.
    answers, srcs = _gather(mine, Ack, "replies")
    if answers.size:
        migration.handle_acks(s, answers, srcs, events)
    answers, srcs = _gather(mine, Nack, "replies")
    if answers.size:
        migration.handle_nacks(s, answers, srcs, events)
    intents = [_current_rows(s, m, events) for m in mine if isinstance(m, Intent)]
    proposals, srcs = _gather(intents, Intent, "rows")
    if proposals.size:
        migration.handle_intents(s, params, proposals, srcs, outbox, events)
    return gossip_adopted, [m.commands for m in mine if isinstance(m, Forward)]


def _current_rows(s: ZoneState, intent: Intent, events: migration.MigrationEvents) -> Intent:
    """The intent without the rows its sender has reported over since it sent them
    (decisions.py): copies of transfers that are over, which nobody waits on."""
    rows = intent.rows
    stale = s.decisions.stale(intent.src, intent.hlc, rows["id"], rows["epoch"])
    if not stale.any():
        return intent
    events.stale += int(np.count_nonzero(stale))
    return replace(intent, rows=rows[~stale])


def reports_due(zone: int, zones: int, now_ms: int) -> list[int]:
    """The zones this one reports its transfers in flight to in the tick at `now_ms`.

    Each zone's turn to be reported to comes once every IN_FLIGHT_EVERY_TICKS, at the
    same tick for every reporter: the ticks are the wall clock's 50 ms slots, which all
    workers share, so a worker's zones report to a zone of another process in one
    channel message (the worker bundles each tick's messages per zone), and the turns
    of the zones are spread over the period.
    """
    slot = (now_ms // TICK_MS) % IN_FLIGHT_EVERY_TICKS
    return [
        peer
        for peer in range(zones)
        if peer != zone and peer * IN_FLIGHT_EVERY_TICKS // zones == slot
    ]


def in_flight_reports(s: ZoneState, peers: list[int]) -> list[InFlight]:
    """One report to each peer: every transfer this zone has in flight to it, at its epoch."""
    if not peers:  # most ticks: nobody's turn
        return []
    staging = np.flatnonzero(s.status == Status.STAGING)
    targets = s.peer[staging]
    reports = []
    for dst in peers:
        mine = staging[targets == dst]
        transfers = np.zeros(mine.size, TRANSFER_DTYPE)
        transfers["id"], transfers["epoch"] = s.id[mine], s.xfer_epoch[mine]
        reports.append(InFlight(src=s.zone, dst=dst, hlc=s.hlc, transfers=transfers))
    return reports


def _gather(messages: Sequence[Message], kind: type, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The rows of every message of one kind, concatenated, with each row's sender."""
    parts = [m for m in messages if isinstance(m, kind)]
    if not parts:
        return np.zeros(0), np.zeros(0, np.int16)
    rows = np.concatenate([getattr(m, name) for m in parts])
    srcs = np.repeat(
        np.array([m.src for m in parts], np.int16), [len(getattr(m, name)) for m in parts]
    )
    return rows, srcs


def _despawn(s: ZoneState, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove owned entities; an entity in flight is deferred until its transfer ends."""
    if len(ids) == 0:
        return _NO_IDS, _NO_IDS
    slots = s.slots_of(np.asarray(ids, dtype=np.uint64))
    safe = np.where(slots >= 0, slots, 0)
    owned = (slots >= 0) & (s.status[safe] == Status.OWNED)
    in_flight = (slots >= 0) & ~owned
    s.status[slots[owned]] = Status.FREE
    s.membership_changed()
    return np.asarray(ids, dtype=np.uint64)[owned], np.asarray(ids, dtype=np.uint64)[in_flight]


def _spawn(s: ZoneState, spawns: np.ndarray, params: ZoneParams) -> tuple[np.ndarray, np.ndarray]:
    """Create entities while the zone is under its spawn cap; refuse the rest."""
    if len(spawns) == 0:
        return _NO_IDS, _NO_IDS
    _, first = np.unique(spawns["id"], return_index=True)
    unique = np.zeros(len(spawns), dtype=bool)
    unique[first] = True
    candidates = np.flatnonzero(unique & (s.slots_of(spawns["id"]) < 0))
    quota = int(spawn_quota(s.live_count(), candidates.size, spawn_cap=params.spawn_cap))
    take = candidates[:quota]
    slots = s.free_slots(take.size)
    rows = spawns[take]
    s.status[slots] = Status.OWNED
    s.id[slots], s.kind[slots] = rows["id"], rows["kind"]
    s.pos[slots] = np.clip(on_floor(rows["pos"]), params.lo, params.hi)
    s.vel[slots] = clamp_speed(rows["vel"])
    s.epoch[slots] = s.xfer_epoch[slots] = 1
    s.peer[slots] = -1
    s.outside[slots] = 0
    s.attempts[slots] = s.nacks[slots] = 0
    s.retry_at[slots] = 0
    s.move_clock[slots] = s.tick
    s.seq[slots] = 0
    npc.init_spawned(s, slots)
    s.membership_changed()
    refused = np.ones(len(spawns), dtype=bool)
    refused[take] = False
    return rows["id"].copy(), spawns["id"][refused].copy()


def _forward_in_flight(
    s: ZoneState, commands: np.ndarray, slots: np.ndarray, rejected: np.ndarray
) -> list[Forward]:
    """Commands applied to staging entities also go to their target."""
    if not (s.status == Status.STAGING).any():
        return []
    held = (slots >= 0) & ~rejected
    safe = np.where(held, slots, 0)
    staging = held & (s.status[safe] == Status.STAGING)
    if not staging.any():
        return []
    by_target: dict[int, list[int]] = defaultdict(list)
    for i in np.flatnonzero(staging):
        by_target[int(s.peer[slots[i]])].append(int(i))
    return [
        Forward(src=s.zone, dst=dst, hlc=s.hlc, commands=commands[idx])
        for dst, idx in sorted(by_target.items())
    ]
