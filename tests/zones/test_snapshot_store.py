"""Zone snapshots on disk: one writer per zone, newest three kept (zones/snapshots.py)."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.subprocesses import REPO_ROOT
from zones.core.ranges import floor_ranges
from zones.core.snapshot import state_to_bytes
from zones.core.state import Status, ZoneState
from zones.snapshots import KEEP, SnapshotStore, ZoneLocked

ZONE = 2


def state_at(tick: int, zone: int = ZONE, marker: float = 0.0) -> ZoneState:
    """A small state of `zone` at `tick`, with one owned entity standing at x = `marker`."""
    state = ZoneState.empty(zone, floor_ranges(3), capacity=8, hlc=1000 + tick)
    state.tick = tick
    state.status[0], state.id[0] = Status.OWNED, 42
    state.pos[0] = (marker, 1.0, 5.0)
    state.decisions.record(42, tick, tick, 1000 + tick)
    return state


@pytest.fixture
def store(tmp_path):
    store = SnapshotStore(tmp_path, ZONE)
    yield store
    store.close()


def names(store: SnapshotStore) -> list[str]:
    return [path.name for path in store.revisions()]


def test_a_written_state_is_the_latest_and_reads_back_whole(store, tmp_path):
    assert store.latest() is None
    state = state_at(7, marker=3.5)
    assert store.write(state) is True
    assert store.dir == tmp_path / "zone-02"
    assert names(store) == ["000000000007.snap"]
    latest = store.latest()
    assert latest is not None
    assert (latest.zone, latest.tick, latest.hlc) == (ZONE, 7, 1007)
    np.testing.assert_array_equal(latest.pos, state.pos)
    assert latest.decisions.get(42) == (7, 7)
    assert store.written == 1
    assert not list(store.dir.glob("*.tmp"))  # written under a temporary name, then renamed


def test_writing_a_revision_that_is_on_disk_already_is_a_no_op(store):
    assert store.write(state_at(5, marker=1.0)) is True
    path = store.path(5)
    before, stat = path.read_bytes(), path.stat()
    assert store.write(state_at(5, marker=99.0)) is False  # same revision, other content
    assert path.read_bytes() == before
    assert path.stat().st_mtime_ns == stat.st_mtime_ns and path.stat().st_ino == stat.st_ino
    assert store.written == 1
    assert store.latest().pos[0, 0] == 1.0


def test_only_the_newest_three_snapshots_are_kept(store):
    assert KEEP == 3
    for tick in (1, 2, 3, 4, 10, 6):  # revisions sort by number, not by the order written
        store.write(state_at(tick))
    assert names(store) == ["000000000004.snap", "000000000006.snap", "000000000010.snap"]
    assert store.latest().tick == 10


def test_an_unreadable_newest_snapshot_is_skipped_for_the_one_before(store):
    store.write(state_at(1, marker=1.0))
    store.write(state_at(2, marker=2.0))
    store.write(state_at(3, marker=3.0))
    store.path(3).write_bytes(b"torn write")
    data = state_to_bytes(state_at(2, marker=2.0))
    store.path(2).write_bytes(data[: len(data) // 2])  # truncated too
    latest = store.latest()
    assert latest is not None and latest.tick == 1 and latest.pos[0, 0] == 1.0
    store.path(1).write_bytes(b"")
    assert store.latest() is None


def test_a_snapshot_of_another_zone_is_skipped(store):
    store.write(state_at(1))
    store.path(9).write_bytes(state_to_bytes(state_at(9, zone=ZONE + 1)))
    assert store.latest().tick == 1


def test_a_second_store_for_the_same_zone_is_refused_naming_the_holder(store, tmp_path):
    with pytest.raises(ZoneLocked, match=f"zone {ZONE} is already run by pid {os.getpid()}$"):
        SnapshotStore(tmp_path, ZONE)
    # the refused store neither took the lock nor rewrote the holder's pid
    assert (store.dir / "writer.lock").read_text() == f"pid {os.getpid()}"
    other = SnapshotStore(tmp_path, ZONE + 1)  # other zones are free
    other.close()
    assert store.write(state_at(4)) is True  # the holder writes on


def test_after_close_another_store_can_open_the_zone(tmp_path):
    first = SnapshotStore(tmp_path, ZONE)
    first.write(state_at(3))
    first.close()
    first.close()  # twice is harmless
    second = SnapshotStore(tmp_path, ZONE)
    try:
        assert second.latest().tick == 3
        assert second.write(state_at(4)) is True
    finally:
        second.close()


def test_a_stale_pid_in_the_lock_file_does_not_hold_the_zone(tmp_path):
    lock = tmp_path / "zone-02" / "writer.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text("pid 999999999")  # a holder that died without cleaning up
    store = SnapshotStore(tmp_path, ZONE)
    try:
        assert lock.read_text() == f"pid {os.getpid()}"
    finally:
        store.close()


HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from zones.snapshots import SnapshotStore, ZoneLocked

    try:
        store = SnapshotStore(Path(sys.argv[1]), int(sys.argv[2]))
    except ZoneLocked as exc:
        print("locked:", exc, flush=True)
        sys.exit(3)
    print("holding", flush=True)
    sys.stdin.read()  # hold the zone until the test closes our stdin
    store.close()
    print("released", flush=True)
    """
)


def holder(tmp_path, zone: int = ZONE) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path), str(zone)],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_zone_held_by_another_process_is_refused_naming_that_process(tmp_path):
    child = holder(tmp_path)
    try:
        assert child.stdout.readline().strip() == "holding", child.stderr.read()
        with pytest.raises(ZoneLocked, match=f"already run by pid {child.pid}$"):
            SnapshotStore(tmp_path, ZONE)
    finally:
        out, err = child.communicate("", timeout=30)
    assert child.returncode == 0, err
    assert out.strip() == "released"
    store = SnapshotStore(tmp_path, ZONE)  # the child let go: the zone is free again
    store.close()


def test_another_process_is_refused_a_zone_this_one_holds(store, tmp_path):
    child = holder(tmp_path)
    out, err = child.communicate("", timeout=30)
    assert child.returncode == 3, (out, err)
    assert out.strip() == f"locked: zone {ZONE} is already run by pid {os.getpid()}"


def test_a_zone_held_by_a_process_that_was_killed_is_free_again(tmp_path):
    child = holder(tmp_path)
    assert child.stdout.readline().strip() == "holding", child.stderr.read()
    child.kill()
    child.communicate(timeout=30)
    store = SnapshotStore(tmp_path, ZONE)  # the kernel dropped the dead holder's lock
    store.close()
