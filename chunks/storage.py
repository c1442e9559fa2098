"""Chunk files on disk: one per chunk at <CHUNK_STORE_DIR>/ab/cd/<hash>.

An upload is written to a private temporary file in <CHUNK_STORE_DIR>/tmp (the
same file system, so that the final os.replace is an atomic rename), flushed to
disk, and only then moved to its place: a reader finds the whole chunk or
nothing. A file is never changed in place, and a name always holds the same
bytes, which is what makes replacing or restoring a chunk file harmless.

Files are made readable by everyone (0644): who may fetch a chunk is decided by
the application, and a front server (nginx) may serve the files directly. Keep
the store inside a directory that local users cannot enter if that matters.
"""

import contextlib
import ctypes
import ctypes.util
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from chunks.hashes import chunk_hash_validate

CHUNK_FILE_MODE = 0o644
TEMP_PREFIX = "upload-"
QUARANTINE_PREFIX = "collected-"


SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>: start writeback of the range, do not wait


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        function = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


_sync_file_range = _load_sync_file_range()


def writeback_start(fd: int, offset: int, length: int) -> None:
    """Have the kernel start writing bytes [offset, offset + length) to disk now.

    An upload calls this as it goes, so that the fsync that ends it waits for the
    last few blocks only, not for the whole chunk. Linux only (sync_file_range);
    elsewhere, and if the call fails, the fsync simply does all the work.
    """
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE)


def fsync_directory(path: Path) -> None:
    """Make a rename or unlink in `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class ChunkStore:
    """The directory tree that holds the chunk files, and its temporary folder."""

    root: Path

    @property
    def tmp_dir(self) -> Path:
        """Uploads in progress and chunks being collected ("tmp" is no hex pair)."""
        return self.root / "tmp"

    def path_for(self, chunk_hash: str) -> Path:
        """Where the chunk named `chunk_hash` lives; the hash is validated first."""
        chunk_hash_validate(chunk_hash)
        return self.root / chunk_hash[:2] / chunk_hash[2:4] / chunk_hash

    def temp_create(self) -> tuple[int, Path]:
        """A new private file for an upload: its open descriptor and its path."""
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=self.tmp_dir)
        os.fchmod(fd, CHUNK_FILE_MODE)
        return fd, Path(name)

    def place(self, temp: Path, chunk_hash: str) -> bool:
        """Move a verified, flushed temp file to its place; False if the chunk was there.

        When the chunk is already stored the temp file is dropped: its bytes are the
        same, by the hash.
        """
        final = self.path_for(chunk_hash)
        if final.exists():
            temp.unlink(missing_ok=True)
            return False
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp, final)
        fsync_directory(final.parent)
        return True

    def exists(self, chunk_hash: str) -> bool:
        """Whether the chunk's file is in the store."""
        return self.path_for(chunk_hash).is_file()

    def quarantine(self, chunk_hash: str) -> Path | None:
        """Move a chunk's file aside before its record is deleted; None if it has no file.

        The move is undone by `restore` if the deletion does not commit, and
        finished by `Path.unlink` once it has.
        """
        aside = self.tmp_dir / f"{QUARANTINE_PREFIX}{chunk_hash}-{os.urandom(4).hex()}"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(self.path_for(chunk_hash), aside)
        except FileNotFoundError:
            return None
        return aside

    def restore(self, aside: Path, chunk_hash: str) -> None:
        """Put a quarantined file back (over any copy uploaded meanwhile: same bytes)."""
        final = self.path_for(chunk_hash)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(aside, final)

    def quarantined(self) -> list[tuple[Path, str]]:
        """Files a collection moved aside and did not finish with, and their hashes."""
        if not self.tmp_dir.is_dir():
            return []
        found = []
        for path in self.tmp_dir.glob(f"{QUARANTINE_PREFIX}*"):
            chunk_hash = path.name.removeprefix(QUARANTINE_PREFIX).split("-", 1)[0]
            found.append((path, chunk_hash_validate(chunk_hash)))
        return found

    def temp_sweep(self, *, older_than_seconds: float) -> int:
        """Delete upload files left behind by crashed processes; the number removed.

        Live uploads are safe: they write at least once a minute (an idle upload is
        cut off), far inside any sensible grace period.
        """
        if not self.tmp_dir.is_dir():
            return 0
        cutoff = time.time() - older_than_seconds
        removed = 0
        for path in self.tmp_dir.glob(f"{TEMP_PREFIX}*"):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        return removed


def chunk_store() -> ChunkStore:
    """The store configured by settings.CHUNK_STORE_DIR."""
    return ChunkStore(Path(settings.CHUNK_STORE_DIR))
