"""What an NPC knows when it is asked for a decision: its observation, as plain data.

An observation holds the NPC's needs, position, state and current action, and what it
sees within SIGHT_RADIUS_M: the booth's items (with their free slots and what they
restore), the NPCs and the visitors (roots only, not bones), each with its distance,
nearest first, at most MAX_SEEN of each; then the interactions open to it: use_item of
every item it sees with a free slot (or the one it already holds), talk_to every NPC
and visitor it sees, move_to and wait. Built outside `step`, from the state a step
returned, for the few NPCs whose requests that step issued.
"""

from typing import Any

import numpy as np

from .constants import MAX_TRAVEL_M, MAX_WAIT_S, NEEDS, SIGHT_RADIUS_M, SIM_TICK_HZ
from .npc import claims
from .state import Status, ZoneParams, ZoneState
from .wire import ACTION_NAMES, Action, NpcState, RowFlag

MAX_SEEN = 16
STATE_NAMES = {
    NpcState.IDLE: "idle",
    NpcState.MOVING: "moving",
    NpcState.INTERACTING: "interacting",
}


def observations(s: ZoneState, params: ZoneParams, ids: np.ndarray) -> list[dict[str, Any]]:
    """One observation per NPC id this zone holds (ids it does not hold are skipped)."""
    slots = s.slots_of(np.asarray(ids, np.uint64))
    slots = slots[slots >= 0]
    if slots.size == 0:
        return []
    items = params.items
    free = items.slots - claims(s, items) if items.size else np.zeros(0, np.int64)
    held = np.flatnonzero((s.status == Status.OWNED) | (s.status == Status.STAGING))
    kind = s.kind[held]
    npcs = held[(kind & RowFlag.NPC) != 0]
    visitors = held[(kind & RowFlag.VISITOR_ROOT) != 0]
    out = []
    for slot in slots.tolist():
        here = s.pos[slot]
        own_item = int(s.target[slot]) if s.action[slot] == Action.USE_ITEM else -1
        seen_items = []
        for i, d in _near(here, items.pos):
            open_slots = int(free[i]) + (1 if int(items.id[i]) == own_item else 0)
            seen_items.append(
                {
                    "id": int(items.id[i]),
                    "kind": items.kind_name(i),
                    "distance": d,
                    "free": max(open_slots, 0),
                    "restores": {
                        need: round(float(items.restore[i, k] * items.use_ticks[i]), 2)
                        for k, need in enumerate(NEEDS)
                    },
                }
            )
        others = npcs[npcs != slot]
        seen_npcs = [
            {"id": int(s.id[others[j]]), "distance": d} for j, d in _near(here, s.pos[others])
        ]
        seen_visitors = [
            {"id": int(s.id[visitors[j]]), "distance": d} for j, d in _near(here, s.pos[visitors])
        ]
        interactions: list[dict[str, Any]] = [
            {"action": "use_item", "target": item["id"]} for item in seen_items if item["free"]
        ]
        interactions += [
            {"action": "talk_to", "target": seen["id"]} for seen in seen_npcs + seen_visitors
        ]
        interactions.append({"action": "move_to", "max_distance": MAX_TRAVEL_M})
        interactions.append({"action": "wait", "max_ticks": round(MAX_WAIT_S * SIM_TICK_HZ)})
        out.append(
            {
                "npc": int(s.id[slot]),
                "lease": int(s.lease[slot]),
                "needs": {need: round(float(s.needs[slot, k]), 2) for k, need in enumerate(NEEDS)},
                "pos": [round(float(v), 3) for v in here],
                "state": STATE_NAMES[int(s.npc_state[slot])],
                "action": ACTION_NAMES.get(int(s.action[slot]), "none"),
                "target": int(s.target[slot]),
                "items": seen_items,
                "npcs": seen_npcs,
                "visitors": seen_visitors,
                "interactions": interactions,
            }
        )
    return out


def _near(here: np.ndarray, pos: np.ndarray) -> list[tuple[int, float]]:
    """(index, floor distance) of the positions within sight, nearest first."""
    if len(pos) == 0:
        return []
    d = np.hypot(pos[:, 0] - here[0], pos[:, 2] - here[2])
    close = np.flatnonzero(d <= SIGHT_RADIUS_M)
    close = close[np.argsort(d[close], kind="stable")][:MAX_SEEN]
    return [(int(i), round(float(d[i]), 3)) for i in close]
