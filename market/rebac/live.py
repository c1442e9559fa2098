"""Each process's index of every relation tuple, kept in step with the table by its change log.

A `LiveTupleIndex` loads every RelationTuple row into a `TupleIndex` once, then follows the
change log: database triggers append each write and deletion of a tuple to
RelationTupleChange, numbered by the one RelationTupleRevision row in commit order, in the
transaction that makes it (migration 0007), whatever made it; revisions restart at 1 in
each epoch, drawn when the counter row is created. Before answering, the index
asks for the revision (one query on a one-row table) and, when it moved, replays the
changes after its own; that costs nothing in a second process or a second machine that the
writer has to know about, and needs no Redis.

Freshness: with `REBAC_INDEX_POLL_SECONDS` = 0 (the default), every check asks for the
revision first, so a change committed before a check starts is seen by that check, in every
process, as when each check read the table. With a positive value s, the revision is asked
at most every s seconds, and a change is seen by every check that starts s seconds after
its commit.

A reload, not a replay, follows when the revision's epoch changed (the table was emptied
with the counter, or another database restored), when the revision went backwards, or when
the changes the index needs were already pruned from the log (`prune_changes`).
"""

import gc
import threading
import time
from array import array
from collections.abc import Collection, Iterable, Sequence

from django.db import connections

from market.rebac.models import RelationTuple, RelationTupleChange, RelationTupleRevision
from market.rebac.tuples import TupleIndex

COLUMNS = "object_type, object_id, relation, subject_type, subject_id, subject_relation"
FETCH_ROWS = 10_000
# How many changes the log keeps behind the newest; an index further behind reloads.
# Visitors walking between booths write about two a crossing: a thousand of them make
# tens a second, so this is minutes of changes.
KEEP_CHANGES = 20_000
# An index this large is kept out of the garbage collector's full collections once loaded.
FREEZE_FROM = 50_000
# An index prunes the log each time it has applied this many more revisions.
PRUNE_EVERY = 1_000


def tuple_strings(row: tuple[str, ...]) -> tuple[str, str, str]:
    """(object, relation, user) of a row of the six tuple columns."""
    object_type, object_id, relation, subject_type, subject_id, subject_relation = row
    user = f"{subject_type}:{subject_id}"
    if subject_relation:
        user = f"{user}#{subject_relation}"
    return f"{object_type}:{object_id}", relation, user


class LiveTupleIndex:
    """A TupleSource answering from memory, brought up to date from the change log.

    `refresh()` before a read; the reads themselves never touch the database. Hold `lock`
    around a refresh and the reads that follow it when threads share the index.
    """

    def __init__(
        self,
        using: str = "default",
        poll_seconds: float = 0.0,
        keep_changes: int = KEEP_CHANGES,
    ) -> None:
        if poll_seconds < 0:
            raise ValueError(f"poll_seconds must be 0 or more, not {poll_seconds!r}")
        if keep_changes < 1:
            raise ValueError(f"keep_changes must be at least 1, not {keep_changes!r}")
        self.using = using
        self.poll_seconds = poll_seconds
        self.keep_changes = keep_changes
        self.lock = threading.RLock()
        self.index = TupleIndex()
        self.epoch: str | None = None
        self.revision = -1  # nothing loaded yet
        self.polled_at = float("-inf")
        self.reloads = 0
        self.pruned_at = 0
        quote = connections[using].ops.quote_name
        self.tuples_table = quote(RelationTuple._meta.db_table)
        self.changes_table = quote(RelationTupleChange._meta.db_table)
        self.revision_table = quote(RelationTupleRevision._meta.db_table)

    # The TupleSource protocol, from memory.

    def users_of(
        self, object: str, relation: str, among: Collection[str] | None = None
    ) -> Iterable[str]:
        return self.index.users_of(object, relation, among)

    def objects_of(self, type: str, relation: str, user: str) -> Iterable[str]:
        return self.index.objects_of(type, relation, user)

    def object_run(self, type: str, relation: str, user: str) -> array | None:
        return self.index.object_run(type, relation, user)

    def sorted_objects(
        self, type: str, runs: Sequence[array], loose: Iterable[str] = ()
    ) -> list[str]:
        return self.index.sorted_objects(type, runs, loose)

    def __len__(self) -> int:
        return len(self.index)

    # Keeping up with the table.

    def refresh(self, *, force: bool = False) -> None:
        """Bring the index up to the committed tuples, if the last look is older than allowed."""
        now = time.monotonic()
        if not force and self.revision >= 0 and now - self.polled_at < self.poll_seconds:
            return
        connection = connections[self.using]
        if connection.in_atomic_block:
            raise RuntimeError(
                "the tuple index reads only committed tuples: refresh it outside "
                "transaction.atomic() (inside one, read the database instead)"
            )
        with connection.cursor() as cursor:
            epoch, revision = self.head(cursor)
            other_history = self.revision < 0 or epoch != self.epoch or revision < self.revision
            if other_history or (revision > self.revision and not self.replay(cursor)):
                self.reload(cursor)
            if self.revision - self.pruned_at >= PRUNE_EVERY:
                self.prune(cursor)
        self.polled_at = now

    def head(self, cursor) -> tuple[str | None, int]:
        """(epoch, revision) of the last committed change; (None, 0) before the first."""
        cursor.execute(f"SELECT epoch, revision FROM {self.revision_table} WHERE id = 1")
        row = cursor.fetchone()
        return (row[0], row[1]) if row else (None, 0)

    def reload(self, cursor) -> None:
        """Read every tuple afresh, then replay what was committed while reading."""
        epoch, revision = self.head(cursor)
        index = TupleIndex()
        cursor.execute(f"SELECT {COLUMNS} FROM {self.tuples_table}")
        while rows := cursor.fetchmany(FETCH_ROWS):
            for row in rows:
                index.add(*tuple_strings(row))
        index.rank_objects()
        self.index, self.epoch, self.revision = index, epoch, revision
        self.reloads += 1
        # A million tuples are millions of containers the cyclic garbage collector would
        # otherwise walk in every full collection, hundreds of milliseconds each, in the
        # middle of whichever check set it off. Loaded, they are set aside for good.
        if len(index) >= FREEZE_FROM:
            del index
            gc.collect()
            gc.freeze()
        # Changes committed after `head` may or may not be in what was read; replaying each
        # one after `revision` in order leaves every tuple as its last change made it.
        if not self.replay(cursor):
            raise RuntimeError("the relation tuple change log was pruned while being read")

    def replay(self, cursor) -> bool:
        """Apply the changes after the index's revision; False if some are no longer logged."""
        cursor.execute(
            f"SELECT revision, op, {COLUMNS} FROM {self.changes_table} "
            "WHERE epoch = %s AND revision > %s ORDER BY revision",
            [self.epoch or "", self.revision],
        )
        rows = cursor.fetchall()
        if rows and rows[0][0] != self.revision + 1:
            return False
        for revision, op, *columns in rows:
            if op == RelationTupleChange.WRITE:
                self.index.add(*tuple_strings(columns))
            else:
                self.index.remove(*tuple_strings(columns))
            self.revision = revision
        return True

    def prune(self, cursor) -> None:
        """Delete the changes more than `keep_changes` behind the newest this index applied."""
        prune_changes(cursor, self.changes_table, self.epoch, self.revision - self.keep_changes)
        self.pruned_at = self.revision


def changes_keep_bounded(using: str = "default", keep: int | None = None) -> None:
    """Delete the logged changes more than `keep` behind the newest committed one.

    Indexes prune as they replay, but a market whose tuples change while no process
    reads them (visitors walking between booths, no asset fetched) would grow the log
    without end: the writers that change tuples often call this now and then.
    """
    keep = KEEP_CHANGES if keep is None else keep
    quote = connections[using].ops.quote_name
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT epoch, revision FROM {quote(RelationTupleRevision._meta.db_table)} "
            "WHERE id = 1"
        )
        row = cursor.fetchone()
        if row is not None:
            epoch, revision = row
            prune_changes(cursor, quote(RelationTupleChange._meta.db_table), epoch, revision - keep)


def prune_changes(cursor, changes_table: str, epoch: str | None, up_to: int) -> None:
    """Delete the logged changes of `epoch` up to revision `up_to`, and those of other epochs."""
    cursor.execute(
        f"DELETE FROM {changes_table} WHERE epoch <> %s OR revision <= %s",
        [epoch or "", max(up_to, 0)],
    )


_INDEXES: dict[str, LiveTupleIndex] = {}
_INDEXES_LOCK = threading.Lock()


def live_index(using: str = "default", poll_seconds: float = 0.0) -> LiveTupleIndex:
    """This process's index of the tuples in database `using` (created on first use)."""
    index = _INDEXES.get(using)
    if index is None or index.poll_seconds != poll_seconds:
        with _INDEXES_LOCK:
            index = _INDEXES.get(using)
            if index is None or index.poll_seconds != poll_seconds:
                index = _INDEXES[using] = LiveTupleIndex(using, poll_seconds)
    return index


def live_indexes_forget() -> None:
    """Drop every process index (the next read loads afresh)."""
    with _INDEXES_LOCK:
        _INDEXES.clear()
