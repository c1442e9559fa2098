"""Chunks on disk, by hash: `<root>/ab/cd/<hash>`.

Nothing enters the cache unverified: a chunk is written to a temporary file,
its BLAKE3 hash checked, and only then renamed into place. A file in the cache
is therefore always the chunk its name says.
"""

import os
import re
import tempfile
from pathlib import Path

import blake3

HASH_PATTERN = re.compile(r"^[0-9a-f]{64}$")


class CorruptChunk(ValueError):
    """Bytes whose BLAKE3 hash is not the one they were fetched as."""


def chunk_hash(data: bytes) -> str:
    """Lower-case hex BLAKE3 of `data`."""
    return blake3.blake3(data).hexdigest()


class ChunkCache:
    """A content-addressed directory of verified chunks."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        """Where the chunk `digest` lives; refuses anything that is not a hash."""
        if not HASH_PATTERN.match(digest):
            raise ValueError(f"not a lower-case BLAKE3 hex hash: {digest!r}")
        return self.root / digest[:2] / digest[2:4] / digest

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def read(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()

    def put(self, digest: str, data: bytes) -> None:
        """Store `data` as chunk `digest` after checking its hash; atomic."""
        actual = chunk_hash(data)
        if actual != digest:
            raise CorruptChunk(f"chunk {digest} arrived with hash {actual}; not cached")
        target = self.path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
