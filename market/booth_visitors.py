"""Who visits a booth: `booth:<id>#visitor`, kept live from what the zones report.

The rule (docs/permissions.md): a visitor is a visitor of the booth its entity
stands in, and of no other booth of that market, for as long as its socket is open.
Its socket knows where it stands: the welcome names the booth it joined in, and the
zones' `booth_entered` events, which the socket follows on the market's stream,
name each booth it walks into. At each of those the socket's `BoothPresence` has the
visitor removed from every other booth of the market and added to the one it entered;
when the socket closes (a `leave`, a dropped connection) removed from every booth. The
changes of every socket of a web process are written together, one transaction at
most every PRESENCE_BATCH_S (`PresenceWriter`). A socket taken over by a newer
one of the same visitor leaves the relation to the newer one.

The subject is `visitor:<market>-<entity>` (market/asset_tokens.py), the principal an
asset token proves; so grants to `booth:<id>#visitor` reach the visitors who stand
in the booth, and nobody else.
"""

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from django.db import close_old_connections, transaction

from market.asset_tokens import VISITOR_TYPE, visitor_subject
from market.models import Booth
from market.rebac.live import changes_keep_bounded
from market.rebac.models import RelationTuple
from market.rebac.services import rebac_tuples_write

log = logging.getLogger(__name__)

VISITOR = "visitor"


def booth_visitor_set(*, market_id: int, entity: int, zone: int | None) -> int | None:
    """Make the visitor a visitor of the booth at `zone` of the market and of no other
    booth there (`zone` None: of none); the booth's id, or None. One transaction."""
    return booth_visitors_set({(market_id, entity): zone})[(market_id, entity)]


def booth_visitors_set(
    places: Mapping[tuple[int, int], int | None],
) -> dict[tuple[int, int], int | None]:
    """`booth_visitor_set` for many visitors at once, in one transaction.

    `places` maps (market, entity) to the zone the visitor stands in (None: none); the
    answer maps each to its booth's id (None: none).
    """
    markets = {market for market, _ in places}
    booth_of = {
        (market, zone): pk
        for market, zone, pk in Booth.objects.filter(market_id__in=markets).values_list(
            "market_id", "zone_index", "pk"
        )
    }
    booths = {
        key: None if zone is None else booth_of.get((key[0], zone)) for key, zone in places.items()
    }
    subjects = {key: visitor_subject(*key) for key in places}
    _log_bounded(2 * len(places))
    with transaction.atomic():
        RelationTuple.objects.filter(
            object_type="booth",
            relation=VISITOR,
            subject_type=VISITOR_TYPE,
            subject_id__in=[s.split(":", 1)[1] for s in subjects.values()],
            subject_relation="",
        ).delete()
        rebac_tuples_write(
            tuples=[
                {"object": f"booth:{booth}", "relation": VISITOR, "user": subjects[key]}
                for key, booth in booths.items()
                if booth is not None
            ]
        )
    return booths


LOG_BOUND_EVERY = 1_000  # tuple changes (about) between two looks at the change log's length
_changes_since_bound = 0


def _log_bounded(changes: int) -> None:
    """Keep the tuples' change log bounded (market/rebac/live.py): presence is what writes
    most of it, a deletion and a write each time a visitor enters a booth."""
    global _changes_since_bound
    _changes_since_bound += changes
    if _changes_since_bound >= LOG_BOUND_EVERY:
        _changes_since_bound = 0
        changes_keep_bounded()


def booth_visitors(*, booth_id: int) -> list[str]:
    """The visitor subjects of a booth now."""
    return [
        f"{VISITOR_TYPE}:{subject_id}"
        for subject_id in RelationTuple.objects.filter(
            object_type="booth",
            object_id=str(booth_id),
            relation=VISITOR,
            subject_type=VISITOR_TYPE,
        ).values_list("subject_id", flat=True)
    ]


PRESENCE_BATCH_S = 0.1  # changes of one process are written together, this often at most

# The batches' transactions run on a thread of their own: they never queue behind, nor
# hold up, the process's other sync work on the thread it shares (Django's cache calls
# from the sockets, such as a join's ticket redemption).
_presence_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="booth-presence")


def _in_own_thread(changes: Mapping[tuple[int, int], int | None]) -> None:
    """One batch, with its database connection handled as a request's is."""
    close_old_connections()
    try:
        booth_visitors_set(changes)
    finally:
        close_old_connections()


class PresenceWriter:
    """Every socket's booth changes in this process, written together.

    A crossing is one change; a thousand visitors crossing and joining make tens a second.
    One transaction each cost the web process a database round trip and a thread hop per
    change, and under SQLite they queued behind one another. Changes wait here at most
    PRESENCE_BATCH_S and go in one transaction, the newest change of each visitor
    winning (each says where the visitor stands now, not how it got there); the first
    change after a quiet spell is written at once.

    A join is in a hurry: its welcome waits for its booth to be written. A hurried change
    ends the gathering wait, so the batch it is in (with whatever else was gathered) is
    written as soon as the batch before it is; a join waits for at most one other
    transaction, not for a batch to fill. Joins are few beside crossings (a visitor joins
    once and crosses many borders), so batches stay batches.
    """

    def __init__(self) -> None:
        self._changes: dict[tuple[int, int], int | None] = {}
        self._written: asyncio.Future[None] | None = None  # of the batch being gathered
        self._task: asyncio.Task[None] | None = None
        self._last_write = -PRESENCE_BATCH_S  # loop time the last batch began to be written
        self._hurry = asyncio.Event()  # set: the batch being gathered holds a hurried change

    def put(
        self, market_id: int, entity: int, zone: int | None, *, hurry: bool = False
    ) -> asyncio.Future[None]:
        """Queue a change; the future is done once it is written (or its write failed).

        `hurry`: someone waits for this change (a join's welcome), so its batch is written
        without the gathering wait.
        """
        self._changes[(market_id, entity)] = zone
        if self._written is None:
            self._written = asyncio.get_running_loop().create_future()
        if hurry:
            self._hurry.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._write_soon())
        return self._written

    async def _write_soon(self) -> None:
        loop = asyncio.get_running_loop()
        while self._changes:
            # At most one batch every PRESENCE_BATCH_S, but a change after a quiet spell is
            # written at once: a lone join's welcome (which waits for its booth to be
            # written) waits for one transaction, not for a batch to fill.
            wait = self._last_write + PRESENCE_BATCH_S - loop.time()
            if wait > 0 and not self._hurry.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._hurry.wait(), wait)
            self._hurry.clear()
            self._last_write = loop.time()
            changes, self._changes = self._changes, {}
            written, self._written = self._written, None
            try:
                await asyncio.get_running_loop().run_in_executor(
                    _presence_thread, _in_own_thread, changes
                )
            except Exception as error:
                # The database is out of reach or busy: the visitors keep their last booth
                # (or none) until their next crossing or departure writes again.
                log.warning("booth visitors of %d entities not updated: %r", len(changes), error)
            finally:
                if written is not None and not written.done():
                    written.set_result(None)

    async def drain(self) -> None:
        """Wait for the changes queued so far to be written (a web process stopping)."""
        if self._task is not None and not self._task.done():
            await asyncio.shield(self._task)


_writers: dict[asyncio.AbstractEventLoop, PresenceWriter] = {}


def presence_writer() -> PresenceWriter:
    """This event loop's writer (one per process in a server; tests run several loops)."""
    loop = asyncio.get_running_loop()
    writer = _writers.get(loop)
    if writer is None:
        for stale in [other for other in _writers if other.is_closed()]:
            del _writers[stale]
        writer = _writers[loop] = PresenceWriter()
    return writer


class BoothPresence:
    """One socket's visitor as a booth visitor.

    `enter` returns at once (the socket's loop never waits for the database); the write
    follows within PRESENCE_BATCH_S and a transaction. `leave` removes the visitor from
    every booth and waits until that is written; a later change of the same visitor
    (a newer socket) overrides an earlier one not yet written.
    """

    def __init__(self, market_id: int, entity: int) -> None:
        self.market_id = market_id
        self.entity = entity
        self._last: asyncio.Future[None] | None = None

    def enter(self, zone: int, *, hurry: bool = False) -> None:
        """The visitor stands in the booth at `zone`; `hurry` for a join, whose welcome
        waits for it (PresenceWriter)."""
        self._last = presence_writer().put(self.market_id, self.entity, zone, hurry=hurry)

    def depart(self) -> None:
        """The socket closed: the visitor stands in no booth; written within the batch."""
        self._last = presence_writer().put(self.market_id, self.entity, None)

    async def leave(self) -> None:
        """`depart`, then wait until that is written."""
        self.depart()
        await self.settled()

    async def settled(self) -> None:
        """Wait until every change asked for so far is written."""
        if self._last is not None:
            await asyncio.shield(self._last)
