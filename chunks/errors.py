"""The one exception the chunk store raises for a request it refuses.

Each `ChunkErrorKind` names what went wrong in domain terms; `chunks.http` maps
the kinds to HTTP statuses in one table, for the raw chunk views and the DRF
views alike.
"""

from enum import StrEnum
from typing import Any


class ChunkErrorKind(StrEnum):
    """What a refused request did wrong, as the client sees it in the `error` field."""

    INVALID = "invalid"  # malformed input, a body that does not match its hash or length
    NOT_AUTHENTICATED = "not_authenticated"  # no credentials where a writer is needed
    AUTHENTICATION_FAILED = "authentication_failed"  # credentials that do not check out
    FORBIDDEN = "forbidden"  # no permission, or nothing the principal may see
    CONFLICT = "conflict"  # a write made from a version that is no longer the newest
    LENGTH_REQUIRED = "length_required"  # an upload without Content-Length
    TOO_LARGE = "too_large"  # an upload over CHUNK_MAX_BYTES
    RANGE_NOT_SATISFIABLE = "range_not_satisfiable"  # a Range outside the chunk
    TOO_MANY_REQUESTS = "too_many_requests"  # sign-in refused for a while after failures


class ChunkError(Exception):
    """A refused request: `kind` decides the status, `detail` tells the client why.

    `extra` holds further fields for the JSON body (for example the hashes an asset
    names that its namespace lacks) and `headers` any header the answer needs.
    """

    def __init__(
        self,
        kind: ChunkErrorKind,
        detail: str,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.extra = extra or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON body that reports this error."""
        return {"error": str(self.kind), "detail": self.detail, **self.extra}


FORBIDDEN_CHUNK_DETAIL = "You may not read this chunk."


def chunk_forbidden() -> ChunkError:
    """The one answer for a chunk that is missing or that the principal may not read.

    Both cases must look the same, so that a hash cannot be probed for existence.
    """
    return ChunkError(ChunkErrorKind.FORBIDDEN, FORBIDDEN_CHUNK_DETAIL)
