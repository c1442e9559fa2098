"""A migrant row that spent long on the way is carried forward, not taken as it was sent."""

import numpy as np
import pytest

from zones.core import migration
from zones.core.constants import LATENCY_TICKS, TICK_MS
from zones.core.hlc import hlc_pack
from zones.core.ranges import floor_ranges
from zones.core.state import Status, ZoneParams, ZoneState
from zones.core.wire import MIGRANT_DTYPE, RowFlag

NOW_MS = 1_800_000_000_000


def intent_row(sent_ms, pos=(10.0, 1.0, 10.0), vel=(1.5, 0.0, 0.0), epoch=2):
    row = np.zeros(1, MIGRANT_DTYPE)
    row["id"], row["pos"], row["vel"], row["epoch"] = 77, pos, vel, epoch
    row["kind"], row["attempt"] = RowFlag.VISITOR_ROOT, 1
    row["arrival"] = hlc_pack(sent_ms + LATENCY_TICKS * TICK_MS)
    return row


def admitted(delay_ms, target=None):
    state = target or ZoneState.empty(1, floor_ranges(3), hlc=hlc_pack(NOW_MS))
    migration.handle_intents(
        state,
        ZoneParams(zone=1),
        intent_row(NOW_MS - delay_ms),
        np.array([0]),
        migration.Outbox(),
        migration.MigrationEvents(),
    )
    slot = int(state.slots_of(np.array([77], np.uint64))[0])
    assert state.status[slot] == Status.INCOMING
    return state, state.pos[slot].copy()


@pytest.mark.parametrize(
    "delay_ms, x", [(0, 10.0), (1000, 11.5), (400, 10.6), (60_000, 13.0), (-500, 10.0)]
)
def test_the_target_places_a_late_arrival_where_its_source_has_it_now(delay_ms, x):
    # sent `delay_ms` ago at 1.5 m/s: 1 s late is 1.5 m further on; at most 2 s is made
    # up, and a row from the future (clock skew) is taken as it is
    _, pos = admitted(delay_ms)
    assert pos == pytest.approx([x, 1.0, 10.0], abs=1e-4)


def test_a_late_retransmission_does_not_pull_the_incoming_copy_back():
    state, first = admitted(0)
    state.hlc = hlc_pack(NOW_MS + 1000)  # a second on, the same intent sent 1 s ago arrives
    slot = int(state.slots_of(np.array([77], np.uint64))[0])
    state.pos[slot] = (11.5, 1.0, 10.0)  # where the target's own motion has carried it
    migration.handle_intents(
        state,
        ZoneParams(zone=1),
        intent_row(NOW_MS),
        np.array([0]),
        migration.Outbox(),
        migration.MigrationEvents(),
    )
    assert state.pos[slot] == pytest.approx([11.5, 1.0, 10.0], abs=1e-4)
