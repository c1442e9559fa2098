"""Game stores in a place of their own for each test, and a claim-serving writer process.

Run as `python -m tests.host.store_harness --data-dir D [--url U] --giveaway G --items N`
it opens the game store, creates the giveaway and serves claims over its pipes: each
line `CLAIM <claim_id> <character_id>` on stdin is answered on stdout with
`ACK <claim_id> <item>` once `giveaway_claim` has returned, or `EXHAUSTED <claim_id>`.
With `--ack-first` it is the broken writer the crash test's control needs: it answers
ACK with the item it means to give, then waits for one more stdin line before it
commits, so a kill in between loses an acknowledged claim.
"""

import argparse
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from host.giveaways import Claim, GiveawayExhausted, giveaway_claim, giveaway_create, giveaway_state
from host.persistence import GameStore, PersistenceError, game_store_open


@dataclass(frozen=True)
class StorePlace:
    """Where a test's game store lives: a data directory, and a PostgreSQL URL or None."""

    url: str | None
    data_dir: Path

    def open(self) -> GameStore:
        return game_store_open(url=self.url, data_dir=self.data_dir)

    def arguments(self) -> list[str]:
        """The writer process's arguments that open this same store."""
        return ["--data-dir", str(self.data_dir)] + (["--url", self.url] if self.url else [])


@contextmanager
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """A URL whose search path is a fresh schema, dropped with its tables afterwards."""
    schema = f"host_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    joiner = "&" if "?" in postgres_url else "?"
    try:
        yield f"{postgres_url}{joiner}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")


@contextmanager
def store_place(request, tmp_path: Path) -> Iterator[StorePlace]:
    """The place for `request.param`: "sqlite" or "postgres" (which needs `postgres_url`)."""
    if request.param == "sqlite":
        yield StorePlace(url=None, data_dir=tmp_path)
        return
    with postgres_schema_url(request.getfixturevalue("postgres_url")) as url:
        yield StorePlace(url=url, data_dir=tmp_path)


def claims_problems(
    *, acks: dict[str, tuple[str, int]], claims: list[Claim], items: int
) -> list[str]:
    """What breaks a giveaway's promises: `acks` maps claim id to (character, item told)."""
    problems = []
    by_claim = {claim.claim_id: claim for claim in claims}
    for claim_id, (character_id, item) in sorted(acks.items()):
        stored = by_claim.get(claim_id)
        if stored is None:
            # A retried claim of a character that already holds an item answers with
            # the first claim's row: what counts is that the character holds the item.
            held = [c.item for c in claims if c.character_id == character_id]
            if held != [item]:
                problems.append(f"acknowledged claim {claim_id} (item {item}) is lost")
        elif (stored.character_id, stored.item) != (character_id, item):
            problems.append(
                f"claim {claim_id} was acknowledged as item {item} for {character_id}, stored"
                f" as item {stored.item} for {stored.character_id}"
            )
    holders: dict[int, list[str]] = {}
    held_by: dict[str, list[int]] = {}
    for claim in claims:
        holders.setdefault(claim.item, []).append(claim.character_id)
        held_by.setdefault(claim.character_id, []).append(claim.item)
    problems += [f"item {i} is held by {', '.join(h)}" for i, h in holders.items() if len(h) > 1]
    problems += [
        f"{c} holds items {', '.join(map(str, i))}" for c, i in held_by.items() if len(i) > 1
    ]
    if len(claims) > items:
        problems.append(f"{len(claims)} claims of {items} items")
    problems += [f"item {i} is out of range" for i in holders if not 0 <= i < items]
    return problems


def _open_waiting(place: StorePlace) -> GameStore:
    """Open the store, waiting out a killed predecessor whose lock is still being released."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return place.open()
        except PersistenceError as error:
            if "already written" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def writer_serve(*, place: StorePlace, giveaway_id: str, items: int, ack_first: bool) -> None:
    """Answer CLAIM lines until stdin closes (see the module's docstring)."""
    store = _open_waiting(place)
    giveaway_create(store, giveaway_id=giveaway_id, market_id=1, booth="b", items=items, at_ms=0)
    print("READY", flush=True)
    for line in sys.stdin:
        _, claim_id, character_id = line.split()
        if ack_first:
            item = giveaway_state(store, giveaway_id=giveaway_id).claimed
            print(f"ACK {claim_id} {item}", flush=True)
            sys.stdin.readline()  # the window between the answer and the commit
        try:
            claim = giveaway_claim(
                store,
                giveaway_id=giveaway_id,
                character_id=character_id,
                claim_id=claim_id,
                at_ms=1,
            )
        except GiveawayExhausted:
            print(f"EXHAUSTED {claim_id}", flush=True)
            continue
        if not ack_first:
            print(f"ACK {claim_id} {claim.item}", flush=True)
    store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--url")
    parser.add_argument("--giveaway", required=True)
    parser.add_argument("--items", type=int, required=True)
    parser.add_argument("--ack-first", action="store_true")
    options = parser.parse_args()
    writer_serve(
        place=StorePlace(url=options.url, data_dir=options.data_dir),
        giveaway_id=options.giveaway,
        items=options.items,
        ack_first=options.ack_first,
    )
