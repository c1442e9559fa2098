"""A creator's tool, as a soak drives it: uploads that replace an asset, grants that come and go.

It speaks the chunk store's HTTP API (docs/chunks.md) with HTTP Basic, as creators'
tools do. Each upload asks `/chunks/missing`, PUTs every chunk of the asset's new
content (a tool that sends a whole file again, say after a crash, must cost the market
nothing that stays), and points the asset at it. The contents cycle through VARIANTS
fixed byte strings, so what the market keeps is bounded: after the first cycle any
growth is the market's own. Grants toggle one reader grant of the namespace, granted
then revoked, in turn for everyone and for the booth's visitors.

Blocking calls (urllib): the soak runs them in a thread of their own.
"""

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from blake3 import blake3

VARIANTS = 8
CHUNK_BYTES = 64 * 1024
CHUNKS_PER_ASSET = 2
GRANT_KINDS = ("everyone", "visitors")
TIMEOUT_S = 30.0


class CreatorError(Exception):
    """A request of the creator's was refused or failed; `kind` names it for counting."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


def variant_chunks(seed: int, variant: int) -> list[bytes]:
    """The chunks of content `variant`: the same bytes for the same seed, every time."""
    rng = np.random.default_rng([seed, variant])
    return [rng.bytes(CHUNK_BYTES) for _ in range(CHUNKS_PER_ASSET)]


@dataclass
class Creator:
    """One creator writing `namespace` (its id) of booth `booth` (its id) at `base_url`."""

    base_url: str
    username: str
    password: str
    booth: int
    namespace: int
    seed: int = 1
    asset: int | None = None  # the asset's id once created
    uploads: int = 0
    toggles: int = 0
    _contents: dict[int, list[bytes]] = field(default_factory=dict)

    def _request(self, method: str, path: str, body: bytes | None, json_body: bool) -> Any:
        request = urllib.request.Request(self.base_url.rstrip("/") + path, data=body, method=method)
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        request.add_header(
            "Content-Type", "application/json" if json_body else "application/octet-stream"
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:
                raw = answer.read()
        except urllib.error.HTTPError as error:
            raise CreatorError(
                f"{method} {error.code}", error.read()[:200].decode(errors="replace")
            ) from None
        except OSError as error:
            raise CreatorError(f"{method} {type(error).__name__}", str(error)) from None
        return json.loads(raw) if raw else None

    def _json(self, method: str, path: str, body: dict[str, Any]) -> Any:
        return self._request(method, path, json.dumps(body).encode(), json_body=True)

    def upload(self) -> None:
        """The next content: missing chunks asked, every chunk PUT, the asset pointed at it."""
        variant = self.uploads % VARIANTS
        chunks = self._contents.setdefault(variant, variant_chunks(self.seed, variant))
        hashes = [blake3(chunk).hexdigest() for chunk in chunks]
        self._json("POST", "/chunks/missing", {"namespace": str(self.namespace), "hashes": hashes})
        for chunk_hash, chunk in zip(hashes, chunks, strict=True):
            self._request(
                "PUT", f"/chunks/{chunk_hash}?namespace={self.namespace}", chunk, json_body=False
            )
        asset = {
            "name": "soak.bin",
            "content_type": "application/octet-stream",
            "namespace": str(self.namespace),
            "chunks": hashes,
        }
        if self.asset is None:
            self.asset = int(self._json("POST", f"/shards/{self.booth}/assets", asset)["id"])
        else:
            self._json("PUT", f"/shards/{self.booth}/assets/{self.asset}", asset)
        self.uploads += 1

    def toggle_grant(self) -> str:
        """Grant one reader kind, or revoke the one granted last; returns what was done."""
        kind = GRANT_KINDS[(self.toggles // 2) % len(GRANT_KINDS)]
        granting = self.toggles % 2 == 0
        method = "POST" if granting else "DELETE"
        self._json(method, f"/namespaces/{self.namespace}/readers", {"kind": kind})
        self.toggles += 1
        return "grant" if granting else "revoke"
