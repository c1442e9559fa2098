"""Zone snapshots on disk: one writer per zone, one file per (zone, revision).

A worker takes an exclusive lock on each zone it hosts before it reads or
writes a snapshot, so two workers can never both run (and write) one zone. A
snapshot's revision is the zone's tick; a file is written to a temporary name
and renamed into place, never rewritten: writing the same (zone, revision)
twice is a no-op. The newest readable snapshot is where a restarted zone
resumes: the worker writes one every few seconds and replays the zone's input
log (zones/inputlog.py, in the same directory) from there, so a restarted zone
never forgets an answer it gave.

Zone state belongs to one market of one database: ids restart at 1 in every
database, so the directory of a market's zones is named by its id and its
identity (`market_state_dir`), and each zone's directory holds a `market` file
naming the market it was written for. A zone directory that names another market
(copied or moved by hand, or written before zone state was keyed this way) is
never resumed: it is moved aside, whole, with an error in the log, and the zone
starts fresh.
"""

import contextlib
import fcntl
import logging
import os
import time
from pathlib import Path

from zones.core.snapshot import SnapshotError, state_from_bytes, state_to_bytes
from zones.core.state import ZoneState

log = logging.getLogger(__name__)

KEEP = 3  # newest snapshots kept per zone; older ones are deleted after each write
MARKER = "market"  # in each zone's directory: the name of the market directory it belongs to
ASIDE = "not-this-market."  # subdirectories holding another market's state, moved aside


def market_state_dir(root: Path, market_id: int, identity: str) -> Path:
    """The directory of one market's zone state under `root`.

    Other markets with the same id (another database's, or state kept before it was
    keyed by identity) keep theirs beside it, untouched and never resumed; the log
    says so, since it explains a market that starts empty although state is on disk.
    """
    if not identity:
        raise ValueError(f"market {market_id}: zone state needs the market's identity")
    mine = root / f"market-{market_id}-{identity}"
    if root.is_dir():
        for other in sorted(root.glob(f"market-{market_id}*")):
            if other != mine and other.name.split("-")[:2] == ["market", str(market_id)]:
                log.warning(
                    "market %d: %s holds the zone state of another market numbered %d"
                    " (another database's, or kept before zone state named its market);"
                    " not resumed",
                    market_id,
                    other,
                    market_id,
                )
    return mine


class ZoneLocked(RuntimeError):
    """Another live process already hosts this zone."""


LOCK_FILE = "writer.lock"
PROC_LOCKS = Path("/proc/locks")


def zone_dir(root: Path, zone: int) -> Path:
    """The directory of one zone's snapshots, input log and lock under a market's `root`."""
    return root / f"zone-{zone:02d}"


def lock_holder(directory: Path, locks: Path = PROC_LOCKS) -> int | None:
    """The id of the process holding the lock of the zone in `directory`, or None.

    Read from the kernel's own table of file locks (Linux's /proc/locks), never by taking
    the lock to see: a worker starting at that instant would find it held and fail. A
    stale pid written in the lock file by a process that has gone is never returned.
    """
    try:
        stat = (directory / LOCK_FILE).stat()
        table = locks.read_text()
    except FileNotFoundError:
        return None
    where = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    for line in table.splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:2187633 0 EOF"
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == where:
            return int(fields[4])
    return None


class SnapshotStore:
    """The snapshots of one zone, held under its lock for as long as the store is open."""

    def __init__(self, root: Path, zone: int) -> None:
        self.zone = zone
        self.dir = zone_dir(root, zone)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.dir / LOCK_FILE, "a+")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.seek(0)
            holder = self._lock.read().strip() or "another process"
            self._lock.close()
            raise ZoneLocked(f"zone {zone} is already run by {holder}") from None
        self._lock.seek(0)
        self._lock.truncate()
        self._lock.write(f"pid {os.getpid()}")
        self._lock.flush()
        self.written = 0
        self._claim(root.name)

    def _claim(self, market: str) -> None:
        """Make sure what the zone's directory holds is this market's, under the lock.

        Anything written for another market, or before zone state named its market,
        goes aside into a subdirectory (kept whole, never read again) and the zone
        starts fresh.
        """
        marker = self.dir / MARKER
        try:
            owner = marker.read_text().strip()
        except FileNotFoundError:
            owner = ""
        if owner == market:
            return
        found = [
            path
            for path in self.dir.iterdir()
            if path.name != "writer.lock" and not path.name.startswith(ASIDE)
        ]
        if found:
            aside = self.dir / f"{ASIDE}{time.time_ns()}"
            aside.mkdir()
            for path in found:
                path.rename(aside / path.name)
            log.error(
                "zone %d: %s held state of %s, not of this market %s; moved aside to %s,"
                " starting fresh",
                self.zone,
                self.dir,
                owner or "a market it did not name",
                market,
                aside,
            )
        temporary = self.dir / f".{MARKER}.{os.getpid()}.tmp"
        temporary.write_text(market + "\n")
        os.replace(temporary, marker)

    def path(self, revision: int) -> Path:
        return self.dir / f"{revision:012d}.snap"

    def write(self, state: ZoneState) -> bool:
        """Persist `state` as revision `state.tick`; False if that revision is on disk already.

        OSError (a full disk, no file descriptor left) leaves no partial file behind:
        the newest whole snapshot stays the newest.
        """
        final = self.path(state.tick)
        if final.exists():
            return False
        temporary = self.dir / f".{state.tick:012d}.{os.getpid()}.tmp"
        try:
            temporary.write_bytes(state_to_bytes(state))
            os.replace(temporary, final)
        except OSError:
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)
            raise
        self.written += 1
        for old in self.revisions()[:-KEEP]:
            old.unlink(missing_ok=True)
        return True

    def revisions(self) -> list[Path]:
        """Snapshot files, oldest first."""
        return sorted(self.dir.glob("*.snap"))

    def latest(self) -> ZoneState | None:
        """The newest snapshot that reads back whole, or None."""
        for path in reversed(self.revisions()):
            try:
                state = state_from_bytes(path.read_bytes())
            except (OSError, SnapshotError) as exc:
                log.warning("zone %d: skipping unreadable snapshot %s: %s", self.zone, path, exc)
                continue
            if state.zone != self.zone:
                log.warning("zone %d: %s holds zone %d; skipped", self.zone, path, state.zone)
                continue
            return state
        return None

    def discard(self) -> None:
        """Delete every snapshot (the layout changed: the old records no longer apply)."""
        for path in self.revisions():
            path.unlink(missing_ok=True)

    def close(self) -> None:
        if not self._lock.closed:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
