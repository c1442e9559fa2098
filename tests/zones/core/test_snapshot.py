"""A zone's state as snapshot bytes and back (zones/core/snapshot.py)."""

import io
import zipfile

import numpy as np
import pytest

from zones.core.crowd import Crowd
from zones.core.ranges import RangeMap, floor_ranges
from zones.core.simnet import SimNetwork
from zones.core.snapshot import (
    SNAPSHOT_FORMAT,
    SnapshotError,
    state_from_bytes,
    state_to_bytes,
)
from zones.core.state import _ARRAY_FIELDS, Status, ZoneParams, ZoneState
from zones.core.step import StepInputs, step
from zones.core.wire import COMMAND_DTYPE, CommandKind

SMALL_MARKET = np.array([32.0, 64.0, 32.0], np.float32)  # borders a few seconds' walk apart


def busy_network() -> tuple[SimNetwork, ZoneState]:
    """A lossy 3-zone network with a crowd, and a zone state caught mid-traffic.

    The state holds entities in every status (owned, staging, incoming), has
    answered transfer proposals (a non-empty decision table) and has measured a round
    trip to a peer.
    """
    params = [ZoneParams(zone=z, hi=SMALL_MARKET, capacity=300, spawn_cap=250) for z in range(3)]
    net = SimNetwork(ranges=floor_ranges(3), params=params, rng=np.random.default_rng(1))
    crowd = Crowd(net, np.random.default_rng(2))
    crowd.record_spawns(net.run_tick(spawns=crowd.spawn(200)))
    for tick in range(600):
        crowd.record_spawns(net.run_tick(commands=crowd.commands()))
        if tick < 100:
            continue
        for state in net.zones:
            statuses = set(np.unique(state.status).tolist())
            every_status = {Status.OWNED, Status.STAGING, Status.INCOMING} <= statuses
            if every_status and len(state.decisions) and (state.srtt >= 0).any():
                return net, state
    raise AssertionError("no zone ever held entities in every status at once")


@pytest.fixture(scope="module")
def busy() -> tuple[SimNetwork, ZoneState]:
    return busy_network()


def decisions_of(state: ZoneState) -> dict[str, list]:
    """The decision table and the in-flight reports, as plain lists."""
    return {name: column.tolist() for name, column in state.decisions.to_arrays().items()}


def assert_same_state(got: ZoneState, want: ZoneState) -> None:
    for name in _ARRAY_FIELDS:
        a, b = getattr(got, name), getattr(want, name)
        assert a.dtype == b.dtype, name
        assert a.shape == b.shape, name
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert (got.zone, got.tick, got.hlc) == (want.zone, want.tick, want.hlc)
    assert got.ranges == want.ranges
    np.testing.assert_array_equal(got.ranges.starts, want.ranges.starts)
    assert decisions_of(got) == decisions_of(want)


def test_the_busy_state_is_worth_snapshotting(busy):
    _, state = busy
    assert state.tick > 100 and state.hlc > 0
    assert len(state.decisions) > 0
    counts = np.bincount(state.status, minlength=4)
    assert counts[Status.OWNED] and counts[Status.STAGING] and counts[Status.INCOMING]
    assert (state.srtt >= 0).any()  # it measured a round trip to a peer


def test_a_state_reads_back_whole(busy):
    _, state = busy
    data = state_to_bytes(state)
    restored = state_from_bytes(data)
    assert_same_state(restored, state)
    assert state_to_bytes(restored) == data  # and writes the same bytes again


def test_an_empty_state_and_a_newer_range_map_read_back_whole():
    ranges = RangeMap(starts=floor_ranges(5).starts, version=7)
    state = ZoneState.empty(4, ranges, capacity=16, hlc=12345)
    state.tick = 3
    restored = state_from_bytes(state_to_bytes(state))
    assert_same_state(restored, state)
    assert restored.ranges.version == 7
    assert len(restored.decisions) == 0


def test_a_map_naming_its_zones_reads_back_with_its_owners():
    ranges = RangeMap(starts=floor_ranges(3).starts, version=4, owners=np.array([0, 7, 1]))
    restored = state_from_bytes(state_to_bytes(ZoneState.empty(7, ranges, capacity=8)))
    assert restored.ranges == ranges and restored.ranges.zone_of_range.tolist() == [0, 7, 1]


def test_a_snapshot_written_before_maps_named_their_zones_reads_as_zone_i_owning_range_i(busy):
    arrays = arrays_of(state_to_bytes(busy[1]))
    del arrays["range_owners"]
    restored = state_from_bytes(npz_bytes(arrays))
    assert restored.ranges.named_by_index and restored.ranges == busy[1].ranges


def test_a_snapshot_with_bad_range_owners_is_refused(busy):
    arrays = arrays_of(state_to_bytes(busy[1]))
    arrays["range_owners"] = np.zeros(arrays["range_starts"].size, np.int64)
    with pytest.raises(SnapshotError, match="range map: a zone owns at most one range"):
        state_from_bytes(npz_bytes(arrays))


def test_a_restored_state_steps_exactly_like_the_original(busy):
    net, state = busy
    restored = state_from_bytes(state_to_bytes(state))
    live = state.id[state.status == Status.OWNED][:5]
    commands = np.zeros(live.size, COMMAND_DTYPE)
    commands["id"], commands["kind"], commands["vec"] = live, CommandKind.VELOCITY, (1.0, 0, -1.0)
    inputs = StepInputs(now_ms=(state.tick + 1) * 50, commands=commands)
    params = net.params[state.zone]
    want, want_out = step(state, inputs, params)
    got, got_out = step(restored, inputs, params)
    assert_same_state(got, want)
    assert got_out.rows.tobytes() == want_out.rows.tobytes()
    assert len(got_out.messages) == len(want_out.messages)
    # the id index was rebuilt, not carried over
    ids = state.id[state.status != Status.FREE]
    np.testing.assert_array_equal(restored.slots_of(ids), state.slots_of(ids))


def test_a_restored_state_shares_nothing_with_the_bytes_or_the_original(busy):
    _, state = busy
    restored = state_from_bytes(state_to_bytes(state))
    before = state.pos.copy()
    restored.pos[:] = -1.0
    restored.decisions.record(123456789, 9, 9, 99)
    np.testing.assert_array_equal(state.pos, before)
    assert state.decisions.get(123456789) == (0, 0)


# --- refusals --------------------------------------------------------------------------------


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def arrays_of(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


@pytest.mark.parametrize(
    "data",
    [b"", b"not a snapshot at all", b"PK\x03\x04" + b"\0" * 100, bytes(range(256)) * 8],
    ids=["empty", "text", "broken-zip-header", "noise"],
)
def test_garbage_is_refused(data):
    with pytest.raises(SnapshotError):
        state_from_bytes(data)


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.999])
def test_a_truncated_snapshot_is_refused(busy, keep):
    data = state_to_bytes(busy[1])
    with pytest.raises(SnapshotError):
        state_from_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize(
    "missing", ["pos", "status", "srtt", "scalars", "range_starts", "decision_ids", "accepted"]
)
def test_a_snapshot_missing_an_array_is_refused(busy, missing):
    arrays = arrays_of(state_to_bytes(busy[1]))
    state_from_bytes(npz_bytes(arrays))  # whole, it reads
    del arrays[missing]
    with pytest.raises(SnapshotError, match=missing):
        state_from_bytes(npz_bytes(arrays))


def test_a_snapshot_of_another_format_is_refused(busy):
    arrays = arrays_of(state_to_bytes(busy[1]))
    arrays["scalars"][0] = SNAPSHOT_FORMAT + 1
    with pytest.raises(SnapshotError, match="format"):
        state_from_bytes(npz_bytes(arrays))


def test_a_snapshot_whose_arrays_disagree_on_the_capacity_is_refused(busy):
    arrays = arrays_of(state_to_bytes(busy[1]))
    arrays["epoch"] = arrays["epoch"][:-1]
    with pytest.raises(SnapshotError, match="capacity"):
        state_from_bytes(npz_bytes(arrays))


def test_a_snapshot_with_a_corrupted_member_is_refused(busy):
    data = bytearray(state_to_bytes(busy[1]))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo("pos.npy")
    # flip bytes inside the stored member: its CRC no longer matches
    start = info.header_offset + 30 + len(info.filename) + 200
    data[start : start + 8] = bytes(b ^ 0xFF for b in data[start : start + 8])
    with pytest.raises(SnapshotError, match="CRC"):
        state_from_bytes(bytes(data))
