"""Zone state on disk belongs to one market of one database, and no other resumes it.

Ids restart at 1 in every database: an embedded run (SQLite) and a distributed one
(PostgreSQL) under the same data folder both serve a market 1.
"""

import logging
import uuid

import pytest

from market.services import DEMO_BOOTHS
from tests.zones.test_snapshot_store import ZONE, state_at
from zones.serve import snapshot_dir
from zones.snapshots import ASIDE, MARKER, SnapshotStore, market_state_dir
from zones.worker import ZoneWorker

T0 = 1_800_000_000_000


def worker_for(identity: str) -> ZoneWorker:
    return ZoneWorker(
        market_id=1,
        zones=[0],
        booths=DEMO_BOOTHS,
        data_dir=snapshot_dir(1, identity),
        walkers=30,
    )


def stop(worker: ZoneWorker) -> None:
    for hz in worker.hosted.values():
        worker._snapshot(hz)
        hz.log.close()
        hz.store.close()


@pytest.mark.asyncio
async def test_a_market_on_another_database_does_not_resume_the_zones_of_the_first(
    tmp_path, settings, caplog
):
    settings.DATA_DIR = str(tmp_path)
    embedded, distributed = str(uuid.uuid4()), str(uuid.uuid4())
    first = worker_for(embedded)
    for t in range(60):
        await first.tick(T0 + 50 * t)
    stop(first)

    with caplog.at_level(logging.WARNING, logger="zones.snapshots"):
        other = worker_for(distributed)
    assert other.hosted[0].state.tick == 0  # a fresh start: its own walkers, spawned anew
    assert other.hosted[0].spawns
    assert f"market-1-{embedded}" in caplog.text and "not resumed" in caplog.text
    stop(other)

    again = worker_for(embedded)  # and the first market still finds its own
    assert again.hosted[0].state.tick == 60
    stop(again)


def test_the_directories_of_two_markets_numbered_alike_differ():
    root = snapshot_dir(1, "a").parent
    assert market_state_dir(root, 1, "a") != market_state_dir(root, 1, "b")
    assert market_state_dir(root, 1, "a").name == "market-1-a"


def test_a_market_without_an_identity_is_refused(tmp_path):
    with pytest.raises(ValueError, match="identity"):
        market_state_dir(tmp_path, 1, "")


def test_state_of_markets_with_other_ids_is_not_mentioned(tmp_path, caplog):
    (tmp_path / "market-10-x").mkdir()
    (tmp_path / "market-2-y").mkdir()
    with caplog.at_level(logging.WARNING, logger="zones.snapshots"):
        market_state_dir(tmp_path, 1, "z")
    assert not caplog.records


def test_a_zone_directory_written_for_another_market_is_moved_aside(tmp_path, caplog):
    theirs, ours = tmp_path / "market-1-theirs", tmp_path / "market-1-ours"
    store = SnapshotStore(theirs, ZONE)
    store.write(state_at(7))
    store.close()
    ours.mkdir()
    (theirs / f"zone-{ZONE:02d}").rename(ours / f"zone-{ZONE:02d}")  # moved by hand

    with caplog.at_level(logging.ERROR, logger="zones.snapshots"):
        store = SnapshotStore(ours, ZONE)
    assert store.latest() is None  # a fresh start
    assert (store.dir / MARKER).read_text().strip() == "market-1-ours"
    (aside,) = store.dir.glob(f"{ASIDE}*")
    assert (aside / "000000000007.snap").exists()  # kept whole, nothing lost
    assert (aside / MARKER).read_text().strip() == "market-1-theirs"
    assert "market-1-theirs" in caplog.text and "starting fresh" in caplog.text
    store.write(state_at(9))
    assert store.latest().tick == 9
    store.close()


def test_a_zone_directory_that_names_no_market_is_moved_aside(tmp_path, caplog):
    """State written before zone state named its market cannot be told to be ours."""
    root = tmp_path / "market-1-ours"
    store = SnapshotStore(root, ZONE)
    store.write(state_at(5))
    store.close()
    (store.dir / MARKER).unlink()

    with caplog.at_level(logging.ERROR, logger="zones.snapshots"):
        store = SnapshotStore(root, ZONE)
    assert store.latest() is None
    assert "a market it did not name" in caplog.text
    store.close()


def test_a_zone_directory_of_this_market_is_resumed_as_it_is(tmp_path, caplog):
    root = tmp_path / "market-1-ours"
    store = SnapshotStore(root, ZONE)
    store.write(state_at(5))
    store.close()
    with caplog.at_level(logging.ERROR, logger="zones.snapshots"):
        store = SnapshotStore(root, ZONE)
    assert store.latest().tick == 5
    assert not list(store.dir.glob(f"{ASIDE}*")) and not caplog.records
    store.close()
