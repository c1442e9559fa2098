"""Moving authority over an entity from one zone to another.

owned → staging → (target: incoming → owned), as docs/fabric.md describes, with fencing:

* Every transfer proposes a fresh epoch, higher than any the entity had. The
  source stays authoritative (STAGING) until an ack for exactly that epoch
  comes back; it never takes the entity back on a timeout, it retransmits.
* The target decides each (entity, epoch) once and never changes its mind: a
  refused epoch stays refused, an accepted one is acked every time it is asked.
  It remembers its decisions per entity (`ZoneState.decisions`), so a delayed or
  duplicated intent can never be admitted after the source was told no, for as
  long as such an intent can arrive (decisions.py says how long that is).
* The target acks only once it has promoted the entity to OWNED, so there is
  never a tick at which nobody holds authority; while both hold a record, the
  target's epoch is the higher one and wins.
* A source that only ever hears a nack for its current epoch goes back to OWNED
  and retries later with a higher epoch; answers for any other epoch are stale.

Functions here mutate the state they are given; `step` hands them a copy.
"""

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from . import npc
from .admission import inbound_quota
from .constants import (
    HLC_LOGICAL_BITS,
    HYSTERESIS_TICKS,
    INITIAL_RTO_TICKS,
    LATENCY_TICKS,
    MAX_RTO_TICKS,
    MIN_RTO_TICKS,
    NACK_BACKOFF_TICKS,
    TICK_MS,
)
from .hlc import hlc_after_ticks
from .messages import Ack, Intent, Nack, replies
from .state import Status, ZoneParams, ZoneState
from .wire import MIGRANT_DTYPE, ReplyReason


@dataclass
class Outbox:
    """Outbound rows gathered per peer during a tick, sent as one message each."""

    intents: dict[int, list[np.ndarray]] = field(default_factory=lambda: defaultdict(list))
    acks: dict[int, list[np.ndarray]] = field(default_factory=lambda: defaultdict(list))
    nacks: dict[int, list[np.ndarray]] = field(default_factory=lambda: defaultdict(list))

    def messages(self, zone: int, hlc: int) -> list[Intent | Ack | Nack]:
        out: list[Intent | Ack | Nack] = []
        for dst, parts in sorted(self.intents.items()):
            out.append(Intent(src=zone, dst=dst, hlc=hlc, rows=np.concatenate(parts)))
        for dst, parts in sorted(self.acks.items()):
            out.append(Ack(src=zone, dst=dst, hlc=hlc, replies=np.concatenate(parts)))
        for dst, parts in sorted(self.nacks.items()):
            out.append(Nack(src=zone, dst=dst, hlc=hlc, replies=np.concatenate(parts)))
        return out


@dataclass
class MigrationEvents:
    """What the migration machinery did in one tick (ids are entity ids)."""

    started: list[np.ndarray] = field(default_factory=list)  # first intents sent
    targets: list[np.ndarray] = field(default_factory=list)  # their target zones
    retransmitted: int = 0
    released: list[np.ndarray] = field(default_factory=list)  # acked: authority left
    refused: list[np.ndarray] = field(default_factory=list)  # nacked: authority kept
    admitted: list[np.ndarray] = field(default_factory=list)  # now incoming here
    promoted: list[np.ndarray] = field(default_factory=list)  # incoming → owned
    nacks_sent: int = 0
    stale: int = 0  # answers or intents for epochs no longer in play
    forgotten: int = 0  # decisions no intent can need any more, dropped (decisions.py)
    conflicts: int = 0  # records found contradicting the fencing order


def is_current_answer(
    state: ZoneState, slots: np.ndarray, epochs: np.ndarray, peers: np.ndarray
) -> np.ndarray:
    """Which answers are for the transfer each slot has in flight right now."""
    held = slots >= 0
    safe = np.where(held, slots, 0)
    return (
        held
        & (state.status[safe] == Status.STAGING)
        & (state.xfer_epoch[safe] == epochs)
        & (state.peer[safe] == peers)
    )


def _answered_slots(
    state: ZoneState, answers: np.ndarray, srcs: np.ndarray, events: MigrationEvents
) -> tuple[np.ndarray, np.ndarray]:
    """Slots whose transfer in flight an answer is for, with the answering zone;
    other answers count as stale."""
    slots = state.slots_of(answers["id"])
    current = is_current_answer(state, slots, answers["epoch"], srcs)
    events.stale += int(np.count_nonzero(~current))
    return slots[current], srcs[current]


def handle_acks(
    state: ZoneState, answers: np.ndarray, srcs: np.ndarray, events: MigrationEvents
) -> None:
    """Release entities whose current transfer the target has taken over.

    `answers` are REPLY_DTYPE rows from every ack of the tick, `srcs` the zone
    that sent each.
    """
    mine, peers = _answered_slots(state, answers, srcs, events)
    if mine.size == 0:
        return
    first_try = state.attempts[mine] == 1  # Karn: no samples from retransmitted transfers
    for peer in np.unique(peers[first_try]).tolist():
        sampled = mine[first_try & (peers == peer)]
        _observe_rtt(state, peer, float(np.mean(state.tick - state.sent_tick[sampled])))
    events.released.append(state.id[mine].copy())
    _free(state, mine)


def handle_nacks(
    state: ZoneState, answers: np.ndarray, srcs: np.ndarray, events: MigrationEvents
) -> None:
    """Keep entities whose current transfer was refused, and back off."""
    mine, _ = _answered_slots(state, answers, srcs, events)
    if mine.size == 0:
        return
    state.status[mine] = Status.OWNED
    state.nacks[mine] = np.minimum(state.nacks[mine] + 1, 16)
    backoff = np.minimum(
        NACK_BACKOFF_TICKS << (state.nacks[mine].astype(np.int64) - 1), MAX_RTO_TICKS
    )
    state.retry_at[mine] = state.tick + backoff
    state.attempts[mine] = 0
    state.peer[mine] = -1
    events.refused.append(state.id[mine].copy())


def handle_intents(
    state: ZoneState,
    params: ZoneParams,
    rows: np.ndarray,
    srcs: np.ndarray,
    outbox: Outbox,
    events: MigrationEvents,
) -> None:
    """Decide every transfer proposed to this zone in one tick.

    `rows` are MIGRANT_DTYPE rows from every intent of the tick, in arrival
    order, `srcs` the zone that sent each. A second copy of the same entity's
    row in one tick (a duplicated message) is dropped: the first is answered.
    """
    _, first = np.unique(rows["id"], return_index=True)
    if first.size < len(rows):
        events.stale += len(rows) - first.size
        keep = np.sort(first)
        rows, srcs = rows[keep], srcs[keep]
    ids, proposed = rows["id"], rows["epoch"].astype(np.int64)
    slots = state.slots_of(ids)
    held = slots >= 0
    safe = np.where(held, slots, 0)
    incoming = held & (state.status[safe] == Status.INCOMING)
    held_epoch = np.where(incoming, state.xfer_epoch[safe], state.epoch[safe]).astype(np.int64)

    refresh = incoming & (held_epoch == proposed)  # a retransmission of what we hold
    state.pos[slots[refresh]], state.vel[slots[refresh]] = (
        caught_up(state, rows[refresh]),
        rows["vel"][refresh],
    )
    state.seq[slots[refresh]] = np.maximum(state.seq[slots[refresh]], rows["seq"][refresh])
    taken_over = held & ~refresh & (held_epoch >= proposed)  # accepted here long ago
    # A record older than the proposal means the entity was handed on since:
    # a staging record here was accepted and its ack lost.
    outdated = held & (held_epoch < proposed)
    if outdated.any():
        events.conflicts += int(np.count_nonzero(state.status[slots[outdated]] != Status.STAGING))
        events.released.append(ids[outdated].copy())
        _free(state, slots[outdated])

    open_rows = ~refresh & ~taken_over
    id_list, epoch_list = ids.tolist(), proposed.tolist()
    before = np.array([state.decisions.get(i) for i in id_list], dtype=np.int64).reshape(-1, 2)
    decided_before, accepted_before = before[:, 0], before[:, 1]
    answered = open_rows & (decided_before >= proposed)
    re_ack = answered & (accepted_before >= proposed)
    refused_again = answered & ~re_ack
    fresh = np.flatnonzero(open_rows & ~answered)

    live = state.live_count()
    quota = int(inbound_quota(live, fresh.size, 0, capacity=params.capacity))
    admit, refuse = fresh[:quota], fresh[quota:]
    for i in refuse.tolist():
        state.decisions.record(id_list[i], epoch_list[i], int(accepted_before[i]), state.hlc)
    if admit.size:
        free = state.free_slots(admit.size)
        _admit(state, free, rows[admit], srcs[admit])
        for i in admit.tolist():
            state.decisions.record(id_list[i], epoch_list[i], epoch_list[i], state.hlc)
        events.admitted.append(ids[admit].copy())
    full = live + quota >= params.capacity
    acks = np.flatnonzero(taken_over | re_ack)
    nacks = np.concatenate([np.flatnonzero(refused_again), refuse])
    reasons = np.concatenate(
        [
            np.full(np.count_nonzero(refused_again), ReplyReason.REFUSED),
            np.full(refuse.size, ReplyReason.FULL if full else ReplyReason.RATE),
        ]
    )
    _reply(outbox.acks, srcs[acks], replies(ids[acks], proposed[acks], np.zeros(acks.size)))
    _reply(outbox.nacks, srcs[nacks], replies(ids[nacks], proposed[nacks], reasons))
    events.nacks_sent += int(nacks.size)


def _reply(box: dict[int, list[np.ndarray]], dsts: np.ndarray, answers: np.ndarray) -> None:
    """File answers under the zone each goes back to."""
    for dst in np.unique(dsts).tolist():
        box[dst].append(answers[dsts == dst])


def promote_arrivals(state: ZoneState, outbox: Outbox, events: MigrationEvents) -> None:
    """Incoming entities whose arrival time has come become owned; ack their sources."""
    due = np.flatnonzero(state.status == Status.INCOMING)
    if due.size == 0:
        return
    due = due[state.arrival[due] <= np.uint64(state.hlc)]
    if due.size == 0:
        return
    state.status[due] = Status.OWNED
    state.epoch[due] = state.xfer_epoch[due]
    state.outside[due] = 0
    state.nacks[due] = 0
    state.retry_at[due] = 0
    for src in np.unique(state.peer[due]):
        group = due[state.peer[due] == src]
        outbox.acks[int(src)].append(
            replies(state.id[group], state.epoch[group], np.zeros(group.size))
        )
    state.peer[due] = -1
    events.promoted.append(state.id[due].copy())


def update_hysteresis(
    state: ZoneState, assigned: np.ndarray, live: np.ndarray | None = None
) -> None:
    """Count consecutive ticks each held entity's code lies outside this zone.

    Staging entities keep counting, so one whose transfer is refused can retry
    after its backoff instead of serving a second full hysteresis period.
    `live`, when the caller has it, is np.flatnonzero(state.status).
    """
    # Only held slots can count; working on those alone keeps a lightly loaded zone's
    # cost to a few calls on small arrays instead of several passes over every slot.
    if live is None:
        live = np.flatnonzero(state.status)
    if live.size == 0:
        state.outside.fill(0)
        return
    status = state.status[live]
    holding = live[(status == Status.OWNED) | (status == Status.STAGING)]
    outside = holding[assigned[holding] != state.zone]
    counted = np.minimum(state.outside[outside].astype(np.int32) + 1, 0xFFFF)
    state.outside.fill(0)
    state.outside[outside] = counted


def retransmit_due(state: ZoneState, budget: int, outbox: Outbox, events: MigrationEvents) -> int:
    """Resend intents whose ack is overdue, oldest first; returns intents sent."""
    due = np.flatnonzero(state.status == Status.STAGING)
    if due.size == 0 or budget <= 0:
        return 0
    due = due[state.deadline[due] <= state.tick]
    if due.size == 0:
        return 0
    due = due[np.argsort(state.deadline[due], kind="stable")][:budget]
    state.attempts[due] += 1
    state.rto[due] = np.minimum(state.rto[due] * 2, MAX_RTO_TICKS)
    state.deadline[due] = state.tick + state.rto[due]
    _queue_intents(state, due, outbox)
    events.retransmitted += int(due.size)
    return int(due.size)


def start_migrations(
    state: ZoneState, assigned: np.ndarray, budget: int, outbox: Outbox, events: MigrationEvents
) -> int:
    """Begin transfers for entities outside long enough, most overdue first."""
    # narrow to the few entities outside long enough before testing the rest
    chosen = np.flatnonzero(state.outside >= HYSTERESIS_TICKS)
    if chosen.size == 0 or budget <= 0:
        return 0
    target = assigned[chosen]
    ready = (
        (state.status[chosen] == Status.OWNED)
        & (state.retry_at[chosen] <= state.tick)
        & (target != state.zone)
        & (target >= 0)
    )
    chosen = chosen[ready]
    if chosen.size == 0 or budget <= 0:
        return 0
    chosen = chosen[np.argsort(-state.outside[chosen].astype(np.int32), kind="stable")][:budget]
    targets = assigned[chosen]
    state.status[chosen] = Status.STAGING
    state.xfer_epoch[chosen] = np.maximum(state.epoch[chosen], state.xfer_epoch[chosen]) + 1
    state.peer[chosen] = targets
    state.attempts[chosen] = 1
    state.sent_tick[chosen] = state.tick
    state.rto[chosen] = link_rto(state, targets)
    state.deadline[chosen] = state.tick + state.rto[chosen]
    _queue_intents(state, chosen, outbox)
    events.started.append(state.id[chosen].copy())
    events.targets.append(targets.copy())
    return int(chosen.size)


def link_rto(state: ZoneState, peers: np.ndarray) -> np.ndarray:
    """Retransmission timeout per peer: SRTT + 4·RTTVAR, 1 s while unknown."""
    srtt, rttvar = state.srtt[peers], state.rttvar[peers]
    rto = np.where(srtt < 0, INITIAL_RTO_TICKS, np.ceil(srtt + 4 * rttvar))
    return np.clip(rto, MIN_RTO_TICKS, MAX_RTO_TICKS).astype(np.int32)


def _observe_rtt(state: ZoneState, peer: int, sample: float) -> None:
    if state.srtt[peer] < 0:
        state.srtt[peer], state.rttvar[peer] = sample, sample / 2
    else:
        state.rttvar[peer] = 0.75 * state.rttvar[peer] + 0.25 * abs(state.srtt[peer] - sample)
        state.srtt[peer] = 0.875 * state.srtt[peer] + 0.125 * sample


def _queue_intents(state: ZoneState, slots: np.ndarray, outbox: Outbox) -> None:
    rows = np.zeros(slots.size, dtype=MIGRANT_DTYPE)
    rows["id"], rows["pos"], rows["vel"] = state.id[slots], state.pos[slots], state.vel[slots]
    rows["epoch"], rows["kind"], rows["attempt"] = (
        state.xfer_epoch[slots],
        state.kind[slots],
        state.attempts[slots],
    )
    rows["arrival"] = hlc_after_ticks(state.hlc, LATENCY_TICKS)
    rows["seq"] = state.seq[slots]
    npc.to_migrant(state, slots, rows)
    peers = state.peer[slots]
    for dst in np.unique(peers):
        outbox.intents[int(dst)].append(rows[peers == dst])


MAX_CATCH_UP_S = 2.0


def caught_up(state: ZoneState, rows: np.ndarray) -> np.ndarray:
    """Where migrant rows' entities are now: carried along their velocity since sent.

    An intent leaves its source with `arrival` LATENCY_TICKS ahead of the source's
    clock. One that spent longer on the way (a loaded link, a retransmission read
    late) holds a position the source has long moved on from; taken as it is, the
    entity would step back by that much when the target promotes it. At most
    MAX_CATCH_UP_S is made up: beyond that the row's velocity says little.
    """
    sent_ms = (rows["arrival"] >> np.uint64(HLC_LOGICAL_BITS)).astype(np.int64) - (
        LATENCY_TICKS * TICK_MS
    )
    now_ms = int(state.hlc) >> HLC_LOGICAL_BITS
    age_s = np.clip((now_ms - sent_ms) / 1000.0, 0.0, MAX_CATCH_UP_S)
    return (rows["pos"] + rows["vel"] * age_s[:, None].astype(np.float32)).astype(np.float32)


def _admit(state: ZoneState, slots: np.ndarray, rows: np.ndarray, srcs: np.ndarray) -> None:
    state.status[slots] = Status.INCOMING
    state.id[slots], state.kind[slots] = rows["id"], rows["kind"]
    state.pos[slots], state.vel[slots] = caught_up(state, rows), rows["vel"]
    state.epoch[slots] = state.xfer_epoch[slots] = rows["epoch"]
    state.peer[slots] = srcs
    state.arrival[slots] = rows["arrival"]
    state.outside[slots] = 0
    state.attempts[slots] = 0
    state.nacks[slots] = 0
    state.retry_at[slots] = 0
    state.move_clock[slots] = state.tick
    state.seq[slots] = rows["seq"]
    npc.from_migrant(state, slots, rows)
    state.membership_changed()


def _free(state: ZoneState, slots: np.ndarray) -> None:
    state.status[slots] = Status.FREE
    state.peer[slots] = -1
    state.attempts[slots] = 0
    state.membership_changed()
