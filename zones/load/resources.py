"""What a market holds on to, read from outside: per process, in Redis, in the database.

A soak reads these every sample: a figure that keeps growing while the load stays the
same is a leak. Processes are read from /proc (resident memory, open descriptors) and
named by their role, not their pid, so that a restarted zone worker continues its own
series; Redis answers INFO; the database is the market's SQLite file, opened read-only.
"""

import contextlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from .observe import process_tree

# The manage.py command a process of the market runs, and the role it is reported as.
ROLE_COMMANDS = ("runmarket", "webprocess", "zoneworker")


@dataclass(frozen=True)
class ProcessReading:
    """One process at one moment."""

    pid: int
    rss_kib: int
    fds: int


def process_reading(pid: int) -> ProcessReading | None:
    """Resident memory and open descriptors of `pid`, or None once it has gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())
    except (OSError, ValueError):
        return None
    rss = next((line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")), "0")
    return ProcessReading(pid=pid, rss_kib=int(rss), fds=fds)


def process_role(pid: int) -> str:
    """The role of a market process, from its command line.

    "runmarket" (the main job), "webprocess" (another web process), "zoneworker 0,1" (the
    zones it runs), or the program's name for anything else.
    """
    try:
        argv = [
            a.decode(errors="replace")
            for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        ]
    except OSError:
        return "gone"
    for i, arg in enumerate(argv):
        if arg == "zoneworker":
            zones = argv[argv.index("--zones") + 1] if "--zones" in argv else "?"
            return f"zoneworker {zones}"
        if arg in ROLE_COMMANDS and i > 0:
            return arg
    return Path(argv[0]).name if argv and argv[0] else f"pid {pid}"


def market_processes(root: int) -> dict[str, ProcessReading]:
    """Every process of the market started as `root`, by role; roles that repeat (several
    web processes) are numbered in pid order."""
    roles: dict[str, list[int]] = {}
    for pid in sorted(process_tree(root)):
        roles.setdefault(process_role(pid), []).append(pid)
    readings: dict[str, ProcessReading] = {}
    for role, pids in roles.items():
        for n, pid in enumerate(pids, start=1):
            reading = process_reading(pid)
            if reading is not None:
                readings[role if len(pids) == 1 else f"{role} {n}"] = reading
    return readings


def redis_reading(client: "redis.Redis[Any]") -> dict[str, int] | None:
    """Memory used, memory resident, keys and clients of a Redis, or None when it does not answer."""
    try:
        memory = client.info("memory")
        clients = client.info("clients")
        keyspace = client.info("keyspace")
    except redis.RedisError:
        return None
    keys = sum(int(db.get("keys", 0)) for db in keyspace.values() if isinstance(db, dict))
    return {
        "used_memory": int(memory["used_memory"]),
        "used_memory_rss": int(memory["used_memory_rss"]),
        "keys": keys,
        "clients": int(clients["connected_clients"]),
    }


def redis_pid(client: "redis.Redis[Any]") -> int | None:
    """The Redis server's pid, when it runs on this machine and answers."""
    with contextlib.suppress(redis.RedisError, KeyError, ValueError):
        pid = int(client.info("server")["process_id"])
        if Path(f"/proc/{pid}").exists():
            return pid
    return None


def table_rows(database: Path) -> dict[str, int]:
    """Rows in every table of a SQLite database, read-only (the market keeps writing it)."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    try:
        names = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                " ORDER BY name"
            )
        ]
        # Table names come from the database's own catalogue, quoted as identifiers.
        return {
            name: int(connection.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0])
            for name in names
        }
    finally:
        connection.close()
