"""A zone's storage grows when a spawn or an arrival finds no free slot: the zone then
takes the same slots, says the same things and holds the same records as a zone whose
storage was large from the start (zones/core/state.py)."""

import sys

import numpy as np
import pytest

from tests.zones.core.fabric_run import SMALL_MARKET
from zones.core.crowd import Crowd
from zones.core.ranges import floor_ranges
from zones.core.simnet import SimNetwork
from zones.core.state import _SLOT_FIELDS, STORAGE_START, Status, ZoneParams, ZoneState

LARGE = 1_000
SMALL = 4
ARRIVALS_TICKS = 400  # long enough for walkers out of zone 0 to fill the others


def lockstep(seed: int, only_zone_0: bool = False, ticks: int = 160) -> tuple[list[str], list[int]]:
    """Two lossy three-zone markets, storage SMALL and LARGE, driven alike: what differs,
    and each zone's storage in the small one at the end. With `only_zone_0`, newcomers
    spawn in zone 0 alone: the other zones fill only by arrivals."""
    params = [ZoneParams(zone=z, hi=SMALL_MARKET, capacity=120, spawn_cap=90) for z in range(3)]
    nets, crowds = [], []
    for storage in (SMALL, LARGE):
        net = SimNetwork(floor_ranges(3), params, np.random.default_rng(seed), storage=storage)
        nets.append(net)
        crowds.append(Crowd(net, np.random.default_rng(seed + 1)))
    differences: list[str] = []
    for t in range(ticks):
        outputs = []
        for net, crowd in zip(nets, crowds, strict=True):
            spawns = crowd.spawn(40) if t % 40 == 0 else None
            if spawns is not None and only_zone_0:
                spawns = {0: spawns[0]}
            crashes = {1: 5} if t == 90 else None  # a zone restarts from its snapshot
            out = net.run_tick(spawns=spawns, commands=crowd.commands(), crashes=crashes)
            crowd.record_spawns(out)
            outputs.append(out)
        for z in range(3):
            grown, large = nets[0].zones[z], nets[1].zones[z]
            differences += [f"tick {t} zone {z}: {d}" for d in state_differences(grown, large)]
            a, b = outputs[0][z], outputs[1][z]
            if (a is None) != (b is None) or (
                a is not None and a.rows.tobytes() != b.rows.tobytes()
            ):
                differences.append(f"tick {t} zone {z}: interest rows differ")
        if differences:
            break
    return differences, [zone.capacity for zone in nets[0].zones]


def state_differences(grown: ZoneState, large: ZoneState) -> list[str]:
    """Fields that differ on the grown zone's slots; the large zone's other slots must be
    as new."""
    n = grown.capacity
    found = [
        name
        for name in _SLOT_FIELDS
        if not np.array_equal(getattr(grown, name), getattr(large, name)[:n])
    ]
    for name, (_, _, fill) in _SLOT_FIELDS.items():
        if not (getattr(large, name)[n:] == fill).all():
            found.append(f"{name} beyond slot {n}")
    if (grown.tick, grown.hlc) != (large.tick, large.hlc):
        found.append("clock")
    return found


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_zone_whose_storage_grows_with_spawns_runs_as_one_with_room_from_the_start(seed):
    differences, storage = lockstep(seed)
    assert differences == []
    assert max(storage) >= 8 * SMALL  # doubled three times at least


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_zone_whose_storage_grows_with_arrivals_runs_as_one_with_room_from_the_start(seed):
    differences, storage = lockstep(seed, only_zone_0=True, ticks=ARRIVALS_TICKS)
    assert differences == []
    assert storage[1] > SMALL and storage[2] > SMALL  # grown by arrivals alone


def test_storage_grows_only_when_a_tick_needs_more_slots_and_keeps_every_slot():
    state = ZoneState.empty(0, floor_ranges(3))
    assert state.capacity == STORAGE_START
    state.status[:3] = Status.OWNED
    state.id[:3] = [7, 8, 9]
    free = state.free_slots(STORAGE_START)  # three taken: doubled
    assert state.capacity == 2 * STORAGE_START
    assert free.tolist() == list(range(3, STORAGE_START + 3))
    assert state.id[:3].tolist() == [7, 8, 9] and (state.peer[3:] == -1).all()
    assert state.free_slots(5).tolist() == [3, 4, 5, 6, 7]  # enough free: no growth
    assert state.capacity == 2 * STORAGE_START
    state.free_slots(5 * STORAGE_START)  # more than doubling gives: grown to fit
    assert state.capacity == 3 + 5 * STORAGE_START


def newest_first(caller: str):
    """Storage that, called from `caller` in a zone still small, grows and hands out its
    new slots before the old free ones."""
    right = ZoneState.free_slots

    def free_slots(self, n):
        if self.capacity >= LARGE or sys._getframe(1).f_code.co_name != caller:
            return right(self, n)
        size = self.capacity
        right(self, np.count_nonzero(self.status == Status.FREE) + n)  # n new slots at least
        return np.arange(size, size + n)

    return free_slots


@pytest.mark.parametrize(("caller", "only_zone_0"), [("_spawn", False), ("handle_intents", True)])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_lockstep_check_catches_growth_that_moves_where_entities_go(
    monkeypatch, caller, only_zone_0, seed
):
    """Control: in the small market only, spawns or arrivals take the new slots first."""
    monkeypatch.setattr(ZoneState, "free_slots", newest_first(caller))
    assert lockstep(seed, only_zone_0, ticks=ARRIVALS_TICKS if only_zone_0 else 160)[0]
