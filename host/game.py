"""The host's game state in the orchestrator: one store, the book of transfers, their
routes on the control API, and the periodic work (expiring transfers, checkpoints).

Only this process writes game state (docs/host.md): market processes reach it through
the control API and never open the store.
"""

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from host.control import ControlApp
from host.giveaway_routes import GiveawayRoutes
from host.giveaways import giveaway_claims_of
from host.orchestrator import Orchestrator
from host.persistence import GameStore, game_store_open
from host.snapshot_routes import SnapshotRoutes
from host.transfer_routes import TransferRoutes
from host.transfers import TransferBook, transfer_recover
from host.tunables import Tunables

log = logging.getLogger(__name__)

EXPIRE_EVERY_S = 1.0  # a token lives 10 s: a second's lateness in aborting it is nothing


class HostGame:
    """What the orchestrator keeps of the game: the store and the transfers."""

    def __init__(self, *, store: GameStore, orchestrator: Orchestrator, tunables: Tunables) -> None:
        self.store = store
        self.tunables = tunables
        self.book: TransferBook = transfer_recover(
            commit_log=store,
            market_health=orchestrator.market_health,
            default_market=orchestrator.default_market,
            secret=orchestrator.secret.encode(),
            token_ttl_ms=tunables.transfer_token_ttl_ms,
        )
        self.transfers = TransferRoutes(
            book=self.book,
            orchestrator=orchestrator,
            carried=self.carried,
            last_seen=store.character_load,
        )
        self.giveaways = GiveawayRoutes(store=store)
        self.snapshots = SnapshotRoutes(store=store)

    @classmethod
    def open(
        cls, *, url: str | None, data_dir: Path, orchestrator: Orchestrator, tunables: Tunables
    ) -> "HostGame":
        """The host's game over the store at `url` (PostgreSQL) or in `data_dir` (SQLite)."""
        return cls(
            store=game_store_open(url=url, data_dir=data_dir),
            orchestrator=orchestrator,
            tunables=tunables,
        )

    def carried(self, character_id: str) -> list[dict[str, Any]]:
        """What the character carries: the giveaway items it claimed."""
        return [
            {"giveaway": claim.giveaway_id, "item": claim.item}
            for claim in giveaway_claims_of(self.store, character_id=character_id)
        ]

    def routes_add(self, app: ControlApp) -> None:
        self.transfers.routes_add(app)
        self.giveaways.routes_add(app)
        self.snapshots.routes_add(app)

    async def run(self, stop: asyncio.Event) -> None:
        """Expire transfers every second and checkpoint every `checkpoint_ms`, until stop."""
        next_checkpoint = time.monotonic() + self.tunables.checkpoint_ms / 1000
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), EXPIRE_EVERY_S)
                try:
                    await self._expire()
                    if time.monotonic() >= next_checkpoint:
                        await asyncio.to_thread(self.store.checkpoint)
                        next_checkpoint = time.monotonic() + self.tunables.checkpoint_ms / 1000
                except Exception:
                    # the store is busy or out of reach: what was not written stays in
                    # memory for the next round; the host goes on answering
                    log.exception("the host's periodic work failed; trying again")
        finally:
            try:
                await asyncio.to_thread(self.store.checkpoint)
            except Exception:
                log.exception("the last checkpoint failed; snapshots since the one before lost")
            self.store.close()

    async def _expire(self) -> None:
        aborted = await asyncio.to_thread(
            self.book.transfers_expire, now_ms=time.time_ns() // 1_000_000
        )
        for transfer_id, fallback in aborted.items():
            log.info("transfer %s aborted; market %s holds it", transfer_id, fallback)
