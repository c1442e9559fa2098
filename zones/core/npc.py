"""NPCs with needs: the stage of `step` that lives them, and the checks on their decisions.

Every NPC (RowFlag.NPC) has four needs (constants.NEEDS), 0-100, falling each tick at
NEED_DECAY_PER_TICK; a state (NpcState: idle, moving, interacting); and a current
action (Action) with its target (an item or an entity id) and goal position.

An NPC whose decision is due (its action ended, or DECIDE_EVERY_TICKS passed since
its last decision) and that has no decision in flight is, at the next tick that is a
multiple of DECISION_BATCH_TICKS, either decided by
the built-in utility decision (`utility_decide`: needs × the items' advertisements),
or, when the tick is told to delegate, given a decision lease: its lease number goes
up by one and lapses after DECISION_DEADLINE_TICKS. The lease is what an answer must
name. Answers come in as StepInputs.answers (ANSWER_DTYPE rows) and are checked
before anything is written (`check_answers`): the zone must own the NPC, the lease
must be the one in flight, the action known, its numbers finite, its target present
and within reach at NPC speed, and an item must have a free slot. A late, duplicate
or foreign answer names a lease that is not in flight and changes nothing. A lease
that lapses unanswered is decided by the utility decision, so no NPC ever waits on
anyone for longer than the deadline.

A claim on an item is the NPC's action: `use_item` of that item while moving to it or
using it. Claims are counted from the NPCs' rows when needed (`claims`), answers are
checked one after another in their order of arrival, each against the claims of the
answers before it, so an item never has more users than slots, and the second of two
NPCs racing for its last slot is told `occupied`.

Functions here mutate the state they are given; `step` hands them a copy.
"""

from dataclasses import dataclass, field

import numpy as np

from .constants import (
    DECIDE_EVERY_TICKS,
    DECISION_BATCH_TICKS,
    DECISION_DEADLINE_TICKS,
    FLOOR_Y_M,
    MAX_TRAVEL_M,
    MAX_WAIT_S,
    NEED_DECAY_PER_TICK,
    NEED_MAX,
    NPC_SPEED_M_PER_S,
    SIGHT_RADIUS_M,
    SIM_TICK_HZ,
    TALK_RESTORE_PER_S,
    TALK_S,
    UTILITY_THRESHOLD,
    WANDER_M,
)
from .items import Items
from .state import Status, ZoneParams, ZoneState
from .wire import ANSWER_DTYPE, Action, AnswerReason, NpcState, RowFlag, empty

DECAY = np.array(NEED_DECAY_PER_TICK, np.float32)
TALK_RESTORE = np.array(TALK_RESTORE_PER_S, np.float32) / SIM_TICK_HZ
TALK_TICKS = round(TALK_S * SIM_TICK_HZ)
MAX_WAIT_TICKS = round(MAX_WAIT_S * SIM_TICK_HZ)
STEP_M = NPC_SPEED_M_PER_S / SIM_TICK_HZ
REQUEST_DTYPE = np.dtype([("id", "<u8"), ("lease", "<u4")])
"""A decision request as the step issues it: the NPC and its new lease."""

_NO_IDS = np.zeros(0, np.uint64)


@dataclass
class NpcEvents:
    """What the NPC stage did in one tick."""

    requests: np.ndarray = field(default_factory=lambda: empty(REQUEST_DTYPE))
    reasons: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))  # per answer
    decided: int = 0  # NPCs decided by the built-in utility decision
    lapsed: np.ndarray = field(default_factory=lambda: _NO_IDS)  # leases that lapsed unanswered


def npc_slots(s: ZoneState) -> np.ndarray:
    """Slots of the NPCs this zone has authority over (owned or handing off)."""
    held = (s.status == Status.OWNED) | (s.status == Status.STAGING)
    return np.flatnonzero(held & ((s.kind & RowFlag.NPC) != 0))


def init_spawned(s: ZoneState, slots: np.ndarray) -> None:
    """A new entity's NPC fields: needs from its id (40-100 each), idle, decision due."""
    h = _mix(s.id[slots], 0)
    shifts = np.array([0, 16, 32, 48], np.uint64)
    frac = ((h[:, None] >> shifts) & np.uint64(0xFFFF)).astype(np.float32) / np.float32(65536)
    s.needs[slots] = 40.0 + 60.0 * frac
    s.npc_state[slots] = NpcState.IDLE
    s.action[slots] = Action.NONE
    s.target[slots] = 0
    s.goal[slots] = s.pos[slots]
    npcs = slots[(s.kind[slots] & RowFlag.NPC) != 0]
    s.vel[npcs] = 0.0
    s.action_left[slots] = s.decide_in[slots] = 0
    s.lease[slots] = 0
    s.lease_left[slots] = 0


def tick(s: ZoneState, params: ZoneParams, answers: np.ndarray, delegate: bool) -> NpcEvents:
    """Live every NPC of the zone for one tick: needs, actions, answers, due decisions.

    The per-tick work runs over whole arrays under a mask of the zone's NPCs; only the
    few NPCs whose action ends, or whose decision is due, are handled one set at a time.
    A walk's velocity is set when it starts and cleared when it ends, so walking costs
    nothing in between.
    """
    events = NpcEvents()
    mine = ((s.kind & RowFlag.NPC) != 0) & (
        (s.status == Status.OWNED) | (s.status == Status.STAGING)
    )
    if not mine.any():
        if len(answers):
            events.reasons = np.full(len(answers), AnswerReason.NOT_HELD, np.uint8)
        return events
    items = params.items
    s.needs -= DECAY  # every slot: only NPCs read their needs
    interacting = np.flatnonzero(mine & (s.npc_state == NpcState.INTERACTING))
    if interacting.size:
        s.needs[interacting] += _restore(s, items, interacting)
    np.clip(s.needs, 0.0, NEED_MAX, out=s.needs)

    lapsing = mine & (s.lease_left == 1)
    for counter in (s.action_left, s.decide_in, s.lease_left):
        np.subtract(counter, 1, out=counter, where=mine & (counter > 0))
    ends = np.flatnonzero(mine & (s.action_left == 0) & (s.action != Action.NONE))
    if ends.size:
        _end_actions(s, items, ends)

    if len(answers):
        events.reasons = check_answers(s, params, answers, apply=True)
    if lapsing.any():
        lapsed = np.flatnonzero(lapsing & (s.lease_left == 0))
        events.lapsed = s.id[lapsed].copy()
        events.decided += _decide_by_utility(s, params, lapsed)

    if s.tick % DECISION_BATCH_TICKS:
        return events
    due = np.flatnonzero(
        mine
        & (s.status == Status.OWNED)
        & (s.lease_left == 0)
        & ((s.action == Action.NONE) | (s.decide_in == 0))
    )
    if due.size:
        if delegate:
            s.lease[due] += np.uint32(1)
            s.lease_left[due] = DECISION_DEADLINE_TICKS
            s.decide_in[due] = DECIDE_EVERY_TICKS
            requests = np.zeros(due.size, REQUEST_DTYPE)
            requests["id"], requests["lease"] = s.id[due], s.lease[due]
            events.requests = requests
        else:
            events.decided += _decide_by_utility(s, params, due)
    return events


def _restore(s: ZoneState, items: Items, slots: np.ndarray) -> np.ndarray:
    """What each interacting NPC's action restores this tick."""
    out = np.zeros((slots.size, 4), np.float32)
    action = s.action[slots]
    using = action == Action.USE_ITEM
    if using.any():
        index = items.index_of(s.target[slots[using]])
        found = index >= 0
        rows = np.zeros((index.size, 4), np.float32)
        rows[found] = items.restore[index[found]]
        out[using] = rows
    out[action == Action.TALK_TO] = TALK_RESTORE
    return out


def _end_actions(s: ZoneState, items: Items, ends: np.ndarray) -> None:
    """Actions whose time is up: a walk arrives (an item's use or a talk begins, a move_to
    is done), a use, a talk or a wait is over and the NPC stands idle."""
    arriving = s.npc_state[ends] == NpcState.MOVING
    there = ends[arriving]
    s.pos[there] = s.goal[there]
    s.vel[ends] = 0.0
    ticks = np.zeros(there.size, np.int32)
    act = s.action[there]
    using = act == Action.USE_ITEM
    if using.any():
        index = items.index_of(s.target[there[using]])
        ticks[using] = np.where(index >= 0, items.use_ticks[np.maximum(index, 0)], 0)
    ticks[act == Action.TALK_TO] = TALK_TICKS
    starts = there[ticks > 0]
    s.npc_state[starts] = NpcState.INTERACTING
    s.action_left[starts] = ticks[ticks > 0]
    done = np.concatenate([ends[~arriving], there[ticks == 0]])
    s.npc_state[done] = NpcState.IDLE
    s.action[done] = Action.NONE
    s.target[done] = 0


def _floor_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a - b)[:, [0, 2]]
    return np.sqrt(np.einsum("ij,ij->i", d, d))


def claims(s: ZoneState, items: Items) -> np.ndarray:
    """How many NPCs hold a slot of each item: those walking to it or using it."""
    if items.size == 0:
        return np.zeros(0, np.int64)
    held = (s.status == Status.OWNED) | (s.status == Status.STAGING)
    claiming = np.flatnonzero(held & (s.action == Action.USE_ITEM))
    index = items.index_of(s.target[claiming])
    return np.bincount(index[index >= 0], minlength=items.size)


def walk_ticks(distance: np.ndarray | float) -> np.ndarray:
    """Ticks a walk of `distance` takes at NPC speed (at least one)."""
    return np.maximum(np.ceil(np.asarray(distance) / STEP_M), 1).astype(np.int32)


def assign(
    s: ZoneState,
    slots: np.ndarray,
    action: np.ndarray,
    target: np.ndarray,
    goal: np.ndarray,
    ticks: np.ndarray,
) -> None:
    """Start the given (already checked) actions: the lease in flight, if any, is spent.

    A walk goes straight to its goal in a whole number of ticks, at NPC speed or a
    little under, so that it ends on the goal.
    """
    goal = np.asarray(goal, np.float32).copy()
    goal[:, 1] = FLOOR_Y_M
    waits = action == Action.WAIT
    pos = s.pos[slots]
    goal[waits] = pos[waits]
    d = goal - pos
    d[:, 1] = 0.0
    walk = walk_ticks(_floor_distance(goal, pos))
    s.action[slots] = action
    s.target[slots] = np.where(waits | (action == Action.MOVE_TO), 0, target)
    s.goal[slots] = goal
    s.npc_state[slots] = np.where(waits, NpcState.IDLE, NpcState.MOVING)
    s.action_left[slots] = np.where(waits, ticks, walk)
    s.vel[slots] = np.where(waits[:, None], 0.0, d * (SIM_TICK_HZ / walk)[:, None])
    s.decide_in[slots] = DECIDE_EVERY_TICKS
    s.lease_left[slots] = 0


def check_answers(
    s: ZoneState, params: ZoneParams, answers: np.ndarray, *, apply: bool
) -> np.ndarray:
    """The AnswerReason of each answer, in order; with `apply`, the valid ones are started.

    Nothing is written for an answer that fails a check. Each answer is checked against
    the leases and claims as the answers before it left them: of two answers for one
    lease only the first can apply, and of two NPCs racing for an item's last slot the
    first in arrival order gets it.
    """
    reasons = np.zeros(len(answers), np.uint8)
    if len(answers) == 0:
        return reasons
    answers = np.asarray(answers, ANSWER_DTYPE)
    items = params.items
    used = claims(s, items)
    slots = s.slots_of(answers["id"])
    spent: set[int] = set()
    accepted: list[int] = []
    lo, hi = params.lo, params.hi
    for i, row in enumerate(answers):
        slot = int(slots[i])
        reason = _check_one(s, params, items, used, row, slot, spent, lo, hi)
        reasons[i] = reason
        if reason != AnswerReason.APPLIED:
            continue
        spent.add(slot)
        accepted.append(i)
        old = _claimed_index(s, items, slot)
        if old >= 0:
            used[old] -= 1
        if int(row["action"]) == Action.USE_ITEM:
            used[int(items.index_of(np.array([row["target"]]))[0])] += 1
    if apply and accepted:
        chosen = answers[accepted]
        goal = chosen["goal"].copy()
        targets = chosen["target"]
        ticks = chosen["ticks"].astype(np.int32)
        for j, row in enumerate(chosen):
            if int(row["action"]) == Action.USE_ITEM:
                goal[j] = items.pos[int(items.index_of(np.array([row["target"]]))[0])]
            elif int(row["action"]) == Action.TALK_TO:
                goal[j] = s.pos[int(s.slots_of(np.array([row["target"]], np.uint64))[0])]
        assign(s, slots[accepted], chosen["action"], targets, goal, ticks)
    return reasons


def _claimed_index(s: ZoneState, items: Items, slot: int) -> int:
    if s.action[slot] != Action.USE_ITEM:
        return -1
    return int(items.index_of(s.target[slot : slot + 1])[0])


def _check_one(
    s: ZoneState,
    params: ZoneParams,
    items: Items,
    used: np.ndarray,
    row: np.void,
    slot: int,
    spent: set[int],
    lo: np.ndarray,
    hi: np.ndarray,
) -> int:
    if slot < 0 or s.status[slot] != Status.OWNED or not s.kind[slot] & RowFlag.NPC:
        return AnswerReason.NOT_HELD
    if slot in spent or s.lease_left[slot] == 0 or int(row["lease"]) != int(s.lease[slot]):
        return AnswerReason.STALE_LEASE
    action = int(row["action"])
    here = s.pos[slot]
    if action == Action.MOVE_TO:
        goal = row["goal"]
        if not np.all(np.isfinite(goal)):
            return AnswerReason.BAD_VALUE
        inside = lo[0] <= goal[0] <= hi[0] and lo[2] <= goal[2] <= hi[2]
        if not inside or _flat(goal, here) > MAX_TRAVEL_M:
            return AnswerReason.OUT_OF_RANGE
        return AnswerReason.APPLIED
    if action == Action.USE_ITEM:
        index = int(items.index_of(np.array([row["target"]], np.uint64))[0])
        if index < 0:
            return AnswerReason.NO_SUCH_TARGET
        if _flat(items.pos[index], here) > MAX_TRAVEL_M:
            return AnswerReason.OUT_OF_RANGE
        mine = _claimed_index(s, items, slot) == index
        if not mine and used[index] >= items.slots[index]:
            return AnswerReason.OCCUPIED
        return AnswerReason.APPLIED
    if action == Action.TALK_TO:
        other = int(s.slots_of(np.array([row["target"]], np.uint64))[0])
        if other < 0 or other == slot or s.status[other] not in (Status.OWNED, Status.STAGING):
            return AnswerReason.NO_SUCH_TARGET
        if _flat(s.pos[other], here) > SIGHT_RADIUS_M:
            return AnswerReason.OUT_OF_RANGE
        return AnswerReason.APPLIED
    if action == Action.WAIT:
        if not 1 <= int(row["ticks"]) <= MAX_WAIT_TICKS:
            return AnswerReason.BAD_VALUE
        return AnswerReason.APPLIED
    return AnswerReason.UNKNOWN_ACTION


def _flat(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.hypot(float(a[0]) - float(b[0]), float(a[2]) - float(b[2])))


# --- the built-in utility decision ---------------------------------------------------------


def _mix(ids: np.ndarray, salt: int) -> np.ndarray:
    """A 64-bit hash of each id and `salt` (splitmix64's finaliser): the same on every run."""
    with np.errstate(over="ignore"):
        z = ids.astype(np.uint64) + np.uint64((salt * 0x9E3779B97F4A7C15) & (2**64 - 1))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def item_scores(needs: np.ndarray, pos: np.ndarray, items: Items) -> np.ndarray:
    """(NPCs, items) utility of using each item: needs × advertisements, nearer is better.

    Each need counts by its deficit squared (a need at 20 weighs 16 times one at 80), times
    what one use would restore of it, capped at what is missing; an item farther than
    an NPC may walk for one decision scores -inf.
    """
    deficit = NEED_MAX - needs
    urgency = (deficit / NEED_MAX) ** 2
    per_use = items.restore * items.use_ticks[:, None]
    gain = np.minimum(per_use[None, :, :], deficit[:, None, :])
    score = np.einsum("dik,dk->di", gain, urgency) / 10.0
    d = pos[:, None, [0, 2]] - items.pos[None, :, [0, 2]]
    dist = np.sqrt(np.einsum("dij,dij->di", d, d))
    score = score / (1.0 + dist / SIGHT_RADIUS_M)
    score[dist > MAX_TRAVEL_M] = -np.inf
    return score


def utility_decide(
    s: ZoneState, params: ZoneParams, slots: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The built-in decision for idle NPCs: (action, target, goal) per slot.

    Each NPC takes the item of highest score with a free slot, when that score reaches
    UTILITY_THRESHOLD; NPCs wanting one item beyond its free slots are taken best score
    first (then lowest slot); the others wander to a point WANDER_M away in a direction
    drawn from their id and the zone's tick.
    """
    n = slots.size
    action = np.full(n, Action.MOVE_TO, np.uint8)
    target = np.zeros(n, np.uint64)
    pos = s.pos[slots]
    items = params.items
    use = np.zeros(n, bool)
    if items.size:
        score = item_scores(s.needs[slots], pos, items)
        free = items.slots - claims(s, items)
        score[:, free <= 0] = -np.inf
        best = np.argmax(score, axis=1)
        top = score[np.arange(n), best]
        want = np.flatnonzero(top >= UTILITY_THRESHOLD)
        if want.size:
            order = want[np.lexsort((want, -top[want], best[want]))]
            item = best[order]
            starts = np.searchsorted(item, item, side="left")
            rank = np.arange(order.size) - starts
            granted = order[rank < free[item]]
            use[granted] = True
            action[granted] = Action.USE_ITEM
            target[granted] = items.id[best[granted]]
    goal = np.empty((n, 3), np.float32)
    if use.any():
        goal[use] = items.pos[best[use]]
    roam = ~use
    if roam.any():
        h = _mix(s.id[slots[roam]], s.tick)
        angle = (h & np.uint64(0xFFFF)).astype(np.float64) * (2 * np.pi / 65536)
        frac = ((h >> np.uint64(16)) & np.uint64(0xFFFF)).astype(np.float64) / 65536
        reach = WANDER_M[0] + (WANDER_M[1] - WANDER_M[0]) * frac
        there = pos[roam].astype(np.float64)
        there[:, 0] += np.cos(angle) * reach
        there[:, 2] += np.sin(angle) * reach
        goal[roam] = np.clip(there, params.lo + 1.0, params.hi - 1.0)
    return action, target, goal


def _decide_by_utility(s: ZoneState, params: ZoneParams, slots: np.ndarray) -> int:
    """Apply the utility decision to the idle ones of `slots`; the busy keep their action."""
    idle = s.action[slots] == Action.NONE
    busy = slots[~idle]
    s.decide_in[busy] = DECIDE_EVERY_TICKS
    s.lease_left[busy] = 0
    chosen = slots[idle]
    if chosen.size:
        action, target, goal = utility_decide(s, params, chosen)
        assign(s, chosen, action, target, goal, np.zeros(chosen.size, np.int32))
    return int(chosen.size)


# --- handoff -------------------------------------------------------------------------------

NPC_MIGRANT_FIELDS = ("needs", "goal", "target", "lease", "npc_state", "action")
_COUNTS = ("lease_left", "action_left", "decide_in")


def to_migrant(s: ZoneState, slots: np.ndarray, rows: np.ndarray) -> None:
    """Write the NPC fields of `slots` into their MIGRANT_DTYPE rows."""
    for name in NPC_MIGRANT_FIELDS:
        rows[name] = getattr(s, name)[slots]
    for name in _COUNTS:
        rows[name] = np.clip(getattr(s, name)[slots], 0, 0xFFFF)


def from_migrant(s: ZoneState, slots: np.ndarray, rows: np.ndarray) -> None:
    """Take the NPC fields of admitted rows: needs, action and lease go on here."""
    for name in NPC_MIGRANT_FIELDS:
        getattr(s, name)[slots] = rows[name]
    for name in _COUNTS:
        getattr(s, name)[slots] = rows[name]
