"""Receiving an upload: its body hashed with BLAKE3 while it is written to a temporary file.

Received pieces are gathered into batches of about WRITE_BATCH_BYTES, and each
batch is hashed and written by a worker thread while the event loop receives
the next one; at most two batches of an upload are in memory at any time. The
kernel is asked to start writing each batch to disk at once, so the fsync that
makes a chunk durable only waits for the last few.
"""

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import blake3

from chunks.asgi import BodyIncomplete
from chunks.errors import ChunkError, ChunkErrorKind
from chunks.storage import writeback_start

WRITE_BATCH_BYTES = 1 << 20
WRITE_BATCH_PIECES = 256  # well under the kernel's limit of buffers per writev (IOV_MAX)


class UploadSink:
    """An upload's temporary file and running hash."""

    def __init__(self, fd: int, path: Path, *, write_to_disk: bool) -> None:
        self.fd: int | None = fd
        self.write_to_disk = write_to_disk
        self.path = path
        self.hasher = blake3.blake3()
        self.in_flight: asyncio.Future[None] | None = None
        self.placed = False  # moved into the store, or dropped there as a duplicate
        self.written = 0

    async def receive(self, body: AsyncIterator[bytes], expected: int) -> None:
        """Copy exactly `expected` bytes of `body` into the file, hashing them."""
        received = 0
        batch: list[bytes] = []
        batched = 0
        try:
            async for piece in body:
                received += len(piece)
                if received > expected:
                    raise ChunkError(
                        ChunkErrorKind.INVALID,
                        f"The body is longer than its Content-Length of {expected} bytes; "
                        "nothing was kept.",
                    )
                batch.append(piece)
                batched += len(piece)
                if batched >= WRITE_BATCH_BYTES or len(batch) >= WRITE_BATCH_PIECES:
                    await self._write_behind(batch)
                    batch, batched = [], 0
        except BodyIncomplete as error:
            raise ChunkError(
                ChunkErrorKind.INVALID,
                f"The upload was cut off after {received} of {expected} bytes ({error}); "
                "nothing was kept.",
            ) from error
        await self._write_behind(batch)
        await self._drain()
        if received < expected:
            raise ChunkError(
                ChunkErrorKind.INVALID,
                f"The body ended after {received} of the {expected} bytes its Content-Length "
                "declares; nothing was kept.",
            )

    async def _write_behind(self, batch: list[bytes]) -> None:
        await self._drain()
        if batch:
            loop = asyncio.get_running_loop()
            self.in_flight = loop.run_in_executor(None, self._absorb, batch)

    async def _drain(self) -> None:
        if self.in_flight is not None:
            in_flight, self.in_flight = self.in_flight, None
            await in_flight

    def _absorb(self, batch: Sequence[bytes]) -> None:
        assert self.fd is not None
        for piece in batch:
            self.hasher.update(piece)
        size = _write_all(self.fd, batch)
        if self.write_to_disk:
            writeback_start(self.fd, self.written, size)
        self.written += size

    def hexdigest(self) -> str:
        return self.hasher.hexdigest()

    def flush(self) -> None:
        """Make the file's bytes durable and close it (before it is renamed into place)."""
        assert self.fd is not None
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = None

    async def discard(self) -> None:
        """Close and remove the temporary file unless it has been moved into the store."""
        if self.in_flight is not None:
            # The worker thread may still be writing: close only once it is done with the fd.
            await asyncio.wait([self.in_flight])
            self.in_flight = None
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if not self.placed:
            self.path.unlink(missing_ok=True)


def _write_all(fd: int, pieces: Sequence[bytes]) -> int:
    """Write every piece, in order, in as few system calls as the kernel allows; the size."""
    written = os.writev(fd, pieces)
    total = sum(len(piece) for piece in pieces)
    if written < total:
        # A short write (rare on a regular file): finish with the rest.
        rest = memoryview(b"".join(pieces))[written:]
        while rest:
            rest = rest[os.write(fd, rest) :]
    return total
