"""The game store on PostgreSQL (psycopg 3), for hosts configured with a database URL.

The tables live in the first schema of the connection's search path (the URL may set
it: `?options=-csearch_path%3Dname`). Commits are synchronous (`synchronous_commit =
on`), so a critical event the store has said yes to is on the server's disk. One
process writes a schema: a session advisory lock keyed by database and schema,
held while the store is open, refuses a second one with the holder's pid.
"""

import os
import re
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from host.persistence import Cursor, GameStore, PersistenceError

_LOCK_CLASS = 0x46424852  # a fixed first key for the advisory lock, "FBHR"
_APPLICATION = "fabric-host-writer pid="


class _PlaceholderCursor:
    """A psycopg cursor that takes the shared SQL's `?` placeholders."""

    def __init__(self, cursor: psycopg.Cursor) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> "_PlaceholderCursor":
        self._cursor.execute(sql.replace("?", "%s"), tuple(params))
        return self

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._cursor.fetchone()

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._cursor.fetchall()


def _one_row(cursor: "psycopg.Cursor[tuple[Any, ...]]") -> tuple[Any, ...]:
    """The row of a query that always answers one (a SELECT of functions, no FROM)."""
    row = cursor.fetchone()
    if row is None:
        raise PersistenceError("PostgreSQL answered a one-row query with no row")
    return row


def _lock_key(*, database: str, schema: str) -> int:
    """The advisory lock's second key: the same for every writer of one database schema."""
    return zlib.crc32(f"{database}.{schema}".encode()) & 0x7FFFFFFF


class PostgresGameStore(GameStore):
    """The game store in a PostgreSQL schema, written by this process alone."""

    row_lock = " FOR UPDATE"
    sequence_column = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"

    def __init__(self, *, connection: psycopg.Connection, where: str) -> None:
        super().__init__()
        self._connection: psycopg.Connection | None = connection
        self.where = where

    @classmethod
    def open(cls, *, url: str) -> "PostgresGameStore":
        """Connect, take the writer lock, create the schema if missing."""
        try:
            connection = psycopg.connect(
                url, autocommit=True, application_name=f"{_APPLICATION}{os.getpid()}"
            )
        except psycopg.Error as error:
            raise PersistenceError(
                f"cannot connect to the game store's PostgreSQL: {error}"
            ) from None
        try:
            connection.execute("SET synchronous_commit = on")
            database, schema = _one_row(
                connection.execute("SELECT current_database(), current_schema()")
            )
            if schema is None:
                raise PersistenceError(
                    f"PostgreSQL database {database}: no schema of the search path exists"
                )
            where = f"PostgreSQL database {database} schema {schema}"
            key = _lock_key(database=database, schema=schema)
            (taken,) = _one_row(
                connection.execute("SELECT pg_try_advisory_lock(%s, %s)", (_LOCK_CLASS, key))
            )
            if not taken:
                raise PersistenceError(
                    f"{where} is already written by process {cls._holder(connection, key)};"
                    " the host has one writer of game state: stop that process or use another"
                    " schema"
                )
            store = cls(connection=connection, where=where)
            store.schema_create()
        except BaseException:
            connection.close()
            raise
        return store

    @staticmethod
    def _holder(connection: psycopg.Connection, key: int) -> str:
        """The pid the lock holder put in its application name, or "unknown"."""
        row = connection.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s::oid"
            " AND l.objid = %s::oid AND l.objsubid = 2",
            (_LOCK_CLASS, key),
        ).fetchone()
        found = re.fullmatch(rf"{_APPLICATION}(\d+)", row[0] if row else "")
        return found.group(1) if found else "unknown"

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        """BEGIN, COMMIT at the end (synchronous), ROLLBACK on error."""
        with self.lock:
            if self._connection is None:
                raise PersistenceError(f"{self.where}: the game store is closed")
            with self._connection.transaction(), self._connection.cursor() as cursor:
                yield _PlaceholderCursor(cursor)

    def close(self) -> None:
        """Close the connection, which releases the writer lock; unsaved snapshots are dropped."""
        with self.lock:
            if self._connection is None:
                return
            self._connection.close()
            self._connection = None
