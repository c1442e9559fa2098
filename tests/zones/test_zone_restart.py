"""A killed zone worker resumes from its snapshot and input log exactly where it was.

"Killed" here means the worker object is dropped without its final snapshot:
its descriptors and lock are released as the kernel would release them, and
nothing else is written. A twin worker without a data directory runs the same
ticks alongside as the reference: persistence must not change the simulation.
"""

import numpy as np
import pytest

from market.services import DEMO_BOOTHS
from zones import worker as worker_module
from zones.core.inputlog import InputLogError, LogRecord, encode_record, state_hash
from zones.core.step import StepInputs
from zones.core.wire import COMMAND_DTYPE, SPAWN_DTYPE, CommandKind, RowFlag
from zones.inputlog import InputLog, Recovery
from zones.worker import ZoneWorker

T0 = 1_800_000_000_000
ZONE = 0
VISITOR = 1 << 41


def zone_worker(data_dir, walkers=60, market_id=31):
    return ZoneWorker(
        market_id=market_id,
        zones=[ZONE],
        booths=DEMO_BOOTHS,
        data_dir=data_dir,
        walkers=walkers,
        seed=9,
    )


def kill(worker):
    """Drop the worker as a SIGKILL would: no final snapshot, just the kernel's cleanup."""
    for hz in worker.hosted.values():
        hz.log.close()
        hz.store.close()


def visitor_traffic(worker, t):
    """A visitor joins at tick 0 and steers every tick, as a gateway would send it."""
    hz = worker.hosted[ZONE]
    if t == 0:
        spawn = np.zeros(1, SPAWN_DTYPE)
        spawn["id"], spawn["pos"], spawn["kind"] = VISITOR, (10, 1, 10), RowFlag.VISITOR_ROOT
        worker.accept(hz, {"type": "zone.spawn", "gateway": "", "rows": spawn.tobytes()})
    command = np.zeros(1, COMMAND_DTYPE)
    command["id"], command["kind"] = VISITOR, CommandKind.VELOCITY
    command["vec"] = (np.cos(t / 7), 0.0, np.sin(t / 7))
    alive = np.array([VISITOR], "<u8").tobytes()
    message = {"type": "zone.inputs", "gateway": "g", "commands": command.tobytes()}
    worker.accept(hz, {**message, "alive": alive})


async def run_both(ticks, start, *workers):
    for t in range(start, start + ticks):
        for w in workers:
            visitor_traffic(w, t)
            await w.tick(T0 + 50 * t)


def zone_hash(worker):
    return state_hash(worker.hosted[ZONE].state)


@pytest.fixture
def short_snapshots(monkeypatch):
    monkeypatch.setattr(worker_module, "SNAPSHOT_EVERY_TICKS", 40)


@pytest.mark.asyncio
async def test_a_killed_zone_resumes_at_the_tick_it_last_logged(tmp_path, short_snapshots):
    reference, first = zone_worker(None, market_id=30), zone_worker(tmp_path)
    await run_both(130, 0, reference, first)  # snapshots at 0, 40, 80, 120; 10 ticks logged after
    assert zone_hash(first) == zone_hash(reference)
    kill(first)

    second = zone_worker(tmp_path)
    hz = second.hosted[ZONE]
    assert hz.state.tick == 130
    assert zone_hash(second) == zone_hash(reference)
    assert not hz.spawns, "a resumed zone must not spawn its walkers again"
    # the walkers' steering draws go on exactly as if the worker had never stopped
    for t in range(130, 190):
        await run_both(1, t, reference, second)
        assert zone_hash(second) == zone_hash(reference), f"diverged at tick {t + 1}"


@pytest.mark.asyncio
async def test_control_a_zone_that_skips_its_log_resumes_behind(
    tmp_path, short_snapshots, monkeypatch
):
    reference, first = zone_worker(None, market_id=30), zone_worker(tmp_path)
    await run_both(130, 0, reference, first)
    kill(first)
    monkeypatch.setattr(InputLog, "recover", lambda self, tick: Recovery())
    second = zone_worker(tmp_path)
    assert second.hosted[ZONE].state.tick == 120  # the snapshot alone: ten ticks lost
    assert zone_hash(second) != zone_hash(reference)


@pytest.mark.asyncio
async def test_segments_older_than_the_oldest_snapshot_are_deleted(tmp_path, short_snapshots):
    worker = zone_worker(tmp_path)
    await run_both(210, 0, worker)
    hz = worker.hosted[ZONE]
    snapshots = [int(p.stem) for p in hz.store.revisions()]
    segments = [base for base, _ in hz.log.segments()]
    assert snapshots == [120, 160, 200]
    assert segments == [120, 160, 200]  # each kept snapshot can replay to the last tick
    kill(worker)


@pytest.mark.asyncio
async def test_a_torn_last_record_is_dropped_and_the_zone_resumes_before_it(tmp_path):
    reference, first = zone_worker(None, market_id=30), zone_worker(tmp_path)
    await run_both(30, 0, reference, first)
    hz = first.hosted[ZONE]
    kill(first)
    _, segment = hz.log.segments()[-1]
    torn = encode_record(LogRecord(tick=31, inputs=StepInputs(now_ms=T0 + 50 * 30)))
    with open(segment, "ab") as log:
        log.write(torn[:-5])
    second = zone_worker(tmp_path)
    assert second.hosted[ZONE].state.tick == 30
    assert zone_hash(second) == zone_hash(reference)
    # the restart began a fresh segment: the torn bytes are never buried mid-log
    assert [base for base, _ in second.hosted[ZONE].log.segments()] == [0, 30]
    kill(second)
    assert zone_worker(tmp_path).hosted[ZONE].state.tick == 30


@pytest.mark.asyncio
async def test_a_corrupt_record_in_the_middle_stops_the_zone(tmp_path):
    first = zone_worker(tmp_path)
    await run_both(30, 0, first)
    hz = first.hosted[ZONE]
    kill(first)
    _, segment = hz.log.segments()[-1]
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0xFF
    segment.write_bytes(bytes(data))
    with pytest.raises(InputLogError, match="corrupt input log record"):
        zone_worker(tmp_path)


@pytest.mark.asyncio
async def test_an_idle_zone_writes_one_small_record_a_tick_and_no_snapshot(tmp_path):
    worker = zone_worker(tmp_path, walkers=0)
    hz = worker.hosted[ZONE]
    written, files = hz.store.written, sorted(p.name for p in hz.store.dir.iterdir())
    ticks = worker_module.SNAPSHOT_EVERY_TICKS - 1
    for t in range(ticks):
        await worker.tick(T0 + 50 * t)
    idle = len(encode_record(LogRecord(tick=1, inputs=StepInputs(now_ms=T0))))
    assert hz.log.writes == ticks  # one os.write a tick
    assert hz.log.bytes_written == ticks * idle
    assert idle <= 64
    assert hz.store.written == written  # no snapshot between the periodic ones
    assert sorted(p.name for p in hz.store.dir.iterdir()) == files
    await worker.tick(T0 + 50 * ticks)
    assert hz.store.written == written + 1  # the periodic snapshot
    kill(worker)


@pytest.mark.asyncio
async def test_the_zones_of_a_worker_take_turns_to_snapshot(tmp_path, short_snapshots):
    """Each zone snapshots once a period, and never two in one tick: the tick that
    snapshots them all would publish every zone's rows late."""
    zones = list(range(len(DEMO_BOOTHS)))
    worker = ZoneWorker(
        market_id=32, zones=zones, booths=DEMO_BOOTHS, data_dir=tmp_path, walkers=0, seed=9
    )
    period = worker_module.SNAPSHOT_EVERY_TICKS
    taken: dict[int, list[int]] = {z: [] for z in zones}
    for t in range(2 * period):
        before = {z: worker.hosted[z].store.written for z in zones}
        await worker.tick(T0 + 50 * t)
        for z in zones:
            if worker.hosted[z].store.written > before[z]:
                taken[z].append(t)
    ticks = [t for z in zones for t in taken[z]]
    assert len(ticks) == len(set(ticks)), taken  # never two zones in one tick
    assert all(len(taken[z]) == 2 and taken[z][1] - taken[z][0] == period for z in zones), taken
    kill(worker)
