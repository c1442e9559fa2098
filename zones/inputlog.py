"""A zone's input log on disk: segments of tick records, cut at each snapshot.

The log lives in the zone's snapshot directory (zones/snapshots.py), under the
same lock. A segment `<base>.log` starts where the snapshot of tick `base` was
taken: a header, then one record per tick (zones.core.inputlog) for ticks
base + 1, base + 2, and so on. Each snapshot starts a new segment; once the
oldest snapshot kept is newer than a segment's base, nothing can replay from
that segment any more and it is deleted.

Segment header, little-endian: magic u32 = SEGMENT_MAGIC, format u16, zone u16,
base tick u64, rng length u8 and the worker's generator at that tick, then a
crc32 of everything before it. A header is written under a temporary name and
renamed into place, so a segment on disk always has a whole one.

What survives a crash. Each record is handed to the kernel with one `os.write`
on an O_APPEND descriptor before anything of its tick leaves; there is no fsync
per tick (it would cost milliseconds on a busy disk, every 50 ms).

* A process crash (SIGKILL, an exception, the OOM killer) loses nothing that was
  written: the kernel owns the bytes once `os.write` returns. A restarted zone
  replays to exactly the last tick it logged, so it remembers every answer it
  sent and every input it took.
* A machine crash or power loss loses whatever the kernel had not yet written
  back (by default up to about 30 s, snapshots included), and may leave a
  segment ending in a torn or zero-filled record, which reading ignores. The
  zone resumes at an earlier tick than it reached and may have forgotten
  answers it gave in the lost seconds; the fabric's retries and fencing epochs
  absorb a lost message, not a contradicted one, so this is the case fsync
  would be for.
"""

import contextlib
import logging
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from zones.core.inputlog import InputLogError, LogRecord, decode_records, encode_record

log = logging.getLogger(__name__)

SEGMENT_MAGIC = 0x474D5346  # bytes "FSMG"
SEGMENT_FORMAT = 1
_HEADER = struct.Struct("<IHHQB")
_CRC = struct.Struct("<I")


@dataclass
class Recovery:
    """What the log adds to a snapshot: the ticks after it, and the rng after the last."""

    records: list[LogRecord] = field(default_factory=list)
    rng: bytes = b""
    torn_bytes: int = 0


class InputLog:
    """The log segments of one zone; the caller holds the zone's lock."""

    def __init__(self, directory: Path, zone: int) -> None:
        self.dir = directory
        self.zone = zone
        self._fd: int | None = None
        self._base: int | None = None  # base tick of the open segment
        self._size = 0  # bytes in the open segment
        self.writes = 0  # os.write calls, for tests and benches
        self.bytes_written = 0

    def path(self, base: int) -> Path:
        return self.dir / f"{base:012d}.log"

    def segments(self) -> list[tuple[int, Path]]:
        """(base tick, path) of every segment, oldest first."""
        found = [(int(path.stem), path) for path in self.dir.glob("*.log") if path.stem.isdigit()]
        return sorted(found)

    # --- writing ---------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """Whether a segment is open for appending."""
        return self._fd is not None

    def start(self, base: int, rng: bytes) -> None:
        """Begin the segment for ticks after `base`.

        Segments from `base` on are deleted first: a zone only starts one at a tick
        it reached, so any there already belong to ticks it did not resume (after a
        torn record or a gap) and must never be replayed after the new ones.

        The open segment stays open until the new one is: if writing the new one
        fails (a full disk, no file descriptor left), OSError is raised and appends
        go on where they went, so the log stays one unbroken history.
        """
        for old, path in self.segments():
            if old >= base and old != self._base:
                path.unlink(missing_ok=True)
        head = _HEADER.pack(SEGMENT_MAGIC, SEGMENT_FORMAT, self.zone, base, len(rng)) + rng
        temporary = self.dir / f".{base:012d}.{os.getpid()}.log.tmp"
        replaced = False
        try:
            temporary.write_bytes(head + _CRC.pack(zlib.crc32(head)))
            os.replace(temporary, self.path(base))
            replaced = True
            fd = os.open(self.path(base), os.O_WRONLY | os.O_APPEND)
        except OSError:
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)
            if replaced and self._base == base:
                self._close_fd()  # its file was just replaced: appends would go nowhere
            raise
        self._close_fd()
        self._fd, self._base, self._size = fd, base, len(head) + _CRC.size

    def append(self, record: LogRecord) -> None:
        """Hand one tick's record to the kernel (no fsync: see the module docstring).

        A write that fails part-way (a full disk) is cut back off the segment before
        OSError is raised, so the same record can be appended again later and the
        segment never holds a torn record with whole ones after it.
        """
        if self._fd is None:
            raise RuntimeError(f"zone {self.zone}: no log segment started")
        data = encode_record(record)
        written = 0
        try:
            written = os.write(self._fd, data)
            while written < len(data):  # a regular file takes it whole; a full disk may not
                written += os.write(self._fd, data[written:])
                self.writes += 1
        except OSError:
            if written:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, self._size)
            raise
        self.writes += 1
        self.bytes_written += len(data)
        self._size += len(data)

    def prune(self, oldest_snapshot: int) -> int:
        """Delete the segments no kept snapshot can replay from; how many went."""
        gone = 0
        for base, path in self.segments():
            if base < oldest_snapshot:
                path.unlink(missing_ok=True)
                gone += 1
        return gone

    def discard(self) -> None:
        """Delete every segment (the snapshots they followed are gone)."""
        self._close_fd()
        for _, path in self.segments():
            path.unlink(missing_ok=True)

    def close(self) -> None:
        self._close_fd()

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = self._base = None

    # --- reading ---------------------------------------------------------------------------

    def recover(self, snapshot_tick: int) -> Recovery:
        """The records after `snapshot_tick`, in order, up to the first missing tick.

        A torn record ends a segment (see the module docstring); the ticks after
        a gap cannot be replayed, so reading stops there with a warning. A corrupt
        record with whole records after it raises InputLogError.
        """
        out = Recovery()
        reached = snapshot_tick
        for base, path in self.segments():
            if base < snapshot_tick:
                continue
            if base != reached:
                log.warning(
                    "zone %d: log resumes at tick %d after %d; stopped", self.zone, base, reached
                )
                break
            rng, body = self._read(path)
            out.rng = rng or out.rng
            read = decode_records(body)
            out.torn_bytes += read.torn_bytes
            if read.torn_bytes:
                log.warning(
                    "zone %d: %s ends in a torn record (%d bytes); ignored",
                    self.zone,
                    path,
                    read.torn_bytes,
                )
            for record in read.records:
                if record.tick != reached + 1:
                    log.warning(
                        "zone %d: %s skips from tick %d to %d; stopped",
                        self.zone,
                        path,
                        reached,
                        record.tick,
                    )
                    return out
                out.records.append(record)
                out.rng = record.rng or out.rng
                reached = record.tick
        return out

    def _read(self, path: Path) -> tuple[bytes, bytes]:
        """(rng at the segment's base, the record bytes) of one segment."""
        data = path.read_bytes()
        if len(data) < _HEADER.size:
            raise InputLogError(f"{path}: shorter than a segment header")
        magic, fmt, zone, _, rng_length = _HEADER.unpack_from(data)
        end = _HEADER.size + rng_length
        if len(data) < end + _CRC.size:
            raise InputLogError(f"{path}: shorter than its segment header")
        if magic != SEGMENT_MAGIC or fmt != SEGMENT_FORMAT or zone != self.zone:
            raise InputLogError(f"{path}: not a format {SEGMENT_FORMAT} log of zone {self.zone}")
        (crc,) = _CRC.unpack_from(data, end)
        if crc != zlib.crc32(data[:end]):
            raise InputLogError(f"{path}: segment header fails its checksum")
        return data[_HEADER.size : end], data[end + _CRC.size :]
