"""The game store: the orchestrator's one writer of characters, instance state and critical events.

Market processes send snapshots (a character's state, an instance's persistent state),
each with a revision. `snapshot_ingest` keeps them in memory; `checkpoint` writes the
ones that changed in one transaction, so a crash loses at most what came in since the
last checkpoint. Critical events (transfer commit points, giveaway claims) skip the
memory: `critical_record` returns only once the event is committed to disk.

`game_store_open` picks the backend: SQLite in WAL mode under the data directory by
default, PostgreSQL when given a `postgresql://` URL. Both speak the same SQL here; a
backend only supplies its connection, its transactions and its writer lock.
"""

import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from host.commitlog import CriticalConflict, CriticalEvent

SCHEMA_VERSION = 1
SCOPES = ("character", "instance")
DATABASE_URL_VARIABLE = "FABRIC_HOST_DATABASE_URL"


class PersistenceError(ValueError):
    """The game store cannot do what was asked; the message says why."""


class Cursor(Protocol):
    """What a backend's transaction hands out: `?` placeholders on every backend."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> "Cursor": ...
    def fetchone(self) -> tuple[Any, ...] | None: ...
    def fetchall(self) -> list[tuple[Any, ...]]: ...


@dataclass(frozen=True)
class _Snapshot:
    revision: int
    at_ms: int
    state: str  # canonical JSON


# The schema every backend creates; {sequence} is the backend's auto-numbered key.
SCHEMA_TABLES = (
    """CREATE TABLE characters (
        character_id TEXT NOT NULL, instance_id BIGINT NOT NULL, revision BIGINT NOT NULL,
        at_ms BIGINT NOT NULL, state TEXT NOT NULL, PRIMARY KEY (character_id, instance_id))""",
    """CREATE TABLE instance_state (
        instance_id BIGINT NOT NULL, state_key TEXT NOT NULL, revision BIGINT NOT NULL,
        at_ms BIGINT NOT NULL, state TEXT NOT NULL, PRIMARY KEY (instance_id, state_key))""",
    """CREATE TABLE critical_events (
        seq {sequence}, event_id TEXT NOT NULL UNIQUE, instance_id BIGINT NOT NULL,
        kind TEXT NOT NULL, payload TEXT NOT NULL, at_ms BIGINT NOT NULL)""",
    """CREATE TABLE giveaways (
        giveaway_id TEXT PRIMARY KEY, market_id BIGINT NOT NULL, booth TEXT NOT NULL,
        items INTEGER NOT NULL CHECK (items >= 1), created_ms BIGINT NOT NULL)""",
    # One row per item handed out: the primary key makes a second holder of an item
    # impossible, the unique keys a second item for a character or a claim.
    """CREATE TABLE giveaway_claims (
        giveaway_id TEXT NOT NULL REFERENCES giveaways (giveaway_id),
        item INTEGER NOT NULL CHECK (item >= 0), character_id TEXT NOT NULL,
        claim_id TEXT NOT NULL, at_ms BIGINT NOT NULL, PRIMARY KEY (giveaway_id, item),
        UNIQUE (giveaway_id, character_id), UNIQUE (giveaway_id, claim_id))""",
)

_UPSERT = {
    "character": """INSERT INTO characters (character_id, instance_id, revision, at_ms, state)
        VALUES (?, ?, ?, ?, ?) ON CONFLICT (character_id, instance_id) DO UPDATE
        SET revision = excluded.revision, at_ms = excluded.at_ms, state = excluded.state
        WHERE excluded.revision > characters.revision""",
    "instance": """INSERT INTO instance_state (state_key, instance_id, revision, at_ms, state)
        VALUES (?, ?, ?, ?, ?) ON CONFLICT (instance_id, state_key) DO UPDATE
        SET revision = excluded.revision, at_ms = excluded.at_ms, state = excluded.state
        WHERE excluded.revision > instance_state.revision""",
}
_STORED_REVISION = {
    "character": "SELECT revision FROM characters WHERE character_id = ? AND instance_id = ?",
    "instance": "SELECT revision FROM instance_state WHERE state_key = ? AND instance_id = ?",
}


def json_text(value: Any, *, what: str) -> str:
    """`value` as canonical JSON (sorted keys, no NaN), or a PersistenceError naming `what`."""
    if not isinstance(value, dict):
        raise PersistenceError(f"{what} must be a JSON object (a dict), got {type(value).__name__}")
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise PersistenceError(f"{what} is not JSON-serialisable: {error}") from None


def whole_number(value: Any, *, what: str, least: int = 0) -> int:
    """`value` if it is an int >= `least` (not a bool), else a PersistenceError naming `what`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise PersistenceError(f"{what} must be a whole number, got {value!r}")
    if value < least:
        raise PersistenceError(f"{what} must be >= {least}, got {value}")
    return value


def name_text(value: Any, *, what: str) -> str:
    """`value` if it is a non-empty string of at most 200 characters, else a PersistenceError."""
    if not isinstance(value, str) or not value or len(value) > 200:
        raise PersistenceError(
            f"{what} must be a non-empty string of at most 200 characters, got {value!r}"
        )
    return value


def critical_insert(
    cursor: Cursor, *, event_id: str, instance_id: int, kind: str, payload: str, at_ms: int
) -> bool:
    """Insert a critical event inside the caller's transaction: True if new, False if alike."""
    row = cursor.execute(
        "SELECT instance_id, kind, payload FROM critical_events WHERE event_id = ?", (event_id,)
    ).fetchone()
    if row is not None:
        if (int(row[0]), row[1], row[2]) == (instance_id, kind, payload):
            return False
        raise CriticalConflict(
            f"critical event {event_id!r} was recorded as {row[1]} of instance {row[0]} with"
            f" payload {row[2]}; refusing {kind} of instance {instance_id} with payload {payload}"
        )
    cursor.execute(
        "INSERT INTO critical_events (event_id, instance_id, kind, payload, at_ms)"
        " VALUES (?, ?, ?, ?, ?)",
        (event_id, instance_id, kind, payload, at_ms),
    )
    return True


class GameStore(ABC):
    """The shared logic of both backends; a backend supplies `transaction` and `close`.

    Every method may be called from several threads: `lock` serialises them, so the
    in-memory snapshots and the one database connection are never used at once.
    """

    where: str  # the database, for messages
    row_lock: str = ""  # appended to a SELECT that must lock its row until commit
    sequence_column = "INTEGER PRIMARY KEY AUTOINCREMENT"  # critical_events' recording order

    def __init__(self) -> None:
        self.lock = threading.RLock()
        # (scope, key) -> instance id -> the newest snapshot not yet checkpointed
        self._dirty: dict[tuple[str, str], dict[int, _Snapshot]] = {}
        # (scope, key, instance id) -> the newest revision seen, in memory or stored
        self._newest: dict[tuple[str, str, int], int] = {}

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Cursor]:
        """One transaction, committed durably when the block ends, rolled back on error."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection and the writer lock; snapshots not checkpointed are dropped."""

    def schema_create(self) -> None:
        """Create the tables on first open; refuse a schema newer than this code knows."""
        with self.transaction() as cursor:
            cursor.execute(
                "CREATE TABLE IF NOT EXISTS store_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            row = cursor.execute(
                "SELECT value FROM store_meta WHERE name = 'schema_version'"
            ).fetchone()
            if row is not None:
                if int(row[0]) > SCHEMA_VERSION:
                    raise PersistenceError(
                        f"{self.where} has game-store schema version {row[0]}, newer than this"
                        f" code's {SCHEMA_VERSION}; run the newer code or restore an older copy"
                    )
                return
            for table in SCHEMA_TABLES:
                cursor.execute(table.format(sequence=self.sequence_column))
            cursor.execute(
                "INSERT INTO store_meta (name, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )

    def snapshot_ingest(
        self,
        *,
        scope: str,
        key: str,
        instance_id: int,
        revision: int,
        at_ms: int,
        state: dict[str, Any],
    ) -> bool:
        """Keep a snapshot in memory if newer than any seen for it; False if equal or older."""
        if scope not in SCOPES:
            raise PersistenceError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
        name_text(key, what="key")
        whole_number(instance_id, what="instance_id")
        whole_number(revision, what="revision")
        whole_number(at_ms, what="at_ms")
        text = json_text(state, what=f"state of {scope} {key!r}")
        with self.lock:
            newest = self._newest.get((scope, key, instance_id))
            if newest is None:
                newest = self._stored_revision(scope, key, instance_id)
            if revision <= newest:
                self._newest[(scope, key, instance_id)] = newest
                return False
            self._newest[(scope, key, instance_id)] = revision
            self._dirty.setdefault((scope, key), {})[instance_id] = _Snapshot(revision, at_ms, text)
            return True

    def _stored_revision(self, scope: str, key: str, instance_id: int) -> int:
        with self.transaction() as cursor:
            row = cursor.execute(_STORED_REVISION[scope], (key, instance_id)).fetchone()
        return -1 if row is None else int(row[0])

    def checkpoint(self) -> int:
        """Write every snapshot newer than its stored revision in one transaction; rows written."""
        with self.lock:
            if not self._dirty:
                return 0
            written = 0
            with self.transaction() as cursor:
                for (scope, key), by_instance in self._dirty.items():
                    for instance_id, snap in by_instance.items():
                        params = (key, instance_id, snap.revision, snap.at_ms, snap.state)
                        written += max(cursor.execute(_UPSERT[scope], params).rowcount, 0)
            # Only once committed: a failed checkpoint keeps everything for the next one.
            self._dirty.clear()
            return written

    def _newest_states(self, scope: str, key: str) -> dict[int, _Snapshot]:
        sql = {
            "character": "SELECT instance_id, revision, at_ms, state FROM characters"
            " WHERE character_id = ?",
            "instance": "SELECT instance_id, revision, at_ms, state FROM instance_state"
            " WHERE state_key = ?",
        }[scope]
        with self.lock:
            with self.transaction() as cursor:
                rows = cursor.execute(sql, (key,)).fetchall()
            newest = {int(row[0]): _Snapshot(int(row[1]), int(row[2]), row[3]) for row in rows}
            for instance_id, snap in self._dirty.get((scope, key), {}).items():
                stored = newest.get(instance_id)
                if stored is None or snap.revision > stored.revision:
                    newest[instance_id] = snap
            return newest

    def character_load(self, character_id: str) -> dict[str, Any] | None:
        """The character's newest state, from whichever instance reported it last; None if none."""
        name_text(character_id, what="character_id")
        newest = self._newest_states("character", character_id)
        if not newest:
            return None
        # A character moves between instances, each counting its own revisions: the
        # state reported last (by time, then revision) is the one that holds.
        latest = max(newest.values(), key=lambda snap: (snap.at_ms, snap.revision))
        state: dict[str, Any] = json.loads(latest.state)
        return state

    def instance_load(self, instance_id: int, key: str) -> dict[str, Any] | None:
        """The newest state an instance stored under `key`; None if none."""
        whole_number(instance_id, what="instance_id")
        name_text(key, what="key")
        snap = self._newest_states("instance", key).get(instance_id)
        if snap is None:
            return None
        state: dict[str, Any] = json.loads(snap.state)
        return state

    def critical_record(
        self, *, event_id: str, instance_id: int, kind: str, payload: dict[str, Any], at_ms: int
    ) -> bool:
        """Record durably before returning: True if new, False if recorded before alike."""
        name_text(event_id, what="event_id")
        name_text(kind, what="kind")
        whole_number(instance_id, what="instance_id")
        whole_number(at_ms, what="at_ms")
        text = json_text(payload, what=f"payload of critical event {event_id!r}")
        with self.transaction() as cursor:
            return critical_insert(
                cursor,
                event_id=event_id,
                instance_id=instance_id,
                kind=kind,
                payload=text,
                at_ms=at_ms,
            )

    def critical_events(
        self, *, kind: str | None = None, instance_id: int | None = None
    ) -> list[CriticalEvent]:
        """Every recorded event, optionally of one kind or instance, in recording order."""
        where: list[str] = []
        params: list[str | int] = []
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        if instance_id is not None:
            where.append("instance_id = ?")
            params.append(instance_id)
        sql = "SELECT event_id, instance_id, kind, payload, at_ms FROM critical_events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self.transaction() as cursor:
            rows = cursor.execute(sql + " ORDER BY seq", params).fetchall()
        return [
            CriticalEvent(row[0], int(row[1]), row[2], json.loads(row[3]), int(row[4]))
            for row in rows
        ]


def game_store_open(*, url: str | None, data_dir: Path) -> GameStore:
    """The game store: PostgreSQL at `url` if given, else SQLite at `<data_dir>/host.sqlite3`."""
    if not url:
        from host.persistence_sqlite import SqliteGameStore

        return SqliteGameStore.open(path=Path(data_dir) / "host.sqlite3")
    if url.startswith(("postgresql://", "postgres://")):
        from host.persistence_postgres import PostgresGameStore

        return PostgresGameStore.open(url=url)
    scheme = url.split(":", 1)[0]
    raise PersistenceError(
        f"{DATABASE_URL_VARIABLE} must be a postgresql:// URL (or unset for SQLite), got a"
        f" {scheme!r} URL"
    )
