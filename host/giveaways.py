"""Giveaways: a creator's booth offers N items, and each visitor may claim one.

A claim is committed, with its critical event, before `giveaway_claim` returns, so a
visitor told "item 3 is yours" keeps item 3 whatever crashes next. Items are handed out
in order (0, 1, ...) and never taken back; the claims table's keys make a second holder
of an item, or a second item for a character, impossible even if this code erred.
"""

import json
from dataclasses import dataclass

from host.persistence import (
    Cursor,
    GameStore,
    PersistenceError,
    critical_insert,
    name_text,
    whole_number,
)

MAX_ITEMS = 10_000
CLAIM_EVENT_KIND = "giveaway_claim"


class GiveawayError(PersistenceError):
    """A giveaway cannot do what was asked; the message says why."""


class GiveawayUnknown(GiveawayError):
    """No giveaway has this id."""


class GiveawayExhausted(GiveawayError):
    """Every item of the giveaway is claimed."""


@dataclass(frozen=True)
class Claim:
    """An item given to a character; `claim_id` is the request that first won it."""

    giveaway_id: str
    character_id: str
    claim_id: str
    item: int  # 0..items-1
    at_ms: int


@dataclass(frozen=True)
class GiveawayState:
    """How many items a giveaway offers and how many are claimed."""

    giveaway_id: str
    market_id: int
    booth: str
    items: int
    claimed: int

    @property
    def remaining(self) -> int:
        return self.items - self.claimed


def claim_event_id(*, giveaway_id: str, claim_id: str) -> str:
    """The critical event id of a claim: one per giveaway and claim id."""
    return f"giveaway_claim:{giveaway_id}:{claim_id}"


def _giveaway_row(cursor: Cursor, *, giveaway_id: str, lock: str = "") -> tuple:
    row = cursor.execute(
        "SELECT market_id, booth, items FROM giveaways WHERE giveaway_id = ?" + lock,
        (giveaway_id,),
    ).fetchone()
    if row is None:
        raise GiveawayUnknown(f"no giveaway {giveaway_id!r}")
    return int(row[0]), row[1], int(row[2])


def giveaway_create(
    store: GameStore, *, giveaway_id: str, market_id: int, booth: str, items: int, at_ms: int
) -> bool:
    """Offer `items` items at a booth: True if new, False if this same giveaway exists."""
    name_text(giveaway_id, what="giveaway_id")
    whole_number(market_id, what="market_id")
    name_text(booth, what="booth")
    whole_number(at_ms, what="at_ms")
    whole_number(items, what="items", least=1)
    if items > MAX_ITEMS:
        raise GiveawayError(f"items must be 1..{MAX_ITEMS}, got {items}")
    with store.transaction() as cursor:
        try:
            existing = _giveaway_row(cursor, giveaway_id=giveaway_id)
        except GiveawayUnknown:
            cursor.execute(
                "INSERT INTO giveaways (giveaway_id, market_id, booth, items, created_ms)"
                " VALUES (?, ?, ?, ?, ?)",
                (giveaway_id, market_id, booth, items, at_ms),
            )
            return True
    if existing != (market_id, booth, items):
        raise GiveawayError(
            f"giveaway {giveaway_id!r} exists as market {existing[0]} booth {existing[1]!r} with"
            f" {existing[2]} items; refusing market {market_id} booth {booth!r} with {items} items"
        )
    return False


def giveaway_claim(
    store: GameStore, *, giveaway_id: str, character_id: str, claim_id: str, at_ms: int
) -> Claim:
    """Give the character an item, durably, before returning it; the same one if asked again."""
    name_text(giveaway_id, what="giveaway_id")
    name_text(character_id, what="character_id")
    name_text(claim_id, what="claim_id")
    whole_number(at_ms, what="at_ms")
    with store.transaction() as cursor:
        # The row lock (PostgreSQL) keeps two claims from counting the same free item.
        market_id, _, items = _giveaway_row(cursor, giveaway_id=giveaway_id, lock=store.row_lock)
        row = cursor.execute(
            "SELECT character_id, claim_id, item, at_ms FROM giveaway_claims"
            " WHERE giveaway_id = ? AND (claim_id = ? OR character_id = ?)"
            " ORDER BY claim_id = ? DESC",
            (giveaway_id, claim_id, character_id, claim_id),
        ).fetchone()
        if row is not None:
            if row[1] == claim_id and row[0] != character_id:
                raise GiveawayError(
                    f"claim {claim_id!r} of giveaway {giveaway_id!r} was made by character"
                    f" {row[0]!r}, not {character_id!r}"
                )
            return Claim(giveaway_id, row[0], row[1], int(row[2]), int(row[3]))
        claimed = cursor.execute(
            "SELECT COUNT(*) FROM giveaway_claims WHERE giveaway_id = ?", (giveaway_id,)
        ).fetchone()[0]
        if claimed >= items:
            raise GiveawayExhausted(
                f"giveaway {giveaway_id!r}: all {items} items are claimed; none left for"
                f" character {character_id!r}"
            )
        item = int(claimed)  # items are never taken back, so the next free one is this
        cursor.execute(
            "INSERT INTO giveaway_claims (giveaway_id, item, character_id, claim_id, at_ms)"
            " VALUES (?, ?, ?, ?, ?)",
            (giveaway_id, item, character_id, claim_id, at_ms),
        )
        payload = {
            "giveaway_id": giveaway_id,
            "character_id": character_id,
            "claim_id": claim_id,
            "item": item,
        }
        critical_insert(
            cursor,
            event_id=claim_event_id(giveaway_id=giveaway_id, claim_id=claim_id),
            instance_id=market_id,
            kind=CLAIM_EVENT_KIND,
            payload=json.dumps(payload, sort_keys=True, separators=(",", ":")),
            at_ms=at_ms,
        )
    return Claim(giveaway_id, character_id, claim_id, item, at_ms)


def giveaway_state(store: GameStore, *, giveaway_id: str) -> GiveawayState:
    """The giveaway's items, how many are claimed and (`remaining`) how many are left."""
    name_text(giveaway_id, what="giveaway_id")
    with store.transaction() as cursor:
        market_id, booth, items = _giveaway_row(cursor, giveaway_id=giveaway_id)
        claimed = cursor.execute(
            "SELECT COUNT(*) FROM giveaway_claims WHERE giveaway_id = ?", (giveaway_id,)
        ).fetchone()[0]
    return GiveawayState(giveaway_id, market_id, booth, items, int(claimed))


def giveaway_claims(store: GameStore, *, giveaway_id: str) -> list[Claim]:
    """Every claim of the giveaway, by item."""
    name_text(giveaway_id, what="giveaway_id")
    with store.transaction() as cursor:
        _giveaway_row(cursor, giveaway_id=giveaway_id)
        rows = cursor.execute(
            "SELECT character_id, claim_id, item, at_ms FROM giveaway_claims"
            " WHERE giveaway_id = ? ORDER BY item",
            (giveaway_id,),
        ).fetchall()
    return [Claim(giveaway_id, row[0], row[1], int(row[2]), int(row[3])) for row in rows]


def giveaway_claims_of(store: GameStore, *, character_id: str) -> list[Claim]:
    """What a character carries: every item it claimed, in the order it claimed them."""
    name_text(character_id, what="character_id")
    with store.transaction() as cursor:
        rows = cursor.execute(
            "SELECT giveaway_id, claim_id, item, at_ms FROM giveaway_claims"
            " WHERE character_id = ? ORDER BY at_ms, giveaway_id",
            (character_id,),
        ).fetchall()
    return [Claim(row[0], character_id, row[1], int(row[2]), int(row[3])) for row in rows]
