"""The operators' NPC status frame (zones/core/npcview.py)."""

import numpy as np
import pytest

from tests.zones.core.test_npcs import CENTRE, Zone, leased, one_zone, spawn
from zones.core.npcview import (
    FRAME_KIND_NPC_STATUS,
    NPC_STATUS_DTYPE,
    Urgency,
    npc_status,
    npc_status_decode,
    npc_status_encode,
    status_fields,
)
from zones.core.overview import OVERVIEW_DTYPE, overview_encode
from zones.core.wire import NpcState, RowFlag


def test_each_npc_says_its_state_its_most_urgent_need_and_how_urgent():
    zone = Zone(one_zone(), delegate=True)
    zone.step(spawns=spawn([1, 2, 3], [CENTRE] * 3))
    zone.step(spawns=spawn([100], [CENTRE], kind=RowFlag.VISITOR_ROOT))
    zone.set_needs(1, [90, 10, 80, 70])  # hygiene, critical
    zone.set_needs(2, [60, 70, 40, 90])  # fun, low
    zone.set_needs(3, [80, 90, 95, 55])  # energy, content
    zone.state.npc_state[zone.slot(1)] = NpcState.INTERACTING
    zone.state.npc_state[zone.slot(2)] = NpcState.MOVING
    zone.state.npc_state[zone.slot(3)] = NpcState.IDLE
    zone.state.lease_left[zone.slot(1)] = 0
    zone.state.lease_left[zone.slot(2)] = 0
    zone.state.lease_left[zone.slot(3)] = 5
    records = npc_status(zone.state)
    assert sorted(records["id"].tolist()) == [1, 2, 3]  # no visitor
    by_id = dict(zip(records["id"].tolist(), records["status"], strict=True))
    state, need, urgency, waiting = status_fields(np.array([by_id[i] for i in (1, 2, 3)]))
    assert state.tolist() == [NpcState.INTERACTING, NpcState.MOVING, NpcState.IDLE]
    assert need.tolist() == [1, 2, 3]
    assert urgency.tolist() == [Urgency.CRITICAL, Urgency.LOW, Urgency.CONTENT]
    assert waiting.tolist() == [False, False, True]


def test_an_npc_waiting_on_a_lease_is_marked():
    zone = Zone(one_zone(), delegate=True)
    zone.step(spawns=spawn([1], [CENTRE]))
    leased(zone, 1)
    (_, _, _, waiting) = status_fields(npc_status(zone.state)["status"])
    assert waiting.tolist() == [True]


def test_the_frame_round_trips_and_a_wrong_one_is_an_error():
    records = np.zeros(3, NPC_STATUS_DTYPE)
    records["id"], records["status"] = [5, 6, 7], [0x01, 0x26, 0x40]
    data = npc_status_encode(records, 1234)
    assert data[3] == FRAME_KIND_NPC_STATUS and len(data) == 16 + 3 * 9
    tick_ms, back = npc_status_decode(data)
    assert tick_ms == 1234 and back.tolist() == records.tolist()
    with pytest.raises(ValueError, match="do not hold"):
        npc_status_decode(data[:-1])
    with pytest.raises(ValueError, match="bad magic or kind"):
        npc_status_decode(overview_encode(np.zeros(0, OVERVIEW_DTYPE), 0))
