"""The input log: records read back as written, torn tails, corruption, exact replay.

The property runs one zone of a lossy three-zone network for a random number of
ticks, logging every StepInputs it steps on. From any snapshot point, the
snapshot (through its on-disk bytes) plus the log replayed through `step` must
reach the state the run reached, digest for digest. The control replays through
a step that adds unseeded noise and shows the same check catches it.
"""

import zlib
from dataclasses import dataclass, field
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from zones.core import inputlog, simnet
from zones.core.crowd import Crowd
from zones.core.inputlog import (
    InputLogError,
    LogRecord,
    decode_records,
    encode_record,
    replay,
    rng_restore,
    rng_state,
    state_hash,
)
from zones.core.messages import Ack, Forward, Gossip, Intent, Nack
from zones.core.ranges import RangeMap, floor_ranges
from zones.core.simnet import Faults, SimNetwork
from zones.core.snapshot import state_from_bytes, state_to_bytes
from zones.core.state import Status, ZoneParams, ZoneState
from zones.core.step import StepInputs, step
from zones.core.wire import COMMAND_DTYPE, MIGRANT_DTYPE, REPLY_DTYPE, SPAWN_DTYPE, CommandKind

from .fabric_run import SMALL_MARKET

ZONE = 0
PROPERTY = settings(
    max_examples=10,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
CONTROL = settings(
    max_examples=4,
    deadline=None,
    phases=[Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)


# --- records -------------------------------------------------------------------------------


def every_kind_of_input(tick: int = 7) -> LogRecord:
    """A record carrying each array and each message kind, with a worker rng."""
    commands = np.zeros(3, COMMAND_DTYPE)
    commands["id"], commands["kind"], commands["vec"] = [1, 2, 3], CommandKind.MOVE, 1.5
    spawns = np.zeros(2, SPAWN_DTYPE)
    spawns["id"], spawns["pos"] = [10, 11], [[1, 1, 1], [2, 1, 2]]
    migrant = np.zeros(2, MIGRANT_DTYPE)
    migrant["id"], migrant["epoch"], migrant["arrival"] = [20, 21], 4, 1 << 40
    reply = np.zeros(1, REPLY_DTYPE)
    reply["id"], reply["epoch"], reply["reason"] = 22, 3, 1
    messages = (
        Intent(src=1, dst=ZONE, hlc=101, rows=migrant),
        Ack(src=2, dst=ZONE, hlc=102, replies=reply),
        Nack(src=1, dst=ZONE, hlc=103, replies=reply),
        Forward(src=2, dst=ZONE, hlc=104, commands=commands[:1]),
        Gossip(src=1, dst=ZONE, hlc=105, ranges=RangeMap(floor_ranges(3).starts, version=9)),
    )
    inputs = StepInputs(
        now_ms=1_800_000_000_123,
        messages=messages,
        commands=commands,
        spawns=spawns,
        despawns=np.array([30, 31], np.uint64),
    )
    return LogRecord(tick=tick, inputs=inputs, rng=rng_state(np.random.default_rng(3)))


def assert_same_record(a: LogRecord, b: LogRecord) -> None:
    assert (a.tick, a.rng, a.inputs.now_ms) == (b.tick, b.rng, b.inputs.now_ms)
    for name in ("commands", "spawns", "despawns"):
        x, y = getattr(a.inputs, name), getattr(b.inputs, name)
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), name
    assert len(a.inputs.messages) == len(b.inputs.messages)
    for m, n in zip(a.inputs.messages, b.inputs.messages, strict=True):
        assert (type(m), m.src, m.dst, m.hlc) == (type(n), n.src, n.dst, n.hlc)
        if isinstance(m, Gossip):
            assert isinstance(n, Gossip) and m.ranges == n.ranges
        else:
            name = {Intent: "rows", Forward: "commands"}.get(type(m), "replies")
            assert getattr(m, name).tobytes() == getattr(n, name).tobytes()


def test_a_record_reads_back_as_written():
    record = every_kind_of_input()
    read = decode_records(encode_record(record) * 2)
    assert read.torn_bytes == 0 and len(read.records) == 2
    for back in read.records:
        assert_same_record(record, back)


def test_gossip_of_a_map_naming_its_zones_reads_back_with_its_owners_and_replays():
    named = RangeMap(floor_ranges(3).starts, version=4, owners=np.array([0, 7, 1]))
    gossip = Gossip(src=1, dst=ZONE, hlc=105, ranges=named)
    record = LogRecord(tick=1, inputs=StepInputs(now_ms=50, messages=(gossip,)))
    (back,) = decode_records(encode_record(record)).records
    assert_same_record(record, back)
    assert back.inputs.messages[0].ranges.zone_of_range.tolist() == [0, 7, 1]
    start = ZoneState.empty(ZONE, floor_ranges(3), capacity=8)
    live, _ = step(start, record.inputs, ZoneParams(zone=ZONE))
    replayed, _ = step(start, back.inputs, ZoneParams(zone=ZONE))
    assert live.ranges == named and state_hash(replayed) == state_hash(live)
    by_index = ZoneState.empty(ZONE, RangeMap(floor_ranges(3).starts, version=4), capacity=8)
    assert state_hash(by_index) != state_hash(replayed)  # the hash sees the owners


def test_an_idle_tick_is_a_small_record():
    assert len(encode_record(LogRecord(tick=1, inputs=StepInputs(now_ms=5)))) <= 64


def test_the_worker_rng_resumes_where_it_was():
    rng = np.random.default_rng(11)
    rng.random(5)
    rng.integers(0, 9, 3, dtype=np.uint32)  # leaves a buffered half word in the generator
    saved = rng_state(rng)
    twin = np.random.default_rng(0)
    rng_restore(twin, saved)
    assert twin.random(4).tolist() == rng.random(4).tolist()
    assert twin.integers(0, 1 << 30, 3).tolist() == rng.integers(0, 1 << 30, 3).tolist()


def test_a_torn_last_record_is_ignored_wherever_the_write_stopped():
    whole = encode_record(every_kind_of_input(7)) + encode_record(every_kind_of_input(8))
    last = encode_record(every_kind_of_input(9))
    for cut in range(1, len(last)):
        read = decode_records(whole + last[:cut])
        assert [r.tick for r in read.records] == [7, 8]
        assert read.torn_bytes == cut


def test_a_zero_filled_tail_is_torn_not_corrupt():
    """A machine crash can leave the file longer than what reached the disk, as zeros."""
    whole = encode_record(every_kind_of_input(7))
    read = decode_records(whole + bytes(300))
    assert [r.tick for r in read.records] == [7] and read.torn_bytes == 300


def test_a_corrupt_record_in_the_middle_is_an_error():
    records = [encode_record(every_kind_of_input(t)) for t in (7, 8, 9)]
    damaged = bytearray(records[1])
    damaged[40] ^= 0x10
    with pytest.raises(InputLogError, match="corrupt input log record at byte .* after tick 7"):
        decode_records(records[0] + bytes(damaged) + records[2])


def test_a_damaged_last_record_with_a_whole_frame_is_torn():
    records = [encode_record(every_kind_of_input(t)) for t in (7, 8)]
    damaged = bytearray(records[1])
    damaged[-1] ^= 0x01
    read = decode_records(records[0] + bytes(damaged))
    assert [r.tick for r in read.records] == [7] and read.torn_bytes == len(damaged)


def test_a_record_of_another_format_is_refused():
    body = bytearray(encode_record(every_kind_of_input())[12:])
    body[18] = 99  # the format byte after tick, now_ms and the message count
    frame = np.array([inputlog.RECORD_MAGIC, len(body), zlib.crc32(body)], "<u4").tobytes()
    with pytest.raises(InputLogError, match="format 99"):
        decode_records(frame + bytes(body))


def test_replay_refuses_a_missing_tick():
    state = ZoneState.empty(ZONE, floor_ranges(3), capacity=16)
    records = [LogRecord(1, StepInputs(now_ms=50)), LogRecord(3, StepInputs(now_ms=150))]
    with pytest.raises(InputLogError, match="jumps from tick 1 to 3"):
        replay(state, records, ZoneParams(zone=ZONE, capacity=16))


# --- replay is exact -------------------------------------------------------------------------


@dataclass
class Recorded:
    """Zone 0's run: its state after each tick (index = tick) and the log bytes of each tick."""

    params: ZoneParams
    states: list[ZoneState] = field(default_factory=list)
    log: list[bytes] = field(default_factory=list)
    kinds: set[str] = field(default_factory=set)


def record_run(seed: int, ticks: int, walkers: int) -> Recorded:
    """Run three zones with spawns, turns, moves, despawns and gossip, logging zone 0."""
    params = [ZoneParams(zone=z, hi=SMALL_MARKET, capacity=120, spawn_cap=90) for z in range(3)]
    net = SimNetwork(floor_ranges(3), params, np.random.default_rng(seed), Faults(max_skew_ms=5))
    crowd = Crowd(net, np.random.default_rng(seed + 1), turn_probability=0.1)
    rng = np.random.default_rng(seed + 2)
    run = Recorded(params=params[ZONE], states=[net.zones[ZONE]])

    def logged_step(state, inputs, zone_params):
        new, out = step(state, inputs, zone_params)
        if state.zone == ZONE:
            run.log.append(encode_record(LogRecord(tick=new.tick, inputs=inputs)))
            run.states.append(new)
            run.kinds |= _kinds(inputs)
        return new, out

    with mock.patch.object(simnet, "step", logged_step):
        crowd.record_spawns(net.run_tick(spawns=crowd.spawn(walkers)))
        for t in range(ticks - 1):
            commands = crowd.commands()
            commands[ZONE] = np.concatenate([commands.get(ZONE, _no_commands()), _moves(net, rng)])
            inputs = {"commands": commands, "despawns": _despawns(net, rng)}
            if t % 40 == 39:
                inputs["spawns"] = crowd.spawn(3)
            if t % 25 == 0:  # gossip: the same layout at a newer version
                gossip = Gossip(src=1, dst=ZONE, hlc=net.zones[1].hlc, ranges=_newer(net, t))
                net._send(gossip)
            crowd.record_spawns(net.run_tick(**inputs))
    return run


def _no_commands() -> np.ndarray:
    return np.zeros(0, COMMAND_DTYPE)


def _moves(net: SimNetwork, rng: np.random.Generator) -> np.ndarray:
    """MOVE commands for a few of zone 0's entities, some of them impossible (refused)."""
    s = net.zones[ZONE]
    live = np.flatnonzero(s.status == Status.OWNED)
    chosen = rng.choice(live, size=min(live.size, 3), replace=False) if live.size else live
    moves = np.zeros(chosen.size, COMMAND_DTYPE)
    moves["id"], moves["kind"] = s.id[chosen], CommandKind.MOVE
    moves["vec"] = s.pos[chosen] + rng.normal(0, 0.6, (chosen.size, 3)).astype(np.float32)
    return moves


def _despawns(net: SimNetwork, rng: np.random.Generator) -> dict[int, np.ndarray]:
    s = net.zones[ZONE]
    if rng.random() > 0.05:
        return {}
    live = s.id[s.status != Status.FREE]
    return {ZONE: live[:1].astype(np.uint64)}


def _newer(net: SimNetwork, t: int) -> RangeMap:
    return RangeMap(starts=net.ranges.starts, version=t + 1)


def _kinds(inputs: StepInputs) -> set[str]:
    kinds = {type(m).__name__ for m in inputs.messages if m.dst == ZONE}
    for name in ("commands", "spawns", "despawns"):
        if len(getattr(inputs, name)):
            kinds.add(name)
    return kinds


def replayed_hash(run: Recorded, snapshot_tick: int) -> str:
    """The digest reached from the snapshot at `snapshot_tick` and the log after it."""
    snapshot = state_from_bytes(state_to_bytes(run.states[snapshot_tick]))
    read = decode_records(b"".join(run.log[snapshot_tick:]))
    assert read.torn_bytes == 0
    return state_hash(replay(snapshot, read.records, run.params))


@st.composite
def recorded_runs(draw):
    ticks = draw(st.integers(100, 200))
    run = record_run(draw(st.integers(0, 2**31)), ticks, draw(st.integers(60, 160)))
    points = draw(st.lists(st.integers(0, ticks - 1), min_size=1, max_size=3))
    return run, points


@PROPERTY
@given(recorded_runs())
def test_snapshot_and_replay_reach_the_state_of_the_run(case):
    run, points = case
    final = state_hash(run.states[-1])
    for point in points:
        assert replayed_hash(run, point) == final, f"replay from tick {point} diverged"


@CONTROL
@given(recorded_runs())
def test_control_a_step_with_unseeded_noise_is_caught(case):
    run, points = case

    def noisy_step(state, inputs, params):
        new, out = step(state, inputs, params)
        live = np.flatnonzero(new.status)
        new.pos[live] += np.random.default_rng().normal(0, 1e-3, (live.size, 3)).astype(np.float32)
        return new, out

    final = state_hash(run.states[-1])
    with mock.patch.object(inputlog, "step", noisy_step):
        assert all(replayed_hash(run, point) != final for point in points)


def test_the_recorded_runs_carry_every_kind_of_input():
    """The property's runs are not vacuous: zone 0 steps on every kind of input."""
    run = record_run(seed=4, ticks=200, walkers=140)
    expected = {"commands", "spawns", "despawns", "Intent", "Ack", "Gossip"}
    assert expected <= run.kinds, f"missing {expected - run.kinds}"
    assert run.states[-1].live_count() > 0
