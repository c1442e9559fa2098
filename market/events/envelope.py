"""The bytes of one event in a stream: a JSON envelope around the typed payload.

    {"id": "…32 hex…", "type": "booth_entered", "v": 1, "subject": "market.1.booth.2.visitor.7",
     "at_ms": 1764000000000, "data": {…the payload…}}

`id` makes appends idempotent (a relay that retries duplicates nothing) and lets a
consumer recognise an event it has seen. Reading checks the envelope and the payload
against the type's schema; an entry that fails is reported as malformed, never acted on.
"""

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from market.events.subjects import SubjectError, subject_check
from market.events.types import Event, EventError, event_from_payload


@dataclass(frozen=True)
class Envelope:
    """One event as stored: its id, subject, time, and the typed event."""

    id: str
    subject: str
    at_ms: int
    event: Event

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "id": self.id,
                "type": self.event.TYPE,
                "v": self.event.VERSION,
                "subject": self.subject,
                "at_ms": self.at_ms,
                "data": self.event.payload(),
            },
            separators=(",", ":"),
        ).encode()


def envelope_new(market_id: int, event: Event, *, event_id: str | None = None) -> Envelope:
    """A new envelope for `event` in market `market_id`, with a fresh id unless given."""
    return Envelope(
        id=event_id or uuid.uuid4().hex,
        subject=subject_check(event.subject(market_id)),
        at_ms=time.time_ns() // 1_000_000,
        event=event,
    )


def envelope_parse(data: bytes) -> Envelope:
    """The envelope in `data`; EventError saying what is wrong when it is malformed."""
    try:
        raw: Any = json.loads(data.decode())
    except (ValueError, RecursionError) as exc:
        raise EventError(f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise EventError("an envelope is a JSON object")
    event_id, subject, at_ms = raw.get("id"), raw.get("subject"), raw.get("at_ms")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= 64:
        raise EventError("an envelope's id is a string of 1 to 64 characters")
    if not isinstance(subject, str):
        raise EventError("an envelope's subject is a string")
    if not isinstance(at_ms, int) or isinstance(at_ms, bool):
        raise EventError("an envelope's at_ms is an integer")
    try:
        subject_check(subject)
    except SubjectError as exc:
        raise EventError(str(exc)) from None
    version = raw.get("v")
    if not isinstance(version, int) or isinstance(version, bool):
        raise EventError("an envelope's v is an integer")
    event = event_from_payload(str(raw.get("type")), version, raw.get("data"))
    return Envelope(id=event_id, subject=subject, at_ms=at_ms, event=event)
