"""Fetching a booth's assets over the chunk REST API.

    GET /shards/<booth>/assets   → {"booth", "assets": [{"id", "name", "size",
                                     "chunks": [{"hash", "offset", "size", "url"}]}]}
    GET /chunks/<hash>           → the chunk's bytes

Missing chunks download concurrently; each is verified before it is cached; an
asset is rebuilt only from verified chunks, and its size and offsets checked.
"""

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cache import ChunkCache, CorruptChunk

Progress = Callable[[int, int, int], None]
"""Called as progress(chunks_done, chunks_total, bytes_downloaded)."""


class ClientError(Exception):
    """The server refused or could not answer; `status` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class PermissionDenied(ClientError):
    """403: this principal may not read the manifest or the chunk."""


@dataclass
class FetchReport:
    """What one fetch did."""

    assets: list[Path] = field(default_factory=list)
    chunks_total: int = 0
    chunks_downloaded: int = 0
    chunks_cached: int = 0
    bytes_downloaded: int = 0


class AssetClient:
    """Talks to one market's chunk API as one principal (its headers)."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        workers: int = 8,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.workers = workers

    def manifest(self, booth: int | str) -> dict[str, Any]:
        """The booth's manifest as the server sends it."""
        return self._manifest(f"shards/{booth}/assets", f"booth {booth}")

    def zone_manifest(self, market: int, zone: int) -> dict[str, Any]:
        """The manifest of the booth at `zone` of `market` (visitors know booths by zone)."""
        return self._manifest(f"markets/{market}/zones/{zone}/assets", f"zone {zone}")

    def _manifest(self, path: str, what: str) -> dict[str, Any]:
        body = self._get(path)
        try:
            manifest: dict[str, Any] = json.loads(body)
        except ValueError as exc:
            raise ClientError(f"{what}: the manifest is not JSON ({exc})") from exc
        if not isinstance(manifest.get("assets"), list):
            raise ClientError(f"{what}: the manifest has no asset list")
        return manifest

    def chunk(self, digest: str, url: str | None = None) -> bytes:
        """One chunk's bytes, unverified."""
        return self._get(url or f"chunks/{digest}")

    def fetch_booth(
        self,
        booth: int | str,
        cache: ChunkCache,
        out_dir: str | Path,
        progress: Progress | None = None,
    ) -> FetchReport:
        """Bring every asset of `booth` into `out_dir`, downloading only what `cache` lacks."""
        return self.fetch_manifest(self.manifest(booth), cache, out_dir, progress)

    def fetch_manifest(
        self,
        manifest: Mapping[str, Any],
        cache: ChunkCache,
        out_dir: str | Path,
        progress: Progress | None = None,
    ) -> FetchReport:
        """Bring every asset of `manifest` into `out_dir`, downloading only what `cache` lacks."""
        wanted: dict[str, str | None] = {}
        for asset in manifest["assets"]:
            for piece in asset["chunks"]:
                wanted.setdefault(piece["hash"], piece.get("url"))
        report = FetchReport(chunks_total=len(wanted))
        missing = [(h, url) for h, url in wanted.items() if not cache.has(h)]
        report.chunks_cached = report.chunks_total - len(missing)
        done = report.chunks_cached
        if progress:
            progress(done, report.chunks_total, 0)

        def download(item: tuple[str, str | None]) -> int:
            digest, url = item
            data = self.chunk(digest, url)
            cache.put(digest, data)  # raises CorruptChunk before anything is stored
            return len(data)

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for size in pool.map(download, missing):
                done += 1
                report.chunks_downloaded += 1
                report.bytes_downloaded += size
                if progress:
                    progress(done, report.chunks_total, report.bytes_downloaded)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for asset in manifest["assets"]:
            report.assets.append(_rebuild(asset, cache, out))
        return report

    def _get(self, path_or_url: str) -> bytes:
        url = urllib.parse.urljoin(self.base_url, path_or_url)
        request = urllib.request.Request(url, headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode(errors="replace")
            kind = PermissionDenied if exc.code == 403 else ClientError
            raise kind(f"GET {url}: {exc.code} {exc.reason} {detail}".strip(), exc.code) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise ClientError(f"GET {url}: no answer ({exc})") from exc


def _rebuild(asset: Mapping[str, Any], cache: ChunkCache, out: Path) -> Path:
    """Concatenate an asset's verified chunks, checking offsets and the total size."""
    name = Path(str(asset["name"])).name or f"asset-{asset.get('id')}"
    target = out / name
    offset = 0
    with open(target, "wb") as file:
        for piece in asset["chunks"]:
            if int(piece["offset"]) != offset:
                raise CorruptChunk(
                    f"{name}: chunk {piece['hash']} at offset {piece['offset']}, expected {offset}"
                )
            data = cache.read(piece["hash"])
            if len(data) != int(piece["size"]):
                raise CorruptChunk(
                    f"{name}: chunk {piece['hash']} is {len(data)} bytes, manifest says {piece['size']}"
                )
            file.write(data)
            offset += len(data)
    if "size" in asset and offset != int(asset["size"]):
        raise CorruptChunk(f"{name}: rebuilt {offset} bytes, manifest says {asset['size']}")
    return target
