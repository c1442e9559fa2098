"""A visitor's booth assets, loaded in the background as it walks.

When the visitor steps into a booth (`booth_entered`), or an asset of the booth it
stands in changes (`asset_changed`), `BoothAssets` fetches that booth's manifest and
the chunks its disk cache lacks, in a worker thread so the socket keeps reading
frames. It presents the visitor's asset token (from the welcome, renewed over the
socket) as `Authorization: Bearer`, so it gets what the market grants this visitor:
the assets its booth's visitors may read. Every chunk's BLAKE3 hash is checked
before it is cached (chunks/client), so a chunk is downloaded once however many
times the visitor comes back.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chunks.client import AssetClient, ChunkCache, ClientError, FetchReport
from chunks.client.cache import CorruptChunk

AssetProgress = Callable[[int, int, int, int], None]
"""Called as progress(zone, chunks_done, chunks_total, bytes_downloaded), from a worker thread."""


@dataclass(frozen=True)
class BoothLoad:
    """One background fetch: the booth's zone, why it ran, and what it did (or why not)."""

    zone: int
    reason: str  # "booth_entered" or "asset_changed"
    report: FetchReport | None
    error: str = ""
    status: int = 0  # the HTTP status of a refusal (403: not a reader of this booth)


class BoothAssets:
    """Fetches the assets of the booths a visitor enters into a disk cache and a folder."""

    def __init__(
        self,
        base_url: str,
        cache_dir: str | Path,
        out_dir: str | Path,
        *,
        progress: AssetProgress | None = None,
        workers: int = 8,
    ) -> None:
        self.client = AssetClient(base_url, workers=workers)
        self.cache = ChunkCache(cache_dir)
        self.out_dir = Path(out_dir)
        self.progress = progress
        self.market_id = 0
        self.loads: list[BoothLoad] = []
        self._pending: set[asyncio.Task[BoothLoad]] = set()

    def welcomed(self, market_id: int, welcome: dict[str, Any]) -> None:
        """Take the market and the first asset token from a welcome."""
        self.market_id = market_id
        assets = welcome.get("assets")
        token = assets.get("token") if isinstance(assets, dict) else None
        if isinstance(token, str) and token:
            self.token(token)

    def token(self, token: str) -> None:
        """Use this asset token from now on (a renewal replaces the last one)."""
        self.client.headers["Authorization"] = f"Bearer {token}"

    def event(self, event: dict[str, Any], booth: int | None) -> None:
        """React to a market event: fetch on entering a booth, again when its assets change."""
        kind = event.get("type")
        if kind == "booth_entered":
            self.fetch(int(event["zone"]), "booth_entered")
        elif kind == "asset_changed" and booth is not None and int(event["zone"]) == booth:
            self.fetch(booth, "asset_changed")

    def fetch(self, zone: int, reason: str = "asked") -> "asyncio.Task[BoothLoad]":
        """Fetch the booth at `zone` in the background; the task gives its BoothLoad."""
        task = asyncio.create_task(asyncio.to_thread(self._load, zone, reason))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return task

    async def idle(self) -> None:
        """Wait until every fetch started so far has finished."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    def folder(self, zone: int) -> Path:
        """Where the assets of the booth at `zone` are written."""
        return self.out_dir / f"zone-{zone}"

    def _load(self, zone: int, reason: str) -> BoothLoad:
        def progress(done: int, total: int, downloaded: int) -> None:
            if self.progress is not None:
                self.progress(zone, done, total, downloaded)

        try:
            manifest = self.client.zone_manifest(self.market_id, zone)
            report = self.client.fetch_manifest(manifest, self.cache, self.folder(zone), progress)
            load = BoothLoad(zone, reason, report)
        except ClientError as refused:  # not a reader (walked out already?), or unreachable
            load = BoothLoad(zone, reason, None, str(refused), refused.status)
        except CorruptChunk as corrupt:  # nothing unverified was cached
            load = BoothLoad(zone, reason, None, str(corrupt))
        self.loads.append(load)
        return load
