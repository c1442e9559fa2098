"""Critical events: what the orchestrator makes durable before it says yes.

A transfer's commit points and a giveaway's claims are critical: once a market or a
visitor has been told "done", the record must survive any crash. Everything that
records or reads them speaks this interface; `host/persistence.py` implements it on
SQLite and on PostgreSQL.
"""

from dataclasses import dataclass
from typing import Any, Protocol


class CriticalConflict(ValueError):
    """An event id was recorded before with a different payload."""


@dataclass(frozen=True)
class CriticalEvent:
    """One durable record; `event_id` is its idempotency key."""

    event_id: str
    instance_id: int  # the market instance it belongs to
    kind: str  # "transfer", "giveaway_claim", ...
    payload: dict[str, Any]  # JSON-serialisable
    at_ms: int  # wall clock when recorded


class CommitLog(Protocol):
    """Where critical events are recorded, durably, before anyone is told."""

    def critical_record(
        self, *, event_id: str, instance_id: int, kind: str, payload: dict[str, Any], at_ms: int
    ) -> bool:
        """Record durably before returning: True if new, False if recorded before alike.

        Raises `CriticalConflict` when `event_id` was recorded with another payload.
        """
        ...

    def critical_events(
        self, *, kind: str | None = None, instance_id: int | None = None
    ) -> list[CriticalEvent]:
        """Every recorded event, optionally of one kind or instance, in recording order."""
        ...
