"""The control API's snapshot routes: markets' state, kept by the one writer.

    POST /snapshots            a market's characters and its own state, every few seconds
    GET  /characters/{id}      a character's newest state, from whichever market said last

Snapshots are taken in memory, idempotent by (scope, key, instance, revision): an equal
or older revision changes nothing. The checkpoint writes them; what came after the last
checkpoint may be lost in a crash, which is the bound on non-critical state.
"""

import asyncio
from typing import Any

from host.control import ControlApp, ControlRefusal, ControlRequest, body_whole
from host.persistence import GameStore, PersistenceError

MAX_CHARACTERS = 10_000  # a market holds at most a few thousand visitors


class SnapshotRoutes:
    """The snapshot routes over the host's one game store."""

    def __init__(self, *, store: GameStore) -> None:
        self.store = store

    def routes_add(self, app: ControlApp) -> None:
        app.route_add("POST", "/snapshots", self._ingest)
        app.route_add("GET", "/characters/{character_id}", self._character)

    async def _ingest(self, request: ControlRequest) -> dict[str, Any]:
        body = request.body if isinstance(request.body, dict) else {}
        instance, revision, at_ms = (
            body_whole(body, n) for n in ("instance_id", "revision", "at_ms")
        )
        characters = body.get("characters", [])
        if not isinstance(characters, list) or len(characters) > MAX_CHARACTERS:
            raise ControlRefusal(
                400, f"characters must be a list of at most {MAX_CHARACTERS}", "bad_request"
            )
        try:
            taken = await asyncio.to_thread(
                self._ingest_all, instance, revision, at_ms, characters, body.get("instance")
            )
        except PersistenceError as error:
            raise ControlRefusal(400, str(error), "bad_request") from None
        return {"taken": taken, "of": len(characters)}

    def _ingest_all(
        self, instance: int, revision: int, at_ms: int, characters: list[Any], whole: Any
    ) -> int:
        """Take every character's snapshot and the instance's (`whole`, if an object); how
        many characters' were new."""
        taken = 0
        for character in characters:
            if not isinstance(character, dict):
                raise PersistenceError("each character must be an object")
            taken += self.store.snapshot_ingest(
                scope="character",
                key=str(character.get("character_id", "")),
                instance_id=instance,
                revision=revision,
                at_ms=at_ms,
                state=character.get("state"),  # type: ignore[arg-type]
            )
        if isinstance(whole, dict):
            self.store.snapshot_ingest(
                scope="instance",
                key="state",
                instance_id=instance,
                revision=revision,
                at_ms=at_ms,
                state=whole,
            )
        return taken

    async def _character(self, request: ControlRequest) -> dict[str, Any]:
        character_id = request.params["character_id"]
        try:
            state = await asyncio.to_thread(self.store.character_load, character_id)
        except PersistenceError as error:
            raise ControlRefusal(400, str(error), "bad_request") from None
        if state is None:
            raise ControlRefusal(404, f"no snapshot of character {character_id}", "unknown")
        return {"character_id": character_id, "state": state}
