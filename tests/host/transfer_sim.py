"""A commit log kept in memory, standing for the disk: it outlives every crash it is told of."""

import json
from typing import Any

from host.commitlog import CriticalConflict, CriticalEvent


class MemoryCommitLog:
    """The `CommitLog` interface over a list; what it recorded survives a book's death."""

    def __init__(self) -> None:
        self.events: list[CriticalEvent] = []
        self._by_id: dict[str, CriticalEvent] = {}

    def critical_record(
        self, *, event_id: str, instance_id: int, kind: str, payload: dict[str, Any], at_ms: int
    ) -> bool:
        """Keep the event (a JSON copy, as a disk would) unless its id is known."""
        stored = json.loads(json.dumps(payload))
        before = self._by_id.get(event_id)
        if before is not None:
            if before.payload != stored:
                raise CriticalConflict(f"event {event_id} was recorded with another payload")
            return False
        event = CriticalEvent(event_id, instance_id, kind, stored, at_ms)
        self.events.append(event)
        self._by_id[event_id] = event
        return True

    def critical_events(
        self, *, kind: str | None = None, instance_id: int | None = None
    ) -> list[CriticalEvent]:
        """The events of one kind and instance, or all, in recording order."""
        return [
            e
            for e in self.events
            if (kind is None or e.kind == kind)
            and (instance_id is None or e.instance_id == instance_id)
        ]
