"""What a chunk GET answers, from its Range and conditional headers (RFC 9110 §13, §14).

Pure functions of the header strings, the chunk's size and its ETag; no I/O.
`answer_headers` is the one place that words the headers of a chunk answer, for
the chunk view and for chunks.fastpath alike.
"""

import re
from dataclasses import dataclass

from chunks.errors import ChunkError, ChunkErrorKind

IMMUTABLE_FOR = "max-age=31536000, immutable"  # a year: the name fixes the bytes forever
# One range only; a header with several (a comma) is served whole, as RFC 9110 allows.
SINGLE_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*")


@dataclass(frozen=True)
class ChunkPlan:
    """The status to answer with and the bytes [start, start + length) to send."""

    status: int  # 200, 206 or 304
    start: int
    length: int

    @property
    def end(self) -> int:
        """The last byte sent (inclusive, as in Content-Range)."""
        return self.start + self.length - 1


def etag_listed(if_none_match: str | None, etag: str) -> bool:
    """Whether If-None-Match names `etag` (weak comparison) or is `*`."""
    if if_none_match is None:
        return False
    tags = [tag.strip() for tag in if_none_match.split(",")]
    return "*" in tags or etag in (tag.removeprefix("W/") for tag in tags)


def if_range_holds(if_range: str | None, etag: str) -> bool:
    """Whether a Range may be honoured: no If-Range, or one that names `etag` exactly.

    A weak tag or a date never holds (strong comparison; chunks send no Last-Modified).
    """
    return if_range is None or if_range.strip() == etag


def requested_range(range_header: str | None, size: int) -> tuple[int, int] | None:
    """(start, length) of the one byte range asked for; None to send the whole chunk.

    None also for a header that is malformed, uses another unit, or lists several
    ranges: the server may ignore Range then. A well-formed range that starts
    past the end, or a zero-length suffix, is unsatisfiable: ChunkError (416).
    """
    if range_header is None:
        return None
    match = SINGLE_RANGE.fullmatch(range_header)
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # bytes=-n: the last n bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise range_not_satisfiable(size)
        start = max(size - suffix, 0)
        return start, size - start
    start = int(first)
    if last and int(last) < start:
        return None  # invalid, so ignored
    if start >= size:
        raise range_not_satisfiable(size)
    end = min(int(last), size - 1) if last else size - 1
    return start, end - start + 1


def range_not_satisfiable(size: int) -> ChunkError:
    """416, with the chunk's size in Content-Range as RFC 9110 §15.5.17 asks."""
    return ChunkError(
        ChunkErrorKind.RANGE_NOT_SATISFIABLE,
        f"The range asks for bytes outside this chunk of {size} bytes.",
        extra={"size": size},
        headers={"Content-Range": f"bytes */{size}"},
    )


def chunk_plan(
    *,
    size: int,
    etag: str,
    range_header: str | None,
    if_range: str | None,
    if_none_match: str | None,
) -> ChunkPlan:
    """What to answer a GET or HEAD of a chunk the principal may read."""
    if etag_listed(if_none_match, etag):
        return ChunkPlan(status=304, start=0, length=0)
    wanted = requested_range(range_header, size) if if_range_holds(if_range, etag) else None
    if wanted is None:
        return ChunkPlan(status=200, start=0, length=size)
    start, length = wanted
    return ChunkPlan(status=206, start=start, length=length)


def chunk_etag(chunk_hash: str) -> str:
    """The strong ETag of a chunk: its hash, which no other bytes can have."""
    return f'"{chunk_hash}"'


def answer_headers(
    chunk_hash: str, size: int, plan: ChunkPlan, *, public: bool
) -> list[tuple[str, str]]:
    """The headers of an answer about a readable chunk: validators, caching, range."""
    headers = [
        ("ETag", chunk_etag(chunk_hash)),
        ("Cache-Control", f"{'public' if public else 'private'}, {IMMUTABLE_FOR}"),
        ("Accept-Ranges", "bytes"),
        ("X-Content-Type-Options", "nosniff"),
    ]
    if plan.status != 304:
        headers += [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(plan.length)),
        ]
    if plan.status == 206:
        headers.append(("Content-Range", f"bytes {plan.start}-{plan.end}/{size}"))
    return headers
