"""The game store on SQLite and PostgreSQL: snapshots, checkpoints, critical events, one writer."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from host.commitlog import CriticalConflict, CriticalEvent
from host.persistence import PersistenceError, game_store_open
from tests.host.store_harness import StorePlace, store_place
from tests.subprocesses import REPO_ROOT


@pytest.fixture(params=["sqlite", "postgres"])
def place(request, tmp_path: Path):
    with store_place(request, tmp_path) as found:
        yield found


@pytest.fixture
def store(place: StorePlace):
    opened = place.open()
    yield opened
    opened.close()


def ingest(
    store, key: str, revision: int, state: dict, *, scope="character", instance_id=1, at_ms=None
):
    return store.snapshot_ingest(
        scope=scope,
        key=key,
        instance_id=instance_id,
        revision=revision,
        at_ms=revision * 10 if at_ms is None else at_ms,
        state=state,
    )


def test_the_same_revision_twice_is_taken_once(store) -> None:
    assert ingest(store, "ada", 1, {"carries": ["lamp"]}) is True
    assert ingest(store, "ada", 1, {"carries": ["other"]}) is False
    assert store.character_load("ada") == {"carries": ["lamp"]}


def test_an_older_revision_after_a_newer_one_is_ignored(store) -> None:
    assert ingest(store, "ada", 5, {"v": 5})
    assert ingest(store, "ada", 4, {"v": 4}) is False
    assert store.character_load("ada") == {"v": 5}


def test_an_older_revision_than_the_stored_one_is_ignored_after_reopening(place) -> None:
    first = place.open()
    ingest(first, "ada", 5, {"v": 5})
    first.checkpoint()
    first.close()
    second = place.open()
    try:
        assert ingest(second, "ada", 3, {"v": 3}) is False
        assert ingest(second, "ada", 6, {"v": 6}) is True
        assert second.character_load("ada") == {"v": 6}
    finally:
        second.close()


def test_checkpoint_writes_only_what_changed_since_the_last_one(store) -> None:
    ingest(store, "ada", 1, {"v": 1})
    ingest(store, "bob", 1, {"v": 1})
    ingest(store, "state", 1, {"open": True}, scope="instance", instance_id=7)
    assert store.checkpoint() == 3
    assert store.checkpoint() == 0
    ingest(store, "ada", 2, {"v": 2})
    ingest(store, "bob", 1, {"v": "again"})  # not newer: nothing to write
    assert store.checkpoint() == 1


def test_a_reopened_store_loads_the_checkpointed_state(place) -> None:
    first = place.open()
    ingest(first, "ada", 3, {"name": "Ada", "colour": "#aa3300", "carries": ["lamp"]})
    ingest(first, "state", 2, {"stock": {"lamp": 4}}, scope="instance", instance_id=7)
    first.checkpoint()
    first.close()
    second = place.open()
    try:
        assert second.character_load("ada") == {
            "name": "Ada",
            "colour": "#aa3300",
            "carries": ["lamp"],
        }
        assert second.instance_load(7, "state") == {"stock": {"lamp": 4}}
        assert second.instance_load(8, "state") is None
        assert second.character_load("nobody") is None
    finally:
        second.close()


def test_a_crash_loses_what_was_not_checkpointed_but_no_critical_event(place) -> None:
    first = place.open()
    ingest(first, "ada", 1, {"v": 1})
    first.checkpoint()
    ingest(first, "ada", 2, {"v": 2})
    ingest(first, "bob", 1, {"v": 1})
    first.critical_record(event_id="t-1", instance_id=1, kind="transfer", payload={"x": 1}, at_ms=5)
    first.close()  # no checkpoint: as if the process had died here
    second = place.open()
    try:
        assert second.character_load("ada") == {"v": 1}
        assert second.character_load("bob") is None
        assert [e.event_id for e in second.critical_events()] == ["t-1"]
    finally:
        second.close()


def test_load_prefers_memory_when_newer_than_the_database(store) -> None:
    ingest(store, "ada", 1, {"v": 1})
    store.checkpoint()
    ingest(store, "ada", 2, {"v": 2})
    ingest(store, "state", 9, {"v": 9}, scope="instance", instance_id=3)
    assert store.character_load("ada") == {"v": 2}
    assert store.instance_load(3, "state") == {"v": 9}


def test_a_character_loads_as_the_instance_that_reported_it_last(store) -> None:
    # Revisions count per instance: the destination of a transfer starts again at 1.
    ingest(store, "ada", 40, {"in": "first market"}, instance_id=1, at_ms=1_000)
    ingest(store, "ada", 1, {"in": "second market"}, instance_id=2, at_ms=2_000)
    assert store.character_load("ada") == {"in": "second market"}
    store.checkpoint()
    assert store.character_load("ada") == {"in": "second market"}


def test_a_critical_event_is_new_then_alike_then_a_conflict(store) -> None:
    record = {
        "event_id": "transfer:9:committed",
        "instance_id": 2,
        "kind": "transfer",
        "at_ms": 100,
    }
    assert store.critical_record(**record, payload={"character": "ada", "to": 2}) is True
    assert store.critical_record(**record, payload={"to": 2, "character": "ada"}) is False
    with pytest.raises(CriticalConflict, match="transfer:9:committed"):
        store.critical_record(**record, payload={"character": "ada", "to": 3})
    assert store.critical_events() == [
        CriticalEvent("transfer:9:committed", 2, "transfer", {"character": "ada", "to": 2}, 100)
    ]


def test_critical_events_come_back_in_recording_order_and_filtered(store) -> None:
    for number, (kind, instance_id) in enumerate([("b", 1), ("a", 2), ("b", 2), ("a", 1)]):
        store.critical_record(
            event_id=f"e{9 - number}", instance_id=instance_id, kind=kind, payload={}, at_ms=number
        )
    assert [e.event_id for e in store.critical_events()] == ["e9", "e8", "e7", "e6"]
    assert [e.event_id for e in store.critical_events(kind="b")] == ["e9", "e7"]
    assert [e.event_id for e in store.critical_events(instance_id=2)] == ["e8", "e7"]
    assert [e.event_id for e in store.critical_events(kind="a", instance_id=1)] == ["e6"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scope": "market"}, "scope must be one of character, instance, got 'market'"),
        ({"revision": -1}, "revision must be >= 0, got -1"),
        ({"revision": "3"}, "revision must be a whole number, got '3'"),
        ({"instance_id": True}, "instance_id must be a whole number, got True"),
        ({"key": ""}, "key must be a non-empty string"),
        ({"at_ms": -5}, "at_ms must be >= 0, got -5"),
        ({"state": {"when": object()}}, "state of character 'ada' is not JSON-serialisable"),
        ({"state": {"x": float("nan")}}, "state of character 'ada' is not JSON-serialisable"),
        ({"state": [1, 2]}, "state of character 'ada' must be a JSON object"),
    ],
)
def test_a_bad_snapshot_is_refused_with_what_was_wrong(store, change, message) -> None:
    snapshot = {
        "scope": "character",
        "key": "ada",
        "instance_id": 1,
        "revision": 1,
        "at_ms": 1,
        "state": {},
    }
    with pytest.raises(PersistenceError) as caught:
        store.snapshot_ingest(**{**snapshot, **change})
    assert message in str(caught.value)
    assert store.checkpoint() == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"event_id": ""}, "event_id must be a non-empty string"),
        ({"kind": None}, "kind must be a non-empty string"),
        ({"instance_id": -1}, "instance_id must be >= 0"),
        ({"payload": {"x": {1, 2}}}, "payload of critical event 'e1' is not JSON-serialisable"),
    ],
)
def test_a_bad_critical_event_is_refused_with_what_was_wrong(store, change, message) -> None:
    event = {"event_id": "e1", "instance_id": 1, "kind": "transfer", "payload": {}, "at_ms": 1}
    with pytest.raises(PersistenceError) as caught:
        store.critical_record(**{**event, **change})
    assert message in str(caught.value)
    assert store.critical_events() == []


def test_a_newer_schema_is_refused(place) -> None:
    place.open().close()
    update = "UPDATE store_meta SET value = '2' WHERE name = 'schema_version'"
    if place.url is None:
        with sqlite3.connect(place.data_dir / "host.sqlite3") as connection:
            connection.execute(update)
    else:
        with psycopg.connect(place.url, autocommit=True) as connection:
            connection.execute(update)
    with pytest.raises(PersistenceError, match="schema version 2, newer than this code's 1"):
        place.open()


def test_a_url_that_is_not_postgresql_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PersistenceError, match="FABRIC_HOST_DATABASE_URL must be a postgresql"):
        game_store_open(url="mysql://db/host", data_dir=tmp_path)


def test_a_search_path_without_an_existing_schema_is_refused(postgres_url: str, tmp_path) -> None:
    joiner = "&" if "?" in postgres_url else "?"
    url = f"{postgres_url}{joiner}options=-csearch_path%3Dno_such_schema_here"
    with pytest.raises(PersistenceError, match="no schema of the search path exists"):
        game_store_open(url=url, data_dir=tmp_path)


def test_an_unreachable_postgresql_is_refused_with_the_reason(tmp_path: Path) -> None:
    url = "postgresql://postgres@127.0.0.1:1/test?connect_timeout=5"
    with pytest.raises(PersistenceError, match="cannot connect to the game store's PostgreSQL"):
        game_store_open(url=url, data_dir=tmp_path)


def test_sqlite_runs_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    store = game_store_open(url=None, data_dir=tmp_path)
    try:
        assert store._connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "host.sqlite3") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _open_in_another_process(place: StorePlace) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys; from pathlib import Path; from host.persistence import game_store_open\n"
        "try:\n"
        "    game_store_open(url=sys.argv[1] or None, data_dir=Path(sys.argv[2])).close()\n"
        "except ValueError as error:\n"
        "    print(error); sys.exit(3)\n"
        "print('opened')\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, place.url or "", str(place.data_dir)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_second_writer_process_is_refused_with_the_first_ones_pid(place) -> None:
    store = place.open()
    try:
        refused = _open_in_another_process(place)
        assert refused.returncode == 3, refused.stderr
        assert f"is already written by process {os.getpid()}" in refused.stdout
    finally:
        store.close()
    opened = _open_in_another_process(place)
    assert (opened.returncode, opened.stdout.strip()) == (0, "opened"), opened.stderr
