"""The orchestrator's book of transfers for the benches: a SQLite game store filled with
completed transfers through `TransferBook` operations, and `transfer_recover` timed over it."""

import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.processes import BenchError
from host.persistence import game_store_open
from host.tokens import visitor_key_hash
from host.transfers import TransferBook, transfer_recover

RECOVER_REPEATS = 3
# Where the store is filled: a tmpfs makes each commit's fsync free, so 10,000 transfers
# (50,000 commits) are written in seconds; the filled file is then copied to disk.
FILL_DIR = Path("/dev/shm")


def book_over(*, store: Any) -> TransferBook:
    """The book recovered from `store`, every market healthy."""
    return transfer_recover(
        commit_log=store,
        market_health=lambda market: "healthy",
        default_market=1,
        secret=b"bench-host-book-secret-0123456789",
        token_ttl_ms=10_000,
    )


def store_fill(*, data_dir: Path, transfers: int) -> list[str]:
    """`transfers` completed transfers in a new store under `data_dir`; their ids.

    Characters go back and forth between markets 1 and 2, as visitors walking do.
    """
    store = game_store_open(url=None, data_dir=data_dir)
    try:
        book = book_over(store=store)
        characters = min(transfers, 200)
        key_hash = visitor_key_hash(key="bench-host-book-visitor")
        ids = []
        for i in range(transfers):
            character, leg = i % characters, i // characters
            source = 1 + leg % 2
            now = 1_800_000_000_000 + i * 10
            transfer_id, token = book.transfer_request(
                character_id=character,
                key_hash=key_hash,
                source=source,
                destination=3 - source,
                instance_id=0,
                character_state={"entity": character, "identity": f"key:{character}"},
                now_ms=now,
            )
            book.transfer_accept(token=token, destination=3 - source, instance_id=0, now_ms=now + 1)
            book.transfer_release(transfer_id=transfer_id, source=source, now_ms=now + 2)
            book.transfer_complete(transfer_id=transfer_id, now_ms=now + 3)
            ids.append(transfer_id)
        return ids
    finally:
        store.close()


@dataclass
class RecoverFigures:
    """One store's recovery: its size and the times of its runs."""

    transfers: int
    events: int
    recover_ms: list[float]  # each repeat
    read_ms: float  # reading the events alone, once


def store_recover_timed(*, transfers: int, workdir: Path) -> RecoverFigures:
    """Fill a store (on tmpfs when there is one), copy it to disk, time `transfer_recover`."""
    fill_root = FILL_DIR if FILL_DIR.is_dir() else workdir
    with tempfile.TemporaryDirectory(dir=fill_root) as filling:
        ids = store_fill(data_dir=Path(filling), transfers=transfers)
        data_dir = workdir / f"store-{transfers}"
        data_dir.mkdir()
        shutil.copy2(Path(filling) / "host.sqlite3", data_dir / "host.sqlite3")
    store = game_store_open(url=None, data_dir=data_dir)
    try:
        runs = []
        for _ in range(RECOVER_REPEATS):
            started = time.perf_counter()
            book = book_over(store=store)
            runs.append((time.perf_counter() - started) * 1e3)
        if any(book.transfer_get(transfer_id=t).state != "completed" for t in ids):
            raise BenchError("the recovered book has a transfer that is not completed")
        started = time.perf_counter()
        events = len(store.critical_events(kind="transfer"))
        read_ms = (time.perf_counter() - started) * 1e3
    finally:
        store.close()
    return RecoverFigures(transfers, events, runs, read_ms)


def recover_report(*, figures: list[RecoverFigures]) -> None:
    """Print each store's recovery: median, first and worst run, per transfer."""
    print(f"Orchestrator recovery: transfer_recover over a SQLite store ({RECOVER_REPEATS} runs)")
    for f in figures:
        median = statistics.median(f.recover_ms)
        print(
            f"  {f.transfers:>7,} completed transfers ({f.events:,} events): median {median:8.1f} ms"
            f" (first {f.recover_ms[0]:.1f}, worst {max(f.recover_ms):.1f})"
            f"  {median / f.transfers * 1e3:6.1f} us a transfer"
            f"  (reading the events alone {f.read_ms:.1f} ms)"
        )
    print()
