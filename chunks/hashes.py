"""Chunk names: the lower-case hex BLAKE3 digest of the chunk's bytes."""

import re

from chunks.errors import ChunkError, ChunkErrorKind

HASH_HEX_LENGTH = 64  # BLAKE3's default 32-byte output, in hex
# fullmatch, not `^…$`: `$` also matches before a trailing newline.
CHUNK_HASH_PATTERN = re.compile(r"[0-9a-f]{64}")


def chunk_hash_is_valid(value: str) -> bool:
    """Whether `value` is exactly 64 lower-case hex digits."""
    return CHUNK_HASH_PATTERN.fullmatch(value) is not None


def chunk_hash_validate(value: str) -> str:
    """`value` when it is a well-formed chunk hash; ChunkError (invalid) otherwise.

    Nothing builds a path from a hash that has not passed through here, so no
    upper case, separator, dot or percent sign ever reaches the file system.
    """
    if not chunk_hash_is_valid(value):
        raise ChunkError(
            ChunkErrorKind.INVALID,
            f"A chunk hash is the lower-case hex BLAKE3 digest of its bytes: exactly "
            f"{HASH_HEX_LENGTH} characters from 0-9 and a-f; got {value[:80]!r}"
            f"{'…' if len(value) > 80 else ''} ({len(value)} characters).",
            extra={"hash": value[:80]},
        )
    return value
