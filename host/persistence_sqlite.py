"""The game store on SQLite: its own file, WAL journal, every commit synced to disk.

`synchronous=FULL` makes a commit wait for the write-ahead log to reach the disk, so a
critical event the store has said yes to survives a crash of the process and of the
machine. One process writes the file: an exclusive `flock` on `<db>.writer.lock`,
held while the store is open, refuses a second one with the holder's pid.
"""

import fcntl
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from host.persistence import Cursor, GameStore, PersistenceError


def writer_lock_take(*, lock_path: Path, what: str) -> int:
    """An open descriptor holding the exclusive lock on `lock_path`, or a PersistenceError."""
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(descriptor, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(descriptor)
        raise PersistenceError(
            f"{what} is already written by process {holder} (it holds {lock_path}); the host"
            " has one writer of game state: stop that process or use another data directory"
        ) from None
    # The pid is only for the message above; the lock itself is what guards.
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"{os.getpid()}\n".encode("ascii"), 0)
    return descriptor


class SqliteGameStore(GameStore):
    """The game store in one SQLite file, written by this process alone."""

    def __init__(self, *, path: Path, connection: sqlite3.Connection, lock_descriptor: int):
        super().__init__()
        self.path = path
        self.where = f"SQLite file {path}"
        self._connection: sqlite3.Connection | None = connection
        self._lock_descriptor = lock_descriptor

    @classmethod
    def open(cls, *, path: Path) -> "SqliteGameStore":
        """Take the writer lock, open `path` in WAL mode with full sync, create the schema."""
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = writer_lock_take(
            lock_path=path.with_name(path.name + ".writer.lock"), what=f"SQLite file {path}"
        )
        try:
            # isolation_level=None: transactions are begun and committed here, explicitly.
            connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise PersistenceError(f"SQLite file {path} refused WAL mode (got {mode!r})")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA foreign_keys=ON")
            store = cls(path=path, connection=connection, lock_descriptor=descriptor)
            store.schema_create()
        except BaseException:
            if "connection" in locals():
                connection.close()
            os.close(descriptor)
            raise
        return store

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        """BEGIN IMMEDIATE (the write lock at once), COMMIT at the end, ROLLBACK on error."""
        with self.lock:
            if self._connection is None:
                raise PersistenceError(f"{self.where}: the game store is closed")
            cursor = self._connection.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield cursor
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    def close(self) -> None:
        """Close the file and release the writer lock; snapshots not checkpointed are dropped."""
        with self.lock:
            if self._connection is None:
                return
            self._connection.close()
            self._connection = None
            os.close(self._lock_descriptor)  # closing the descriptor releases the flock
