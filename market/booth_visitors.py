"""Who visits a booth: `booth:<id>#visitor`, kept live from what the zones report.

The rule (docs/permissions.md): a visitor is a visitor of the booth its entity
stands in, and of no other booth of that market, for as long as its socket is open.
Its socket knows where it stands: the welcome names the booth it joined in, and the
zones' `booth_entered` events, which the socket follows on the market's stream,
name each booth it walks into. At each of those the socket's `BoothPresence` writes
one transaction that removes the visitor from every other booth of the market and
adds it to the one it entered; when the socket closes (a `leave`, a dropped
connection) it removes the visitor from every booth. A socket taken over by a newer
one of the same visitor leaves the relation to the newer one.

The subject is `visitor:<market>-<entity>` (market/asset_tokens.py), the principal an
asset token proves; so grants to `booth:<id>#visitor` reach the visitors who stand
in the booth, and nobody else.
"""

import asyncio
import logging

from channels.db import database_sync_to_async
from django.db import transaction

from market.asset_tokens import VISITOR_TYPE, visitor_subject
from market.models import Booth
from market.rebac.models import RelationTuple
from market.rebac.services import rebac_tuple_write

log = logging.getLogger(__name__)

VISITOR = "visitor"


def booth_visitor_set(*, market_id: int, entity: int, zone: int | None) -> int | None:
    """Make the visitor a visitor of the booth at `zone` of the market and of no other
    booth there (`zone` None: of none); the booth's id, or None. One transaction."""
    subject = visitor_subject(market_id, entity)
    booth = None
    if zone is not None:
        booth = (
            Booth.objects.filter(market_id=market_id, zone_index=zone)
            .values_list("pk", flat=True)
            .first()
        )
    with transaction.atomic():
        stale = RelationTuple.objects.filter(
            object_type="booth",
            relation=VISITOR,
            subject_type=VISITOR_TYPE,
            subject_id=subject.split(":", 1)[1],
            subject_relation="",
        )
        if booth is not None:
            stale = stale.exclude(object_id=str(booth))
        stale.delete()
        if booth is not None:
            rebac_tuple_write(object=f"booth:{booth}", relation=VISITOR, user=subject)
    return booth


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


class BoothPresence:
    """One socket's visitor as a booth visitor: writes in the order they were asked for.

    `enter` returns at once (the socket's loop never waits for the database); the write
    follows within milliseconds. `leave` waits for every earlier write, then removes
    the visitor from every booth.
    """

    def __init__(self, market_id: int, entity: int) -> None:
        self.market_id = market_id
        self.entity = entity
        self._lock = asyncio.Lock()  # first come, first served: the writes keep their order
        self._pending: set[asyncio.Task[None]] = set()

    def enter(self, zone: int) -> None:
        task = asyncio.create_task(self._write(zone))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def leave(self) -> None:
        await self.settled()  # an enter still waiting to start must not come after this
        await self._write(None)

    async def settled(self) -> None:
        """Wait until every write asked for so far is done."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def _write(self, zone: int | None) -> None:
        async with self._lock:
            try:
                await database_sync_to_async(booth_visitor_set)(
                    market_id=self.market_id, entity=self.entity, zone=zone
                )
            except Exception as error:
                # The database is out of reach or busy: the visitor keeps its last booth
                # (or none) until its next crossing or departure writes again.
                log.warning("booth visitor of entity %d not updated: %r", self.entity, error)
